"""One upcoming training's features from its pipeline's warm state: a gate's decision in milliseconds.

The feature SQL (optimizer.pruning.features) describes an upcoming training in some forty
statements, each with its joins planned and run: about 150 ms on a pipeline slice whatever its
size. A gate asking with a run's ``inputs`` changes only part of that row, so a slice keeps,
per lane, what the rest is made of (``prepare_lanes``, once per slice and policy, with the
feature SQL itself):

- the upcoming training described without inputs: its history, previous-training and cost
  features do not depend on its upstream. Of them, three depend on "now" (hours since the
  last push, that over the typical push interval, hours since the previous training) and
  are taken again at the decision's "now" (``AT_COLUMNS``); the others do not, since every
  record of the lane is older than the slice's "now" (checked when prepared);
- the lane's last training: its members and trainer inputs (what the run's inputs replace),
  its upstream's property aggregates, component types and inputs (what the upcoming one is
  compared with), and the property levels of the lane's latest trainings (``.rel``);
- the executions on a model's way to deployment (never siblings).

A decision (``describe``) then finds the run's upstream by a few lookups by id (the given
artifacts, their writers and what those wrote, the last training's upstream of other types,
the trainer's inputs rolled to the newest of their types, two hops of readers), the rules of
``upcoming._add_rows`` and the features' upstream and sibling SQL followed in Python. The
lookups read the run's records over the slice's, as if the run were loaded into the slice
(``_Overlay``: its rows as ``warehouse.batch_rows`` makes them, a node of the run replacing
the slice's with its properties, its events added), the slice's answers kept across decisions
(``Lookups``): nothing is written to the slice. It runs the feature SQL's own property
statement (``features.props_select``) on that one training's upstream and property rows, and
takes its property changes, structure, input overlap and level ratios by the features'
formulas (``_properties``, ``_structure``, ``_overlap``, ``features.relative_to_previous``). The result equals the
feature SQL's description (tests/optimizer/test_pipeline_slice.py compares every feature,
the score and the guard on every lane, and runs the store has not been ingested with).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from optimizer.pruning import live
from optimizer.pruning.features import _VALUE_COLUMNS, _wide_properties, props_select, relative_to_previous
from optimizer.pruning.upcoming import NEXT_PREFIX
from provenance.readers.staging import Batch
from provenance.warehouse import batch_rows

__all__ = ["LaneState", "Lookups", "Records", "RUN_TABLES", "prepare_lanes", "rehearse", "upcoming_start", "describe",
           "AT_COLUMNS"]

# the history and previous-training features that move with "now" (the upcoming start)
AT_COLUMNS = ("h_hours_since_push", "h_push_age_ratio", "p_hours_since_prev_training")

_UP_SCHEMA = pa.schema([("graphlet_id", pa.string()), ("source_id", pa.string()), ("entity", pa.string()),
                        ("entity_id", pa.int64()), ("type_name", pa.string()), ("key", pa.string()),
                        ("t", pa.timestamp("us")), ("state", pa.string()), ("duration_s", pa.float64()),
                        ("is_trainer", pa.bool_())])


@dataclass(frozen=True)
class LaneState:
    """What a lane's upcoming training is described from at a decision (see the module docstring)."""

    lane: str
    source_id: str
    pipeline: str
    last: str                            # the last training's graphlet id
    s0: dt.datetime                      # its start
    config_id: int | None                # its trainer: the upcoming one's configuration
    members: tuple                       # its graphlet members (entity, id)
    trainer_inputs: tuple                # its trainer's input artifacts
    row: dict                            # the upcoming training described without inputs, at ``at0``
    at0: dt.datetime
    last_push: dt.datetime | None
    median_gap_s: float | None           # typical seconds between pushes (h_push_age_ratio)
    levels: pd.DataFrame                 # the latest trainings' property levels, oldest first
    excluded: frozenset                  # executions on a model's way to deployment
    last_types: frozenset                # the component types of the last training's upstream (_pf_keys)
    last_inputs: frozenset               # its trainer's inputs (_pf_in)
    previous: dict                       # its upstream's properties: fkey -> (vmax, h_latest) (_pf_p)


def _epoch(t: dt.datetime) -> float:
    """DuckDB's epoch() of a TIMESTAMP: microseconds over 1e6, as a double."""
    return (t - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1) / 1e6


