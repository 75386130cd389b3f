"""Ingest MLMD stores into the DuckDB warehouse: incremental, idempotent and atomic.

One call reads every store (the fast SQLite reader where it can, the ml_metadata API
otherwise) and loads all of them inside a single DuckDB transaction: an ingest that fails or
is killed at any moment leaves the warehouse exactly as it was. Each store is a *source*
with a stable id, so ingesting the same store again updates its own rows, reading only what
changed since the watermark kept in ``sources``.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from provenance.connections import (
    StoreSpec,
    check_server_reachable,
    check_supported,
    parse_store,
    resolve_source_ids,
    sqlite_schema_version,
)
from provenance.errors import ProvenanceError
from provenance.readers.sqlite_reader import PART_IDS
from provenance.readers.staging import Batch
from provenance.upgrade import UPGRADABLE_SCHEMA_VERSIONS, upgraded_copy
from provenance.warehouse import connect, load_parts, source_row

__all__ = ["ingest", "IngestReport", "SourceReport", "VIAS", "known_sources", "store_source_ids"]

log = logging.getLogger(__name__)

VIAS = ("auto", "api", "sqlite")


@dataclass(frozen=True)
class SourceReport:
    """What one store's ingest did."""

    source_id: str
    uri: str
    kind: str
    via: str                       # sqlite (fast path) | api
    full: bool                     # True: the whole store was read; False: the delta since the watermark
    store_rows: int                # MLMD rows read from the store (all tables)
    rows: dict[str, int]           # warehouse rows written per table
    seconds: float
    issues: int                    # rows of ingest_issues for the source after the ingest
    issue_counts: dict[str, int] = field(default_factory=dict)
    parts: int = 1                 # parts the read was loaded in (a first read of a big SQLite store: several)

    @property
    def rows_per_s(self) -> float:
        return self.store_rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class IngestReport:
    """What an ingest did, per source and in total."""

    warehouse: str
    sources: tuple[SourceReport, ...]
    seconds: float
    notes: tuple[str, ...] = ()    # the source ids chosen for stores whose default ids collided

    @property
    def store_rows(self) -> int:
        return sum(s.store_rows for s in self.sources)

    @property
    def rows_per_s(self) -> float:
        return self.store_rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def issues(self) -> int:
        return sum(s.issues for s in self.sources)

    def rows(self) -> dict[str, int]:
        """Warehouse rows written per table, summed over sources."""
        out: dict[str, int] = {}
        for s in self.sources:
            for table, n in s.rows.items():
                out[table] = out.get(table, 0) + n
        return out


def _known(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute("SELECT source_id, uri FROM sources").fetchall())


def known_sources(warehouse: str | Path) -> dict[str, str]:
    """Source id -> store URI of the sources in ``warehouse`` (none when it does not exist yet)."""
    if not Path(warehouse).exists():
        return {}
    con = connect(warehouse, read_only=True)
    try:
        return _known(con)
    finally:
        con.close()


def store_source_ids(stores: Sequence[str | Path], warehouse: str | Path | None = None) -> tuple[list[str], list[str]]:
    """The default source id of each store, in order, and the lines saying which ids were
    chosen because default ids collided (see provenance.connections.resolve_source_ids);
    the sources already in ``warehouse`` keep their ids."""
    specs = [parse_store(s) for s in stores]
    try:
        known = known_sources(warehouse) if warehouse is not None else {}
    except (ProvenanceError, duckdb.Error):  # unreadable now: whoever opens it next says why
        known = {}
    resolved, lines = resolve_source_ids(list({s.uri: s for s in specs}.values()), known)
    ids = {s.uri: s.source_id for s in resolved}
    return [ids[s.uri] for s in specs], lines


def _distinct(specs: list[StoreSpec]) -> list[StoreSpec]:
    """``specs`` once each; two different stores with one source id are refused."""
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.source_id in seen and seen[spec.source_id] != spec.uri:
            raise ProvenanceError(
                f"two stores would get the source id {spec.source_id!r} ({seen[spec.source_id]} and "
                f"{spec.uri}): give each its own id with --source-id."
            )
        seen[spec.source_id] = spec.uri
    return list({s.source_id: s for s in specs}.values())


