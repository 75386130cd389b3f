"""Cumulative time and storage of a 13-iteration penguin session under five reuse strategies.

(a) no reuse; (b) TFX-style exact-match caching of whole components (every output stored,
LRU eviction, a cached component is always reused); (c) materialize everything with the
optimal plan; (d) Helix's materialization rule; (e) frugal. All share one storage budget.
Each strategy runs in its own process on fresh data (TensorFlow and Beam imported before the
clock starts), real Beam DirectRunner, real Keras training. Every strategy's outputs are
checked against no reuse, iteration by iteration.

    python benchmarks/iterations.py [--rows 60000] [--budget BYTES]

Bars: an unchanged re-run >= 10x faster than no reuse; the modified iterations together
>= 2x faster; frugal's cumulative time no worse than any other strategy's. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STRATEGIES: dict[str, dict] = {
    "no_reuse": {"reuse": False},
    "tfx_exact": {"strategy": "exact", "policy": "all", "eviction": "lru"},
    "materialize_all": {"strategy": "optimal", "policy": "all", "eviction": "lru"},
    "helix": {"strategy": "optimal", "policy": "helix", "eviction": "policy"},
    "frugal": {"strategy": "optimal", "policy": "frugal", "eviction": "policy"},
}
DEFAULT_BUDGET = 6_000_000


def run_one(name: str, rows: int, budget: int, workdir: Path) -> dict:
    """Run the session with one strategy in this process; returns per-iteration figures."""
    import tensorflow  # noqa: F401  warm imports outside the clock
    import apache_beam  # noqa: F401

    from pipelines.examples.iterations import run_session
    from pipelines.runner import RunOptions

    opts = RunOptions(artifacts=workdir / "artifacts", budget_bytes=budget, **STRATEGIES[name])
    out = []
    for it, result, wall in run_session(workdir, opts, rows=rows):
        acts = result.actions()
        out.append({
            "label": it.label,
            "kind": it.kind,
            "wall_s": round(wall, 3),
            "store_bytes": result.store_bytes,
            "computed": sorted(n for n, a in acts.items() if a == "compute"),
            "loaded": sorted(n for n, a in acts.items() if a == "load"),
            "written": sorted(n for n, r in result.nodes.items() if r.materialized and acts[n] == "compute"),
            "outputs": json.loads(json.dumps(result.outputs, sort_keys=True, default=str)),
        })
    return {"strategy": name, "iterations": out}


def _child(args: argparse.Namespace) -> None:
    res = run_one(args.one, args.rows, args.budget, Path(args.workdir))
    Path(args.out).write_text(json.dumps(res))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="reuse strategies over a penguin iteration session")
    ap.add_argument("--rows", type=int, default=60000, help="rows of the enlarged penguin data")
    ap.add_argument("--budget", type=int, default=DEFAULT_BUDGET, help="artifact store budget in bytes")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--details", help="also write every strategy's per-iteration plan and outputs to this JSON file")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        _child(args)
        return
    names = [s for s in args.strategies.split(",") if s]
    unknown = set(names) - set(STRATEGIES)
    if unknown:
        sys.exit(f"unknown strategies {sorted(unknown)}; choose from {list(STRATEGIES)}")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="frugal-bench-") as tmp:
        for name in names:
            work = Path(tmp) / name
            work.mkdir()
            out = Path(tmp) / f"{name}.json"
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, __file__, "--one", name, "--rows", str(args.rows), "--budget", str(args.budget),
                 "--workdir", str(work), "--out", str(out)],
                check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            )
            results[name] = json.loads(out.read_text())
            print(f"{name}: done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if args.details:
        Path(args.details).write_text(json.dumps(results, indent=1, sort_keys=True))
    report(results, args)


def report(results: dict[str, dict], args: argparse.Namespace) -> None:
    names = list(results)
    iters = results[names[0]]["iterations"]
    print(f"penguin session: {len(iters)} iterations, {args.rows} rows, budget {args.budget} bytes")
    print(f"{'iteration':46s} " + " ".join(f"{n:>15s}" for n in names))
    for i, it in enumerate(iters):
        print(f"{it['label'][:46]:46s} " + " ".join(f"{results[n]['iterations'][i]['wall_s']:14.2f}s" for n in names))
    summary: dict[str, dict] = {}
    base = results.get("no_reuse")
    for n in names:
        its = results[n]["iterations"]
        total = sum(x["wall_s"] for x in its)
        modified = sum(x["wall_s"] for x in its if x["kind"] == "modified")
        unchanged = [x["wall_s"] for x in its if x["kind"] == "unchanged"]
        mismatches = []
        if base is not None:
            mismatches = [x["label"] for x, b in zip(its, base["iterations"]) if x["outputs"] != b["outputs"]]
        summary[n] = {
            "cumulative_s": round(total, 2),
            "modified_s": round(modified, 2),
            "unchanged_s": round(sum(unchanged), 2),
            "max_store_bytes": max(x["store_bytes"] for x in its),
            "final_store_bytes": its[-1]["store_bytes"],
            "outputs_match_no_reuse": not mismatches,
            "mismatched_iterations": mismatches,
        }
    print(f"{'strategy':18s} {'cumulative':>11s} {'modified':>9s} {'unchanged':>10s} {'max store':>12s}  outputs")
    for n, s in summary.items():
        print(f"{n:18s} {s['cumulative_s']:10.1f}s {s['modified_s']:8.1f}s {s['unchanged_s']:9.2f}s "
              f"{s['max_store_bytes']:12d}  {'equal' if s['outputs_match_no_reuse'] else 'DIFFER'}")
    bars: dict[str, object] = {}
    if base is not None and "frugal" in summary:
        b, f = summary["no_reuse"], summary["frugal"]
        unchanged_b = [x["wall_s"] for x in base["iterations"] if x["kind"] == "unchanged"]
        unchanged_f = [x["wall_s"] for x in results["frugal"]["iterations"] if x["kind"] == "unchanged"]
        ratios = [bb / max(ff, 1e-9) for bb, ff in zip(unchanged_b, unchanged_f)]
        bars = {
            "unchanged_speedup_min": round(min(ratios), 1) if ratios else None,
            "modified_speedup": round(b["modified_s"] / max(f["modified_s"], 1e-9), 2),
            "cumulative_speedup": round(b["cumulative_s"] / max(f["cumulative_s"], 1e-9), 2),
            "frugal_best": all(f["cumulative_s"] <= s["cumulative_s"] for s in summary.values()),
        }
        bars["bars_met"] = bool(
            (bars["unchanged_speedup_min"] or 0) >= 10 and bars["modified_speedup"] >= 2 and bars["frugal_best"]
        )
        print(f"frugal vs no reuse: unchanged re-run {bars['unchanged_speedup_min']}x (bar 10x), modified "
              f"iterations {bars['modified_speedup']}x (bar 2x), cumulative {bars['cumulative_speedup']}x; "
              f"frugal best: {bars['frugal_best']}")
    print(json.dumps({"benchmark": "iterations", "rows": args.rows, "budget_bytes": args.budget,
                      "strategies": summary, **bars}))


if __name__ == "__main__":
    main()
