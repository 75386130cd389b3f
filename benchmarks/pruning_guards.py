"""Cadence guards compared on the same probabilities (a study of the fourth round; not adopted).

For each tuning corpus: simulate, ingest, analyze, replay the default policy once
(``optimizer.replay.evaluate``), then replay its probabilities with the controller under each
guard variant, and the true-probability oracle under the same variant held to the policy's
loss. Prints per corpus and variant: waste pruned, pushes lost, pipelines whose median interval
stayed within 5%, largest ratio of a pipeline's longest interval; the same for the oracle.
The skip-pushes guard (``max_skipped_pushes``) exists only in this commit's policy.py.

    python benchmarks/pruning_guards.py --seeds 909 --draws 4 --draw-seed 1001
    python benchmarks/pruning_guards.py --seeds --draws 8 --draw-seed 5001
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

OFF = 1e12
VARIANTS = {
    "push_age_2 (default)": {},
    "push_age_3": {"push_age_factor": 3.0},
    "push_age_4": {"push_age_factor": 4.0},
    "longest_1": {"push_age_factor": OFF, "longest_factor": 1.0},
    "longest_0.75": {"push_age_factor": OFF, "longest_factor": 0.75},
    "push_age_3_longest_1": {"push_age_factor": 3.0, "longest_factor": 1.0},
    "skip_1": {"push_age_factor": OFF, "max_skipped_pushes": 1.0},
    "skip_0.5": {"push_age_factor": OFF, "max_skipped_pushes": 0.5},
    "push_age_2_skip_1": {"max_skipped_pushes": 1.0},
    "push_age_4_skip_1": {"push_age_factor": 4.0, "max_skipped_pushes": 1.0},
    "no_push_age": {"push_age_factor": OFF},
}
COMBOS = (("current", "sync"), ("current", "async"), ("legacy", "sync"), ("current", "mixed"))


def one(out: Path, style, mode, seed, model) -> dict:
    import pandas as pd

    from analysis import analyze
    from optimizer.policy import PolicyConfig, controlled_decisions, cost_of
    from optimizer.replay import (_hindsight, _period_totals, cadence, cadence_summary, evaluate, load_truth,
                                  replay_frame, replay_metrics)
    from pipelines.simulator import simulate
    from provenance.ingest import ingest
    from provenance.warehouse import connect

    sim = simulate(out / "corpus", pipelines=60, days=90, seed=seed, style=style, mode=mode, progress=False,
                   outcome_model=model)
    ingest([str(p) for p in sim.store_paths], str(out / "w.duckdb"), progress=False)
    analyze(str(out / "w.duckdb"))
    con = connect(str(out / "w.duckdb"), read_only=True)
    base = PolicyConfig(max_lost_pushes=0.05)
    res = evaluate(con, truth=load_truth(con, sim.ground_truth_paths), config=base, baselines=False)
    frame, _ = replay_frame(con)
    test = frame[pd.to_datetime(frame["started_at"], utc=True) >= res.train_until].reset_index(drop=True)
    prob = res.decisions["probability"].to_numpy()
    p_true = res.decisions["true_probability"].to_numpy()
    wasted = _period_totals(con, res.train_until)[0]
    row = {"corpus": f"{style} {mode} {model} {seed}"}
    for name, change in VARIANTS.items():
        cfg = replace(base, **change)
        pruned, _, _ = controlled_decisions(test, prob, 0.0, cfg, cost=cost_of(test, base), history=res.policy.recent)
        m, c = replay_metrics(test, pruned, wasted_total_s=wasted), cadence_summary(cadence(test, pruned))
        _, po = _hindsight(test, p_true, m["pushes_lost"], cfg)
        mo, co = replay_metrics(test, po, wasted_total_s=wasted), cadence_summary(cadence(test, po))
        row[name] = {"waste": m["waste_pruned"], "lost": m["pushes_lost"], "median_kept": c["median_within_tolerance"],
                     "longest_x": c["longest_ratio_max"], "oracle_waste": mo["waste_pruned"],
                     "oracle_median_kept": co["median_within_tolerance"], "oracle_longest_x": co["longest_ratio_max"]}
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[909])
    ap.add_argument("--draws", type=int, default=4)
    ap.add_argument("--draw-seed", type=int, default=1001)
    args = ap.parse_args()
    corpora = [(s, m, seed, "default") for seed in args.seeds for s, m in COMBOS]
    corpora += [(*COMBOS[k % 4], args.draw_seed + k, "random") for k in range(args.draws)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="frugal-guards-") as tmp:
        for k, c in enumerate(corpora):
            rows.append(one(Path(tmp) / str(k), *c))
            print(json.dumps(rows[-1]), flush=True)
    for name in VARIANTS:
        v = [r[name] for r in rows]
        print(f"{name:22s} waste {100 * statistics.fmean(x['waste'] for x in v):5.2f}%  "
              f"oracle {100 * statistics.fmean(x['oracle_waste'] for x in v):5.2f}%  "
              f"policy/oracle {statistics.fmean(x['waste'] / x['oracle_waste'] for x in v):.3f}  "
              f"longest <= 2x {sum((x['longest_x'] or 0) <= 2 for x in v)}/{len(v)} "
              f"(oracle {sum((x['oracle_longest_x'] or 0) <= 2 for x in v)})  "
              f"median kept >= oracle's {sum(x['median_kept'] >= x['oracle_median_kept'] for x in v)}/{len(v)}  "
              f"mean median kept {statistics.fmean(x['median_kept'] for x in v):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