def prepare_lanes(con, learned: live.LearnedPolicy, *, pipeline: str, source_id: str) -> dict[str, LaneState]:
    """The state of every lane of ``pipeline`` on a prepared slice ``con`` (features.prepare_features),
    built with the feature SQL in a transaction that is rolled back."""
    con.execute("BEGIN TRANSACTION")
    try:
        fs, _ = live.upcoming_features(con, learned, pipeline=pipeline, sources=[source_id], prepared=True)
        nxt = con.execute('SELECT next_id, gid, lane, s0, "at" FROM _pf_next').fetchall()
        last_ids = [r[1] for r in nxt]
        hist = {r[0]: r[1:] for r in con.execute(
            "SELECT graphlet_id, last_push, med_gap FROM _pf_hist WHERE starts_with(graphlet_id, $p)",
            {"p": NEXT_PREFIX}).fetchall()}
        src = {r[0]: r[1] for r in con.execute(
            "SELECT graphlet_id, config_id FROM _pf_src WHERE list_contains($ids, graphlet_id)",
            {"ids": last_ids}).fetchall()}
        members = con.execute("SELECT graphlet_id, entity, entity_id FROM graphlet_members "
                              "WHERE list_contains($ids, graphlet_id)", {"ids": last_ids}).fetchall()
        inputs = con.execute("SELECT graphlet_id, artifact_id FROM _pf_insrc WHERE list_contains($ids, graphlet_id)",
                             {"ids": last_ids}).fetchall()
        newest = con.execute("SELECT max(greatest(s, coalesce(ended_at, s))) FROM _pf_gl JOIN _pf_src USING "
                             "(graphlet_id) WHERE NOT starts_with(graphlet_id, $p)",
                             {"p": NEXT_PREFIX}).fetchall()[0][0]
        excluded = frozenset(r[0] for r in con.execute(
            "SELECT execution_id FROM _pf_excl WHERE source_id = $s", {"s": source_id}).fetchall())
        types = con.execute("SELECT graphlet_id, key FROM _pf_keys WHERE list_contains($ids, graphlet_id)",
                            {"ids": last_ids}).fetchall()
        last_in = con.execute("SELECT graphlet_id, artifact_id FROM _pf_in WHERE list_contains($ids, graphlet_id)",
                              {"ids": last_ids}).fetchall()
        previous = con.execute("SELECT graphlet_id, fkey, vmax, h_latest FROM _pf_p "
                               "WHERE list_contains($ids, graphlet_id)", {"ids": last_ids}).fetchall()
    finally:
        con.execute("ROLLBACK")
    frame = fs.frame
    levels = [c for c in frame.columns if c.endswith(".max")]
    out: dict[str, LaneState] = {}
    for next_id, gid, lane, s0, at0 in nxt:
        if newest is not None and newest >= at0:    # a record of the lane not older than "now"
            continue
        lane_rows = frame[frame["lane"] == lane]
        upcoming = lane_rows[lane_rows["graphlet_id"] == next_id]
        if upcoming.empty:
            continue
        last_push, med_gap = hist.get(next_id, (None, None))
        out[lane] = LaneState(
            lane=lane, source_id=source_id, pipeline=pipeline, last=gid, s0=s0, config_id=src.get(gid),
            members=tuple((e, int(i)) for g, e, i in members if g == gid),
            trainer_inputs=tuple(sorted({int(a) for g, a in inputs if g == gid})),
            row=upcoming.iloc[0].to_dict(), at0=at0, last_push=last_push, median_gap_s=med_gap,
            levels=lane_rows[lane_rows["graphlet_id"] != next_id][["graphlet_id", "lane", *levels]]
            .reset_index(drop=True), excluded=excluded,
            last_types=frozenset(k for g, k in types if g == gid),
            last_inputs=frozenset(a for g, a in last_in if g == gid),
            previous={fkey: (vmax, h) for g, fkey, vmax, h in previous if g == gid})
    return out


class Lookups:
    """What a slice answers by id (executions, artifacts, events, properties), kept across
    decisions: a slice does not change until it is cut again. ``records(con, source_id,
    batch)`` gives one decision's view, the run's records over the slice's."""

    def __init__(self):
        self.executions: dict[int, tuple | None] = {}
        self.artifacts: dict[int, tuple | None] = {}
        self.edges: dict[tuple, dict[int, list[int]]] = {}
        self.properties: dict[tuple[str, int], list[tuple]] = {}
        self.top: dict[str, int] | None = None    # the largest artifact and execution id the slice mentions

    def records(self, con, source_id: str, batch=None) -> "Records":
        if self.top is None:
            self.top = _top_ids(con)
        return Records(con, source_id, self, _Overlay.of(con, source_id, batch))


