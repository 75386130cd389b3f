"""A bounded training set against learning on everything (optimizer.pruning.training_set).

On a simulated corpus (default 60 pipelines x 90 days, cached in benchmarks/.cache), the
policy is learned as of a cut (default: when 70% of the trainings had started) from every
training before it, and from bounded training sets of several sizes (the newest trainings in
full, a stratified weighted sample of the older ones). Each policy then scores the trainings
after the cut, which none of them saw: AUC, Brier score and log loss of P(push), and what its
threshold does there (``replay_decisions`` under the policy's guards, ``replay_metrics``):
waste pruned and pushes lost. Prints a table; the last line is JSON.

    python benchmarks/training_set.py [--pipelines 60] [--days 90] [--fractions 1,0.5,0.25,0.1]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

from common import CACHE, cached, simulated_warehouse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipelines", type=int, default=60)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--cut", type=float, default=0.7, help="share of trainings (by start) before the cut")
    ap.add_argument("--fractions", default="1,0.5,0.25,0.1",
                    help="bounded set sizes as shares of the trainings before the cut (1: everything)")
    args = ap.parse_args()

    import duckdb
    import numpy as np
    import pandas as pd
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    from optimizer.pruning.policy import PolicyConfig, replay_decisions, train_policy
    from optimizer.pruning.replay import replay_frame, replay_metrics
    from optimizer.pruning.training_set import training_frame

    out = CACHE / f"training-set-{args.pipelines}x{args.days}-s{args.seed}"
    cached(out, lambda folder: simulated_warehouse(folder, pipelines=args.pipelines, days=args.days,
                                                   seed=args.seed))
    con = duckdb.connect(str(out / "w.duckdb"), read_only=True)
    full, columns, _keys = replay_frame(con, with_keys=True)
    cut = full["started_at"].quantile(args.cut)
    after = full[full["started_at"] >= cut].reset_index(drop=True)
    before_n = int((full["started_at"] < cut).sum())
    config = PolicyConfig()
    print(f"{len(full):,} trainings; the cut at {cut:%Y-%m-%d %H:%M}: {before_n:,} before, {len(after):,} after "
          f"({int(after['pushed'].sum()):,} pushed)", flush=True)
    X = after[list(columns)].to_numpy(dtype=np.float64, na_value=np.nan)
    y = after["pushed"].to_numpy(dtype=bool)
    rows = []
    for fraction in [float(f) for f in args.fractions.split(",")]:
        t0 = time.perf_counter()
        max_rows = None if fraction >= 1 else max(200, int(before_n * fraction))
        frame, cols, _k, plan = training_frame(con, max_rows=max_rows, until=cut)
        build_s = time.perf_counter() - t0
        assert tuple(cols) == tuple(columns) or fraction < 1, "the unbounded set has the replay's columns"
        # the bounded set's columns may drop a monotone counter the full one kept: score with its own
        Xa = after[list(cols)].to_numpy(dtype=np.float64, na_value=np.nan) if tuple(cols) != tuple(columns) else X
        t0 = time.perf_counter()
        policy = train_policy(frame, cols, pd.Timestamp(cut), config)
        fit_s = time.perf_counter() - t0
        p = policy.predictor.predict(Xa)
        pruned, _ = replay_decisions(after, p, policy.threshold, config)
        m = replay_metrics(after, pruned)
        row = {"fraction": fraction, "rows": int(len(frame)), "weighted": bool("sample_weight" in frame.columns),
               "plan": plan.to_dict(), "frame_mb": round(frame.memory_usage(deep=True).sum() / 1e6, 1),
               "auc": round(float(roc_auc_score(y, p)), 4), "brier": round(float(brier_score_loss(y, p)), 4),
               "log_loss": round(float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6))), 4),
               "threshold": round(float(policy.threshold), 4), "waste_pruned": round(m["waste_pruned"], 4),
               "pushes_lost": round(m["pushes_lost"], 4), "pruned": m["pruned"],
               "build_s": round(build_s, 1), "fit_s": round(fit_s, 1)}
        rows.append(row)
        print(f"{fraction:>5.2f} of {before_n:,}: {row['rows']:>6,} rows ({row['frame_mb']:>6.1f} MB)  "
              f"AUC {row['auc']:.4f}  Brier {row['brier']:.4f}  log loss {row['log_loss']:.4f}  "
              f"waste pruned {row['waste_pruned']:.1%}  pushes lost {row['pushes_lost']:.2%}  "
              f"(build {build_s:.1f} s, fit {fit_s:.1f} s)", flush=True)
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB")
    print(json.dumps({"pipelines": args.pipelines, "days": args.days, "seed": args.seed, "trainings": len(full),
                      "before_cut": before_n, "after_cut": len(after), "rows": rows}))


if __name__ == "__main__":
    main()
