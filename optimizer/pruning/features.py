"""Features of a model training known before its trainer starts, derived from any store.

One row per graphlet (a trainer execution that did work). Every value comes from records
that existed when the trainer started (time ``s`` = the trainer's ``create_time``):

- *upstream*: graphlet members created before ``s`` (executions that also finished before
  ``s``) plus the trainer's own input artifacts; the trainer's own execution properties.
- *properties*: every property of those entities, whatever its name. Numbers (and short JSON
  structs such as a per-split ``blessed``, reduced to their smallest number) give min, max,
  distinct count, gaps (for spans) and the change of the max against the previous graphlet;
  other values give a "changed against the previous graphlet" flag.
- *structure*: the set of upstream component types and its change; overlap of the trainer's
  inputs with the previous graphlet's; upstream states (cached, failed) and compute.
- *history* of the lane (pipeline and trainer node): trainings so far, pushes known before
  ``s`` (a push is known once its graphlet ended), recent push rate, trainings and time since
  the last known push, typical interval between pushes, whether the previous training was
  known to push or fail.

Names come only from the store's own type and property names, so stores never seen before
get features too. All work is set-based SQL in DuckDB; nothing loops over graphlets in Python.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from optimizer.errors import OptimizerError

__all__ = [
    "PATH_ROLES", "prepare_features", "FeatureConfig", "FeatureSet", "build_features", "graphlet_outcomes", "REQUIRED_TABLES", "hours_since_epoch"]

log = logging.getLogger(__name__)

REQUIRED_TABLES = ("executions", "artifacts", "events", "properties", "associations", "contexts",
                   "graphlets", "graphlet_members")

KEY_COLUMNS = ("graphlet_id", "source_id", "pipeline", "lane", "trainer_execution_id", "started_at")


@dataclass(frozen=True)
class FeatureConfig:
    """Knobs of feature extraction.

    recent: window (trainings) of the recent push rate; max_json_len: longest JSON value
    whose numbers are read as a numeric property; min_coverage: a property feature is kept
    when present in at least this share of graphlets; max_property_features: cap on them;
    relative_window: each numeric property's latest value is also given as a ratio to the
    median of the lane's previous ``relative_window`` values (0: off); cost_window: trainings
    whose median skippable seconds give ``h_skippable_s_median``; drop_counters: leave
    out of the model columns those that only count time within a lane (``monotone_counters``),
    judged on at least ``min_counter_pairs`` consecutive pairs. latest: where a training
    reads several values of a numeric property, also give the newest one (``.latest``, by
    creation time: the newest span's ExampleAnomalies ``blessed`` of a trainer that reads a
    window of spans); False builds the feature set before the fifth round.
    """

    recent: tuple[int, ...] = (5, 20)
    max_json_len: int = 256
    min_coverage: float = 0.01
    max_property_features: int = 300
    relative_window: int = 5
    cost_window: int = 5
    drop_counters: bool = True
    min_counter_pairs: int = 20
    latest: bool = True


@dataclass(frozen=True)
class FeatureSet:
    """Feature matrix: ``frame`` holds KEY_COLUMNS then one float column per name in ``columns``."""

    frame: pd.DataFrame
    columns: tuple[str, ...]

    def matrix(self) -> np.ndarray:
        """The features as a float64 array (NaN = not recorded), rows as in ``frame``."""
        return self.frame[list(self.columns)].to_numpy(dtype=np.float64, na_value=np.nan)


def _tables(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def _columns(con, table: str) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = $t", {"t": table}).fetchall()}


def _check_tables(con) -> None:
    have = _tables(con)
    missing = [t for t in REQUIRED_TABLES if t not in have]
    if missing:
        raise OptimizerError(
            f"the warehouse lacks {', '.join(missing)}; ingest stores with `frugal ingest` and "
            "build graphlets with `frugal analyze` first")


def _source_sql(pipeline: str | None, has_component: bool, sources: bool = False) -> str:
    """Graphlets, their members and trainer inputs as the feature SQL reads them.

    ``config_id`` is the execution whose properties describe the trainer: the trainer itself,
    or for an upcoming training (see optimizer.pruning.hook) the previous one.
    """
    where = " AND ".join(c for c in ("g.pipeline = $pipeline" if pipeline is not None else "",
                                        "list_contains($sources, g.source_id)" if sources else "") if c)
    where = f"WHERE {where}" if where else ""
    component = "g.trainer_component" if has_component else "NULL"
    return f"""
        CREATE OR REPLACE TEMP TABLE _pf_src AS
        SELECT g.graphlet_id, g.source_id, g.pipeline, g.trainer_execution_id,
               g.trainer_execution_id AS config_id, g.started_at, g.ended_at, g.pushed,
               CAST(g.run_context AS VARCHAR) AS run_context, CAST({component} AS VARCHAR) AS component,
               g.blessed
        FROM graphlets g {where};

        CREATE OR REPLACE TEMP TABLE _pf_msrc AS
        SELECT m.graphlet_id, m.entity, m.entity_id FROM graphlet_members m
        WHERE m.graphlet_id IN (SELECT graphlet_id FROM _pf_src);

        CREATE OR REPLACE TEMP TABLE _pf_insrc AS
        SELECT DISTINCT g.graphlet_id, ev.artifact_id
        FROM _pf_src g JOIN events ev ON ev.source_id = g.source_id AND ev.execution_id = g.trainer_execution_id
        WHERE ev.type = 'INPUT';
    """


_G_SELECT = """
    SELECT g.graphlet_id, g.source_id, g.pipeline, g.trainer_execution_id, g.config_id,
           CASE WHEN g.trainer_execution_id IS NULL THEN g.started_at
                ELSE coalesce(e.create_time, g.started_at) END AS s,
           e.type_name AS trainer_type, g.run_context, g.component
    FROM _pf_src g
    LEFT JOIN executions e ON e.source_id = g.source_id AND e.execution_id = g.config_id
"""
_GRAPHLET_SQL = f"CREATE OR REPLACE TEMP TABLE _pf_g AS {_G_SELECT};"


# Lane: the pipeline plus the trainer's node. The node context type is found per source as the
# context type that partitions trainers most finely while holding >= 2 trainings per context,
# exactly one context per trainer, and is not the type of run contexts.
_TC_SELECT = """
    SELECT g.graphlet_id, g.source_id, c.context_id, c.type_name AS ctype, c.name AS cname
    FROM _pf_g g
    JOIN associations a ON a.source_id = g.source_id AND a.execution_id = g.config_id
    JOIN contexts c ON c.source_id = a.source_id AND c.context_id = a.context_id
