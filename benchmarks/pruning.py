"""Pruning policy vs the oracle on fresh simulated corpora (both styles, sync and async).

For each (style, mode) a corpus with a seed never used for tuning is simulated, ingested and
analyzed; ``optimizer.replay.evaluate`` learns on the first 60% of the time span and replays
the rest, retraining on an expanding window at 8 evenly spaced times, once with the
controlled rule (the default: sliding-window threshold, running budget, cost-aware ranking)
and once with the previous rule (threshold chosen on the validation period), side by side. Prints, per corpus, the share of wasted compute pruned (of all waste, and of what a
decision at trainer start can skip at all), pushes lost, compute saved, cadence kept, and the
same figures for the oracle that prunes by the simulator's true push probability under the
same guards and lost-push budget. The last line is a JSON object.

    python benchmarks/pruning.py [--pipelines 60] [--days 60] [--seed 606] [--max-lost-pushes 0.02]
    python benchmarks/pruning.py --pipelines 300 --days 120 --only current:sync --time-decide
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

# benchmarks/analysis.py would shadow the analysis package: import packages, not siblings
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

COMBOS = (("current", "sync"), ("current", "async"), ("legacy", "sync"), ("current", "mixed"))  # legacy TFX had no async


def run_one(out: Path, style: str, mode: str, args) -> dict:
    from analysis import analyze
    from optimizer.policy import PolicyConfig
    from optimizer.replay import evaluate, load_truth
    from pipelines.simulator import simulate
    from provenance.ingest import ingest
    from provenance.warehouse import connect

    t0 = time.perf_counter()
    sim = simulate(out / "corpus", pipelines=args.pipelines, days=args.days, seed=args.seed,
                   style=style, mode=mode, progress=False)
    warehouse = out / "w.duckdb"
    ingest([str(p) for p in sim.store_paths], str(warehouse))
    analyze(str(warehouse))
    t1 = time.perf_counter()
    con = connect(str(warehouse), read_only=True)
    if args.time_decide:
        return time_decide(con, t1 - t0)
    truth = load_truth(con, sim.ground_truth_paths)
    result = evaluate(con, truth=truth, config=PolicyConfig(max_lost_pushes=args.max_lost_pushes))
    t2 = time.perf_counter()
    data = result.to_dict()
    m, o, cad = data["metrics"], data["oracle"], data["cadence_summary"]
    # the previous rule (threshold chosen on the validation period), same trees, same oracle
    old = evaluate(con, truth=truth, config=PolicyConfig(max_lost_pushes=args.max_lost_pushes,
                                                          rule="validation")).to_dict()
    t3 = time.perf_counter()
    free = o["without_guards"]
    return {
        "style": style, "mode": mode, "seed": args.seed, "trainings": int(con.execute("SELECT count(*) FROM graphlets").fetchone()[0]),
        "replayed": m["trainings"], "threshold": data["policy"]["threshold"],
        "fallback": data["policy"]["fallback"],
        "waste_pruned": m["waste_pruned"], "waste_pruned_of_skippable": m["waste_pruned_of_skippable"],
        "pushes_lost": m["pushes_lost"], "compute_saved_share": m["compute_saved_share"],
        "compute_saved_s": m["compute_saved_s"],
        "median_unchanged": cad.get("median_unchanged"), "pipelines_compared": cad.get("pipelines_compared"),
        "median_within_5pct": cad.get("median_within_tolerance"),
        "longest_ratio_max": cad.get("longest_ratio_max"),
        "oracle_waste_pruned": o["waste_pruned"], "oracle_waste_pruned_of_skippable": o["waste_pruned_of_skippable"],
        "oracle_pushes_lost": o["pushes_lost"],
        "oracle_waste_pruned_at_policy_loss": o["waste_pruned_at_policy_loss"],
        "oracle_median_unchanged": o["cadence_summary"].get("median_unchanged"),
        "vs_oracle": data.get("policy_vs_oracle"),
        "old_waste_pruned": old["metrics"]["waste_pruned"], "old_pushes_lost": old["metrics"]["pushes_lost"],
        "old_median_unchanged": old["cadence_summary"].get("median_unchanged"),
        "old_vs_oracle": old.get("policy_vs_oracle"),
        "new_vs_old": (m["waste_pruned"] / old["metrics"]["waste_pruned"]
                       if old["metrics"]["waste_pruned"] > 0 else None),
        "oracle_unguarded_waste_pruned": free["waste_pruned"], "oracle_unguarded_pushes_lost": free["pushes_lost"],
        "oracle_unguarded_median_unchanged": free["cadence_summary"].get("median_unchanged"),
        "oracle_cost_aware_waste_pruned": o["cost_aware"]["waste_pruned"],
        "oracle_cost_aware_pushes_lost": o["cost_aware"]["pushes_lost"],
        "oracle_cost_aware_unguarded_waste_pruned": o["cost_aware"]["without_guards"],
        "auc": m["auc"], "brier": m["brier"], "oracle_auc": o["auc"], "oracle_brier": o["brier"],
        "thresholds": [r["threshold"] for r in data["policy"]["refits"]],
        "build_s": t1 - t0, "evaluate_s": t2 - t1, "evaluate_old_s": t3 - t2,
        "top_features": [f["feature"] for f in data["policy"]["top_features"][:5]],
    }


def time_decide(con, build_s: float) -> dict:
    """Seconds to build every training's features, then to decide for the three busiest pipelines."""
    from optimizer.hook import decide
    from optimizer.replay import replay_frame

    t0 = time.perf_counter()
    frame, columns = replay_frame(con)
    features_s = time.perf_counter() - t0
    pipelines = [r[0] for r in con.execute(
        "SELECT pipeline FROM graphlets GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 3").fetchall()]
    decide_s = []
    for p in pipelines:
        t = time.perf_counter()
        decide(con, p)
        decide_s.append(time.perf_counter() - t)
    print(f"{len(frame):,} trainings, {len(columns)} features: features {features_s:.1f} s; decide "
          f"(first, then with the learned policy kept) {', '.join(f'{s:.1f}' for s in decide_s)} s "
          f"[{build_s:.0f} s build]", flush=True)
    return {"trainings": len(frame), "features": len(columns), "features_s": features_s,
            "decide_s": decide_s, "build_s": build_s}


