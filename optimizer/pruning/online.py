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

A decision (``describe``) then finds the run's upstream by a few lookups by id on the slice
(with the run's records loaded: the given artifacts, their writers and what those wrote, the
last training's upstream of other types, the trainer's inputs rolled to the newest of their
types, two hops of readers), the rules of ``upcoming._add_rows`` and the features' upstream
and sibling SQL followed in Python, runs the feature SQL's own property and property-change
statements on tables of that one training, and takes its structure, input overlap and level
ratios by the features' formulas (``_structure``, ``_overlap``,
``features.relative_to_previous``). The result equals the
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
from optimizer.pruning.features import _PROP_DIFF_SQL, _PROPS_SQL, _wide_properties, relative_to_previous
from optimizer.pruning.upcoming import NEXT_PREFIX

__all__ = ["LaneState", "Lookups", "prepare_lanes", "describe", "AT_COLUMNS"]

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


def _epoch(t: dt.datetime) -> float:
    """DuckDB's epoch() of a TIMESTAMP: microseconds over 1e6, as a double."""
    return (t - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1) / 1e6


def prepare_lanes(con, learned: live.LearnedPolicy, *, pipeline: str, source_id: str) -> dict[str, LaneState]:
    """The state of every lane of ``pipeline`` on a prepared slice ``con`` (features.prepare_features),
    built with the feature SQL in a transaction that is rolled back. The last trainings' property
    aggregates stay in ``con`` as the table ``_ol_prev_p``."""
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
        properties = con.sql("SELECT * FROM _pf_p WHERE list_contains($ids, graphlet_id)",
                             params={"ids": last_ids}).to_arrow_table()
    finally:
        con.execute("ROLLBACK")
    con.register("_ol_rows", properties)    # outside the transaction: it stays
    con.execute("CREATE OR REPLACE TEMP TABLE _ol_prev_p AS SELECT * FROM _ol_rows")
    con.unregister("_ol_rows")
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
            last_inputs=frozenset(a for g, a in last_in if g == gid))
    return out


class Lookups:
    """What a slice answers by id (executions, artifacts, events), kept across decisions: the
    answers about records a run's batch does not mention are the slice's own, the same at every
    decision until the slice is cut again. ``records(con, batch)`` gives one decision's view."""

    def __init__(self):
        self.executions: dict[int, tuple | None] = {}
        self.artifacts: dict[int, tuple | None] = {}
        self.edges: dict[tuple, dict[int, list[int]]] = {}

    def records(self, con, source_id: str, batch) -> "_Records":
        def ids(table: str, column: str) -> set[int]:
            return {int(i) for i in batch.table(table).column(column).to_pylist() if i is not None}
        touched = {"execution": ids("executions", "execution_id") | ids("events", "execution_id"),
                   "artifact": ids("artifacts", "artifact_id") | ids("events", "artifact_id")}
        return _Records(con, source_id, self, touched)