def _top_ids(con) -> dict[str, int]:
    """The largest id of each kind in the slice's nodes, events and properties: a larger one (a
    record the store gained after the cut, as a new run's) is not in the slice, no query asks."""
    a, x = con.execute("""
        SELECT greatest((SELECT max(artifact_id) FROM artifacts), (SELECT max(artifact_id) FROM events),
                        (SELECT max(entity_id) FROM properties WHERE entity = 'artifact')),
               greatest((SELECT max(execution_id) FROM executions), (SELECT max(execution_id) FROM events),
                        (SELECT max(entity_id) FROM properties WHERE entity = 'execution'))""").fetchall()[0]
    return {"artifact": -1 if a is None else int(a), "execution": -1 if x is None else int(x)}


def rehearse(con, lanes: dict, lookups: Lookups, learned: live.LearnedPolicy) -> None:
    """Describe each lane once for a run like its last (from its trainer's inputs), off the
    request path: what a decision reads of the slice is then kept in ``lookups`` (a gate's next
    run shares most of that upstream; its new records are its own, above ``Lookups.top``), and
    the code a decision runs has run."""
    for state in lanes.values():
        # (with a run of no records: reading one's records runs too)
        records = lookups.records(con, state.source_id, Batch(full=False, tables={}, watermark={},
                                                               schema_version=None))
        describe(con, state, learned, list(state.trainer_inputs), state.at0, records=records)


@dataclass(frozen=True)
class _Overlay:
    """A run's records in the warehouse's rows (``warehouse.batch_rows``: what loading them into
    the slice would write), by id: a node replaces the slice's, with its properties; events add
    to the slice's (events are immutable: one read again is the same edge)."""

    executions: dict
    artifacts: dict
    edges: dict
    properties: dict          # of the run's nodes: these replace the slice's
    added: dict               # of other nodes: added to the slice's

    @classmethod
    def of(cls, con, source_id: str, batch) -> "_Overlay":
        if batch is None:
            return cls({}, {}, {}, {}, {})
        tables = batch_rows(con, source_id, batch, RUN_TABLES)

        def rows(table: str, *columns: str) -> list[tuple]:
            t = tables[table]
            return list(zip(*(t.column(c).to_pylist() for c in columns))) if t.num_rows else []

        executions = {r[0]: r[1:] for r in rows("executions", "execution_id", *_NODE_COLUMNS["execution"])}
        artifacts = {r[0]: r[1:] for r in rows("artifacts", "artifact_id", *_NODE_COLUMNS["artifact"])}
        edges: dict[tuple, dict[int, list[int]]] = {}
        for a, x, kind in rows("events", "artifact_id", "execution_id", "type"):
            edges.setdefault((kind, "artifact_id"), {}).setdefault(a, []).append(x)
            edges.setdefault((kind, "execution_id"), {}).setdefault(x, []).append(a)
        properties: dict[tuple[str, int], list[tuple]] = {("execution", i): [] for i in executions}
        properties |= {("artifact", i): [] for i in artifacts}
        added: dict[tuple[str, int], list[tuple]] = {}    # of nodes not in the run's records: added
        for r in rows("properties", *_PROPERTY_COLUMNS):
            (properties if (r[1], r[2]) in properties else added).setdefault((r[1], r[2]), []).append(r)
        return cls(executions, artifacts, edges, properties, added)


# what a decision reads of a run's records (not contexts, associations, types: the upcoming
# training's lane and configuration are its last training's, in the slice already)
RUN_TABLES = ("artifacts", "executions", "events", "properties")

# what a lookup reads of a node, and the warehouse's property columns
_NODE_COLUMNS = {"execution": ("type_name", "create_time", "update_time", "state", "duration_s"),
                 "artifact": ("type_name", "create_time")}
_PROPERTY_COLUMNS = ("source_id", "entity", "entity_id", "name", "is_custom", "value_type", "int_value",
                     "double_value", "string_value", "bool_value")
