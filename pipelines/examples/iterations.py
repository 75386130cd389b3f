"""A data scientist's session on the penguin pipeline: 13 iterations.

Change a feature transform, hyperparameters and the evaluation, revert, re-run unchanged,
add data, the way people iterate. :func:`session` lists the iterations;
:func:`run_session` runs them against one artifact store and MLMD store with given
:class:`~pipelines.runner.RunOptions`. As a script::

    python -m pipelines.examples.iterations --rows 20000 --workdir /tmp/penguins
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.examples.penguins import PenguinConfig, build_pipeline, make_dataset
from pipelines.runner import RunOptions, RunResult, run_pipeline

__all__ = ["INITIAL", "MODIFIED", "UNCHANGED", "Iteration", "run_session", "session"]

INITIAL, MODIFIED, UNCHANGED = "initial", "modified", "unchanged"


@dataclass(frozen=True)
class Iteration:
    """One step of the session: the config to run, and whether new data arrives first."""

    label: str
    kind: str
    config: PenguinConfig
    add_data: bool = False


def session() -> list[Iteration]:
    """The 13 iterations, in order."""
    r = dataclasses.replace
    base = PenguinConfig()
    it: list[Iteration] = [Iteration("initial run", INITIAL, base)]

    def step(label: str, kind: str = MODIFIED, add_data: bool = False, **change: Any) -> None:
        it.append(Iteration(label, kind, r(it[-1].config, **change), add_data))

    step("feature transform: add ratio features", feature_version=2)
    step("hyperparameter: hidden units 16 -> 32", hidden=32)
    step("evaluation: threshold 0.90 -> 0.95", threshold=0.95)
    step("evaluation: accuracy -> macro recall", metric="macro_recall")
    step("hyperparameter: learning rate 0.01 -> 0.005", learning_rate=0.005)
    step("revert feature transform", feature_version=1)
    step("re-run unchanged", UNCHANGED)
    step("hyperparameter: epochs 3 -> 4", epochs=4)
    step("revert epochs", epochs=3)
    step("add data (a new span)", add_data=True)
    step("re-run unchanged", UNCHANGED)
    step("evaluation: threshold 0.95 -> 0.90", threshold=0.90)
    return it


def run_session(workdir: str | os.PathLike, options: RunOptions, *, rows: int = 20000,
                iterations: list[Iteration] | None = None) -> Iterator[tuple[Iteration, RunResult, float]]:
    """Run the session in ``workdir`` (fresh data there); yields (iteration, result, wall seconds)."""
    workdir = Path(workdir)
    data = workdir / "data"
    make_dataset(data, rows, seed=0, name="span-1.csv")
    spans = 1
    for it in iterations or session():
        if it.add_data:
            spans += 1
            make_dataset(data, max(rows // 4, 1), seed=spans, name=f"span-{spans}.csv")
        t0 = time.perf_counter()
        result = run_pipeline(build_pipeline(data, it.config), options)
        yield it, result, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="penguin-session")
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--budget", type=int, default=None, help="artifact store budget in bytes")
    ap.add_argument("--policy", default="frugal")
    args = ap.parse_args(argv)
    work = Path(args.workdir)
    opts = RunOptions(artifacts=work / "artifacts", mlmd_store=work / "mlmd.sqlite",
                      budget_bytes=args.budget, policy=args.policy)
    for it, result, wall in run_session(work, opts, rows=args.rows):
        acts = result.actions()
        print(json.dumps({"iteration": it.label, "wall_s": round(wall, 2), "store_bytes": result.store_bytes,
                          "computed": [n for n, a in acts.items() if a == "compute"],
                          "loaded": [n for n, a in acts.items() if a == "load"],
                          "pushed": result.outputs.get("push", {}).get("pushed")}))


if __name__ == "__main__":
    main()
