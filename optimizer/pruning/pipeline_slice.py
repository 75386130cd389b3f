"""One pipeline's records cut out of the warehouse, to describe its next training from a run's inputs.

A decision from a run's ``inputs`` describes one upcoming training. Built over the whole
warehouse, the feature SQL scans every table (hundreds of millions of rows at a large
fleet's scale) to find one pipeline's few thousand; a *slice* is those rows, copied once into
a small in-memory DuckDB with the warehouse's own tables: the pipeline's graphlets and their
members, its executions (the analysis's, the graphlets' members, the trainers) and two hops of
executions that read what they touched (the feature SQL's siblings), every artifact those
read or wrote, and the events, properties, associations and contexts of all of them.

A decision reads the run's records (from the MLMD store by id: provenance.readers.inputs)
over the slice's and describes the one training from its lane's warm state
(optimizer.pruning.online), without writing to the slice. A slice not prepared for the policy
yet loads the run's records into the slice inside a transaction, builds the one training's
features with the feature SQL (``live.describe_upcoming``) and rolls back, so the slice stays
as it was cut. Either way the features equal those built over the whole warehouse
(tests/optimizer/test_pipeline_slice.py), up to one difference: "now" (the upcoming start,
``at``) is the newest record the warehouse held of the source when the slice was cut, or of
the inputs' own records if newer, not of records the store gained since.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from dataclasses import dataclass, field

import duckdb

from optimizer.pruning import live, online
from optimizer.pruning.features import prepare_features
from provenance.readers.staging import Batch
from provenance.schema import create_schema
from provenance.warehouse import load_rows

__all__ = ["PipelineSlice", "cut_slice", "describe_with_inputs", "describe_with_sql"]

# warehouse tables copied with the schema's own DDL; the analysis tables as they are
_WAREHOUSE = ("types", "type_properties", "executions", "artifacts", "events", "properties",
              "associations", "contexts")
_ANALYSIS = ("graphlets", "graphlet_members", "analysis_executions")


@dataclass
class PipelineSlice:
    """The records of one pipeline of one source, in an in-memory DuckDB (see the module docstring)."""

    source_id: str
    pipeline: str
    con: duckdb.DuckDBPyConnection
    newest: dt.datetime | None          # the source's newest execution record when cut
    rows: int
    seconds: float
    key: tuple = ()                     # what the slice was cut from (the caller's staleness test)
    lock: threading.Lock = field(default_factory=threading.Lock)
    lanes: dict = field(default_factory=dict)   # online.LaneState by lane, for ``lanes_for``
    lanes_for: str | None = None                 # the policy version the lanes were prepared for
    lookups: online.Lookups = field(default_factory=online.Lookups)   # the slice's answers by id, kept

    def prepare(self, learned: live.LearnedPolicy) -> None:
        """Prepare the lanes' state for decisions from inputs (online.prepare_lanes) under ``learned``,
        once per policy version: off the request path where a caller has the policy early."""
        with self.lock:
            self._prepare(learned)

    def _prepare(self, learned: live.LearnedPolicy) -> None:
        if self.lanes_for != learned.version:
            self.lanes = online.prepare_lanes(self.con, learned, pipeline=self.pipeline, source_id=self.source_id)
            online.rehearse(self.con, self.lanes, self.lookups, learned)
            self.lanes_for = learned.version

    def close(self) -> None:
        self.con.close()


# What a slice copies, from the temporary tables of the pipeline's ids made by ``cut_slice``.
_SELECT = {
    "executions": "SELECT * FROM executions WHERE source_id = $s AND execution_id IN (SELECT id FROM _sl_x)",
    "artifacts": "SELECT * FROM artifacts WHERE source_id = $s AND artifact_id IN (SELECT id FROM _sl_a)",
    # (one semi-join per branch: DuckDB scans an OR of two IN filters ten times slower)
    "events": "SELECT * FROM events WHERE source_id = $s AND execution_id IN (SELECT id FROM _sl_x) "
              "UNION ALL SELECT * FROM events WHERE source_id = $s AND artifact_id IN (SELECT id FROM _sl_a) "
              "AND execution_id NOT IN (SELECT id FROM _sl_x)",
    "properties": "SELECT * FROM properties WHERE source_id = $s AND entity = 'execution' "
                  "AND entity_id IN (SELECT id FROM _sl_x) UNION ALL "
                  "SELECT * FROM properties WHERE source_id = $s AND entity = 'artifact' "
                  "AND entity_id IN (SELECT id FROM _sl_a)",
    "associations": "SELECT * FROM _sl_assoc",
    "contexts": "SELECT * FROM contexts WHERE source_id = $s AND context_id IN (SELECT context_id FROM _sl_assoc)",
    "types": "SELECT * FROM types WHERE source_id = $s",
    "type_properties": "SELECT * FROM type_properties WHERE source_id = $s",
    "graphlets": "SELECT * FROM graphlets WHERE source_id = $s AND pipeline = $p",
    "graphlet_members": "SELECT * FROM _sl_m",
    "analysis_executions": "SELECT * FROM analysis_executions WHERE source_id = $s AND execution_id IN "
                           "(SELECT id FROM _sl_x)",
}

# The pipeline's ids: its graphlets and their members (read once), its executions, their
# artifacts; then ``hops`` rounds of the executions that read those artifacts and what they wrote.
_IDS_SQL = """
    CREATE OR REPLACE TEMP TABLE _sl_g AS
    SELECT graphlet_id, trainer_execution_id FROM graphlets WHERE source_id = $s AND pipeline = $p;

    CREATE OR REPLACE TEMP TABLE _sl_m AS
    SELECT * FROM graphlet_members WHERE graphlet_id IN (SELECT graphlet_id FROM _sl_g);

    CREATE OR REPLACE TEMP TABLE _sl_x AS
    SELECT execution_id AS id FROM analysis_executions WHERE source_id = $s AND pipeline = $p
    UNION SELECT trainer_execution_id FROM _sl_g WHERE trainer_execution_id IS NOT NULL
    UNION SELECT entity_id FROM _sl_m WHERE entity = 'execution';

    CREATE OR REPLACE TEMP TABLE _sl_a AS
    SELECT DISTINCT artifact_id AS id FROM events WHERE source_id = $s AND execution_id IN (SELECT id FROM _sl_x)
    UNION SELECT entity_id FROM _sl_m WHERE entity = 'artifact';
