"""`frugal gc` on real TFX: a penguin pipeline's root kept under a budget, against keeping
everything and keeping the newest N artifacts per node and type.

Runs the TFX pipeline of ``benchmarks/tfx/gc_pipeline.py`` (LocalDagRunner, MLMD SQLite,
caching on, a latest-blessed-model resolver as the Evaluator's baseline) with the Python of a
TFX environment (``--tfx-python``, default ``$FRUGAL_TFX_PYTHON``; TFX 1.16 on Python 3.10).
A shared history of runs with data and hyperparameter changes, then for each strategy the same
later runs from a copy of that history, the strategy applied after every run:

- ``frugal``: ``frugal gc --apply`` with a budget of ``--budget-fraction`` of the root's bytes
  after the history;
- ``keep_all``: nothing deleted (TFX's own behaviour);
- ``keep_newest``: per node and artifact type the newest ``--newest`` artifacts kept, older
  ones deleted (MLMD marked DELETED first, as frugal does).

Checked for every strategy: every run succeeds; no execution reads an artifact whose files
are gone; no LIVE artifact lacks its files; frugal's pinned artifacts are intact after every
collection and its root stays under the budget. Reported: bytes kept after each later run, how
many executions the later runs computed, and what that recomputation costs at the components'
median durations measured in the shared history (so that load on a shared machine does not
favour the strategy that ran last; the raw durations are in the JSON). Last line: JSON.

    python benchmarks/gc_tfx.py [--tfx-python PATH] [--budget-fraction 0.5] [--newest 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT
from analysis.roles import default_roles
from optimizer.reuse.collect_garbage import ArtifactVerdict, CollectionPlan, plan_collection
from pipelines.pipeline_root import apply_collection, measure_root
from provenance.run_history import read_run_history

DRIVER = ROOT / "benchmarks" / "tfx" / "gc_pipeline.py"
HISTORY = [("span-1", 8), ("span-1", 8), ("span-2", 8), ("span-2", 12)]  # data files present, hidden units
LATER = [("span-2", 8), ("span-3", 8), ("span-3", 8)]  # a revert, new data, an unchanged re-run


def write_data(folder: Path) -> None:
    """Three spans of the Palmer penguins, features scaled to [0, 1], species 0-2."""
    import palmerpenguins

    cols = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    df = palmerpenguins.load_penguins().dropna(subset=cols).sample(frac=1.0, random_state=0).reset_index(drop=True)
    out = df[cols].copy()
    for c in cols:
        out[c] = ((out[c] - out[c].min()) / (out[c].max() - out[c].min())).round(4)
    out["species"] = df["species"].map({"Adelie": 0, "Chinstrap": 1, "Gentoo": 2})
    folder.mkdir(parents=True, exist_ok=True)
    third = len(out) // 3
    for i in range(3):
        out.iloc[i * third:(i + 1) * third].to_csv(folder / f"span-{i + 1}.csv", index=False)


def run_tfx(work: Path, tfx_python: str, last_span: str, hidden: int) -> dict:
    data = work / "data"
    data.mkdir(exist_ok=True)
    wanted = {f"span-{i}.csv" for i in range(1, int(last_span.split("-")[1]) + 1)}
    for f in data.iterdir():
        if f.name not in wanted:
            f.unlink()
    for name in sorted(wanted):
        if not (data / name).exists():  # copy2 keeps the time stamp, part of TFX's input fingerprint
            shutil.copy2(work / "spans" / name, data / name)
    t = time.monotonic()
    proc = subprocess.run([tfx_python, str(DRIVER), "--data", str(data), "--root", str(work / "root"),
                           "--metadata", str(work / "mlmd.sqlite"), "--serving", str(work / "serving"),
                           "--hidden", str(hidden)], capture_output=True, text=True, cwd=work)
    if proc.returncode != 0:
        raise SystemExit(f"TFX run failed ({last_span}, hidden {hidden}):\n{proc.stderr[-3000:]}")
    return {"wall_s": round(time.monotonic() - t, 1)}


def keep_newest(history, sizes: dict[int, int], newest: int) -> CollectionPlan:
    """Per (node, artifact type) keep the newest ``newest`` LIVE artifacts with files."""
    producer = {}
    for e in history.executions:
        for a in e.outputs:
            producer.setdefault(a, e)
    groups: dict[tuple, list[int]] = {}
    for a in sizes:
        art = history.artifacts[a]
        key = (producer[a].component if a in producer else "", art.type_name)
        groups.setdefault(key, []).append(a)
    verdicts = []
    for key, ids in groups.items():
        ids.sort(key=lambda a: (history.artifacts[a].create_time_s, a), reverse=True)
        for k, a in enumerate(ids):
            art = history.artifacts[a]
            verdicts.append(ArtifactVerdict(a, "penguin_gc", art.type_name, art.uri, sizes[a],
                                            "keep" if k < newest else "delete", f"newest {newest} per node and type"))
    return CollectionPlan(0, tuple(verdicts))


def check_reads(work: Path, run_index: int) -> list[str]:
    """Problems: executions of the newest run that read an artifact whose files are gone, and
    LIVE artifacts without files."""
    history = read_run_history(work / "mlmd.sqlite")
    last = history.runs[-1].name
    problems = []
    for e in history.executions:
        if e.run != last:
            continue
        for a in e.inputs:
            art = history.artifacts[a]
            if art.uri and not Path(art.uri).exists():
                problems.append(f"run {run_index}: {e.component} read artifact {a} whose files are gone")
    for art in history.artifacts.values():
        if art.state == "LIVE" and art.uri.startswith(str(work / "root")) and not Path(art.uri).exists():
            problems.append(f"run {run_index}: artifact {art.artifact_id} is LIVE without files")
    return problems


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tfx-python", default=os.environ.get("FRUGAL_TFX_PYTHON", str(ROOT / ".venv-tfx" / "bin" / "python")))
    ap.add_argument("--budget-fraction", type=float, default=0.5)
    ap.add_argument("--newest", type=int, default=1)
    ap.add_argument("--workdir", help="keep the runs here (default: a temporary folder)")
    args = ap.parse_args(argv)
    if not Path(args.tfx_python).exists():
        sys.exit(f"no TFX Python at {args.tfx_python}: build the TFX environment (Python 3.10, "
                 "pip install tfx==1.16.0) and pass --tfx-python or set FRUGAL_TFX_PYTHON")
    base = Path(args.workdir or tempfile.mkdtemp(prefix="frugal-gc-tfx-"))
    work = base / "work"
    shutil.rmtree(work, ignore_errors=True)
    write_data(work / "spans")
    for i, (span, hidden) in enumerate(HISTORY, 1):
        r = run_tfx(work, args.tfx_python, span, hidden)
        print(f"history run {i} ({span}, hidden {hidden}): {r['wall_s']} s", file=sys.stderr)
    snapshot = base / "snapshot"
    shutil.rmtree(snapshot, ignore_errors=True)
    shutil.copytree(work, snapshot)
    history = read_run_history(work / "mlmd.sqlite")
    sizes, _ = measure_root(history, work / "root")
    budget = int(sum(sizes.values()) * args.budget_fraction)
    n_history = len(history.executions)
    # what each component costs to compute, measured in the shared history (median seconds):
    # the later runs' recomputation is priced with it, so machine load does not bias strategies
    import statistics

    measured: dict[str, list[float]] = {}
    for e in history.executions:
        if e.state == "COMPLETE" and e.duration_s is not None:
            measured.setdefault(e.component, []).append(e.duration_s)
    price = {c: statistics.median(v) for c, v in measured.items()}
    results = {}
    for strategy in ("keep_all", "keep_newest", "frugal"):
        shutil.rmtree(work)
        shutil.copytree(snapshot, work)  # same absolute paths: the store's URIs stay valid
        kept, problems, pinned_lost, over = [], [], [], []
        for i, (span, hidden) in enumerate(LATER, 1):
            r = run_tfx(work, args.tfx_python, span, hidden)
            problems += check_reads(work, i)
            h = read_run_history(work / "mlmd.sqlite")
            sizes, absent = measure_root(h, work / "root")
            plan = None
            if strategy == "frugal":
                plan = plan_collection(h, sizes, budget, absent=absent, roles=default_roles())
            elif strategy == "keep_newest":
                plan = keep_newest(h, sizes, args.newest)
            if plan is not None:
                apply_collection(work / "mlmd.sqlite", plan, work / "root")
                if strategy == "frugal":
                    h2 = read_run_history(work / "mlmd.sqlite")
                    for v in plan.verdicts:
                        if v.action == "pinned" and (h2.artifacts[v.artifact_id].state != "LIVE"
                                                     or not Path(v.uri).exists()):
                            pinned_lost.append(v.artifact_id)
                    over.append(plan.over_budget)
            after, _ = measure_root(read_run_history(work / "mlmd.sqlite"), work / "root")
            kept.append(sum(after.values()))
            print(f"{strategy} run {i} ({span}, hidden {hidden}): {r['wall_s']} s, root {kept[-1]} bytes",
                  file=sys.stderr)
        h = read_run_history(work / "mlmd.sqlite")
        later = h.executions[n_history:]
        results[strategy] = {
            "bytes_kept": kept,
            "recompute_s": round(sum(price.get(e.component, 0.0) for e in later if e.state == "COMPLETE"), 1),
            "wall_recompute_s": round(sum(e.duration_s or 0.0 for e in later if e.state == "COMPLETE"), 1),
            "computed": sum(e.state == "COMPLETE" for e in later),
            "executed": sorted({e.component.split(".")[-1] for e in later if e.state == "COMPLETE"}),
            "runs_ok": len(LATER),
            "problems": problems,
            "pinned_lost": pinned_lost,
            "under_budget": all(k <= budget for k in kept) if strategy == "frugal" else None,
            "pinned_over_budget": any(over),
        }
    print(f"budget {budget} bytes ({args.budget_fraction:.0%} of the root after {len(HISTORY)} runs)")
    print(f"{'strategy':12s} {'bytes kept after each later run':>40s} {'computed':>9s} {'recompute s':>12s}  checks")
    for name, r in results.items():
        ok = not r["problems"] and not r["pinned_lost"]
        print(f"{name:12s} {str(r['bytes_kept']):>40s} {r['computed']:9d} {r['recompute_s']:12.1f}  "
              f"{'ok' if ok else r['problems'] + r['pinned_lost']}")
    print(json.dumps({"benchmark": "gc_tfx", "budget_bytes": budget, "strategies": results}))


if __name__ == "__main__":
    main()
