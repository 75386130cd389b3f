"""How the running budget's controller spends: variants replayed on the same probabilities.

For each corpus (the corpora of benchmarks/pruning.py: ``--seeds`` over every style:mode with
the default outcome model, ``--draws`` random outcome models from ``--draw-seed``), the
probabilities are computed once as ``optimizer.replay.evaluate`` computes them (expanding
window, 8 refits) and kept under ``--cache``; then each controller variant is replayed on them
with ``controlled_decisions``. Printed per variant: corpora whose observed loss is within
75-100% of the budget, below and above it, the lowest and highest share, and the mean waste
pruned. The variants are the third round of docs/pruning.md ("Spending the budget"):
``window_share``, ``control_z``, the catch-up (``PolicyConfig.catch_up``) and a calibration
correction that is not in the policy (``ratio_controller`` below: the expected lost pushes
times the shrunk ratio of observed over predicted pushes among trainings that ran).

    python benchmarks/pruning_budget.py --cache /tmp/frugal-budget --seeds 909 4242 \\
        --draws 4 8 --draw-seed 1001 5001 --allow-tuning-seeds
"""

from __future__ import annotations

import argparse
import heapq
import math
import pickle
import sys
import tempfile
from collections import deque
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

COMBOS = (("current", "sync"), ("current", "async"), ("legacy", "sync"), ("current", "mixed"))


def build(path: Path, style: str, mode: str, seed: int, model: str, pipelines: int, days: int) -> dict:
    """Simulate, ingest and analyze one corpus; keep what the controller reads."""
    import pandas as pd

    from analysis import analyze
    from optimizer.policy import PolicyConfig, train_policy
    from optimizer.replay import _period_totals, load_truth, replay_frame
    from pipelines.simulator import simulate
    from provenance.ingest import ingest
    from provenance.warehouse import connect

    cfg = PolicyConfig(max_lost_pushes=0.05)
    with tempfile.TemporaryDirectory(prefix="frugal-budget-") as tmp:
        sim = simulate(Path(tmp) / "corpus", pipelines=pipelines, days=days, seed=seed, style=style, mode=mode,
                       progress=False, outcome_model=model)
        wh = Path(tmp) / "w.duckdb"
        ingest([str(p) for p in sim.store_paths], str(wh), progress=False)
        analyze(str(wh))
        con = connect(str(wh), read_only=True)
        frame, columns = replay_frame(con)
        started = pd.to_datetime(frame["started_at"], utc=True)
        until = started.min() + (started.max() - started.min()) * 0.6
        test = frame[started >= until].reset_index(drop=True)
        t_test = pd.to_datetime(test["started_at"], utc=True)
        end = t_test.max() + pd.Timedelta(seconds=1)
        bounds = [until + (end - until) * k / cfg.refits for k in range(cfg.refits)] + [end]
        X = test[list(columns)].to_numpy(dtype=np.float64, na_value=np.nan)
        prob, policy = np.ones(len(test)), None
        for k in range(cfg.refits):
            sel = ((t_test >= bounds[k]) & (t_test < bounds[k + 1])).to_numpy()
            if k > 0 and not sel.any():
                continue
            pol = train_policy(frame, columns, bounds[k], cfg)
            policy = policy or pol
            if pol.predictor is not None and sel.any():
                prob[sel] = pol.predictor.predict(X[sel])
        wasted_total, _ = _period_totals(con, until)
        truth = load_truth(con, sim.ground_truth_paths)
        merged = test.merge(truth, on=["source_id", "trainer_execution_id"], how="left")
        keep = ["graphlet_id", "pipeline", "lane", "started_at", "push_time", "pushed", "n_prior", "hours_since_push",
                "typical_interval_h", "longest_interval_h", "skippable_s", "skippable_wasted_s", "p_prev_trainer_s"]
        data = {"test": test[keep].copy(), "prob": prob, "recent": policy.recent, "wasted_total": wasted_total,
                "p_true": merged["push_probability"].to_numpy(dtype=float), "name": f"{style}:{mode}:{model}:{seed}"}
        con.close()
    with open(path, "wb") as fh:
        pickle.dump(data, fh)
    return data