"""
_GL_SELECT = """
    SELECT g.*, g.source_id || '/' || coalesce(g.pipeline, '') || '/' ||
                coalesce(g.component, tc.cname, g.trainer_type, '') AS lane
    FROM _pf_g g
    LEFT JOIN _pf_lanetype lt ON lt.source_id = g.source_id
    LEFT JOIN _pf_tc tc ON tc.graphlet_id = g.graphlet_id AND tc.ctype = lt.ctype
"""
_ORDER_SQL = """
    CREATE OR REPLACE TEMP TABLE _pf_order AS
    SELECT graphlet_id, lane, s,
           row_number() OVER w - 1 AS n_prior,
           lag(graphlet_id) OVER w AS prev_id,
           lag(s) OVER w AS prev_s
    FROM _pf_gl
    WINDOW w AS (PARTITION BY lane ORDER BY s, graphlet_id);
"""
_LANE_SQL = f"""
    CREATE OR REPLACE TEMP TABLE _pf_tc AS {_TC_SELECT};

    CREATE OR REPLACE TEMP TABLE _pf_lanetype AS
    WITH run_types AS (
        SELECT DISTINCT g.source_id, c.type_name AS ctype
        FROM graphlets g JOIN contexts c
          ON c.source_id = g.source_id AND c.context_id = TRY_CAST(g.run_context AS BIGINT)
        UNION
        SELECT DISTINCT g.source_id, c.type_name AS ctype
        FROM graphlets g JOIN contexts c
          ON c.source_id = g.source_id AND c.name = CAST(g.run_context AS VARCHAR)
    ), totals AS (SELECT source_id, count(*) AS n FROM _pf_g GROUP BY 1),
    stats AS (
        SELECT source_id, ctype, count(DISTINCT graphlet_id) AS n_g, count(DISTINCT context_id) AS n_c,
               count(*) AS n_assoc
        FROM _pf_tc GROUP BY 1, 2)
    SELECT s.source_id, arg_max(s.ctype, s.n_c * 1e6 - hash(s.ctype) % 1000000) AS ctype
    FROM stats s JOIN totals t USING (source_id)
    WHERE s.n_g >= 0.9 * t.n AND s.n_assoc = s.n_g AND s.n_g >= 2 * s.n_c
      AND (s.source_id, s.ctype) NOT IN (SELECT (source_id, ctype) FROM run_types)
    GROUP BY 1;

    CREATE OR REPLACE TEMP TABLE _pf_gl AS {_GL_SELECT};
    {_ORDER_SQL}
"""

# A prepared build (``prepare_features``): the graphlets an ``extend`` added to ``_pf_src`` join
# the prepared lanes; the lane types stay as prepared.
_ADDED_LANES_SQL = f"""
    CREATE OR REPLACE TEMP TABLE _pf_added AS
    SELECT graphlet_id FROM _pf_src EXCEPT SELECT graphlet_id FROM _pf_g;
    INSERT INTO _pf_g {_G_SELECT} WHERE g.graphlet_id IN (SELECT graphlet_id FROM _pf_added);
    INSERT INTO _pf_tc {_TC_SELECT} WHERE g.graphlet_id IN (SELECT graphlet_id FROM _pf_added);
    INSERT INTO _pf_gl {_GL_SELECT} WHERE g.graphlet_id IN (SELECT graphlet_id FROM _pf_added);
    {_ORDER_SQL}
"""

# Upstream: members known before the trainer started, plus its inputs, plus the trainer itself.
def _upstream_sql(scope: str | None) -> str:
    """``_pf_m``: every graphlet's, or only those of the table ``scope``."""
    where = f"WHERE graphlet_id IN (SELECT graphlet_id FROM {scope})" if scope else ""
    return f"""
    CREATE OR REPLACE TEMP TABLE _pf_m AS
    SELECT * FROM (
        SELECT graphlet_id, entity, entity_id FROM _pf_msrc
        UNION
        SELECT graphlet_id, 'artifact', artifact_id FROM _pf_insrc
        UNION
        SELECT graphlet_id, 'execution', config_id FROM _pf_g WHERE config_id IS NOT NULL
    ) {where};
    """

# Siblings, two hops out (statistics -> validator): run _SIBLING_SQL twice.
_SIBLING_SQL = """
    -- siblings: executions that read the graphlet's upstream artifacts without being on a model's
    -- way to deployment (validators, statistics), and what they wrote: validation outcomes
    -- such as ExampleAnomalies live there, not on the trainer's lineage.
    CREATE OR REPLACE TEMP TABLE _pf_sib AS
    WITH pairs AS MATERIALIZED (
        SELECT DISTINCT m.graphlet_id, ev.source_id, ev.execution_id
        FROM _pf_m m JOIN _pf_g g USING (graphlet_id)
        JOIN events ev ON ev.source_id = g.source_id AND ev.artifact_id = m.entity_id
        WHERE m.entity = 'artifact' AND ev.type = 'INPUT'
    ), kept AS MATERIALIZED (
        SELECT p.* FROM pairs p
        LEFT JOIN _pf_excl z ON z.source_id = p.source_id AND z.execution_id = p.execution_id
        WHERE z.execution_id IS NULL
    )
    SELECT k.graphlet_id, k.execution_id
    FROM kept k JOIN _pf_g g USING (graphlet_id)
    JOIN executions x ON x.source_id = k.source_id AND x.execution_id = k.execution_id
    WHERE x.create_time < g.s AND x.update_time <= g.s;

    INSERT INTO _pf_m
    (SELECT graphlet_id, 'execution', execution_id FROM _pf_sib
     UNION
     SELECT s.graphlet_id, 'artifact', ev.artifact_id
     FROM _pf_sib s JOIN _pf_g g USING (graphlet_id)
     JOIN events ev ON ev.source_id = g.source_id AND ev.execution_id = s.execution_id AND ev.type = 'OUTPUT')
    EXCEPT SELECT graphlet_id, entity, entity_id FROM _pf_m;

"""