def _resolve_via(spec: StoreSpec, via: str) -> str:
    if via not in VIAS:
        raise ProvenanceError(f"unknown --via {via!r}: use one of {', '.join(VIAS)}.")
    if via == "auto":
        return "sqlite" if spec.kind == "sqlite" else "api"
    if via == "sqlite" and spec.kind != "sqlite":
        raise ProvenanceError(
            f"--via sqlite reads SQLite files only, and {spec.uri} is a {spec.kind} store: "
            "use --via api (or auto)."
        )
    return via


def _check(spec: StoreSpec, upgrade_copy: bool) -> None:
    """Cheap checks before any work, so that a bad store fails the ingest at once."""
    if spec.kind == "sqlite":
        version = sqlite_schema_version(spec.path)
        if not (upgrade_copy and version in UPGRADABLE_SCHEMA_VERSIONS):
            check_supported(version, str(spec.path))
    else:
        check_server_reachable(spec)


def _read(spec: StoreSpec, via: str, watermark: dict | None, on_table, part_ids: int) -> Iterator[Batch]:
    """Read one store, in parts; errors of the database layers become a ProvenanceError with advice."""
    import sqlite3

    import adbc_driver_manager
    from ml_metadata import errors as mlmd_errors

    try:
        if via == "sqlite":
            from provenance.readers.sqlite_reader import read_sqlite

            yield from read_sqlite(spec, watermark, on_table=on_table, part_ids=part_ids)
            return
        from provenance.readers.api_reader import read_api

        yield read_api(spec, watermark, on_table=on_table)
    except (sqlite3.Error, adbc_driver_manager.Error, mlmd_errors.StatusError) as exc:
        raise ProvenanceError(
            f"cannot read the MLMD store {spec.uri}: {str(exc).strip()}. If a pipeline is writing "
            "to it right now, run the ingest again; if the store is damaged, ingest a good copy."
        ) from exc


class _Counted:
    """The parts of one read as they pass to the loader, counted (rows read, full or delta) and logged."""

    def __init__(self, source_id: str, via: str, parts: Iterator[Batch]):
        self.source_id, self.via, self.parts = source_id, via, parts
        self.store_rows, self.full, self.count = 0, False, 0

    def __iter__(self) -> Iterator[Batch]:
        t0 = time.perf_counter()
        for batch in self.parts:
            self.store_rows += batch.store_rows
            self.full = batch.full
            self.count += 1
            log.debug("%s: part %d read, %d store rows via %s (%s) in %.2f s; loading into the warehouse",
                     self.source_id, self.count, batch.store_rows, self.via,
                     "full" if batch.full else "incremental", time.perf_counter() - t0)
            yield batch
            t0 = time.perf_counter()


class _Progress:
    """A rich progress bar on a terminal; nothing otherwise."""

    def __init__(self, enabled: bool):
        self.bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[rows]:,} rows"),
                TimeElapsedColumn(), transient=True, console=Console(stderr=True),
            )
            self.bar.start()

    def task(self, label: str, total: int):
        if self.bar is None:
            return None
        return self.bar.add_task(label, total=total, rows=0)

    def advance(self, task, rows: int, label: str | None = None) -> None:
        if self.bar is None or task is None:
            return
        current = self.bar.tasks[task].fields.get("rows", 0)
        self.bar.update(task, advance=1, rows=current + rows, **({"description": label} if label else {}))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


_STAGES = 12  # tables read by a reader + the load step


