"""Simulate a production corpus: pipelines over days, written into K MLMD stores with ground truth.

Pipeline ``i`` goes to store ``i % K``; every pipeline draws from its own seeded generator, so
a corpus depends only on (seed, pipelines, days, style, mode), never on K or on the number of
processes. Within a store, runs are emitted in time order day by day, so ids grow with time
as in a real store. Stores are written in parallel processes when K > 1.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pipelines.errors import PipelineError
from pipelines.simulator import model as M
from pipelines.simulator.catalog import STYLES, type_specs
from pipelines.simulator.engine import PipelineSim, StoreEmitter
from provenance.mlmd_writer import BulkStoreWriter

__all__ = ["simulate", "SimulationResult", "CORPUS_START", "store_file_names", "write_store"]

log = logging.getLogger(__name__)

# Fixed so that a corpus is a pure function of its arguments.
CORPUS_START = datetime(2026, 1, 5, tzinfo=timezone.utc)
MODES = ("sync", "async", "mixed")


@dataclass(frozen=True)
class SimulationResult:
    """Where the stores and their ground-truth files are, and the corpus totals."""

    store_paths: tuple[Path, ...]
    ground_truth_paths: tuple[Path, ...]
    counts: dict = field(default_factory=dict)


def store_file_names(stores: int) -> list[tuple[str, str]]:
    """(store file, ground-truth file) names for K stores."""
    names = ["mlmd"] if stores == 1 else [f"mlmd-{k:02d}" for k in range(stores)]
    return [(f"{n}.sqlite", f"{n}.ground_truth.json") for n in names]


def _specs(seed: int, pipelines: int, hours: float, mode: str) -> list[M.PipelineSpec]:
    return [M.sample_pipeline(random.Random(f"frugal-spec:{seed}:{i}"), i, hours, mode) for i in range(pipelines)]


def _validate(pipelines: int, days: int, seed: int, style: str, mode: str, stores: int) -> None:
    if not isinstance(pipelines, int) or pipelines < 1:
        raise PipelineError(f"--pipelines must be a positive integer, got {pipelines!r}")
    if not isinstance(days, int) or days < 1:
        raise PipelineError(f"--days must be a positive integer, got {days!r}")
    if not isinstance(seed, int):
        raise PipelineError(f"--seed must be an integer, got {seed!r}")
    if style not in STYLES:
        raise PipelineError(f"--style must be one of {', '.join(STYLES)}, got {style!r}")
    if mode not in MODES:
        raise PipelineError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if style == "legacy" and mode != "sync":
        raise PipelineError("pre-2020 TFX had no asynchronous pipelines: use --mode sync with --style legacy")
    if not isinstance(stores, int) or stores < 1 or stores > pipelines:
        raise PipelineError(f"--stores must be between 1 and --pipelines ({pipelines}), got {stores!r}")


def write_store(job: dict, report=None, writer_hook=None) -> dict:
    """Write one store and its ground truth; return its totals.

    ``writer_hook`` (tests) receives the writer before it closes, with ``keep_rows`` on.
    """
    style = STYLES[job["style"]]
    path, gt_path = Path(job["path"]), Path(job["gt_path"])
    epoch_ms = int(CORPUS_START.timestamp() * 1000)
    specs = [s for s in _specs(job["seed"], job["pipelines"], job["days"] * 24.0, job["mode"])
             if s.index % job["stores"] == job["store"]]
    model = M.outcome_model_for(job.get("outcome_model", "default"), job["seed"])
    started = time.perf_counter()
    writer = BulkStoreWriter(path, type_specs(style), keep_rows=writer_hook is not None)
    try:
        emitter = StoreEmitter(writer, style, epoch_ms)
        sims = []
        for spec in specs:
            sim = PipelineSim(spec, job["seed"], emitter, model)
            cadence_ms = spec.cadence_h * 3_600_000
            first = epoch_ms + int(spec.start_h * 3_600_000) + sim.rng.randrange(cadence_ms)
            sims.append([first, 0, sim, cadence_ms, epoch_ms + int(spec.end_h * 3_600_000)])
        for day in range(job["days"]):
            day_end = epoch_ms + (day + 1) * 86_400_000
            triggers = []
            for entry in sims:
                first, n, sim, cadence_ms, end_ms = entry
                while True:
                    t = first + n * cadence_ms
                    if t >= day_end or t >= end_ms:
                        break
                    triggers.append((t + sim.rng.randrange(90_000), sim.spec.index, sim))
                    n += 1
                entry[1] = n
            triggers.sort(key=lambda x: (x[0], x[1]))
            for t, _, sim in triggers:
                sim.run(t)
                writer.maybe_flush()
            if report is not None:
                report(job["store"], day + 1)
        writer.flush()
        if writer_hook is not None:
            writer_hook(writer)
        totals = _totals(emitter, sims, writer)
        tmp_gt = gt_path.with_name(f".{gt_path.name}.partial")
        with open(tmp_gt, "w") as fh:  # json.dumps runs the C encoder; json.dump would not
            fh.write(json.dumps(_ground_truth(job, path, emitter, [e[2] for e in sims], totals)))
        writer.close()
        os.replace(tmp_gt, gt_path)
    except BaseException:
        writer.abort()
        raise
    totals["rows"] = writer.counts["rows"]
    totals["seconds"] = round(time.perf_counter() - started, 2)
    return totals


def _totals(emitter: StoreEmitter, sims: list, writer: BulkStoreWriter) -> dict:
    states = {"COMPLETE": 0, "FAILED": 0, "CACHED": 0}
    blessed = pushed = completed_not_pushed = 0
    for row in emitter.trainers:
        states[row["state"]] += 1
        if row["state"] == "COMPLETE":
            blessed += bool(row["blessed"])
            pushed += row["pushed"]
            completed_not_pushed += not row["pushed"]
    complete = states["COMPLETE"]
    return {
        "pipelines": len(sims),
        "trainer_executions": len(emitter.trainers),
        "trainings": complete + states["FAILED"],
        "trainers_complete": complete,
        "trainers_failed": states["FAILED"],
        "trainers_cached": states["CACHED"],
        "blessed": blessed,
        "pushed": pushed,
        "completed_not_pushed": completed_not_pushed,
        "not_pushed_fraction": round(completed_not_pushed / complete, 4) if complete else None,
        "runs": sum(e[2].runs for e in sims),
        "manual_reruns": sum(e[2].manual_reruns for e in sims),
        "redundant_executions": len(emitter.redundant),
        "redundant_recorded": sum(1 for row in emitter.redundant if row["recorded"]),
        "redundant_trainings": sum(1 for row in emitter.trainers if row["redundant"]),
        "skipped_triggers": sum(e[2].skipped_runs for e in sims),
        "executions": writer.counts["executions"],
        "artifacts": writer.counts["artifacts"],
        "events": writer.counts["events"],
        "contexts": writer.counts["contexts"],
    }


def _ground_truth(job: dict, path: Path, emitter: StoreEmitter, sims: list[PipelineSim], totals: dict) -> dict:
    return {
        "store": path.name,
        "generator": "frugal simulate",
        "seed": job["seed"], "style": job["style"], "mode": job["mode"], "days": job["days"],
        "corpus_pipelines": job["pipelines"], "store_index": job["store"], "stores": job["stores"],
        "corpus_start": CORPUS_START.isoformat(),
        "outcome_model": M.outcome_model_for(job.get("outcome_model", "default"), job["seed"]).to_dict(),
        "pipelines": [
            {"name": s.spec.name, "mode": s.spec.mode, "cadence_h": s.spec.cadence_h,
             "start": _iso(s.spec.start_h), "end": _iso(s.spec.end_h), "n_trainers": s.spec.n_trainers,
             "window": s.spec.window, "has_transform": s.spec.has_transform, "has_tuner": s.spec.has_tuner,
             "has_infra_validator": s.spec.has_infra_validator, "has_evaluator": s.spec.has_evaluator,
             "p_new_data": round(s.spec.p_new_data, 4), "anomaly_rate": round(s.spec.anomaly_rate, 4),
             "base_fail": round(s.spec.base_fail, 4), "alphas": [round(a, 4) for a in s.spec.alphas],
             "runs": s.runs, "skipped_triggers": s.skipped_runs,
             "code_changes": s.code_version, "structure_changes": s.structure_version,
             "caching": s.spec.caching, "p_manual_rerun": round(s.spec.p_manual_rerun, 4),
             "manual_reruns": s.manual_reruns, "cache_bust_per_day": s.spec.cache_bust_per_day,
             "cache_key_changes": s.cache_key_changes,
             **({} if s.model == M.DEFAULT_OUTCOME_MODEL else {"outcome": {
                 "alphas": [round(a, 6) for a in s.pipe.alphas], "scale": [round(k, 6) for k in s.pipe.scale],
                 "phase": round(s.pipe.phase, 6)}})}
            for s in sims
        ],
        "trainers": emitter.trainers,
        "redundant": emitter.redundant,
        "totals": totals,
    }


def _iso(hours: float) -> str:
    return datetime.fromtimestamp(CORPUS_START.timestamp() + hours * 3600, tz=timezone.utc).isoformat()


def _worker(job: dict, queue) -> dict:
    return write_store(job, (lambda store, day: queue.put((store, day))) if queue is not None else None)


def simulate(out_dir: str | Path, *, pipelines: int, days: int, seed: int, style: str = "current",
             mode: str = "sync", stores: int = 1, progress: bool | None = None,
             outcome_model: str = "default") -> SimulationResult:
    """Simulate ``pipelines`` TFX pipelines over ``days`` into ``stores`` MLMD SQLite stores.

    Writes ``mlmd.sqlite`` + ``mlmd.ground_truth.json`` (or ``mlmd-00`` ... per store) under
    ``out_dir``; each file appears atomically. ``progress`` None shows a bar on a terminal only.
    """
    _validate(pipelines, days, seed, style, mode, stores)
    if outcome_model not in M.OUTCOME_MODELS:
        raise PipelineError(f"--outcome-model must be one of {', '.join(M.OUTCOME_MODELS)}, got {outcome_model!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise PipelineError(f"--out {out} is a file; give a folder for the stores")
    out.mkdir(parents=True, exist_ok=True)
    names = store_file_names(stores)
    for store_name, gt_name in names:
        for name in (store_name, gt_name):
            if (out / name).exists():
                raise PipelineError(f"{out / name} already exists; choose an empty --out folder or delete it")
    jobs = [dict(path=str(out / s), gt_path=str(out / g), store=k, stores=stores, seed=seed, pipelines=pipelines,
                 days=days, style=style, mode=mode, outcome_model=outcome_model) for k, (s, g) in enumerate(names)]
    show = sys.stderr.isatty() if progress is None else progress
    started = time.perf_counter()
    processes = min(stores, os.cpu_count() or 1)
    if processes <= 1:
        results = _run_serial(jobs, show, days)
    else:
        results = _run_parallel(jobs, show, days, processes)
    counts = _merge(results)
    counts["stores"] = stores
    counts["seconds"] = round(time.perf_counter() - started, 2)
    counts["rows_per_s"] = round(counts["rows"] / counts["seconds"]) if counts["seconds"] else None
    log.info("simulated corpus: %s", counts)
    return SimulationResult(tuple(Path(j["path"]) for j in jobs), tuple(Path(j["gt_path"]) for j in jobs), counts)


def _merge(results: list[dict]) -> dict:
    merged: dict = {}
    for res in results:
        for k, v in res.items():
            if isinstance(v, (int, float)) and k not in ("not_pushed_fraction", "seconds"):
                merged[k] = merged.get(k, 0) + v
    complete = merged.get("trainers_complete", 0)
    merged["not_pushed_fraction"] = round(merged["completed_not_pushed"] / complete, 4) if complete else None
    return merged


def _progress_bar(total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("store-days"),
                   TimeElapsedColumn(), transient=True)
    return bar, bar.add_task("simulate", total=total)


def _run_serial(jobs: list[dict], show: bool, days: int) -> list[dict]:
    if not show:
        return [write_store(job) for job in jobs]
    bar, task = _progress_bar(days * len(jobs))
    with bar:
        return [write_store(job, lambda store, day: bar.advance(task)) for job in jobs]


def _run_parallel(jobs: list[dict], show: bool, days: int, processes: int) -> list[dict]:
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        queue = manager.Queue() if show else None
        with ctx.Pool(processes) as pool:
            pending = pool.starmap_async(_worker, [(job, queue) for job in jobs])
            if show:
                bar, task = _progress_bar(days * len(jobs))
                with bar:
                    done = 0
                    while not pending.ready() or not queue.empty():
                        try:
                            queue.get(timeout=0.2)
                            done += 1
                            bar.update(task, completed=done)
                        except Exception:  # queue.Empty from the manager proxy
                            pass
            return pending.get()
