"""Content-addressed store of materialized component outputs, keyed by fingerprint.

Each artifact is a folder ``objects/<fp[:2]>/<fp>/`` of Parquet parts plus ``MANIFEST.json``
listing every part with its SHA-256 and size. Writes go to a staging folder under ``tmp/``
and become visible in one ``os.replace``, so a reader never sees half an artifact. Every load
verifies the checksums first: a missing or corrupt artifact is reported as absent (and
quarantined), so the runner recomputes it instead of returning a wrong result.

Two kinds of outputs are stored: ``rows`` (a collection of flat dict records, one Parquet
table per part) and ``value`` (one Python object, pickled into a one-row Parquet table; models
and metrics). Eviction keeps the store within a byte budget.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.errors import PipelineError

__all__ = [
    "ArtifactCorruptError",
    "ArtifactStore",
    "Manifest",
    "PartInfo",
    "StoreEntry",
    "read_part_rows",
    "write_part",
]

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.json"
VALUE_COLUMN = "value"
ROWS = "rows"
VALUE = "value"


class ArtifactCorruptError(PipelineError):
    """A materialized artifact failed its checksum while being read."""


@dataclass(frozen=True)
class PartInfo:
    """One Parquet file of an artifact."""

    name: str
    sha256: str
    size_bytes: int
    rows: int


@dataclass(frozen=True)
class Manifest:
    """What an artifact folder holds; written last, so its presence means complete."""

    fingerprint: str
    kind: str
    parts: tuple[PartInfo, ...]
    node: str = ""
    created_at: float = 0.0

    @property
    def size_bytes(self) -> int:
        return sum(p.size_bytes for p in self.parts)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.parts)

    def to_json(self) -> str:
        return json.dumps(
            {
                "fingerprint": self.fingerprint,
                "kind": self.kind,
                "node": self.node,
                "created_at": self.created_at,
                "parts": [p.__dict__ for p in self.parts],
            },
            indent=1,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        d = json.loads(text)
        return cls(
            fingerprint=d["fingerprint"],
            kind=d["kind"],
            node=d.get("node", ""),
            created_at=float(d.get("created_at", 0.0)),
            parts=tuple(PartInfo(**p) for p in d["parts"]),
        )


@dataclass(frozen=True)
class StoreEntry:
    """One stored artifact as eviction sees it."""

    key: str
    size_bytes: int
    created_at: float
    last_used_at: float
    node: str


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_fingerprint(fp: str) -> str:
    if not fp or not all(c in "0123456789abcdef" for c in fp) or len(fp) < 8:
        raise PipelineError(
            f"invalid fingerprint {fp!r}: artifact keys are lowercase hex digests "
            "(use pipelines.fingerprint to compute them)"
        )
    return fp


def write_part(staging: str | os.PathLike, rows: Sequence[dict]) -> PartInfo:
    """Write one Parquet part of rows into a staging folder (runs inside Beam workers)."""
    staging = Path(staging)
    staging.mkdir(parents=True, exist_ok=True)
    name = f"part-{uuid.uuid4().hex}.parquet"
    table = pa.Table.from_pylist(list(rows))
    tmp = staging / (name + ".inprogress")
    pq.write_table(table, tmp)
    os.replace(tmp, staging / name)
    path = staging / name
    return PartInfo(name=name, sha256=_sha256(path), size_bytes=path.stat().st_size, rows=table.num_rows)


def read_part_rows(path: str | os.PathLike, sha256: str) -> list[dict]:
    """Rows of one part after checking its checksum; raises ArtifactCorruptError on mismatch."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ArtifactCorruptError(f"materialized part {path} is missing; delete the artifact folder "
                                   "or re-run, frugal recomputes it") from e
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ArtifactCorruptError(f"materialized part {path} fails its checksum; frugal quarantines "
                                   "it and recomputes the node")
    return pq.read_table(pa.BufferReader(data)).to_pylist()


