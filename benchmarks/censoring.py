"""Refits on a censored history: does the policy stay calibrated where it prunes, with and without exploration?

A live policy never observes a training it pruned, so each refit learns from a censored history.
For every corpus (simulated, ingested, analyzed) this replays the policy three times with
``optimizer.pruning.replay.censored_replay``: refits that see every recorded outcome (what
``frugal prune evaluate`` does: the reference), refits that leave the pruned trainings out
(censored), and censored refits where ``--explore`` of the would-be prunes run anyway and are
weighted 1 / explore. It prints, per corpus and on average, the mean predicted push probability of
the would-be prunes of the later half of the replay against their true probability (the
simulator's), and the gap; a calibrated policy has a gap near the reference's.

    python benchmarks/censoring.py --pipelines 60 --days 90 --seeds 20264 --draws 2 --draw-seed 20311
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from common import add_corpus_options, corpora, simulated_warehouse


def run_one(out: Path, style: str, mode: str, seed: int, model: str, args) -> dict:
    import pandas as pd

    from optimizer.pruning.policy import PolicyConfig
    from optimizer.pruning.predictor import PredictorConfig
    from optimizer.pruning.replay import _true_probability, censored_replay, load_truth, replay_frame
    from provenance.warehouse import connect

    sim, warehouse = simulated_warehouse(out, pipelines=args.pipelines, days=args.days, seed=seed, style=style,
                                         mode=mode, outcome_model=model)
    con = connect(str(warehouse), read_only=True)
    truth = load_truth(con, sim.ground_truth_paths)
    frame, columns = replay_frame(con)
    started = pd.to_datetime(frame["started_at"], utc=True)
    until = started.min() + (started.max() - started.min()) * args.train_share
    config = PolicyConfig(objective=args.objective)
    row = {"style": style, "mode": mode, "seed": seed, "outcome_model": model}
    for label, kw in (("reference", {"censor": False}), ("censored", {"explore": 0.0}),
                      ("explored", {"explore": args.explore, "seed": seed})):
        r = censored_replay(frame, columns, until, config, PredictorConfig(seed=0), **kw)
        p_true, _ = _true_probability(r.rows, truth)
        row[label] = r.calibration(p_true, since_segment=config.refits // 2)
        row[label]["explored"] = int(r.explored.sum())
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_options(parser, seeds=[20264], draw_seed=20311)
    parser.add_argument("--objective", choices=("freshness", "pushes"), default="freshness")
    parser.add_argument("--explore", type=float, default=0.2)
    parser.add_argument("--train-share", type=float, default=0.4,
                        help="the replay starts after this share of the time span (a long replay: more censoring)")
    parser.add_argument("--only", default=None, help="style:mode (default-model corpora only)")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="frugal-censoring-") as tmp:
        for k, (style, mode, seed, model) in enumerate(corpora(args.seeds, args.draws, args.draw_seed,
                                                               only=args.only)):
            row = run_one(Path(tmp) / str(k), style, mode, seed, model, args)
            rows.append(row)
            gap = lambda c: "n/a" if c["gap"] is None else f"{c['gap']:+.3f}"  # noqa: E731
            print(f"{style:7s} {mode:5s} {model:7s} seed {seed:5d} | would-be prunes "
                  f"{row['reference']['would_prune']:5d} | gap predicted - true: reference {gap(row['reference'])} "
                  f"censored {gap(row['censored'])} explored {gap(row['explored'])} "
                  f"({row['explored']['explored']} explored)", flush=True)
    summary = {}
    for label in ("reference", "censored", "explored"):
        gaps = [r[label]["gap"] for r in rows if r[label]["gap"] is not None]
        drift = [abs(r[label]["gap"] - r["reference"]["gap"]) for r in rows
                 if r[label]["gap"] is not None and r["reference"]["gap"] is not None]
        summary[label] = {"gap_mean": statistics.fmean(gaps) if gaps else None,
                          "drift_from_reference_mean": statistics.fmean(drift) if drift else None}
    print("mean gap (and mean |gap - reference gap|): " + "; ".join(
        f"{k} {v['gap_mean']:+.3f} ({v['drift_from_reference_mean']:.3f})" for k, v in summary.items()
        if v["gap_mean"] is not None), flush=True)
    print(json.dumps({"benchmark": "censoring", "objective": args.objective, "explore": args.explore,
                      "summary": summary, "corpora": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