# A ``keep``'s scope: the kept trainings and each one's previous training in its lane.
_SCOPE_SQL = """
    CREATE OR REPLACE TEMP TABLE _pf_scope AS
    SELECT graphlet_id FROM _pf_keep
    UNION
    SELECT o.prev_id FROM _pf_order o JOIN _pf_keep k USING (graphlet_id) WHERE o.prev_id IS NOT NULL;
"""

_UPSTREAM_FINAL_SQL = """
    CREATE OR REPLACE TEMP TABLE _pf_up AS
    SELECT DISTINCT m.graphlet_id, g.source_id, m.entity, m.entity_id,
           coalesce(e.type_name, a.type_name) AS type_name,
           regexp_extract(coalesce(e.type_name, a.type_name, '?'), '[^.]*$') AS key,
           coalesce(e.create_time, a.create_time) AS t,
           e.state, e.duration_s,
           (m.entity = 'execution' AND m.entity_id = g.config_id) AS is_trainer
    FROM _pf_m m JOIN _pf_g g USING (graphlet_id)
    LEFT JOIN executions e ON m.entity = 'execution' AND e.source_id = g.source_id AND e.execution_id = m.entity_id
    LEFT JOIN artifacts a ON m.entity = 'artifact' AND a.source_id = g.source_id AND a.artifact_id = m.entity_id
    WHERE (m.entity = 'execution' AND m.entity_id = g.config_id)
       OR (m.entity = 'execution' AND e.create_time < g.s AND e.update_time <= g.s)
       OR (m.entity = 'artifact' AND a.create_time < g.s);
"""

# Executions on a model's way to deployment (never siblings): by role where the analysis
# recorded roles, else every graphlet's trainer and downstream members.
PATH_ROLES = ("trainer", "evaluator", "infra-validator", "pusher", "inference")
_EXCL_ROLES_SQL = f"""
    CREATE OR REPLACE TEMP TABLE _pf_excl AS
    SELECT source_id, execution_id FROM analysis_executions
    WHERE role IN ({", ".join(f"'{r}'" for r in PATH_ROLES)})
"""
_EXCL_MEMBERS_SQL = """
    CREATE OR REPLACE TEMP TABLE _pf_excl AS
    SELECT g.source_id, g.trainer_execution_id AS execution_id FROM graphlets g
    UNION
    SELECT g.source_id, m.entity_id FROM graphlet_members m JOIN graphlets g USING (graphlet_id)
    JOIN executions e ON e.source_id = g.source_id AND e.execution_id = m.entity_id
    JOIN executions t ON t.source_id = g.source_id AND t.execution_id = g.trainer_execution_id
    WHERE m.entity = 'execution' AND e.create_time >= t.create_time
"""

_PROPS_SELECT = """
    WITH raw AS (
        SELECT u.graphlet_id, u.entity, u.entity_id, u.key, p.name, u.t, u.is_trainer,
               CASE
                 WHEN p.int_value IS NOT NULL THEN p.int_value::DOUBLE
                 WHEN p.double_value IS NOT NULL THEN p.double_value
                 WHEN p.bool_value IS NOT NULL THEN p.bool_value::INTEGER::DOUBLE
                 WHEN p.string_value IS NOT NULL AND length(p.string_value) <= $maxlen
                      AND regexp_matches(p.string_value, '^\\s*-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?\\s*$')
                   THEN TRY_CAST(trim(p.string_value) AS DOUBLE)
                 WHEN p.string_value IS NOT NULL AND length(p.string_value) <= $maxlen
                      AND regexp_matches(p.string_value, '^\\s*[\\[{]')
                   THEN list_min(list_transform(
                          regexp_extract_all(p.string_value, ':\\s*(-?[0-9]+(?:\\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)', 1),
                          lambda x: TRY_CAST(x AS DOUBLE)))
               END AS num,
               hash(coalesce(p.string_value, CAST(p.int_value AS VARCHAR), CAST(p.double_value AS VARCHAR),
                             CAST(p.bool_value AS VARCHAR), '')) AS h
        FROM {up} u
        JOIN {properties} p ON p.source_id = u.source_id AND p.entity = u.entity AND p.entity_id = u.entity_id
        -- the trainer's own record: its configuration only, not what the orchestrator writes
        -- when it finishes: names with a leading "__" (TFX's __execution_result__) and the
        -- pre-2020 `state` property (new -> complete/failed), which is the trainer's outcome
        WHERE NOT (u.is_trainer AND (starts_with(p.name, '__') OR lower(p.name) = 'state'))
        UNION ALL
        -- structured strings "key:value,key:value" (TFX's input_fingerprint
        -- "split:...,num_files:N,total_bytes:B,xor_checksum:..."): each numeric part is a property
        SELECT graphlet_id, entity, entity_id, key, name || '.' || part_key, t, is_trainer,
               part_num, hash(part_num)
        FROM (
            SELECT u.graphlet_id, u.entity, u.entity_id, u.key, p.name, u.t, u.is_trainer,
                   trim(split_part(part, ':', 1)) AS part_key,
                   TRY_CAST(trim(split_part(part, ':', 2)) AS DOUBLE) AS part_num
            FROM {up} u
            JOIN {properties} p ON p.source_id = u.source_id AND p.entity = u.entity AND p.entity_id = u.entity_id,
                 unnest(string_split(p.string_value, ',')) AS parts(part)
            WHERE p.string_value IS NOT NULL AND length(p.string_value) <= $maxlen
              AND regexp_matches(p.string_value, '^\s*[A-Za-z_][A-Za-z0-9_]*\s*:[^,]*(,\s*[A-Za-z_][A-Za-z0-9_]*\s*:[^,]*)+$')
              AND NOT (u.is_trainer AND (starts_with(p.name, '__') OR lower(p.name) = 'state'))
        ) WHERE part_num IS NOT NULL
    )
    SELECT graphlet_id,
           (CASE WHEN entity = 'execution' THEN 'x.' ELSE 'a.' END) || key || '.' || name AS fkey,
           min(num) AS vmin, max(num) AS vmax, count(DISTINCT num) AS vdistinct,
           arg_max(h, struct_pack(t := t, id := entity_id)) AS h_latest, count(num) AS n_num,
           arg_max(num, struct_pack(t := t, id := entity_id)) FILTER (WHERE num IS NOT NULL) AS vlatest
    FROM raw GROUP BY 1, 2
"""


