"""Cumulative time and storage of a 13-iteration penguin session under five reuse strategies.

(a) no reuse; (b) TFX-style exact-match caching of whole components (every output stored,
LRU eviction, a cached component is always reused); (c) materialize everything with the
optimal plan; (d) Helix's materialization rule; (e) frugal. All share one storage budget.
Every strategy runs on its own fresh data, artifact store and MLMD history, in lock-step with
the others (iteration i of every strategy back to back, order rotated each iteration) so that
load on a shared machine falls on all alike; TensorFlow and Beam are imported before the clock
starts; real Beam DirectRunner, real Keras training. Every strategy's outputs are checked
against no reuse, iteration by iteration.

    python benchmarks/iterations.py [--rows 30000] [--budget 4000000] [--repeat 3] [--details plans.json]

The session is repeated ``--repeat`` times (fresh data, stores and histories each time) and
every iteration's wall time is the median over the repetitions, so that a second of noise
in one training does not decide which strategy is fastest. At 30,000 rows the session
produces about 9 MB in all; the default budget (4 MB) binds from the second iteration on, so
that what to keep matters (with ``--budget 9000000`` it binds only at the end and every reuse
strategy does nearly the same work).

Bars: an unchanged re-run >= 10x faster than no reuse; the modified iterations together
>= 2x faster; frugal's cumulative time no worse than any other strategy's. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

STRATEGIES: dict[str, dict] = {
    "no_reuse": {"reuse": False},
    "tfx_exact": {"strategy": "exact", "policy": "all", "eviction": "lru"},
    "materialize_all": {"strategy": "optimal", "policy": "all", "eviction": "lru"},
    "helix": {"strategy": "optimal", "policy": "helix", "eviction": "policy"},
    "frugal": {"strategy": "optimal", "policy": "frugal", "eviction": "policy"},
}
DEFAULT_BUDGET = 4_000_000


def _row(it, result, wall: float) -> dict:
    acts = result.actions()
    return {
        "label": it.label,
        "kind": it.kind,
        "wall_s": round(wall, 3),
        "store_bytes": result.store_bytes,
        "computed": sorted(n for n, a in acts.items() if a == "compute"),
        "loaded": sorted(n for n, a in acts.items() if a == "load"),
        "written": sorted(n for n, r in result.nodes.items() if r.materialized and acts[n] == "compute"),
        "outputs": json.loads(json.dumps(result.outputs, sort_keys=True, default=str)),
    }


def _worker(name: str, rows: int, budget: int, workdir: str, conn) -> None:
    """One strategy's session in its own interpreter: runs the next iteration on request."""
    import gc

    import apache_beam  # noqa: F401  warm imports outside the clock
    import tensorflow  # noqa: F401

    from pipelines.examples.iterations import run_session
    from pipelines.runner import RunOptions

    folder = Path(workdir) / name
    folder.mkdir(parents=True, exist_ok=True)
    opts = RunOptions(artifacts=folder / "artifacts", budget_bytes=budget, **STRATEGIES[name])
    steps = run_session(folder, opts, rows=rows)
    conn.send("ready")
    while conn.recv() == "next":
        gc.collect()  # outside the clock: no strategy pays for another's garbage
        it, result, wall = next(steps)
        conn.send(_row(it, result, wall))
    conn.close()


