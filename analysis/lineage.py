"""Lineage facts: what every execution and artifact is, and who produced what.

Builds three temporary tables that the graphlet, waste and run-history analyses share (the
first two are persisted at the end as ``analysis_executions`` and ``analysis_artifacts``):

- ``_x``: one row per execution with its role, pipeline, component, run context and whether
  it did work (COMPLETE or FAILED; CACHED executions did none). A NEW or RUNNING execution
  that evidently died (its component ran again, the store moved on after its last update, or
  a NEW one was updated at its end: pre-2020 TFX leaves ``new`` behind) counts as FAILED.
- ``_a``: one row per artifact with its role, its *producer* and the ``pushed`` / ``blessed``
  flags.
- ``_edges``: execution -> execution edges along OUTPUT -> INPUT events.

An artifact's producer is the *earliest* non-cached, non-resolver execution that recorded an
OUTPUT event to it. Later OUTPUT events to the same artifact are re-emissions and make no edge:
a CACHED execution re-emits the outputs of the run it reuses, and a resolver re-emits the
baseline model. A model read as a baseline makes no edge either: the baseline is a yardstick,
not an ingredient. Baseline inputs are those whose event path starts with a baseline key
(TFX: ``baseline_model``; when the candidate is its own baseline MLMD keeps one event with path
``model/0/baseline_model/0``, which counts as the candidate); when an execution still reads
several models, only the newest makes an edge.

All work is set-based SQL in DuckDB over the sources in the temporary table ``_scope``.
"""

from __future__ import annotations

import logging

__all__ = [
    "persist_lineage",
    "WORK_STATES",
    "SPENT_STATES",
    "build_lineage",
    "closure",
    "LINEAGE_TABLES",
]

log = logging.getLogger(__name__)

# A trainer in one of these states did work and makes a graphlet.
WORK_STATES = ("COMPLETE", "FAILED")
# An execution in one of these states spent compute that can be wasted.
SPENT_STATES = ("COMPLETE", "FAILED", "CANCELED")

LINEAGE_TABLES = ("analysis_executions", "analysis_artifacts")

_DDL = {
    "analysis_executions": """
        CREATE TABLE IF NOT EXISTS analysis_executions (
            source_id VARCHAR, execution_id BIGINT, type_name VARCHAR, role VARCHAR,
            state VARCHAR, did_work BOOLEAN, spent BOOLEAN,
            pipeline VARCHAR, component VARCHAR, run_context_id BIGINT, run_context VARCHAR,
            create_time TIMESTAMP, update_time TIMESTAMP, duration_s DOUBLE,
            leads_to_deployment BOOLEAN, undetermined BOOLEAN, graphlet_id VARCHAR,
            redundant BOOLEAN, redundant_of BIGINT)""",
    "analysis_artifacts": """
        CREATE TABLE IF NOT EXISTS analysis_artifacts (
            source_id VARCHAR, artifact_id BIGINT, type_name VARCHAR, role VARCHAR,
            producer_id BIGINT, create_time TIMESTAMP, pushed BOOLEAN, blessed BOOLEAN,
            fingerprint VARCHAR)""",
}

# Text value of a property whatever its type.
_VALUE = "coalesce(p.string_value, CAST(p.int_value AS VARCHAR), CAST(p.double_value AS VARCHAR), CAST(p.bool_value AS VARCHAR))"
_TRUE = ("1", "1.0", "true", "True", "TRUE")


def create_tables(con) -> None:
    for ddl in _DDL.values():
        con.execute(ddl)