def props_select(up: str = "_pf_up", properties: str = "properties") -> str:
    """Each graphlet's property aggregates (``_pf_p``'s rows) from the upstream rows ``up`` and the
    property rows ``properties`` (tables or registered relations): one statement for the feature
    SQL and for a decision's one training (optimizer.pruning.online)."""
    return _PROPS_SELECT.replace("{up}", up).replace("{properties}", properties)


_PROPS_SQL = "CREATE OR REPLACE TEMP TABLE _pf_p AS " + props_select() + ";"


def _long_features_sql(recent: tuple[int, ...], cost_window: int, kept: bool = False) -> str:
    """The history, previous-training, cost, structure and input-overlap features; ``kept``: the
    last three only for the graphlets of ``_pf_keep`` (the history reads every training)."""
    cost_window_1 = max(cost_window, 1) - 1
    only = "WHERE o.graphlet_id IN (SELECT graphlet_id FROM _pf_keep)" if kept else ""
    skippable = skippable_sql("g.trainer_execution_id", "g.s")
    recent_cols = ",\n".join(
        f"(t.pushes_before - coalesce(lag(t.pushes_before, {k}) OVER w, 0)) / "
        f"least(t.n_prior, {k})::DOUBLE AS h_push_rate_last{k},\n"
        f"(t.blessed_before - coalesce(lag(t.blessed_before, {k}) OVER w, 0)) / "
        f"nullif(t.ended_before - coalesce(lag(t.ended_before, {k}) OVER w, 0), 0)::DOUBLE AS h_bless_rate_last{k}"
        for k in recent)
    return f"""
    -- history: one timeline per lane of training starts and known pushes
    CREATE OR REPLACE TEMP TABLE _pf_hist AS
    WITH ev AS (
        SELECT g.lane, o.s AS t, 0 AS kind, g.graphlet_id, NULL::DOUBLE AS gap
        FROM _pf_gl g JOIN _pf_order o USING (graphlet_id)
        UNION ALL
        SELECT g.lane, gr.ended_at AS t, 1 AS kind, NULL, NULL
        FROM _pf_gl g JOIN _pf_src gr USING (graphlet_id)
        WHERE gr.pushed AND gr.ended_at IS NOT NULL
        UNION ALL
        -- outcomes (blessed or not, failed or not) are known when the graphlet ended
        SELECT g.lane, gr.ended_at AS t, 2 AS kind, NULL, coalesce(gr.blessed, false)::INTEGER::DOUBLE
        FROM _pf_gl g JOIN _pf_src gr USING (graphlet_id)
        WHERE gr.ended_at IS NOT NULL
    ), cum AS (
        SELECT *,
               sum((kind = 1)::INTEGER) OVER w AS pushes_le,
               sum((kind = 0)::INTEGER) OVER w AS trains_le,
               sum((kind = 2)::INTEGER) OVER w AS ended_le,
               sum(CASE WHEN kind = 2 THEN gap ELSE 0 END) OVER w AS blessed_le,
               max(CASE WHEN kind = 1 THEN t END) OVER w AS last_push,
               min(CASE WHEN kind = 1 THEN t END) OVER w AS first_push
        FROM ev
        WINDOW w AS (PARTITION BY lane ORDER BY t, kind ROWS UNBOUNDED PRECEDING)
    ), pushes AS (
        SELECT lane, t, trains_le,
               epoch(t) - epoch(lag(t) OVER (PARTITION BY lane ORDER BY t)) AS gap
        FROM cum WHERE kind = 1
    ), pushes_med AS (
        SELECT lane, t, trains_le,
               median(gap) OVER (PARTITION BY lane ORDER BY t ROWS UNBOUNDED PRECEDING) AS med_gap,
               max(gap) OVER (PARTITION BY lane ORDER BY t ROWS UNBOUNDED PRECEDING) AS max_gap
        FROM pushes
    )
    SELECT c.graphlet_id, c.lane, c.t AS s, c.pushes_le AS pushes_before, c.trains_le - 1 AS n_prior,
           c.last_push, c.first_push, c.ended_le AS ended_before, c.blessed_le AS blessed_before,
           pm.trains_le AS trains_at_last_push, pm.med_gap, pm.max_gap
    FROM cum c
    ASOF LEFT JOIN pushes_med pm ON pm.lane = c.lane AND c.t > pm.t
    WHERE c.kind = 0;

    CREATE OR REPLACE TEMP TABLE _pf_histf AS
    SELECT t.graphlet_id,
           t.n_prior::DOUBLE AS h_trainings_before,
           t.pushes_before::DOUBLE AS h_pushes_before,
           CASE WHEN t.n_prior > 0 THEN t.pushes_before / t.n_prior::DOUBLE END AS h_push_rate,
           CASE WHEN t.ended_before > 0 THEN t.pushes_before / t.ended_before::DOUBLE END AS h_push_rate_ended,
           CASE WHEN t.ended_before > 0 THEN t.blessed_before / t.ended_before::DOUBLE END AS h_bless_rate,
           -- the same rates shrunk toward 1/2 (one pseudo-outcome each way): a lane with two
           -- known outcomes is not yet a lane that always pushes
           (t.pushes_before + 1) / (t.ended_before + 2)::DOUBLE AS h_push_rate_shrunk,
           (t.blessed_before + 1) / (t.ended_before + 2)::DOUBLE AS h_bless_rate_shrunk,
           (t.n_prior - t.ended_before)::DOUBLE AS h_trainings_running,
           {recent_cols},
           CASE WHEN t.last_push IS NOT NULL THEN (t.n_prior - (t.trains_at_last_push - 0))::DOUBLE END
               AS h_trainings_since_push,
           CASE WHEN t.last_push IS NULL THEN t.n_prior::DOUBLE END AS h_trainings_without_push,
           (epoch(t.s) - epoch(t.last_push)) / 3600.0 AS h_hours_since_push,
           CASE WHEN t.pushes_before >= 2 THEN
                (epoch(t.last_push) - epoch(t.first_push)) / (t.pushes_before - 1) / 3600.0 END
               AS h_mean_push_interval_h,
           t.med_gap / 3600.0 AS h_median_push_interval_h,
           t.max_gap / 3600.0 AS h_longest_push_interval_h,
           CASE WHEN t.med_gap > 0 THEN (epoch(t.s) - epoch(t.last_push)) / t.med_gap END
               AS h_push_age_ratio
    FROM _pf_hist t
    WINDOW w AS (PARTITION BY t.lane ORDER BY t.s, t.graphlet_id);

    -- previous training of the lane: what was known about it at s
    CREATE OR REPLACE TEMP TABLE _pf_prevf AS
    SELECT o.graphlet_id,
           (epoch(o.s) - epoch(o.prev_s)) / 3600.0 AS p_hours_since_prev_training,
           CASE WHEN pg.ended_at < o.s THEN pg.pushed::INTEGER::DOUBLE END AS p_prev_pushed_known,
           CASE WHEN pe.update_time <= o.s THEN (pe.state = 'FAILED')::INTEGER::DOUBLE END AS p_prev_failed,
           CASE WHEN pe.update_time <= o.s THEN pe.duration_s END AS p_prev_trainer_s
    FROM _pf_order o
    LEFT JOIN _pf_src pg ON pg.graphlet_id = o.prev_id
    LEFT JOIN executions pe ON pe.source_id = pg.source_id AND pe.execution_id = pg.trainer_execution_id
    {only};

    -- what a training of the lane costs from its trainer on (what pruning saves): the median
    -- over the lane's last cost_window trainings that ended before s, robust to one that failed early
    CREATE OR REPLACE TEMP TABLE _pf_costf AS
    WITH skip AS (
        -- (rounded as graphlet_outcomes' skippable_s: a float sum's last digit follows the join's order)
        SELECT g.graphlet_id, g.lane, gr.ended_at AS t, round(sum(coalesce(e.duration_s, 0)), 6) AS skippable_s
        FROM _pf_gl g
        JOIN _pf_src gr USING (graphlet_id)
        JOIN _pf_msrc m ON m.graphlet_id = g.graphlet_id AND m.entity = 'execution'
        JOIN executions e ON e.source_id = g.source_id AND e.execution_id = m.entity_id
        WHERE gr.ended_at IS NOT NULL AND e.update_time <= gr.ended_at
          AND {skippable}
        GROUP BY 1, 2, 3
    ), med AS (
        SELECT lane, t, median(skippable_s) OVER (PARTITION BY lane ORDER BY t, graphlet_id
                                                  ROWS BETWEEN {cost_window_1} PRECEDING AND CURRENT ROW) AS med
        FROM skip
    )
    SELECT o.graphlet_id, m.med AS h_skippable_s_median
    FROM _pf_order o
    ASOF LEFT JOIN med m ON m.lane = o.lane AND o.s > m.t;

    {_KEYS_SQL}
    {_structure_sql(kept)}
    """


