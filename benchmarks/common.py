"""What the benchmark scripts share; each script imports it before the project's packages.

Run as ``python benchmarks/X.py``, a script has this folder as ``sys.path[0]``, so ``import
common`` finds this module; importing it puts the working tree's root first on ``sys.path``
(its ``provenance``, ``analysis``, ``optimizer``, ``pipelines`` and ``frugal``, installed or
not). No script here is named like a package of the project, so none shadows one.

- ``ROOT``, ``CACHE``: the repository, and ``benchmarks/.cache`` (kept between runs, ignored by git);
- ``cached``: build a file or folder of the cache once, atomically;
- ``COMBOS``, ``corpora``, ``add_corpus_options``: the simulated corpora of the pruning benchmarks
  (every (style, mode) per seed with the default outcome model, then corpora with a random one);
- ``simulated_warehouse``: a corpus simulated, ingested into a DuckDB warehouse and analyzed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache"

if sys.path[:1] != [str(ROOT)]:
    sys.path.insert(0, str(ROOT))

# (style, mode) of the simulated corpora; legacy TFX had no async
COMBOS = (("current", "sync"), ("current", "async"), ("legacy", "sync"), ("current", "mixed"))


def cached(target: Path, build: Callable[[Path], object]) -> bool:
    """Make ``target`` (a file or folder) once: ``build(path)`` writes it at a temporary path
    beside it, then it is renamed into place, so an interrupted build leaves no half target.
    Returns True when it was built now, False when it was there already."""
    if target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        build(scratch / target.name)
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(scratch / target.name, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return True


def add_corpus_options(parser: argparse.ArgumentParser, *, seeds: Iterable[int], draw_seed: int) -> None:
    """The options that choose the simulated corpora (see ``corpora``) and the pushes budget."""
    parser.add_argument("--pipelines", type=int, default=60)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seeds", type=int, nargs="*", default=list(seeds),
                        help="default-model seeds, each over every style:mode")
    parser.add_argument("--draws", type=int, default=8, help="corpora with a random outcome model")
    parser.add_argument("--draw-seed", type=int, default=draw_seed, help="seed of the first random outcome model")
    parser.add_argument("--max-lost-pushes", type=float, default=0.05)


def corpora(seeds: Iterable[int], draws: int, draw_seed: int,
            only: str | None = None) -> list[tuple[str, str, int, str]]:
    """(style, mode, seed, outcome model) of each corpus: every (style, mode) of ``COMBOS`` (or
    ``only``, "style:mode") for each seed with the default outcome model, then ``draws`` corpora
    with a random outcome model, seeds ``draw_seed``, ``draw_seed + 1``, ..., over ``COMBOS`` in turn."""
    combos = [tuple(only.split(":"))] if only else list(COMBOS)
    out = [(style, mode, seed, "default") for seed in seeds for style, mode in combos]
    out += [(*COMBOS[k % len(COMBOS)], draw_seed + k, "random") for k in range(draws)]
    return out


def simulated_warehouse(out: Path, *, pipelines: int, days: int, seed: int, style: str = "current",
                        mode: str = "sync", outcome_model: str = "default"):
    """Simulate a corpus into ``out/corpus``, ingest it into ``out/w.duckdb`` and analyze it;
    returns the simulation's result and the warehouse's path."""
    from analysis import analyze
    from pipelines.simulator import simulate
    from provenance.ingest import ingest

    sim = simulate(out / "corpus", pipelines=pipelines, days=days, seed=seed, style=style, mode=mode,
                   progress=False, outcome_model=outcome_model)
    warehouse = out / "w.duckdb"
    ingest([str(p) for p in sim.store_paths], str(warehouse), progress=False)
    analyze(str(warehouse))
    return sim, warehouse