def clear(con, tables: tuple[str, ...], ddl: dict[str, str]) -> None:
    """Remove the rows of the sources in ``_scope``: drop and recreate a table when the scope
    covers all of it (much faster than a delete), else delete those sources' rows."""
    for table in tables:
        con.execute(ddl[table])
        rest = con.execute(
            f"SELECT count(*) FROM (SELECT DISTINCT source_id FROM {table}) "
            "WHERE source_id NOT IN (SELECT source_id FROM _scope)"
        ).fetchone()[0]
        if rest == 0:
            con.execute(f"DROP TABLE {table}")
            con.execute(ddl[table])
        else:
            con.execute(f"DELETE FROM {table} WHERE source_id IN (SELECT source_id FROM _scope)")


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def build_lineage(con, fingerprint_properties: tuple[str, ...] = (),
                  baseline_keys: tuple[str, ...] = ("baseline_model",)) -> None:
    """Build the temporary lineage tables ``_x``, ``_a``, ``_edges`` for ``_scope``."""
    _build_executions(con)
    _build_artifacts(con, fingerprint_properties)
    _build_edges(con, baseline_keys)


def _naming_properties(entity: str) -> str:
    """SQL: per ``entity`` (context or execution), the `pipeline_name` and `component_id`
    properties that orchestrators write to name a node's pipeline and component."""
    return f"""
            SELECT p.source_id, p.entity_id AS {entity}_id,
                   max(p.string_value) FILTER (WHERE p.name = 'pipeline_name') AS pipeline_name,
                   max(p.string_value) FILTER (WHERE p.name = 'component_id') AS component_id
            FROM properties p JOIN _scope USING (source_id)
            WHERE p.entity = '{entity}' AND p.name IN ('pipeline_name', 'component_id')
            GROUP BY ALL"""