_KEYS_SQL = """
    CREATE OR REPLACE TEMP TABLE _pf_keys AS
    SELECT DISTINCT graphlet_id, key FROM _pf_up WHERE entity = 'execution';
"""


def _structure_sql(kept: bool = False) -> str:
    """The upstream's summary and structure (``_pf_structf``) and the trainer inputs' overlap
    (``_pf_overf``) of each training of ``_pf_order`` against its previous one (``kept``: of the
    graphlets of ``_pf_keep``), from ``_pf_up``, ``_pf_keys`` and ``_pf_insrc``."""
    only = "WHERE o.graphlet_id IN (SELECT graphlet_id FROM _pf_keep)" if kept else ""
    only_and = only.replace("WHERE", "AND")
    return f"""
    -- upstream summary and structure (the component types of each upstream: _pf_keys)
    CREATE OR REPLACE TEMP TABLE _pf_structf AS
    WITH cur AS (
        SELECT o.graphlet_id, o.prev_id FROM _pf_order o {only}
    ), added AS (
        SELECT c.graphlet_id, count(*) AS n FROM cur c JOIN _pf_keys k ON k.graphlet_id = c.graphlet_id
        WHERE c.prev_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM _pf_keys k2 WHERE k2.graphlet_id = c.prev_id AND k2.key = k.key)
        GROUP BY 1
    ), removed AS (
        SELECT c.graphlet_id, count(*) AS n FROM cur c JOIN _pf_keys k ON k.graphlet_id = c.prev_id
        WHERE NOT EXISTS (SELECT 1 FROM _pf_keys k2 WHERE k2.graphlet_id = c.graphlet_id AND k2.key = k.key)
        GROUP BY 1
    ), up AS (
        SELECT graphlet_id,
               count(DISTINCT key) FILTER (WHERE entity = 'execution') AS n_types,
               count(*) FILTER (WHERE entity = 'execution' AND NOT is_trainer) AS n_exec,
               count(*) FILTER (WHERE entity = 'artifact') AS n_art,
               count(*) FILTER (WHERE entity = 'execution' AND state = 'CACHED') AS n_cached,
               count(*) FILTER (WHERE entity = 'execution' AND state = 'FAILED' AND NOT is_trainer) AS n_failed,
               round(sum(duration_s) FILTER (WHERE entity = 'execution' AND NOT is_trainer), 6) AS up_s,
               (epoch(max(t) FILTER (WHERE NOT is_trainer)) - epoch(min(t) FILTER (WHERE NOT is_trainer))) / 3600.0
                   AS up_span_h
        FROM _pf_up GROUP BY 1
    )
    SELECT c.graphlet_id,
           up.n_types::DOUBLE AS u_component_types, up.n_exec::DOUBLE AS u_executions,
           up.n_art::DOUBLE AS u_artifacts, up.n_cached::DOUBLE AS u_cached,
           CASE WHEN up.n_exec > 0 THEN up.n_cached / up.n_exec::DOUBLE END AS u_cached_share,
           up.n_failed::DOUBLE AS u_failed, up.up_s AS u_compute_s, up.up_span_h AS u_span_h,
           CASE WHEN c.prev_id IS NOT NULL THEN coalesce(a.n, 0)::DOUBLE END AS d_types_added,
           CASE WHEN c.prev_id IS NOT NULL THEN coalesce(r.n, 0)::DOUBLE END AS d_types_removed,
           CASE WHEN c.prev_id IS NOT NULL THEN (coalesce(a.n, 0) + coalesce(r.n, 0) > 0)::INTEGER::DOUBLE END
               AS d_structure_changed
    FROM cur c
    LEFT JOIN up USING (graphlet_id)
    LEFT JOIN added a USING (graphlet_id)
    LEFT JOIN removed r USING (graphlet_id);

    -- overlap of the trainer's inputs with the previous training's inputs
    CREATE OR REPLACE TEMP TABLE _pf_in AS SELECT DISTINCT graphlet_id, artifact_id FROM _pf_insrc;

    CREATE OR REPLACE TEMP TABLE _pf_overf AS
    WITH pairs AS (
        SELECT o.graphlet_id, o.prev_id FROM _pf_order o WHERE o.prev_id IS NOT NULL {only_and}
    ), inter AS (
        SELECT p.graphlet_id, count(*) AS n FROM pairs p
        JOIN _pf_in a ON a.graphlet_id = p.graphlet_id
        JOIN _pf_in b ON b.graphlet_id = p.prev_id AND b.artifact_id = a.artifact_id
        GROUP BY 1
    ), cnt AS (SELECT graphlet_id, count(*) AS n FROM _pf_in GROUP BY 1)
    SELECT p.graphlet_id,
           coalesce(ca.n, 0)::DOUBLE AS o_inputs,
           (coalesce(ca.n, 0) - coalesce(i.n, 0))::DOUBLE AS o_new_inputs,
           CASE WHEN coalesce(ca.n, 0) + coalesce(cb.n, 0) - coalesce(i.n, 0) > 0 THEN
                coalesce(i.n, 0) / (coalesce(ca.n, 0) + coalesce(cb.n, 0) - coalesce(i.n, 0))::DOUBLE END
               AS o_input_jaccard
    FROM pairs p
    LEFT JOIN inter i USING (graphlet_id)
    LEFT JOIN cnt ca ON ca.graphlet_id = p.graphlet_id
    LEFT JOIN cnt cb ON cb.graphlet_id = p.prev_id;
    """