_PROPERTY_SCHEMA = pa.schema([("source_id", pa.string()), ("entity", pa.string()), ("entity_id", pa.int64()),
                              ("name", pa.string()), ("is_custom", pa.bool_()), ("value_type", pa.string()),
                              ("int_value", pa.int64()), ("double_value", pa.float64()),
                              ("string_value", pa.string()), ("bool_value", pa.bool_())])


class Records:
    """One decision's lookups by id: the run's records (``_Overlay``) over the slice's, these
    read once per slice (``Lookups``) and only for ids not known yet."""

    def __init__(self, con, source_id: str, kept: Lookups | None = None, overlay: _Overlay | None = None):
        self.con, self.source_id = con, source_id
        self.kept = kept or Lookups()
        self.overlay = overlay or _Overlay({}, {}, {}, {}, {})
        self.executions = _Nodes(self, "execution")
        self.artifacts = _Nodes(self, "artifact")

    def _rows(self, sql: str, ids) -> list[tuple]:
        return self.con.execute(sql, {"s": self.source_id, "ids": [int(i) for i in ids]}).fetchall()

    def _in_slice(self, kind: str, ids) -> set[int]:
        """The ids of ``ids`` the slice may hold (not above its largest of ``kind``)."""
        top = self.kept.top[kind] if self.kept.top is not None else None
        return {i for i in ids if top is None or i <= top}

    def execution(self, ids) -> None:
        self._nodes("execution", ids)

    def artifact(self, ids) -> None:
        self._nodes("artifact", ids)

    def node_maps(self, kind: str) -> tuple[dict, dict]:
        """(the run's nodes, the slice's kept ones) of ``kind`` ('execution' or 'artifact'), by id."""
        return getattr(self.overlay, f"{kind}s"), getattr(self.kept, f"{kind}s")

    def _nodes(self, kind: str, ids) -> None:
        """Read the slice's nodes of ``ids`` not known yet (None: not in the slice)."""
        mine, kept = self.node_maps(kind)
        todo = self._in_slice(kind, {int(i) for i in ids} - kept.keys() - mine.keys())
        if todo:
            table, key = f"{kind}s", f"{kind}_id"
            found = dict.fromkeys(todo)
            for r in self._rows(f"SELECT {key}, {', '.join(_NODE_COLUMNS[kind])} FROM {table} "
                                f"WHERE source_id = $s AND {key} IN (SELECT unnest($ids))", todo):
                found[r[0]] = r[1:]
            kept.update(found)

    def edges(self, kind: str, by: str, ids) -> dict[int, list[int]]:
        """Events of ``kind`` ('INPUT', 'OUTPUT') by ``by`` ('artifact_id' or 'execution_id'): id -> the other ids."""
        kept = self.kept.edges.setdefault((kind, by), {})
        ids = {int(i) for i in ids}
        todo = self._in_slice(by[:-len("_id")], ids - kept.keys())
        if todo:
            other = "execution_id" if by == "artifact_id" else "artifact_id"
            found: dict[int, list[int]] = {i: [] for i in todo}
            for key, value in self._rows(f"SELECT {by}, {other} FROM events WHERE source_id = $s AND type = '{kind}' "
                                         f"AND {by} IN (SELECT unnest($ids))", todo):
                found[key].append(value)
            kept.update(found)
        mine = self.overlay.edges.get((kind, by), {})
        return {i: list(dict.fromkeys(kept.get(i, []) + mine.get(i, []))) for i in ids}

    def properties(self, entities) -> pa.Table:
        """The property rows of ``entities`` ((entity, id) pairs), the run's for its own nodes."""
        entities = set(entities)
        kept = self.kept.properties
        for entity in ("execution", "artifact"):
            todo = self._in_slice(entity, {i for e, i in entities if e == entity and (e, i) not in kept
                                           and (e, i) not in self.overlay.properties})
            if todo:
                found = {(entity, i): [] for i in todo}
                for r in self._rows(f"SELECT {', '.join(_PROPERTY_COLUMNS)} FROM properties WHERE source_id = $s "
                                    f"AND entity = '{entity}' AND entity_id IN (SELECT unnest($ids))", todo):
                    found[(entity, r[2])].append(r)
                kept.update(found)
        rows = [r for k in sorted(entities)
                for r in self.overlay.properties.get(k, kept.get(k, []) + self.overlay.added.get(k, []))]
        columns = list(zip(*rows)) if rows else [()] * len(_PROPERTY_COLUMNS)
        return pa.table([pa.array(list(c), f.type) for c, f in zip(columns, _PROPERTY_SCHEMA)],
                        schema=_PROPERTY_SCHEMA)