def ratio_controller(frame, prob, config, cost, history, select: str, k: float, share: float | None = None):
    """``controlled_decisions`` with a calibration correction (not in the policy: it did not help).

    ``select="none"`` is no correction (``r = 1``): with ``share`` (the window threshold's
    ``window_share``, which PolicyConfig keeps at most 1), the variants above 1.

    The expected lost pushes (cap and window threshold) are multiplied by ``r = (O + k) / (E + k)``:
    O pushes observed, E their probabilities, over the trainings that ran and ended before the
    decision and fall in ``select``: ``"key"`` (key under twice the threshold in force when they
    were decided), ``"under"`` (key under that threshold: guarded or capped) or ``"all"``.
    """
    from optimizer.policy import _longest_limit, _replay_arrays, prune_key, window_threshold

    budget = config.max_lost_pushes * config.safety
    n = len(frame)
    pruned, guarded, used = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n)
    start, push_t, pushed, n_prior, since, typical = _replay_arrays(frame)
    longest = _longest_limit(frame, config)
    lanes = frame["lane"].to_numpy()
    z, target = config.control_z, budget * (config.window_share if share is None else share)
    key = prune_key(prob, cost)
    win = [deque(maxlen=config.window) for _ in range(3)]
    for row in zip(*history):
        for w, v in zip(win, row):
            w.append(v)
    last_push, pending, running = {}, {}, []
    observed = running_p = lost = cal_o = cal_e = 0.0
    for i in np.lexsort((np.arange(n), start)):
        s = start[i]
        while running and running[0][0] < s:
            _, j = heapq.heappop(running)
            running_p -= prob[j]
            observed += float(pushed[j])
            if (select == "all" or (select == "key" and key[j] < 2 * used[j])
                    or (select == "under" and key[j] < used[j])):
                cal_o += float(pushed[j])
                cal_e += prob[j]
        r = 1.0 if select == "none" else (cal_o + k) / (cal_e + k)
        lane = lanes[i]
        if lane not in last_push:
            last_push[lane] = s - since[i] if not math.isnan(since[i]) else math.nan
            pending[lane] = []
        for t in [t for t in pending[lane] if t < s]:
            if math.isnan(last_push[lane]) or t > last_push[lane]:
                last_push[lane] = t
        pending[lane] = [t for t in pending[lane] if t >= s]
        age = s - last_push[lane]
        ok = (n_prior[i] >= config.min_history and not math.isnan(age) and not math.isnan(typical[i])
              and age <= config.push_age_factor * typical[i] and not age > longest[i])
        th = window_threshold(np.array(win[0]), np.array(win[1], bool), target / r, np.array(win[2])) if win[0] else 0.0
        used[i] = th
        for w, v in zip(win, (prob[i], not ok, key[i])):
            w.append(v)
        if not ok:
            guarded[i] = True
        elif key[i] < th:
            after = r * (lost + prob[i])
            if after + z * math.sqrt(after) <= budget * (observed + running_p + after) + 1e-12:
                pruned[i] = True
                lost += prob[i]
                continue
        heapq.heappush(running, (push_t[i] if not math.isnan(push_t[i]) else math.inf, int(i)))
        running_p += prob[i]
        if pushed[i] and not math.isnan(push_t[i]):
            pending[lane].append(push_t[i])
    return pruned, guarded, used


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True, help="folder for the corpora's probabilities (reused)")
    parser.add_argument("--pipelines", type=int, default=60)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seeds", type=int, nargs="*", default=[909])
    parser.add_argument("--draws", type=int, nargs="+", default=[4], help="one count per --draw-seed")
    parser.add_argument("--draw-seed", type=int, nargs="+", default=[1001])
    parser.add_argument("--allow-tuning-seeds", action="store_true")
    args = parser.parse_args(argv)
    import importlib.util

    spec = importlib.util.spec_from_file_location("_pruning_bench", Path(__file__).resolve().parent / "pruning.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    TUNING_SEEDS = bench.TUNING_SEEDS

    from optimizer.policy import PolicyConfig, controlled_decisions, cost_of
    from optimizer.replay import replay_metrics

    corpora = [(s, m, seed, "default") for seed in args.seeds for s, m in COMBOS]
    if len(args.draws) != len(args.draw_seed):
        parser.error("give one --draws count per --draw-seed")
    corpora += [(*COMBOS[k % 4], first + k, "random") for first, count in zip(args.draw_seed, args.draws)
                for k in range(count)]
    used = sorted({c[2] for c in corpora} & set(TUNING_SEEDS))
    if used and not args.allow_tuning_seeds:
        parser.error(f"seeds {used} are tuning seeds; this study is for tuning (--allow-tuning-seeds)")
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    data = []
    for style, mode, seed, model in corpora:
        path = cache / f"{style}-{mode}-{model}-{seed}.pkl"
        if path.exists():
            with open(path, "rb") as fh:
                data.append(pickle.load(fh))
        else:
            data.append(build(path, style, mode, seed, model, args.pipelines, args.days))
    base = PolicyConfig(max_lost_pushes=0.05)
    variants = [("defaults", base, None)]
    variants += [(f"ratio {sel} k={k:g}", base, (sel, k)) for sel in ("key", "under", "all") for k in (10, 30, 100)]
    variants += [(f"window_share {w:g}", base, ("none", 0.0, w)) for w in (1.25, 1.5, 2.0)]
    variants += [(f"catch-up {c:g}", replace(base, catch_up=c), None) for c in (0.25, 0.5, 1.0, 2.0)]
    variants += [(f"catch-up 0.5, control_z {z:g}", replace(base, catch_up=0.5, control_z=z), None)
                 for z in (0.5, 0.75, 1.25)]
    for label, cfg, ratio in variants:
        spent, waste = [], []
        for d in data:
            cost = cost_of(d["test"], cfg)
            if ratio is None:
                pruned, _, _ = controlled_decisions(d["test"], d["prob"], 0.0, cfg, cost=cost, history=d["recent"])
            else:
                pruned, _, _ = ratio_controller(d["test"], d["prob"], cfg, cost, d["recent"], *ratio)
            m = replay_metrics(d["test"], pruned, wasted_total_s=d["wasted_total"])
            spent.append(m["pushes_lost"] / cfg.max_lost_pushes)
            waste.append(m["waste_pruned"])
        sp = np.array(spent)
        print(f"{label:34s} in band {int(((sp >= .75) & (sp <= 1)).sum()):2d}/{len(sp)}  below {int((sp < .75).sum())}"
              f"  above {int((sp > 1).sum())}  lowest {100 * sp.min():5.1f}%  highest {100 * sp.max():5.1f}%"
              f"  mean waste {100 * np.mean(waste):5.2f}%", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