_PROP_DIFF_SQL = """
    CREATE OR REPLACE TEMP TABLE _pf_pd AS
    SELECT c.graphlet_id, c.fkey, c.vmin, c.vmax, c.vdistinct, c.n_num, c.vlatest,
           CASE WHEN o.prev_id IS NOT NULL THEN
                (p.h_latest IS NULL OR p.h_latest <> c.h_latest)::INTEGER::DOUBLE END AS changed,
           c.vmax - p.vmax AS dmax
    FROM _pf_p c
    JOIN _pf_order o USING (graphlet_id)
    LEFT JOIN _pf_p p ON p.graphlet_id = o.prev_id AND p.fkey = c.fkey;
"""


def _select_property_keys(con, config: FeatureConfig, scoped: bool = False) -> list[tuple[str, bool, bool]]:
    """Property keys frequent enough to be features: (fkey, numeric, multi-valued). ``scoped``:
    frequent among the graphlets whose upstream was read (a ``keep``'s scope, a sample's estimate)."""
    n = con.execute("SELECT count(*) FROM " + ("_pf_scope" if scoped else "_pf_g")).fetchone()[0]
    rows = con.execute("""
        SELECT fkey, count(*) AS n, bool_or(n_num > 0) AS numeric, max(vdistinct) > 1 AS multi
        FROM _pf_p GROUP BY 1 HAVING count(*) >= $minn
        ORDER BY n DESC, fkey LIMIT $cap
    """, {"minn": max(1, int(np.ceil(config.min_coverage * n))),
          "cap": config.max_property_features}).fetchall()
    return [(r[0], bool(r[2]), bool(r[3])) for r in rows]


def _upstream(con, config: FeatureConfig, scope: str | None) -> None:
    """The upstream of every graphlet (or of those of the table ``scope``) with two hops of
    siblings (``_pf_up``), and its properties (``_pf_p``)."""
    con.execute(_upstream_sql(scope))
    for _hop in range(2):
        con.execute(_SIBLING_SQL)
    con.execute(_UPSTREAM_FINAL_SQL)
    con.execute(_PROPS_SQL, {"maxlen": config.max_json_len})


# every graphlet of _pf_gl with its lane and trainer start (optimizer.pruning.upcoming.last_trainings)
_LANES_SELECT = """
    SELECT graphlet_id, source_id, pipeline, lane,
           coalesce(component, regexp_extract(lane, '[^/]*$')) AS component, s
    FROM _pf_gl
"""


def prepare_features(con, *, pipeline: str | None = None, sources: list[str] | None = None) -> None:
    """Build, once, what every ``build_features(..., prepared=True)`` of the same graphlets shares:
    the graphlets, their members and trainer inputs, their lanes and the executions on a
    model's way to deployment (temporary tables of ``con``). A prepared build then only adds
    the rows its ``extend`` brings (an upcoming training) to those tables: a pipeline slice
    (optimizer.pruning.pipeline_slice) describes a run from its inputs without finding its
    lanes again. The lane types stay as prepared. Run the prepared builds in a transaction
    that is rolled back, so that each finds the tables as prepared.
    """
    _check_tables(con)
    for stmt in _source_sql(pipeline, "trainer_component" in _columns(con, "graphlets"),
                            sources is not None).split(";"):
        if stmt.strip():
            params = {"pipeline": pipeline, "sources": list(sources or [])}
            con.execute(stmt, {k: v for k, v in params.items() if f"${k}" in stmt})
    con.execute(_GRAPHLET_SQL)
    con.execute(_LANE_SQL)
    con.execute(_EXCL_ROLES_SQL if "analysis_executions" in _tables(con) else _EXCL_MEMBERS_SQL)