class _Nodes:
    """``Records.executions`` / ``.artifacts``: a node by id, the run's over the slice's (read first
    with ``Records.execution`` / ``.artifact``)."""

    def __init__(self, records: Records, kind: str):
        self.mine, self.kept = records.node_maps(kind)

    def get(self, i, default=None):
        return self.mine[i] if i in self.mine else self.kept.get(i, default)

    def __getitem__(self, i):
        return self.mine[i] if i in self.mine else self.kept[i]


_MILLISECOND = dt.timedelta(milliseconds=1)


def upcoming_start(records: Records, inputs: list[int], newest: dt.datetime | None,
                   at: dt.datetime | None = None) -> dt.datetime | None:
    """When the run starts, as the feature SQL takes it with the run's records loaded: ``at``, by
    default just after the newest record of the source (``newest``: no record of a slice is
    newer) or of the run's executions; then just after its ``inputs`` were written (as
    upcoming.upcoming_extension). None where nothing tells."""
    if at is None:
        times = [t for node in records.overlay.executions.values() for t in (node[1], node[2]) if t is not None]
        times += [newest] if newest is not None else []
        if not times:
            return None
        at = max(times) + _MILLISECOND
    records.artifact(inputs)
    written = [node[1] for a in inputs if (node := records.artifacts.get(int(a))) is not None and node[1] is not None]
    return max(at, max(written) + _MILLISECOND) if written else at


def _in(value, values: list) -> bool | None:
    """SQL's ``value IN (values)``, with its NULLs."""
    if not values:
        return False
    if value is None:
        return None
    if value in values:
        return True
    return None if any(v is None for v in values) else False


def _upstream(state: LaneState, rec: Records, inputs: list[int], at: dt.datetime) -> tuple[list, list[int]]:
    """The upcoming training's upstream rows (``_pf_up``) and trainer inputs (``_pf_insrc``): the
    rules of upcoming._add_rows (explicit inputs) and of the features' upstream and sibling SQL."""
    wrote = rec.edges("OUTPUT", "artifact_id", inputs)
    writers = [x for a in inputs for x in wrote[a]]
    written = {a for xs in rec.edges("OUTPUT", "execution_id", set(writers)).values() for a in xs}
    rec.artifact([*inputs, *state.trainer_inputs, *written, *(i for e, i in state.members if e == "artifact")])
    rec.execution([*writers, *(i for e, i in state.members if e == "execution")])
    # the last training's upstream before it started, but for the types this run brings anew
    a_types = [rec.artifacts[a][0] for a in inputs if rec.artifacts.get(a) is not None]
    x_types = [rec.executions[x][0] for x in writers if rec.executions.get(x) is not None]
    members: set[tuple[str, int]] = set()
    for entity, i in state.members:
        node = {"execution": rec.executions, "artifact": rec.artifacts}.get(entity, {}).get(i)
        created = None if node is None else node[1]
        if created is None or not created < state.s0:
            continue
        if _in(node[0], a_types if entity == "artifact" else x_types) is False:
            members.add((entity, i))
    members |= {("execution", x) for x in writers} | {("artifact", a) for a in written}
    members |= {("artifact", a) for a in inputs}
    # the trainer's inputs: the last trainer's, each replaced by the newest of its type written since
    old = sorted(((rec.artifacts[a][0], rec.artifacts[a][1], a) for a in state.trainer_inputs
                  if rec.artifacts.get(a) is not None),   # by type, then by creation (NULLS LAST) and id
                 key=lambda r: (r[0] is None, r[0] or "", r[1] is None, r[1] or dt.datetime.min, r[2]))
    rank, window = {}, {}
    for type_name, _created, a in old:
        window[type_name] = window.get(type_name, 0) + 1
        rank[a] = window[type_name]
    old_ids = {a for _t, _c, a in old}
    fresh: dict[str, list] = {}
    for a in written | set(inputs):
        node = rec.artifacts.get(a)
        if node is None or node[1] is None or not node[1] <= at or a in old_ids:
            continue
        if node[0] is not None and node[0] in window:
            fresh.setdefault(node[0], []).append((node[1], a))
    trainer_inputs = {a for t, _c, a in old if rank[a] > (len(fresh.get(t, [])) if t is not None else 0)}
    for type_name, items in fresh.items():
        trainer_inputs |= {a for _c, a in sorted(items, reverse=True)[:window[type_name]]}
    members |= {("artifact", a) for a in trainer_inputs}
    if state.config_id is not None:
        members.add(("execution", int(state.config_id)))
    # two hops of siblings: readers of the upstream's artifacts off a model's way, and what they wrote
    for _hop in range(2):
        artifacts = sorted(i for e, i in members if e == "artifact")
        readers = {x for xs in rec.edges("INPUT", "artifact_id", artifacts).values() for x in xs} - state.excluded
        rec.execution(readers)
        siblings = [x for x in readers if (n := rec.executions.get(x)) is not None and n[1] is not None
                    and n[2] is not None and n[1] < at and n[2] <= at]
        outputs = rec.edges("OUTPUT", "execution_id", siblings)
        members |= {("execution", x) for x in siblings} | {("artifact", a) for x in siblings for a in outputs[x]}
    rec.artifact(i for e, i in members if e == "artifact")
    rec.execution(i for e, i in members if e == "execution")
    rows = []
    for entity, i in sorted(members):
        # (SQL's entity = 'execution' AND entity_id = config_id, NULL where there is no configuration)
        trainer = entity == "execution" and (i == state.config_id if state.config_id is not None else None)
        if entity == "execution":
            node = rec.executions.get(i)
            type_name, created, updated, run_state, duration = node if node is not None else (None,) * 5
            if not (trainer or (created is not None and updated is not None and created < at and updated <= at)):
                continue
        elif entity == "artifact":
            node = rec.artifacts.get(i)
            if node is None or node[1] is None or not node[1] < at:
                continue
            (type_name, created), run_state, duration = node, None, None
        else:
            continue
        key = (type_name or "?").rsplit(".", 1)[-1]      # features' regexp_extract(type, '[^.]*$')
        rows.append((entity, i, type_name, key, created, run_state, duration, trainer))
    return rows, sorted(trainer_inputs)