def run_interleaved(names: list[str], rows: int, budget: int, workdir: Path, rep: int = 0) -> dict[str, dict]:
    """Run every strategy's session in lock-step: iteration i of all strategies back to back,
    in an order rotated every iteration, so load from other processes on a shared machine
    falls on all strategies alike (``rep`` shifts the rotation, so that over the repetitions
no strategy always runs in the same place). Each strategy runs in its own process with its own data,
    store and history, so that one strategy's memory and threads never slow another's."""
    import multiprocessing as mp

    from pipelines.examples.iterations import session

    ctx = mp.get_context("spawn")
    workers = {}
    for name in names:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(name, rows, budget, str(workdir), child), daemon=True)
        proc.start()
        workers[name] = (proc, parent)
    for name, (_, conn) in workers.items():
        if conn.recv() != "ready":
            raise RuntimeError(f"strategy {name} failed to start")
    results: dict[str, dict] = {n: {"strategy": n, "iterations": []} for n in names}
    try:
        for i in range(len(session())):
            k = (i + rep) % len(names)  # each repetition starts the rotation elsewhere
            order = names[k:] + names[:k]
            for name in order:
                conn = workers[name][1]
                conn.send("next")
                results[name]["iterations"].append(conn.recv())
            print(f"iteration {i + 1}: " + ", ".join(f"{n} {results[n]['iterations'][-1]['wall_s']:.1f}s"
                                                     for n in names), file=sys.stderr)
    finally:
        for proc, conn in workers.values():
            try:
                conn.send("stop")
            except OSError:
                pass
            proc.join(timeout=30)
    return results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="reuse strategies over a penguin iteration session")
    ap.add_argument("--rows", type=int, default=30000, help="rows of the enlarged penguin data")
    ap.add_argument("--budget", type=int, default=DEFAULT_BUDGET, help="artifact store budget in bytes")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--repeat", type=int, default=3, help="repetitions of the whole session (median per iteration)")
    ap.add_argument("--details", help="also write every strategy's per-iteration plan and outputs to this JSON file")
    args = ap.parse_args(argv)
    names = [s for s in args.strategies.split(",") if s]
    unknown = set(names) - set(STRATEGIES)
    if unknown:
        sys.exit(f"unknown strategies {sorted(unknown)}; choose from {list(STRATEGIES)}")
    if args.repeat < 1:
        sys.exit("--repeat must be at least 1")
    runs = []
    for rep in range(args.repeat):
        print(f"repetition {rep + 1} of {args.repeat}", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="frugal-bench-") as tmp:
            runs.append(run_interleaved(names, args.rows, args.budget, Path(tmp), rep))
    results = median_of(runs)
    if args.details:
        Path(args.details).write_text(json.dumps(results, indent=1, sort_keys=True))
    report(results, args)


def median_of(runs: list[dict[str, dict]]) -> dict[str, dict]:
    """One result per strategy: per iteration the median wall time over the repetitions, the
    largest store, the first repetition's plan, and outputs that differ from no reuse in any
    repetition marked as such (``outputs_by_rep``)."""
    import statistics

    out: dict[str, dict] = {}
    for name, first in runs[0].items():
        rows = []
        for i, row in enumerate(first["iterations"]):
            reps = [r[name]["iterations"][i] for r in runs]
            rows.append({**row, "wall_s": round(statistics.median(x["wall_s"] for x in reps), 3),
                         "wall_s_reps": [x["wall_s"] for x in reps],
                         "store_bytes": max(x["store_bytes"] for x in reps),
                         "outputs_by_rep": [x["outputs"] for x in reps]})
        out[name] = {"strategy": name, "iterations": rows}
    return out


def report(results: dict[str, dict], args: argparse.Namespace) -> None:
    names = list(results)
    iters = results[names[0]]["iterations"]
    print(f"penguin session: {len(iters)} iterations, {args.rows} rows, budget {args.budget} bytes, "
          f"median of {args.repeat} repetitions")
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
            mismatches = [x["label"] for x, b in zip(its, base["iterations"])
                          if any(o != ob for o, ob in zip(x["outputs_by_rep"], b["outputs_by_rep"]))]
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
        others = {n: s for n, s in summary.items() if n not in ("frugal", "no_reuse")}
        if others:
            runner_up = min(others, key=lambda n: others[n]["cumulative_s"])
            bars["runner_up"] = runner_up
            bars["runner_up_vs_frugal"] = round(others[runner_up]["cumulative_s"] / max(f["cumulative_s"], 1e-9), 3)
        bars["bars_met"] = bool(
            (bars["unchanged_speedup_min"] or 0) >= 10 and bars["modified_speedup"] >= 2 and bars["frugal_best"]
        )
        print(f"frugal vs no reuse: unchanged re-run {bars['unchanged_speedup_min']}x (bar 10x), modified "
              f"iterations {bars['modified_speedup']}x (bar 2x), cumulative {bars['cumulative_speedup']}x; "
              f"frugal best: {bars['frugal_best']}"
              + (f" (runner-up {bars['runner_up']}: {bars['runner_up_vs_frugal']}x frugal's time)" if "runner_up" in bars else ""))
    print(json.dumps({"benchmark": "iterations", "rows": args.rows, "budget_bytes": args.budget, "repeat": args.repeat,
                      "strategies": summary, **bars}))


if __name__ == "__main__":
    main()