def _build_executions(con) -> None:
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _x AS
        WITH croles AS (
            SELECT c.source_id, c.context_id, c.name, r.role
            FROM contexts c
            JOIN _scope USING (source_id)
            JOIN type_roles r ON r.kind = 'context' AND r.type_name = c.type_name
            WHERE r.role IN ('pipeline', 'pipeline-run', 'node')
        ),
        cprops AS ({_naming_properties("context")}),
        ids AS (  -- integers first: cheap to aggregate over every association
            SELECT a.source_id, a.execution_id,
                   min(a.context_id) FILTER (WHERE cr.role = 'pipeline') AS pipeline_cid,
                   min(a.context_id) FILTER (WHERE cr.role = 'pipeline-run') AS run_id,
                   min(a.context_id) FILTER (WHERE cr.role = 'node') AS node_cid
            FROM associations a
            JOIN croles cr ON cr.source_id = a.source_id AND cr.context_id = a.context_id
            GROUP BY ALL
        ),
        per_exec AS (
            SELECT i.source_id, i.execution_id, pc.name AS pipeline_ctx, i.run_id, rc.name AS run_name,
                   nc.name AS node_name,
                   coalesce(rp.pipeline_name, np.pipeline_name) AS ctx_pipeline_name,
                   coalesce(np.component_id, rp.component_id) AS ctx_component_id
            FROM ids i
            LEFT JOIN croles pc ON pc.source_id = i.source_id AND pc.context_id = i.pipeline_cid
            LEFT JOIN croles rc ON rc.source_id = i.source_id AND rc.context_id = i.run_id
            LEFT JOIN croles nc ON nc.source_id = i.source_id AND nc.context_id = i.node_cid
            LEFT JOIN cprops rp ON rp.source_id = i.source_id AND rp.context_id = i.run_id
            LEFT JOIN cprops np ON np.source_id = i.source_id AND np.context_id = i.node_cid
        ),
        xprops AS ({_naming_properties("execution")}),
        base AS (
            SELECT x.source_id, x.execution_id, x.type_name, r.role, x.state,
                   coalesce(pe.pipeline_ctx, xp.pipeline_name, pe.ctx_pipeline_name, x.source_id) AS pipeline,
                   pe.node_name, xp.component_id AS x_component_id, pe.ctx_component_id,
                   pe.run_id, pe.run_name, x.create_time, x.update_time, x.duration_s
            FROM executions x
            JOIN _scope USING (source_id)
            LEFT JOIN type_roles r ON r.kind = 'execution' AND r.type_name = x.type_name
            LEFT JOIN per_exec pe USING (source_id, execution_id)
            LEFT JOIN xprops xp USING (source_id, execution_id)
        ),
        named AS (
            SELECT *, coalesce(x_component_id, ctx_component_id,
                               CASE WHEN starts_with(node_name, pipeline || '.')
                                    THEN substr(node_name, length(pipeline) + 2) ELSE node_name END,
                               type_name, 'unknown') AS component
            FROM base
        ),
        -- a NEW/RUNNING execution died (pre-2020 TFX leaves `new` behind) when its component
        -- ran again later, the store moved on after its last update, or a NEW one was updated
        -- at its end
        unfinished AS (SELECT * FROM named WHERE state IN ('NEW', 'RUNNING')),
        died AS (
            SELECT u.source_id, u.execution_id
            FROM unfinished u
            WHERE (u.state = 'NEW' AND u.update_time > u.create_time)
               OR EXISTS (SELECT 1 FROM named n WHERE n.source_id = u.source_id AND n.pipeline = u.pipeline
                          AND n.component = u.component AND n.create_time > u.create_time)
               OR EXISTS (SELECT 1 FROM named n WHERE n.source_id = u.source_id
                          AND n.create_time > coalesce(u.update_time, u.create_time))
        )
        SELECT n.source_id, n.execution_id, n.type_name, n.role,
               CASE WHEN d.execution_id IS NOT NULL THEN 'FAILED' ELSE n.state END AS state,
               d.execution_id IS NOT NULL OR n.state IN {_in(WORK_STATES)} AS did_work,
               d.execution_id IS NOT NULL OR n.state IN {_in(SPENT_STATES)} AS spent,
               n.pipeline, n.component,
               n.run_id AS run_context_id, n.run_name AS run_context, n.create_time, n.update_time,
               CASE WHEN d.execution_id IS NOT NULL
                    THEN coalesce(n.duration_s, epoch(n.update_time - n.create_time))
                    ELSE n.duration_s END AS duration_s
        FROM named n LEFT JOIN died d USING (source_id, execution_id)
        """
    )


def _build_artifacts(con, fingerprint_properties: tuple[str, ...]) -> None:
    fps = _in(fingerprint_properties) if fingerprint_properties else "(NULL)"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _a AS
        WITH producers AS (
            SELECT ev.source_id, ev.artifact_id,
                   arg_min(ev.execution_id, {{'t': x.create_time, 'id': ev.execution_id}}) AS producer_id
            FROM events ev
            JOIN _x x USING (source_id, execution_id)
            WHERE ev.type = 'OUTPUT' AND x.state IS DISTINCT FROM 'CACHED'
              AND x.role IS DISTINCT FROM 'resolver'
              AND ev.source_id IN (SELECT source_id FROM _scope)
            GROUP BY ALL
        ),
        flags AS (
            SELECT p.source_id, p.entity_id AS artifact_id,
                   bool_or({_VALUE} IN {_in(_TRUE)}) FILTER (WHERE p.name = 'pushed') AS pushed,
                   bool_or({_VALUE} IN {_in(_TRUE)}) FILTER (WHERE p.name = 'blessed') AS blessed,
                   min({_VALUE}) FILTER (WHERE p.name IN {fps}) AS fingerprint
            FROM properties p JOIN _scope USING (source_id)
            WHERE p.entity = 'artifact' AND (p.name IN ('pushed', 'blessed') OR p.name IN {fps})
            GROUP BY ALL
        )
        SELECT a.source_id, a.artifact_id, a.type_name, r.role, pr.producer_id, a.create_time,
               CASE WHEN r.role = 'deployment' THEN coalesce(f.pushed, false) END AS pushed,
               CASE WHEN r.role IN ('blessing', 'infra-blessing') THEN f.blessed END AS blessed,
               f.fingerprint
        FROM artifacts a
        JOIN _scope USING (source_id)
        LEFT JOIN type_roles r ON r.kind = 'artifact' AND r.type_name = a.type_name
        LEFT JOIN producers pr USING (source_id, artifact_id)
        LEFT JOIN flags f USING (source_id, artifact_id)
        """
    )