def describe(con, state: LaneState, learned: live.LearnedPolicy, inputs: list[int], at: dt.datetime,
             records: Records | None = None) -> live.Upcoming:
    """The upcoming training of ``state``'s lane from this run's ``inputs``, scored, at ``at`` (not
    before the state's ``at0``). ``con``: the slice (nothing is written to it); ``records``: the
    decision's lookups, the run's records over the slice's (``Lookups.records``; default: the
    slice's alone, none kept)."""
    if at < state.at0:
        raise ValueError(f"the upcoming start {at} is before the one the lane was prepared at ({state.at0})")
    config = dataclasses.replace(learned.feature_config, drop_counters=False)
    next_id = NEXT_PREFIX + state.lane
    records = records or Records(con, state.source_id)
    rows, trainer_inputs = _upstream(state, records, [int(a) for a in inputs], at)
    columns = list(zip(*rows)) if rows else [()] * 8
    up = pa.table([pa.array([next_id] * len(rows), pa.string()), pa.array([state.source_id] * len(rows), pa.string()),
                   *(pa.array(list(c), f.type) for c, f in zip(columns, list(_UP_SCHEMA)[2:]))], schema=_UP_SCHEMA)
    con.register("_ol_up", up)
    con.register("_ol_props", records.properties((r[0], r[1]) for r in rows))
    try:    # the feature SQL's own property aggregation (_pf_p), for this one training
        found = con.execute(props_select("_ol_up", "_ol_props"), {"maxlen": config.max_json_len}).fetchall()
    finally:
        con.unregister("_ol_up")
        con.unregister("_ol_props")
    row = dict(state.row)
    row.update(_structure(rows, state.last_types))
    row.update(_overlap(set(trainer_inputs), state.last_inputs))
    row.update(_properties(next_id, found, state.previous, learned.property_keys, config))
    row["started_at"] = pd.Timestamp(at)
    since = _epoch(at) - _epoch(state.last_push) if state.last_push is not None else None
    row.update(zip(AT_COLUMNS, (
        since / 3600.0 if since is not None else np.nan,
        since / state.median_gap_s if since is not None and state.median_gap_s is not None
        and state.median_gap_s > 0 else np.nan,
        (_epoch(at) - _epoch(state.s0)) / 3600.0)))
    # the levels whose ratio to the lane's recent ones the policy reads (the others are not scored)
    learned_columns = set(learned.columns)
    levels = [c for c in state.levels.columns if c.endswith(".max") and f"{c[:-len('.max')]}.rel" in learned_columns]
    if levels and config.relative_window:
        ratios = relative_to_previous(state.levels[levels].to_numpy(dtype=float, na_value=np.nan),
                                      np.array([row[c] for c in levels], dtype=float), config.relative_window)
        row.update({f"{c[:-len('.max')]}.rel": r for c, r in zip(levels, ratios)})
    frame = pd.DataFrame([row])
    return live.score_upcoming(frame, learned, {state.lane: state.s0}, inputs=inputs)[state.lane]