def ingest(
    stores: Sequence[str | Path],
    warehouse: str | Path,
    *,
    via: str = "auto",
    source_ids: Sequence[str] | None = None,
    progress: bool | None = None,
    upgrade_copy: bool = False,
    checkpoint: bool = True,
    part_ids: int = PART_IDS,
) -> IngestReport:
    """Ingest ``stores`` into the DuckDB file ``warehouse`` in one atomic transaction.

    ``via``: ``auto`` (fast SQLite reader for SQLite files, the ml_metadata API otherwise),
    ``api`` or ``sqlite``. ``source_ids`` overrides the default ids (file stem, ``host/db``),
    one per store. Without it, stores whose default ids collide get ``folder/stem`` (see
    provenance.connections.resolve_source_ids; the report's ``notes`` say which), and the
    sources the warehouse already holds keep their ids. ``progress``: show a progress bar;
    None shows it only on a terminal.
    ``upgrade_copy``: read SQLite stores of older MLMD schema versions through a temporary
    copy upgraded to version 10 (the store itself is never changed). ``checkpoint=False``
    leaves the committed write-ahead log for DuckDB to fold in later (a service that writes
    all the time checkpoints on its own schedule). ``part_ids``: a first (full) read of a SQLite
    store is read and loaded in parts of this many ids of one table, so its memory is bounded
    whatever the store's size (provenance.readers.sqlite_reader).
    """
    if not stores:
        raise ProvenanceError("no store given: pass at least one MLMD store (SQLite path or mysql:// URL).")
    if source_ids is not None and len(source_ids) != len(stores):
        raise ProvenanceError(
            f"{len(source_ids)} source ids for {len(stores)} stores: give one --source-id per store, in order."
        )
    specs = [parse_store(s, source_ids[i] if source_ids else None) for i, s in enumerate(stores)]
    if source_ids is None:  # default ids: chosen below, once the warehouse's own ids are known
        specs = list({s.uri: s for s in specs}.values())
    else:
        specs = _distinct(specs)
    vias = [_resolve_via(spec, via) for spec in specs]
    for spec in specs:
        _check(spec, upgrade_copy)

    show = sys.stderr.isatty() if progress is None else progress
    started = time.perf_counter()
    con = connect(warehouse)
    con.execute("SET preserve_insertion_order = false")  # bulk loads need no row order; faster parallel inserts
    bar = _Progress(show)
    reports: list[SourceReport] = []
    notes: list[str] = []
    try:
        if source_ids is None:
            # stores whose default ids collide (a/metadata.sqlite, b/metadata.sqlite) get folder/stem
            specs, notes = resolve_source_ids(specs, _known(con))
            specs = _distinct(specs)
            for note in notes:
                log.info("%s", note)
        for spec in specs:
            prev = source_row(con, spec.source_id)
            if prev is not None and prev["uri"] != spec.uri:
                raise ProvenanceError(
                    f"source id {spec.source_id!r} already names {prev['uri']} in {warehouse}; "
                    f"give {spec.uri} another id with --source-id."
                )
        con.execute("BEGIN TRANSACTION")
        for spec, how in zip(specs, vias):
            t0 = time.perf_counter()
            prev = source_row(con, spec.source_id)
            task = bar.task(f"{spec.source_id}: reading", _STAGES)
            with tempfile.TemporaryDirectory(prefix="frugal-upgrade-") as workdir:
                readable = spec
                if upgrade_copy and spec.kind == "sqlite":
                    readable = dataclasses.replace(spec, path=upgraded_copy(spec.path, Path(workdir)))
                # read and load part by part: one part of the store is held at a time
                batch = _Counted(spec.source_id, how, _read(
                    readable, how, prev["watermark"] if prev else None,
                    lambda name, n, task=task: bar.advance(task, n, f"{spec.source_id}: {name}"), part_ids))
                written = load_parts(con, spec.source_id, spec.uri, spec.kind, batch, fresh=prev is None)
            log.info("%s: %d store rows in %d part(s) loaded in %.2f s", spec.source_id, batch.store_rows,
                     batch.count, time.perf_counter() - t0)
            bar.advance(task, 0, f"{spec.source_id}: loaded")
            issue_counts = dict(con.execute(
                "SELECT issue, COUNT(*) FROM ingest_issues WHERE source_id = ? GROUP BY issue ORDER BY issue",
                [spec.source_id],
            ).fetchall())
            reports.append(SourceReport(
                source_id=spec.source_id, uri=spec.uri, kind=spec.kind, via=how, full=batch.full,
                store_rows=batch.store_rows, rows=written, seconds=time.perf_counter() - t0, parts=batch.count,
                issues=sum(issue_counts.values()), issue_counts=issue_counts,
            ))
            for issue, n in issue_counts.items():
                log.warning("%s: %d %s issue(s) recorded in ingest_issues", spec.source_id, n, issue)
        t_commit = time.perf_counter()
        con.execute("COMMIT")
        log.info("committed in %.2f s", time.perf_counter() - t_commit)
        if checkpoint:
            try:  # fold the write-ahead log into the file; the data is safe either way
                con.execute("CHECKPOINT")
            except duckdb.Error as exc:
                log.warning("checkpoint of %s postponed: %s", warehouse, exc)
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except Exception:  # no transaction open yet
            pass
        raise
    finally:
        bar.close()
        con.close()
    return IngestReport(warehouse=str(warehouse), sources=tuple(reports), seconds=time.perf_counter() - started,
                        notes=tuple(notes))