def _build_edges(con, baseline_keys: tuple[str, ...]) -> None:
    baseline = _in(baseline_keys) if baseline_keys else "(NULL)"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _edges AS
        WITH inputs AS (
            SELECT ev.source_id, ev.execution_id AS dst, ev.artifact_id, a.role, a.create_time,
                   a.producer_id, a.role = 'model' AND coalesce(ev.path_key IN {baseline}, false) AS is_baseline
            FROM events ev
            JOIN _a a USING (source_id, artifact_id)
            WHERE ev.type = 'INPUT' AND a.producer_id IS NOT NULL
              AND ev.source_id IN (SELECT source_id FROM _scope)
        ),
        newest_model AS (
            SELECT source_id, dst, arg_max(artifact_id, {{'t': create_time, 'id': artifact_id}}) AS artifact_id
            FROM inputs WHERE role = 'model' AND NOT is_baseline GROUP BY ALL
        ),
        kept AS (
            SELECT i.* FROM inputs i WHERE i.role IS DISTINCT FROM 'model'
            UNION ALL
            SELECT i.* FROM inputs i JOIN newest_model USING (source_id, dst, artifact_id)
        )
        SELECT k.source_id, k.producer_id AS src, k.dst, k.artifact_id, s.role AS src_role,
               d.role AS dst_role, d.spent AS dst_spent,
               s.pipeline = d.pipeline AND s.component = d.component AS same_component
        FROM kept k
        JOIN _x s ON s.source_id = k.source_id AND s.execution_id = k.producer_id
        JOIN _x d ON d.source_id = k.source_id AND d.execution_id = k.dst
        WHERE k.producer_id <> k.dst
        """
    )


def closure(con, seed_sql: str, step_sql: str, out: str, max_steps: int = 200) -> int:
    """Iterated set-based join: grow table ``out`` from ``seed_sql`` until fixpoint.

    ``step_sql`` selects the rows reachable in one step from temporary table ``_frontier``
    (same columns as ``out``); rows already in ``out`` are dropped. Returns the step count.
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE {out} AS SELECT DISTINCT * FROM ({seed_sql})")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _frontier AS SELECT * FROM {out}")
    cols = [r[0] for r in con.execute(f"DESCRIBE {out}").fetchall()]
    on = " AND ".join(f"n.{c} = o.{c}" for c in cols)
    steps = 0
    while steps < max_steps:
        steps += 1
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _next AS SELECT DISTINCT n.* FROM ({step_sql}) n "
            f"ANTI JOIN {out} o ON {on}"
        )
        added = con.execute("SELECT count(*) FROM _next").fetchone()[0]
        if not added:
            break
        con.execute(f"INSERT INTO {out} SELECT * FROM _next")
        con.execute("CREATE OR REPLACE TEMP TABLE _frontier AS SELECT * FROM _next")
    else:
        log.warning("closure %s stopped after %d steps without reaching a fixpoint", out, max_steps)
    con.execute("DROP TABLE IF EXISTS _next")
    con.execute("DROP TABLE IF EXISTS _frontier")
    return steps


def persist_lineage(con) -> None:
    """Write ``_x`` (with the results of the later analyses) and ``_a`` to the warehouse."""
    clear(con, LINEAGE_TABLES, _DDL)
    con.execute(
        """
        INSERT INTO analysis_executions
        SELECT x.source_id, x.execution_id, x.type_name, x.role, x.state, x.did_work, x.spent,
               x.pipeline, x.component, x.run_context_id, x.run_context, x.create_time,
               x.update_time, x.duration_s, coalesce(w.leads, false), coalesce(w.undetermined, false),
               g.graphlet_id, coalesce(r.redundant, false), r.redundant_of
        FROM _x x
        LEFT JOIN _waste w USING (source_id, execution_id)
        LEFT JOIN _gown g USING (source_id, execution_id)
        LEFT JOIN _runs r USING (source_id, execution_id)
        """
    )
    con.execute(
        """
        INSERT INTO analysis_artifacts
        SELECT source_id, artifact_id, type_name, role, producer_id, create_time, pushed, blessed,
               fingerprint
        FROM _a
        """
    )
    for tmp in ("_x", "_a", "_edges", "_waste", "_gown", "_runs"):
        con.execute(f"DROP TABLE IF EXISTS {tmp}")
