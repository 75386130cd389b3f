"""Pruning policy vs the oracle on fresh simulated corpora (both styles, sync and async).

For each (style, mode) a corpus with a seed never used for tuning is simulated, ingested and
analyzed; ``optimizer.replay.evaluate`` learns on the first 60% of the time span and replays
the rest, retraining on an expanding window at 8 evenly spaced times. Prints, per corpus, the share of wasted compute pruned (of all waste, and of what a
decision at trainer start can skip at all), pushes lost, compute saved, cadence kept, and the
same figures for the oracle that prunes by the simulator's true push probability under the
same guards and lost-push budget. The last line is a JSON object.

    python benchmarks/pruning.py [--pipelines 60] [--days 60] [--seed 101] [--max-lost-pushes 0.02]
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
    # the same policy trained once at the split (no retraining during the replay), for comparison
    once = evaluate(con, config=PolicyConfig(max_lost_pushes=args.max_lost_pushes, refits=1)).to_dict()
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
        "once_waste_pruned": once["metrics"]["waste_pruned"], "once_pushes_lost": once["metrics"]["pushes_lost"],
        "once_median_unchanged": once["cadence_summary"].get("median_unchanged"), "once_auc": once["metrics"]["auc"],
        "oracle_unguarded_waste_pruned": free["waste_pruned"], "oracle_unguarded_pushes_lost": free["pushes_lost"],
        "oracle_unguarded_median_unchanged": free["cadence_summary"].get("median_unchanged"),
        "auc": m["auc"], "brier": m["brier"], "oracle_auc": o["auc"], "oracle_brier": o["brier"],
        "thresholds": [r["threshold"] for r in data["policy"]["refits"]],
        "build_s": t1 - t0, "evaluate_s": t2 - t1,
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", type=int, default=60)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=101, help="fresh seed (5, 11 and 202 were used for tuning)")
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
                  f"  | policy/oracle {row['vs_oracle'] if row['vs_oracle'] is None else round(row['vs_oracle'], 3)}"
                  f"  | AUC {row['auc']:.3f} vs {row['oracle_auc']:.3f}, Brier {row['brier']:.3f} vs {row['oracle_brier']:.3f}"
                  f"  | trained once: {100 * row['once_waste_pruned']:4.1f}% lost {100 * row['once_pushes_lost']:4.2f}% "
                  f"median kept {row['once_median_unchanged']}"
                  f"  | oracle without guards: {100 * row['oracle_unguarded_waste_pruned']:4.1f}% median kept "
                  f"{row['oracle_unguarded_median_unchanged']}"
                  f"  [{row['build_s']:.0f} s build, {row['evaluate_s']:.0f} s evaluate]", flush=True)
    if args.time_decide:
        return 0
    ratios = [r["vs_oracle"] for r in rows if r["vs_oracle"] is not None]
    summary = {
        "benchmark": "pruning", "pipelines": args.pipelines, "days": args.days, "seed": args.seed,
        "max_lost_pushes": args.max_lost_pushes,
        "waste_pruned_min": min(r["waste_pruned"] for r in rows),
        "pushes_lost_max": max(r["pushes_lost"] for r in rows),
        "policy_vs_oracle_mean": sum(ratios) / len(ratios) if ratios else None,
        "corpora": rows,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