"""

_HOP_SQL = """
    INSERT INTO _sl_x SELECT DISTINCT execution_id FROM events
    WHERE source_id = $s AND type = 'INPUT' AND artifact_id IN (SELECT id FROM _sl_a)
    EXCEPT SELECT id FROM _sl_x;

    INSERT INTO _sl_a SELECT DISTINCT artifact_id FROM events
    WHERE source_id = $s AND execution_id IN (SELECT id FROM _sl_x)
    EXCEPT SELECT id FROM _sl_a;
"""

_ASSOC_SQL = """
    CREATE OR REPLACE TEMP TABLE _sl_assoc AS
    SELECT * FROM associations WHERE source_id = $s AND execution_id IN (SELECT id FROM _sl_x);
"""


def _run(cur, sql: str, params: dict) -> None:
    for stmt in sql.split(";"):
        if stmt.strip():
            cur.execute(stmt, {k: v for k, v in params.items() if f"${k}" in stmt})


def cut_slice(con, source_id: str, pipeline: str, *, hops: int = 2, key: tuple = ()) -> PipelineSlice:
    """Copy the records of ``pipeline`` in ``source_id`` out of the warehouse ``con`` (read only)."""
    t0 = time.perf_counter()
    cur = con.cursor()
    params = {"s": source_id, "p": pipeline}
    try:
        have = {r[0] for r in cur.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        _run(cur, _IDS_SQL if "analysis_executions" in have else
             _IDS_SQL.replace("SELECT execution_id AS id FROM analysis_executions WHERE source_id = $s AND "
                              "pipeline = $p\n    UNION ", ""), params)
        for _ in range(hops):   # readers of what the slice touched, and what they wrote
            _run(cur, _HOP_SQL, params)
        _run(cur, _ASSOC_SQL, params)
        newest = cur.execute("SELECT greatest(max(update_time), max(create_time)) FROM executions "
                             "WHERE source_id = $s", {"s": source_id}).fetchall()[0][0]
        out = duckdb.connect()
        out.execute("SET threads = 1")    # a slice is small: one thread, no contention with the service
        create_schema(out)
        rows = 0
        for table, sql in _SELECT.items():
            if table not in have:
                continue
            data = cur.sql(sql, params={k: v for k, v in params.items() if f"${k}" in sql}).to_arrow_table()
            rows += data.num_rows
            out.register("_sl_rows", data)
            if table in _WAREHOUSE:
                out.execute(f"INSERT INTO {table} SELECT * FROM _sl_rows")
            else:
                out.execute(f"CREATE TABLE {table} AS SELECT * FROM _sl_rows")
            out.unregister("_sl_rows")
    finally:
        cur.close()
    # what every description on the slice shares (its graphlets, their lanes), built once
    prepare_features(out, pipeline=pipeline, sources=[source_id])
    return PipelineSlice(source_id=source_id, pipeline=pipeline, con=out, newest=newest, rows=rows,
                         seconds=time.perf_counter() - t0, key=key)


def describe_with_inputs(sl: PipelineSlice, learned: live.LearnedPolicy, lane: str, batch: Batch,
                         inputs: list[int], *, at: dt.datetime | None = None,
                         prepare: bool = True) -> live.Upcoming | None:
    """The upcoming training of ``lane`` from this run's ``inputs`` (``batch``: their records), scored.

    From the lane's warm state (optimizer.pruning.online), the run's records read over the
    slice's, prepared first for ``learned`` unless ``prepare`` is False: then a slice not
    prepared for it describes with the feature SQL, the records loaded (a service answers a
    slice's first decision so and prepares it after answering). ``at``: the upcoming start;
    default just after the newest record of the slice's source or of the batch's executions
    (see the module docstring).
    """
    with sl.lock:   # the slice's connection and its prepared tables: one description at a time
        if prepare:
            sl._prepare(learned)
        state = sl.lanes.get(lane) if sl.lanes_for == learned.version else None
        if state is not None:
            records = sl.lookups.records(sl.con, sl.source_id, batch)
            start = online.upcoming_start(records, inputs, sl.newest, at)
            if start is not None:
                return online.describe(sl.con, state, learned, list(inputs), start, records=records)
        # not prepared (yet) for this policy or this lane: the feature SQL
        with _run_loaded(sl, batch, at) as (con, at):
            return _feature_sql(con, sl, learned, lane, inputs, at)


def describe_with_sql(sl: PipelineSlice, learned: live.LearnedPolicy, lane: str, batch: Batch,
                      inputs: list[int], *, at: dt.datetime | None = None) -> live.Upcoming | None:
    """``describe_with_inputs`` by the feature SQL on the slice, not the lane's state: what that
    state must agree with (tests, benchmarks/slice_describe.py)."""
    with sl.lock, _run_loaded(sl, batch, at) as (con, at):
        return _feature_sql(con, sl, learned, lane, inputs, at)


@contextlib.contextmanager
def _run_loaded(sl: PipelineSlice, batch: Batch, at: dt.datetime | None):
    """(the slice's connection with the run's records loaded, the upcoming start), in a
    transaction rolled back after: the slice stays as it was cut. The caller holds ``sl.lock``."""
    con = sl.con
    con.execute("BEGIN TRANSACTION")
    try:
        load_rows(con, sl.source_id, batch, tables=online.RUN_TABLES)
        if at is None:   # after the newest record of the source when cut, or of the inputs' own
            at = con.execute("SELECT greatest(max(update_time), max(create_time), $newest::TIMESTAMP) "
                             "+ INTERVAL 1 millisecond FROM executions", {"newest": sl.newest}).fetchall()[0][0]
        yield con, at
    finally:
        con.execute("ROLLBACK")


def _feature_sql(con, sl: PipelineSlice, learned, lane: str, inputs: list[int], at) -> live.Upcoming | None:
    return live.describe_upcoming(con, learned, pipeline=sl.pipeline, lanes=[lane], inputs=inputs, at=at,
                                  sources=[sl.source_id], prepared=True).get(lane)