class ArtifactStore:
    """A folder of materialized outputs keyed by component fingerprint."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)

    # -- paths ---------------------------------------------------------------------------------
    def path(self, fp: str) -> Path:
        """Folder of the artifact with fingerprint ``fp`` (which may not exist)."""
        _check_fingerprint(fp)
        return self.root / "objects" / fp[:2] / fp

    def staging_dir(self, fp: str) -> Path:
        """A fresh staging folder for writing ``fp``; becomes visible only by ``finalize``."""
        _check_fingerprint(fp)
        d = self.root / "tmp" / f"{fp}-{uuid.uuid4().hex}"
        d.mkdir(parents=True)
        return d

    # -- reading -------------------------------------------------------------------------------
    def manifest(self, fp: str) -> Manifest | None:
        """The manifest of ``fp`` without checking its parts, or None when absent/unreadable."""
        try:
            return Manifest.from_json((self.path(fp) / MANIFEST).read_text())
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def verify(self, fp: str) -> Manifest | None:
        """The manifest of ``fp`` when every part is present with its checksum, else None.

        A corrupt artifact is quarantined (deleted), so it is never loaded later.
        """
        m = self.manifest(fp)
        if m is None:
            if self.path(fp).exists():
                log.warning("artifact %s has no readable manifest; removing it", fp)
                self.delete(fp)
            return None
        folder = self.path(fp)
        for part in m.parts:
            p = folder / part.name
            try:
                ok = p.stat().st_size == part.size_bytes and _sha256(p) == part.sha256
            except OSError:
                ok = False
            if not ok:
                log.warning("artifact %s part %s is missing or corrupt; removing it", fp, part.name)
                self.delete(fp)
                return None
        return m

    def part_specs(self, fp: str) -> list[tuple[str, str]]:
        """(path, sha256) of each part of ``fp``; the Beam read step checks them again."""
        m = self.manifest(fp)
        if m is None:
            raise ArtifactCorruptError(f"artifact {fp} is not in the store at {self.root}; re-run to recompute it")
        return [(str(self.path(fp) / p.name), p.sha256) for p in m.parts]

    def read_rows(self, fp: str) -> list[dict]:
        """All rows of a ``rows`` artifact, checksums verified."""
        rows: list[dict] = []
        for path, sha in self.part_specs(fp):
            rows.extend(read_part_rows(path, sha))
        self.touch(fp)
        return rows

    def read_value(self, fp: str) -> Any:
        """The Python value of a ``value`` artifact, checksum verified."""
        rows = self.read_rows(fp)
        if len(rows) != 1 or VALUE_COLUMN not in rows[0]:
            raise ArtifactCorruptError(f"artifact {fp} is not a value artifact; delete it and re-run")
        return pickle.loads(rows[0][VALUE_COLUMN])

    def touch(self, fp: str) -> None:
        """Mark ``fp`` as just used (its manifest's mtime is the last-use time)."""
        try:
            os.utime(self.path(fp) / MANIFEST)
        except OSError:
            pass

    # -- writing -------------------------------------------------------------------------------
    def finalize(self, fp: str, staging: str | os.PathLike, parts: Iterable[PartInfo], *,
                 kind: str = ROWS, node: str = "") -> Manifest:
        """Publish a staged artifact atomically; an existing complete copy wins."""
        staging = Path(staging)
        parts = tuple(sorted(parts, key=lambda p: p.name))
        if not parts:  # an empty collection still gets one (empty) part, so loads are uniform
            parts = (write_part(staging, []),)
        m = Manifest(fingerprint=fp, kind=kind, parts=parts, node=node, created_at=time.time())
        tmp = staging / (MANIFEST + ".inprogress")
        tmp.write_text(m.to_json())
        os.replace(tmp, staging / MANIFEST)
        final = self.path(fp)
        final.parent.mkdir(parents=True, exist_ok=True)
        if self.verify(fp) is not None:
            shutil.rmtree(staging, ignore_errors=True)
            return self.manifest(fp)  # type: ignore[return-value]
        try:
            os.replace(staging, final)
        except OSError:  # a concurrent writer published first
            shutil.rmtree(staging, ignore_errors=True)
        return m

    def write_rows(self, fp: str, rows: Iterable[dict], *, node: str = "") -> Manifest:
        """Materialize rows (outside Beam) atomically."""
        staging = self.staging_dir(fp)
        return self.finalize(fp, staging, [write_part(staging, list(rows))], kind=ROWS, node=node)

    def write_value(self, fp: str, value: Any, *, node: str = "") -> Manifest:
        """Materialize one Python value (pickled) atomically."""
        staging = self.staging_dir(fp)
        part = write_part(staging, [{VALUE_COLUMN: pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)}])
        return self.finalize(fp, staging, [part], kind=VALUE, node=node)

    def delete(self, fp: str) -> None:
        """Remove ``fp`` (a rename first, so a reader never sees a half-deleted folder)."""
        folder = self.path(fp)
        if not folder.exists():
            return
        trash = self.root / "tmp" / f"deleted-{fp}-{uuid.uuid4().hex}"
        try:
            os.replace(folder, trash)
        except OSError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    # -- budget --------------------------------------------------------------------------------
    def entries(self) -> list[StoreEntry]:
        """Every complete artifact with its size and times."""
        out: list[StoreEntry] = []
        for mf in sorted((self.root / "objects").glob(f"*/*/{MANIFEST}")):
            try:
                m = Manifest.from_json(mf.read_text())
                used = mf.stat().st_mtime
            except (OSError, ValueError, KeyError, TypeError):
                continue
            out.append(StoreEntry(m.fingerprint, m.size_bytes, m.created_at, used, m.node))
        return out

    def total_bytes(self) -> int:
        """Bytes held by complete artifacts."""
        return sum(e.size_bytes for e in self.entries())

    def evict(self, budget_bytes: int,
              choose: Callable[[list[StoreEntry], int], Sequence[str]] | None = None) -> list[str]:
        """Delete artifacts until the store fits ``budget_bytes``; returns the evicted keys.

        ``choose(entries, budget)`` picks the victims (the optimizer's policy); the default is
        least recently used first. Anything still over budget afterwards goes LRU.
        """
        entries = self.entries()
        total = sum(e.size_bytes for e in entries)
        if total <= budget_bytes:
            return []
        victims: list[str] = list(choose(entries, budget_bytes)) if choose else []
        gone = set(victims)
        total -= sum(e.size_bytes for e in entries if e.key in gone)
        for e in sorted(entries, key=lambda e: e.last_used_at):
            if total <= budget_bytes:
                break
            if e.key not in gone:
                victims.append(e.key)
                gone.add(e.key)
                total -= e.size_bytes
        for fp in victims:
            self.delete(fp)
        if victims:
            log.info("evicted %d artifacts to fit %d bytes", len(victims), budget_bytes)
        return victims

    def clean_staging(self, older_than_s: float = 3600.0) -> None:
        """Remove staging folders left by crashed writers."""
        now = time.time()
        for d in (self.root / "tmp").iterdir():
            try:
                if now - d.stat().st_mtime > older_than_s:
                    shutil.rmtree(d, ignore_errors=True)
            except OSError:
                pass
