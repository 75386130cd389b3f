"""A pipeline root on disk (TFX's ``pipeline_root``): artifact sizes, and applying a collection.

Sizes are the bytes under each LIVE artifact's URI; only URIs inside the root count (an
artifact elsewhere, e.g. a push destination, is never touched). Applying a collection, per
artifact: mark it DELETED in MLMD (``provenance.artifact_state``), then move its folder
aside atomically (a rename within the root) and remove it. An interruption leaves at worst a
DELETED artifact whose files are still there or lie in the trash folder, never a LIVE artifact
without its files; the next collection empties the trash.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from pipelines.errors import PipelineError

__all__ = ["TRASH", "apply_collection", "measure_root"]

log = logging.getLogger(__name__)

TRASH = ".frugal-trash"


def _inside(root: Path, uri: str) -> Path | None:
    if not uri or "://" in uri:
        return None
    p = Path(uri).resolve()
    return p if p == root or root in p.parents else None


def _bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += (Path(dirpath) / f).stat().st_size
            except OSError:
                pass
    return total


def measure_root(history: Any, root: str | os.PathLike) -> tuple[dict[int, int], list[int]]:
    """(bytes on disk per LIVE artifact inside ``root``, LIVE artifacts inside ``root`` whose
    files are gone)."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise PipelineError(f"pipeline root {root} is not a folder: pass the pipeline_root of the pipelines")
    sizes: dict[int, int] = {}
    absent: list[int] = []
    for a in history.artifacts.values():
        if a.state != "LIVE":
            continue
        p = _inside(root, a.uri)
        if p is None or p == root:
            continue
        if p.exists():
            sizes[a.artifact_id] = _bytes(p)
        else:
            absent.append(a.artifact_id)
    return sizes, sorted(absent)


def apply_collection(store: str | os.PathLike, plan: Any, root: str | os.PathLike) -> list[int]:
    """Delete the plan's artifacts (MLMD first, then files) and mark its stale ones DELETED;
    returns the ids marked."""
    from provenance.artifact_state import mark_deleted

    root = Path(root).resolve()
    trash = root / TRASH
    _empty(trash)
    done: list[int] = []
    for v in plan.delete:
        path = _inside(root, v.uri)
        if path is None or path == root:
            raise PipelineError(f"artifact {v.artifact_id} lies outside the pipeline root ({v.uri}); not deleting it")
        done += mark_deleted(store, [v.artifact_id])
        if path.exists():
            trash.mkdir(exist_ok=True)
            aside = trash / f"{v.artifact_id}-{uuid.uuid4().hex[:8]}"
            os.replace(path, aside)
            shutil.rmtree(aside, ignore_errors=True) if aside.is_dir() else aside.unlink(missing_ok=True)
        log.info("deleted artifact %s (%s, %d bytes)", v.artifact_id, v.uri, v.size_bytes)
    done += mark_deleted(store, list(plan.stale))
    _empty(trash)
    return done


def _empty(trash: Path) -> None:
    if trash.is_dir():
        for p in trash.iterdir():
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        trash.rmdir()


