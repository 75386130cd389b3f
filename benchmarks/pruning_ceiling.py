"""How much of the gap to the oracle is information MLMD does not record.

The oracle prunes by the simulator's true push probability, which depends on hidden state
(the branch's health, the span's drift and, with a random outcome model, a periodic swing and
a per-training shock; docs/simulator.md). This benchmark fits the policy's own learner
(``optimizer.pruning.predictor.fit_predictor``, default config) once, at the replay's split, on four
inputs, and scores each on the replayed period:

- ``policy features``: the policy's feature columns (what frugal reads from MLMD);
- ``true visible drivers``: the simulator's own visible drivers of each training (anomaly, new
  data, code/hyperparameter/structure change, recent bless rate and, with a random model, the
  hour and the trainings since the last code change) plus the lane's shrunk push rate: a
  feature set that names exactly what the outcome model reads;
- ``+ hidden``: each of the two above with the hidden drivers added (health, drift, cycle,
  shock): what a predictor could do if the store recorded them.

Reported per corpus: AUC, and waste pruned at the policy's loss (each ranking by the policy's
cost-aware key, held in hindsight to the pushes the policy lost, same guards), beside the
policy as replayed (8 refits, controller) and the oracle. If the true visible drivers do no
better than the policy's features and the hidden drivers close most of the gap, the gap is
what MLMD does not record.

    python benchmarks/pruning_ceiling.py --seeds 4646 --draws 8 --draw-seed 10001
    python benchmarks/pruning_ceiling.py --pipelines 30 --days 60 --seeds --draws 1 --draw-seed 1001 [--without-latest]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from common import add_corpus_options, corpora, simulated_warehouse

VISIBLE = ("anomaly", "new_data", "code_change", "hparam_change", "structure_change", "recent_bless_rate",
           "hour_cos", "hour_sin", "runs_since_code_change")
HIDDEN = ("health", "drift", "cycle", "shock")


def load_drivers(con, paths):
    """Per trainer execution of the ground truth: its drivers (docs/simulator.md, "Ground truth")."""
    import math

    import pandas as pd

    from optimizer.pruning.replay import store_sources

    by_name = store_sources(con)
    rows = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        sid = by_name.get(Path(data["store"]).name) or by_name.get(Path(data["store"]).stem)
        for t in data["trainers"]:
            d = t.get("drivers")
            if not d:
                continue
            hour = d.get("hour")
            rows.append({
                "source_id": sid, "trainer_execution_id": int(t["execution_id"]),
                **{k: float(d[k]) for k in ("anomaly", "new_data", "code_change", "hparam_change",
                                            "structure_change", "recent_bless_rate", "health", "drift")},
                "hour_cos": math.cos(2 * math.pi * hour / 24) if hour is not None else 0.0,
                "hour_sin": math.sin(2 * math.pi * hour / 24) if hour is not None else 0.0,
                "runs_since_code_change": float(d.get("runs_since_code_change") or 0.0),
                "cycle": float(d.get("cycle") or 0.0), "shock": float(d.get("shock") or 0.0)})
    return pd.DataFrame(rows)


def run_one(out: Path, style: str, mode: str, seed: int, model: str, args) -> dict:
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from optimizer.pruning.features import FeatureConfig
    from optimizer.pruning.policy import PolicyConfig, choose_threshold, cost_of, prune_key, replay_decisions
    from optimizer.pruning.predictor import fit_predictor
    from optimizer.pruning.replay import evaluate, load_truth, replay_frame, replay_metrics
    from provenance.warehouse import connect

    sim, warehouse = simulated_warehouse(out, pipelines=args.pipelines, days=args.days, seed=seed, style=style,
                                         mode=mode, outcome_model=model)
    con = connect(str(warehouse), read_only=True)
    config = PolicyConfig(max_lost_pushes=args.max_lost_pushes)
    features = FeatureConfig(latest=not args.without_latest)
    result = evaluate(con, truth=load_truth(con, sim.ground_truth_paths), config=config, baselines=False,
                      feature_config=features)
    frame, columns = replay_frame(con, features)
    frame = frame.merge(load_drivers(con, sim.ground_truth_paths), on=["source_id", "trainer_execution_id"],
                        how="left", validate="one_to_one")
    started = pd.to_datetime(frame["started_at"], utc=True)
    ended = pd.to_datetime(frame["push_time"], utc=True)
    until = result.train_until
    test = frame[(started >= until).to_numpy()].reset_index(drop=True)
    known = frame[((started < until) & (ended < until)).to_numpy()]
    y_known = known["pushed"].to_numpy(dtype=float)
    y_test = test["pushed"].to_numpy(dtype=bool)
    cut = int(round(len(known) * (1 - config.validation_share)))
    cost = cost_of(test, config)
    lost = result.metrics["pushes_lost"]
    wasted_total = result.metrics["wasted_s"]

    def at_policy_loss(p):
        key = prune_key(p, cost)
        threshold, _ = choose_threshold(test, key, lost, config)
        pruned = replay_decisions(test, key, threshold, config)[0]
        return replay_metrics(test, pruned, wasted_total_s=wasted_total)["waste_pruned"]

    def fitted(cols):
        X = lambda d: d[list(cols)].to_numpy(dtype=np.float64, na_value=np.nan)  # noqa: E731
        pred = fit_predictor(X(known.iloc[:cut]), y_known[:cut], X(known.iloc[cut:]), y_known[cut:], tuple(cols))
        p = pred.predict(X(test))
        return {"auc": float(roc_auc_score(y_test, p)), "waste_at_policy_loss": at_policy_loss(p)}

    visible = [*VISIBLE, "h_push_rate_shrunk"]
    p_true = result.decisions["true_probability"].to_numpy(dtype=float)
    row = {
        "style": style, "mode": mode, "seed": seed, "outcome_model": model, "replayed": len(test),
        "policy": {"auc": result.metrics["auc"], "waste_pruned": result.metrics["waste_pruned"],
                   "pushes_lost": lost},
        "policy_features": fitted(columns),
        "policy_features_hidden": fitted([*columns, *HIDDEN]),
        "true_visible": fitted(visible),
        "true_visible_hidden": fitted([*visible, *HIDDEN]),
        "oracle": {"auc": float(roc_auc_score(y_test, p_true)), "waste_at_policy_loss": at_policy_loss(p_true)},
    }
    con.close()
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_options(parser, seeds=[4646], draw_seed=10001)
    parser.add_argument("--without-latest", action="store_true",
                        help="the policy's features without `.latest` (FeatureConfig(latest=False)), as before the "
                             "fifth round")
    args = parser.parse_args(argv)
    names = ("policy_features", "true_visible", "policy_features_hidden", "true_visible_hidden", "oracle")
    rows = []
    with tempfile.TemporaryDirectory(prefix="frugal-ceiling-") as tmp:
        for k, (style, mode, seed, model) in enumerate(corpora(args.seeds, args.draws, args.draw_seed)):
            r = run_one(Path(tmp) / str(k), style, mode, seed, model, args)
            rows.append(r)
            print(f"{style:7s} {mode:5s} {model:7s} seed {seed:5d} | policy AUC {r['policy']['auc']:.3f} waste "
                  f"{100 * r['policy']['waste_pruned']:.1f}% | " + " | ".join(
                      f"{n} AUC {r[n]['auc']:.3f} waste {100 * r[n]['waste_at_policy_loss']:.1f}%" for n in names),
                  flush=True)
    mean = {n: {"auc": statistics.fmean(r[n]["auc"] for r in rows),
                "waste_at_policy_loss": statistics.fmean(r[n]["waste_at_policy_loss"] for r in rows)} for n in names}
    mean["policy"] = {"auc": statistics.fmean(r["policy"]["auc"] for r in rows),
                      "waste_pruned": statistics.fmean(r["policy"]["waste_pruned"] for r in rows)}
    print("mean: " + " | ".join(f"{n} AUC {v['auc']:.3f} waste {100 * list(v.values())[1]:.2f}%"
                                for n, v in mean.items()), flush=True)
    print(json.dumps({"benchmark": "pruning-ceiling", "pipelines": args.pipelines, "days": args.days,
                      "seeds": args.seeds, "draws": args.draws, "draw_seed": args.draw_seed, "mean": mean,
                      "corpora": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