def build_features(con, config: FeatureConfig = FeatureConfig(), *, pipeline: str | None = None,
                   property_keys: list[tuple[str, bool, bool]] | None = None, extend=None,
                   sources: list[str] | None = None, keep: str | None = None,
                   key_chunk: int = 32, prepared: bool = False) -> FeatureSet:
    """Build the pre-start features of every graphlet (or of one pipeline's graphlets).

    ``property_keys`` fixes the property features (as returned in a previous call's
    ``FeatureSet.columns``) so that a trained model sees the same columns; by default they are
    chosen from the data. ``sources`` limits the graphlets to these sources (a lane never spans
    two). ``extend(con)`` may add rows to the temporary tables ``_pf_src``,
    ``_pf_msrc`` and ``_pf_insrc`` (an upcoming training: see optimizer.pruning.hook). Uses temporary
    tables only: works on read-only warehouses.

    ``keep``: a query selecting ``graphlet_id`` from the temporary table ``_pf_gl`` (graphlet_id,
    source_id, pipeline, lane, s, ...): only these graphlets reach pandas, and the costly part
    of the SQL (upstream members, siblings, their properties and changes) runs only for them
    and the previous training of each in its lane; the history of every lane (trainings,
    pushes, costs) is still read whole, in DuckDB. A bounded training set or the lanes' latest
    trainings are built so in a fraction of the time and memory, with the same features (the
    property keys, when not given, are then chosen by their coverage among those trainings). A
    ``keep`` should hold each kept training's ``relative_window`` predecessors in its lane, whose
    values ``relative_to_lane`` reads. ``key_chunk``: property keys read from DuckDB at a time
    where the rows are many (the long form of a chunk is in pandas at once, not that of every key). ``prepared``: the
    graphlets of a ``prepare_features`` (``pipeline`` and ``sources`` are then its own) and
    those ``extend`` adds.
    """
    if prepared:
        if extend is not None:
            extend(con)
        con.execute(_ADDED_LANES_SQL)
    else:
        prepare_features(con, pipeline=pipeline, sources=sources)
        if extend is not None:   # the extension's rows need the graphlets' lanes again
            extend(con)
            con.execute(_GRAPHLET_SQL)
            con.execute(_LANE_SQL)
    if keep is not None:
        # the upstream, its properties and their changes (the costly part) only for the kept
        # trainings and the previous training of each in its lane (deltas, structure changes)
        con.execute(f"CREATE OR REPLACE TEMP TABLE _pf_keep AS SELECT DISTINCT graphlet_id FROM ({keep})")
        con.execute(_SCOPE_SQL)
    _upstream(con, config, "_pf_scope" if keep is not None else None)
    con.execute(_long_features_sql(config.recent, config.cost_window, kept=keep is not None))
    con.execute(_PROP_DIFF_SQL)
    keys = property_keys if property_keys is not None else _select_property_keys(con, config, scoped=keep is not None)
    kept = "WHERE g.graphlet_id IN (SELECT graphlet_id FROM _pf_keep)" if keep is not None else ""

    base = con.execute(f"""
        SELECT g.graphlet_id, g.source_id, g.pipeline, g.lane, g.trainer_execution_id, g.s AS started_at,
               h.* EXCLUDE (graphlet_id), p.* EXCLUDE (graphlet_id), c.* EXCLUDE (graphlet_id),
               st.* EXCLUDE (graphlet_id),
               ov.* EXCLUDE (graphlet_id)
        FROM _pf_gl g
        LEFT JOIN _pf_histf h USING (graphlet_id)
        LEFT JOIN _pf_prevf p USING (graphlet_id)
        LEFT JOIN _pf_costf c USING (graphlet_id)
        LEFT JOIN _pf_structf st USING (graphlet_id)
        LEFT JOIN _pf_overf ov USING (graphlet_id)
        {kept}
        ORDER BY g.s, g.graphlet_id
    """).df()

    prop_cols: list[str] = []
    if keys:
        wide = {}
        idx = pd.Index(base["graphlet_id"])
        keep_join = "JOIN _pf_keep USING (graphlet_id)" if keep is not None else ""
        # a chunk of keys at a time: the long form of every key at once is the largest frame of all
        # (of a few rows, such as a description's, every key at once: a million values at most)
        per = max(1, key_chunk, 2 ** 20 // max(1, len(base)))
        for start in range(0, len(keys), per):
            chunk = keys[start:start + per]
            long = con.execute(f"""
                SELECT d.graphlet_id, d.fkey, d.vmin, d.vmax, d.vdistinct, d.vlatest, d.changed, d.dmax
                FROM _pf_pd d {keep_join} WHERE list_contains($keys, d.fkey)
            """, {"keys": [fkey for fkey, _, _ in chunk]}).df()
            wide.update(_wide_properties(long, idx, chunk, config))
            del long
        prop_cols = sorted(wide)
        base = pd.concat([base, pd.DataFrame({c: wide[c] for c in prop_cols}, index=base.index)], axis=1)
    feature_cols = [c for c in base.columns if c not in KEY_COLUMNS]
    base = pd.concat([base[[c for c in base.columns if c in KEY_COLUMNS]], base[feature_cols].astype("float64")],
                     axis=1)
    # from the keys alone, so that a frame built for one pipeline has the same columns
    levels = [c for c in prop_cols if c.endswith(".max")]
    if levels and config.relative_window:
        rel = relative_to_lane(base, levels, config.relative_window)
        base = pd.concat([base, rel], axis=1)
        feature_cols += list(rel.columns)
    counters = monotone_counters(base, feature_cols, config.min_counter_pairs) if config.drop_counters else []
    feature_cols = [c for c in feature_cols if c not in counters]
    fs = FeatureSet(frame=base.reset_index(drop=True), columns=tuple(feature_cols))
    fs.frame.attrs["monotone_counters"] = counters
    fs.frame.attrs["property_keys"] = keys
    log.info("built %d features for %d graphlets", len(feature_cols), len(base))
    return fs


def relative_to_lane(frame: pd.DataFrame, columns: list[str], window: int) -> pd.DataFrame:
    """``{column}.rel``: each value over the median of the lane's previous ``window`` values.

    A level such as a span's total bytes means little across pipelines; its change against the
    lane's own recent past (a data-volume shift) means the same everywhere. The frame is in
    start order; only earlier trainings of the lane are read.
    """
    lane = frame["lane"]
    prev = frame.groupby(lane, sort=False)[columns].shift(1)
    med = (prev.groupby(lane, sort=False).rolling(window, min_periods=1).median()
           .reset_index(level=0, drop=True).sort_index())
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = frame[columns].to_numpy(dtype=float) / med[columns].to_numpy(dtype=float)
    ratio[~np.isfinite(ratio)] = np.nan
    return pd.DataFrame(ratio, columns=[f"{c[:-len('.max')]}.rel" if c.endswith(".max") else f"{c}.rel"
                                        for c in columns], index=frame.index)


def relative_to_previous(previous: np.ndarray, current: np.ndarray, window: int) -> np.ndarray:
    """``relative_to_lane`` for one training that follows ``previous`` (rows: the lane's trainings
    before it, oldest first; columns: the levels): each ``current`` level over the median of
    the last ``window`` previous values (NaN skipped), NaN where that is not finite."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # (a level no previous training recorded)
        median = np.nanmedian(previous[-window:], axis=0) if len(previous) else np.full(len(current), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.asarray(current, dtype=float) / median
    ratio[~np.isfinite(ratio)] = np.nan
    return ratio


def monotone_counters(frame: pd.DataFrame, columns: list[str], min_pairs: int = 20) -> list[str]:
    """Columns that never decrease and mostly increase from one training of a lane to the next.

    Such values (a span number, an id, a timestamp, a count of trainings so far) encode only
    time: trees split on them to memorize periods, which does not carry to later data. Their
    changes (``.delta``) and ratios (``.rel``) stay.
    """
    diffs = frame.groupby("lane", sort=False)[columns].diff()
    n = diffs.notna().sum()
    nondec = (diffs >= 0).sum() / n.where(n > 0)
    inc = (diffs > 0).sum() / n.where(n > 0)
    out = [c for c in columns if n[c] >= min_pairs and nondec[c] >= 0.99 and inc[c] >= 0.5]
    log.info("left out %d monotone counters: %s", len(out), ", ".join(out[:10]))
    return out


_VALUE_COLUMNS = ("vmin", "vmax", "vdistinct", "vlatest", "changed", "dmax")


def _wide_properties(long: pd.DataFrame, idx: pd.Index, keys, config: FeatureConfig) -> dict[str, np.ndarray]:
    """The feature columns of property ``keys`` (fkey, numeric, multi) from their rows of ``_pf_pd``
    (``long``), one value per graphlet of ``idx`` (NaN where a graphlet lacks the key)."""
    pos = idx.get_indexer(long["graphlet_id"])
    key = long["fkey"].map({fkey: j for j, (fkey, _, _) in enumerate(keys)}).to_numpy(dtype=float, na_value=-1)
    ok = (pos >= 0) & (key >= 0)
    pos, key = pos[ok], key[ok].astype(np.int64)
    values = {c: long[c].to_numpy(dtype=float, na_value=np.nan)[ok] for c in _VALUE_COLUMNS}
    order = np.argsort(key, kind="stable")
    bounds = np.searchsorted(key[order], np.arange(len(keys) + 1))
    out = {}
    for j, (fkey, numeric, multi) in enumerate(keys):
        rows = order[bounds[j]:bounds[j + 1]]
        part = {}
        for c in _VALUE_COLUMNS:
            part[c] = np.full(len(idx), np.nan)
            part[c][pos[rows]] = values[c][rows]
        for suffix, column in _property_values(part, numeric, multi, config).items():
            out[f"{fkey}.{suffix}"] = column
    return out


def _property_values(part: dict[str, np.ndarray], numeric: bool, multi: bool, config: FeatureConfig) -> dict:
    """A property key's feature columns (suffix -> values) from its values (``_VALUE_COLUMNS``, one
    array each, NaN where not recorded)."""
    out = {}
    if numeric:
        out["max"], out["delta"] = part["vmax"], part["dmax"]
        if multi:
            vmin, vmax, nd = part["vmin"], part["vmax"], part["vdistinct"]
            out["min"] = vmin
            if config.latest:
                out["latest"] = part["vlatest"]
            out["distinct"] = nd
            out["gaps"] = np.where(np.floor(vmin) == vmin, vmax - vmin + 1 - nd, np.nan)
    out["changed"] = part["changed"]
    return out


def skippable_sql(trainer_id: str, trainer_start: str) -> str:
    """SQL predicate: execution ``e`` is what pruning at the trainer's start skips (the trainer
    itself and everything created from its start on). One rule for the outcome's
    ``skippable_s`` and the lane's cost feature, so the two stay in step."""
    return f"(e.execution_id = {trainer_id} OR e.create_time >= {trainer_start})"