def _r(x):
    return None if x is None else round(x, 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", type=int, default=60)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=606, help="fresh seed (5, 11, 101, 102, 103 and 202 were used for tuning)")
    parser.add_argument("--max-lost-pushes", type=float, default=0.02)
    parser.add_argument("--only", default=None, help="style:mode, e.g. legacy:async")
    parser.add_argument("--time-decide", action="store_true",
                        help="only time the features and `decide` for three pipelines (no evaluation)")
    args = parser.parse_args(argv)
    combos = [tuple(args.only.split(":"))] if args.only else COMBOS
    rows = []
    with tempfile.TemporaryDirectory(prefix="frugal-pruning-") as tmp:
        for style, mode in combos:
            row = run_one(Path(tmp) / f"{style}-{mode}", style, mode, args)
            if args.time_decide:
                print(json.dumps({"benchmark": "pruning-decide", "pipelines": args.pipelines,
                                  "days": args.days, "seed": args.seed, "style": style, "mode": mode, **row}))
                continue
            rows.append(row)
            print(f"{style:7s} {mode:5s} replayed {row['replayed']:6,d}  waste pruned {100 * row['waste_pruned']:5.1f}% "
                  f"(of skippable {100 * row['waste_pruned_of_skippable']:5.1f}%)  pushes lost "
                  f"{100 * row['pushes_lost']:4.2f}%  compute saved {100 * row['compute_saved_share']:4.1f}%  "
                  f"median kept {row['median_unchanged']}/{row['pipelines_compared']}  | oracle: waste pruned "
                  f"{100 * row['oracle_waste_pruned']:5.1f}% (of skippable "
                  f"{100 * row['oracle_waste_pruned_of_skippable']:5.1f}%) lost {100 * row['oracle_pushes_lost']:4.2f}%"
                  f" (at the policy's loss: {100 * row['oracle_waste_pruned_at_policy_loss']:4.1f}%)"
                  f"  | policy/oracle {_r(row['vs_oracle'])}"
                  f"  | AUC {row['auc']:.3f} vs {row['oracle_auc']:.3f}, Brier {row['brier']:.3f} vs {row['oracle_brier']:.3f}"
                  f"  | old rule (validation threshold): {100 * row['old_waste_pruned']:4.1f}% lost "
                  f"{100 * row['old_pushes_lost']:4.2f}% median kept {row['old_median_unchanged']}, old/oracle "
                  f"{_r(row['old_vs_oracle'])}  | new/old {_r(row['new_vs_old'])}"
                  f"  | oracle without guards: {100 * row['oracle_unguarded_waste_pruned']:4.1f}% median kept "
                  f"{row['oracle_unguarded_median_unchanged']}"
                  f"  | cost-aware oracle (ceiling of a cost-ranked rule): "
                  f"{100 * row['oracle_cost_aware_waste_pruned']:4.1f}% lost {100 * row['oracle_cost_aware_pushes_lost']:4.2f}%"
                  f", without guards {100 * row['oracle_cost_aware_unguarded_waste_pruned']:4.1f}%"
                  f"  [{row['build_s']:.0f} s build, {row['evaluate_s']:.0f} s evaluate]", flush=True)
    if args.time_decide:
        return 0
    ratios = [r["vs_oracle"] for r in rows if r["vs_oracle"] is not None]
    old_ratios = [r["old_vs_oracle"] for r in rows if r["old_vs_oracle"] is not None]
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    print(f"seed {args.seed}: new rule (controlled) waste pruned mean "
          f"{100 * mean([r['waste_pruned'] for r in rows]):.1f}% (max lost {100 * max(r['pushes_lost'] for r in rows):.2f}%)"
          f", old rule (validation) {100 * mean([r['old_waste_pruned'] for r in rows]):.1f}% (max lost "
          f"{100 * max(r['old_pushes_lost'] for r in rows):.2f}%); new/old {_r(mean([r['waste_pruned'] for r in rows]) / mean([r['old_waste_pruned'] for r in rows]) if mean([r['old_waste_pruned'] for r in rows]) else None)}"
          f"; policy/oracle new {_r(mean(ratios))}, old {_r(mean(old_ratios))}; ceiling (cost-aware oracle) "
          f"{100 * max(r['oracle_cost_aware_waste_pruned'] for r in rows):.1f}% at most, "
          f"{100 * max(r['oracle_cost_aware_unguarded_waste_pruned'] for r in rows):.1f}% without guards (bar: 50%)",
          flush=True)
    summary = {
        "benchmark": "pruning", "pipelines": args.pipelines, "days": args.days, "seed": args.seed,
        "max_lost_pushes": args.max_lost_pushes,
        "waste_pruned_min": min(r["waste_pruned"] for r in rows),
        "pushes_lost_max": max(r["pushes_lost"] for r in rows),
        "policy_vs_oracle_mean": mean(ratios),
        "old_rule_vs_oracle_mean": mean(old_ratios),
        "old_rule_waste_pruned_min": min(r["old_waste_pruned"] for r in rows),
        "old_rule_pushes_lost_max": max(r["old_pushes_lost"] for r in rows),
        "oracle_cost_aware_waste_pruned_max": max(r["oracle_cost_aware_waste_pruned"] for r in rows),
        "oracle_cost_aware_unguarded_waste_pruned_max": max(r["oracle_cost_aware_unguarded_waste_pruned"] for r in rows),
        "corpora": rows,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