class _Records:
    """One decision's lookups by id on the slice (the run's records loaded): the slice's answers
    kept in ``Lookups`` where the batch does not touch them, each id read once here."""

    def __init__(self, con, source_id: str, kept: Lookups | None = None, touched: dict | None = None):
        self.con, self.source_id = con, source_id
        self.kept = kept or Lookups()
        self.touched = touched or {"execution": set(), "artifact": set()}
        self.executions = {i: v for i, v in self.kept.executions.items() if i not in self.touched["execution"]}
        self.artifacts = {i: v for i, v in self.kept.artifacts.items() if i not in self.touched["artifact"]}
        self._edges: dict[tuple, dict[int, list[int]]] = {}

    def _rows(self, sql: str, ids) -> list[tuple]:
        return self.con.execute(sql, {"s": self.source_id, "ids": [int(i) for i in ids]}).fetchall()

    def _keep(self, kind: str, found: dict, into: dict) -> None:
        into.update({i: v for i, v in found.items() if i not in self.touched[kind]})

    # what a lookup reads of a node: (table, key column, columns)
    _NODES = {"execution": ("executions", "execution_id", "type_name, create_time, update_time, state, duration_s"),
              "artifact": ("artifacts", "artifact_id", "type_name, create_time")}

    def execution(self, ids) -> None:
        self._nodes("execution", self.executions, self.kept.executions, ids)

    def artifact(self, ids) -> None:
        self._nodes("artifact", self.artifacts, self.kept.artifacts, ids)

    def _nodes(self, kind: str, known: dict, kept: dict, ids) -> None:
        """Read the nodes of ``ids`` not known yet into ``known`` (None: not in the slice)."""
        todo = {int(i) for i in ids} - known.keys()
        if todo:
            table, key, columns = self._NODES[kind]
            found = dict.fromkeys(todo)
            for r in self._rows(f"SELECT {key}, {columns} FROM {table} "
                                f"WHERE source_id = $s AND {key} IN (SELECT unnest($ids))", todo):
                found[r[0]] = r[1:]
            known.update(found)
            self._keep(kind, found, kept)

    def edges(self, kind: str, by: str, ids) -> dict[int, list[int]]:
        """Events of ``kind`` ('INPUT', 'OUTPUT') by ``by`` ('artifact_id' or 'execution_id'): id -> the other ids."""
        entity = by[:-len("_id")]
        known = self._edges.setdefault((kind, by), {})
        kept = self.kept.edges.setdefault((kind, by), {})
        for i in {int(i) for i in ids} - known.keys():
            if i in kept and i not in self.touched[entity]:
                known[i] = kept[i]
        todo = {int(i) for i in ids} - known.keys()
        if todo:
            other = "execution_id" if by == "artifact_id" else "artifact_id"
            found: dict[int, list[int]] = {i: [] for i in todo}
            for key, value in self._rows(f"SELECT {by}, {other} FROM events WHERE source_id = $s AND type = '{kind}' "
                                         f"AND {by} IN (SELECT unnest($ids))", todo):
                found[key].append(value)
            known.update(found)
            self._keep(entity, found, kept)
        return {int(i): known[int(i)] for i in ids}


def _in(value, values: list) -> bool | None:
    """SQL's ``value IN (values)``, with its NULLs."""
    if not values:
        return False
    if value is None:
        return None
    if value in values:
        return True
    return None if any(v is None for v in values) else False


def _upstream(state: LaneState, rec: _Records, inputs: list[int], at: dt.datetime) -> tuple[list, list[int]]:
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
             records: _Records | None = None) -> live.Upcoming:
    """The upcoming training of ``state``'s lane from this run's ``inputs``, scored, at ``at`` (not
    before the state's ``at0``). ``con``: the slice, the run's records loaded (in a transaction
    the caller rolls back) and the ``_ol_prev_p`` table of ``prepare_lanes`` in it; ``records``:
    the decision's lookups (``Lookups.records``; default: none kept)."""
    if at < state.at0:
        raise ValueError(f"the upcoming start {at} is before the one the lane was prepared at ({state.at0})")
    config = dataclasses.replace(learned.feature_config, drop_counters=False)
    next_id = NEXT_PREFIX + state.lane
    records = records or _Records(con, state.source_id)
    rows, trainer_inputs = _upstream(state, records, [int(a) for a in inputs], at)
    columns = list(zip(*rows)) if rows else [()] * 8
    up = pa.table([pa.array([next_id] * len(rows), pa.string()), pa.array([state.source_id] * len(rows), pa.string()),
                   *(pa.array(list(c), f.type) for c, f in zip(columns, list(_UP_SCHEMA)[2:]))], schema=_UP_SCHEMA)
    con.register("_ol_up", up)
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _pf_up AS SELECT * FROM _ol_up")
        con.execute(_PROPS_SQL, {"maxlen": config.max_json_len})
        con.execute("INSERT INTO _pf_p SELECT * FROM _ol_prev_p WHERE graphlet_id = $p", {"p": state.last})
        con.execute("CREATE OR REPLACE TEMP TABLE _pf_order AS SELECT $g AS graphlet_id, $p AS prev_id",
                    {"g": next_id, "p": state.last})
        con.execute(_PROP_DIFF_SQL)
        keys = [tuple(k) for k in learned.property_keys]
        long = con.execute("SELECT graphlet_id, fkey, vmin, vmax, vdistinct, vlatest, changed, dmax FROM _pf_pd "
                           "WHERE list_contains($keys, fkey)", {"keys": [k[0] for k in keys]}).df()
    finally:
        con.unregister("_ol_up")
    row = dict(state.row)
    row.update(_structure(rows, state.last_types))
    row.update(_overlap(set(trainer_inputs), state.last_inputs))
    row.update({c: v[0] for c, v in _wide_properties(long, pd.Index([next_id]), keys, config).items()})
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