def graphlet_outcomes(con, *, pipeline: str | None = None) -> pd.DataFrame:
    """What happened to each graphlet (for labels and the replay; never a feature).

    Columns: graphlet_id, pushed, determined (the outcome is final: waste is not inside the
    censoring window), ended_at (time the outcome is known), trained_at (the end of the trainer
    execution: the age of the model it produced counts from there), compute_s (all attributed
    compute), skippable_s (the trainer and everything after it: what pruning at trainer start
    saves), skippable_wasted_s (the part of skippable_s that led to no deployment).
    """
    _check_tables(con)
    have = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    where = "WHERE g.pipeline = $pipeline" if pipeline is not None else ""
    params = {"pipeline": pipeline} if pipeline is not None else {}
    if "execution_waste" in have:
        waste_join = """LEFT JOIN execution_waste w
                          ON w.source_id = g.source_id AND w.execution_id = m.entity_id"""
        wasted = "coalesce(NOT w.leads_to_deployment AND NOT coalesce(w.undetermined, false), NOT g.pushed)"
        undet = "bool_or(coalesce(w.undetermined, false))"
    else:
        waste_join = ""
        wasted = "NOT g.pushed"
        undet = "false"
    return con.execute(f"""
        WITH skip AS (
            SELECT g.graphlet_id,
                   round(sum(coalesce(e.duration_s, 0)), 6) AS skippable_s,
                   round(sum(CASE WHEN {wasted} THEN coalesce(e.duration_s, 0) ELSE 0 END), 6) AS skippable_wasted_s,
                   {undet} AS undetermined
            FROM graphlets g
            JOIN executions t ON t.source_id = g.source_id AND t.execution_id = g.trainer_execution_id
            JOIN graphlet_members m ON m.graphlet_id = g.graphlet_id AND m.entity = 'execution'
            JOIN executions e ON e.source_id = g.source_id AND e.execution_id = m.entity_id
            {waste_join}
            WHERE {skippable_sql("g.trainer_execution_id", "t.create_time")}
            GROUP BY 1
        )
        SELECT g.graphlet_id, coalesce(g.pushed, false) AS pushed,
               NOT coalesce(s.undetermined, false) AS determined,
               g.ended_at, coalesce(tr.update_time, g.ended_at) AS trained_at, coalesce(g.compute_s, 0) AS compute_s,
               coalesce(s.skippable_s, 0) AS skippable_s,
               coalesce(s.skippable_wasted_s, 0) AS skippable_wasted_s
        FROM graphlets g LEFT JOIN skip s USING (graphlet_id)
        LEFT JOIN executions tr ON tr.source_id = g.source_id AND tr.execution_id = g.trainer_execution_id
        {where}
        ORDER BY g.graphlet_id
    """, params).df()


def hours_since_epoch(col) -> np.ndarray:
    """Timestamps as float hours since the epoch (NaN for missing)."""
    values = pd.to_datetime(pd.Series(col), utc=True)
    hours = (values - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(hours=1)
    return hours.to_numpy(dtype=float, na_value=np.nan)