def _properties(graphlet_id: str, found: list[tuple], previous: dict, keys, config) -> dict[str, float]:
    """The property feature columns of training ``graphlet_id`` from its ``_pf_p`` rows (graphlet_id, fkey, vmin,
    vmax, vdistinct, h_latest, n_num, vlatest) and the last training's (``previous``): the
    feature SQL's change against the previous training (``_PROP_DIFF_SQL``, with its NULLs),
    then its column rule (``features._wide_properties``)."""
    long = []
    for _g, fkey, vmin, vmax, vdistinct, h_latest, _n, vlatest in found:
        p_vmax, p_h = previous.get(fkey, (None, None))
        changed = 1.0 if p_h is None else (None if h_latest is None else float(p_h != h_latest))
        dmax = vmax - p_vmax if vmax is not None and p_vmax is not None else None
        long.append((graphlet_id, fkey, vmin, vmax, vdistinct, vlatest, changed, dmax))
    frame = pd.DataFrame(long, columns=["graphlet_id", "fkey", *_VALUE_COLUMNS])
    wide = _wide_properties(frame, pd.Index([graphlet_id]), [tuple(k) for k in keys], config)
    return {c: v[0] for c, v in wide.items()}


def _round6(x: float) -> float:
    """DuckDB's round(x, 6) of a DOUBLE: std::round (halves away from zero) of x * 1e6, over 1e6."""
    scaled = x * 1e6
    whole = math.floor(abs(scaled))
    return math.copysign(whole + (1.0 if abs(scaled) - whole >= 0.5 else 0.0), scaled) / 1e6


def _structure(rows: list, last_types: frozenset) -> dict[str, float]:
    """``_pf_structf`` of the upcoming training (features._structure_sql), from its upstream rows
    (entity, id, type, key, created, state, duration, trainer) and the last training's types."""
    nan = float("nan")
    executions = [r for r in rows if r[0] == "execution"]
    types = {r[3] for r in executions}
    others = [r for r in executions if r[7] is False]          # (SQL's NOT is_trainer: not where it is NULL)
    durations = [r[6] for r in others if r[6] is not None]
    times = [r[4] for r in rows if r[7] is False and r[4] is not None]
    n_exec = len(others)
    n_cached = sum(1 for r in executions if r[5] == "CACHED")
    added, removed = len(types - last_types), len(last_types - types)
    changes = {"d_types_added": float(added), "d_types_removed": float(removed),
               "d_structure_changed": float(added + removed > 0)}
    if not rows:    # no upstream at all: the summary is not recorded
        return {c: nan for c in ("u_component_types", "u_executions", "u_artifacts", "u_cached", "u_cached_share",
                                 "u_failed", "u_compute_s", "u_span_h")} | changes
    return changes | {
        "u_component_types": float(len(types)), "u_executions": float(n_exec),
        "u_artifacts": float(sum(1 for r in rows if r[0] == "artifact")), "u_cached": float(n_cached),
        "u_cached_share": n_cached / float(n_exec) if n_exec > 0 else nan,
        "u_failed": float(sum(1 for r in others if r[5] == "FAILED")),
        "u_compute_s": _round6(sum(durations)) if durations else nan,
        "u_span_h": (_epoch(max(times)) - _epoch(min(times))) / 3600.0 if times else nan,
    }


def _overlap(inputs: set, last_inputs: frozenset) -> dict[str, float]:
    """``_pf_overf`` of the upcoming training: its trainer's inputs against the last training's."""
    both = len(inputs & last_inputs)
    union = len(inputs) + len(last_inputs) - both
    return {"o_inputs": float(len(inputs)), "o_new_inputs": float(len(inputs) - both),
            "o_input_jaccard": both / float(union) if union > 0 else float("nan")}
