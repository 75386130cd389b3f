"""Model graphlets: the unit of work around one model training.

One graphlet per trainer execution that did work (COMPLETE or FAILED; a CACHED trainer makes
none). It holds the trainer, its model, the *upstream* executions and artifacts that produced
the trainer's inputs (followed back along producer edges, stopping at other trainers), and the
*downstream* executions that consume the model on its way to deployment (evaluator,
infra-validator, pusher; followed forward, stopping at trainers and cached executions). Neither
walk follows an edge from a component to a later run of itself (Transform's analyzer cache,
a warm start): that would pull a pipeline's whole history into every graphlet.

- An upstream execution shared by several graphlets (rolling windows of spans) is attributed
  to the earliest graphlet that consumed it (``compute_s``) and counted in every graphlet's
  ``lineage_compute_s``.
- A downstream execution reachable from several models belongs to the graphlet of the newest
  model (lineage edges already ignore a baseline model input).
- A graphlet is *pushed* when its trainer or a downstream member produced a deployment
  artifact whose ``pushed`` property is 1.

Tables: ``graphlets`` (one row per graphlet, DESIGN column names) and ``graphlet_members``
(graphlet_id, entity, entity_id, role, plus source_id, position and attributed).
"""

from __future__ import annotations

from analysis.lineage import WORK_STATES, _in, clear, closure

__all__ = ["build_graphlets", "GRAPHLET_TABLES"]

GRAPHLET_TABLES = ("graphlets", "graphlet_members")

_DDL = {
    "graphlets": """
        CREATE TABLE IF NOT EXISTS graphlets (
            graphlet_id VARCHAR,                   -- '<source_id>:<trainer_execution_id>'
            source_id VARCHAR, pipeline VARCHAR, trainer_execution_id BIGINT,
            model_artifact_id BIGINT,              -- NULL when the trainer produced no model
            run_context VARCHAR,                   -- name of the pipeline-run context (NULL: async)
            started_at TIMESTAMP, ended_at TIMESTAMP,
            compute_s DOUBLE,                      -- attributed compute (sums to the corpus total)
            lineage_compute_s DOUBLE,              -- everything it needed, shared upstream included
            blessed BOOLEAN,                       -- NULL when no blessing was produced
            pushed BOOLEAN,
            run_context_id BIGINT, trainer_component VARCHAR, trainer_state VARCHAR,
            deployment_artifact_id BIGINT, closed BOOLEAN,
            n_executions INTEGER, n_artifacts INTEGER)""",
    "graphlet_members": """
        CREATE TABLE IF NOT EXISTS graphlet_members (
            graphlet_id VARCHAR, entity VARCHAR,   -- 'execution' | 'artifact'
            entity_id BIGINT, role VARCHAR,        -- role from the roles mapping (NULL: unmapped)
            source_id VARCHAR,
            position VARCHAR,                      -- upstream | trainer | downstream
            attributed BOOLEAN)""",                # its compute is counted in this graphlet's compute_s
}


def create_tables(con) -> None:
    for ddl in _DDL.values():
        con.execute(ddl)


def build_graphlets(con, max_steps: int = 200) -> None:
    """(Re)build graphlets and members for the sources in ``_scope`` (needs lineage tables)."""
    clear(con, GRAPHLET_TABLES, _DDL)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _trainers AS
        SELECT x.source_id, x.execution_id AS trainer_id,
               x.source_id || ':' || x.execution_id AS graphlet_id,
               x.pipeline, x.component, x.state, x.run_context_id, x.run_context,
               x.create_time AS started_at,
               (SELECT min(a.artifact_id) FROM _a a
                 WHERE a.source_id = x.source_id AND a.producer_id = x.execution_id
                   AND a.role = 'model') AS model_artifact_id
        FROM _x x JOIN _scope USING (source_id)
        WHERE x.role = 'trainer' AND x.state IN {_in(WORK_STATES)}
        """
    )
    # Upstream: producers of the trainer's inputs, transitively, never through a trainer.
    closure(
        con,
        seed_sql="""
            SELECT t.graphlet_id, e.source_id, e.src AS execution_id
            FROM _trainers t JOIN _edges e ON e.source_id = t.source_id AND e.dst = t.trainer_id
            WHERE e.src_role IS DISTINCT FROM 'trainer' AND NOT e.same_component""",
        step_sql="""
            SELECT f.graphlet_id, e.source_id, e.src AS execution_id
            FROM _frontier f JOIN _edges e ON e.source_id = f.source_id AND e.dst = f.execution_id
            WHERE e.src_role IS DISTINCT FROM 'trainer' AND NOT e.same_component""",
        out="_up",
        max_steps=max_steps,
    )
    # Downstream: consumers of what the trainer made, transitively, through executions that
    # spent compute (cached ones re-emit, they do not continue the lineage), never a trainer.
    closure(
        con,
        seed_sql="""
            SELECT t.graphlet_id, e.source_id, e.dst AS execution_id
            FROM _trainers t JOIN _edges e ON e.source_id = t.source_id AND e.src = t.trainer_id
            WHERE e.dst_role IS DISTINCT FROM 'trainer' AND e.dst_spent AND NOT e.same_component""",
        step_sql="""
            SELECT f.graphlet_id, e.source_id, e.dst AS execution_id
            FROM _frontier f JOIN _edges e ON e.source_id = f.source_id AND e.src = f.execution_id
            WHERE e.dst_role IS DISTINCT FROM 'trainer' AND e.dst_spent AND NOT e.same_component""",
        out="_down",
        max_steps=max_steps,
    )
    # A downstream execution belongs to the newest model; an upstream one is attributed to
    # the earliest graphlet, unless it is some graphlet's downstream member.
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _down_owner AS
        SELECT d.source_id, d.execution_id,
               arg_max(d.graphlet_id, {'t': t.started_at, 'id': t.trainer_id}) AS graphlet_id
        FROM _down d JOIN _trainers t USING (graphlet_id)
        GROUP BY ALL
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _up_owner AS
        SELECT u.source_id, u.execution_id,
               arg_min(u.graphlet_id, {'t': t.started_at, 'id': t.trainer_id}) AS graphlet_id
        FROM _up u JOIN _trainers t USING (graphlet_id)
        WHERE NOT EXISTS (SELECT 1 FROM _down_owner d
                          WHERE d.source_id = u.source_id AND d.execution_id = u.execution_id)
        GROUP BY ALL
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _mx AS
        SELECT graphlet_id, source_id, trainer_id AS execution_id, 'trainer' AS position, true AS attributed
        FROM _trainers
        UNION ALL
        SELECT graphlet_id, source_id, execution_id, 'downstream', true FROM _down_owner
        UNION ALL
        SELECT u.graphlet_id, u.source_id, u.execution_id, 'upstream',
               coalesce(o.graphlet_id = u.graphlet_id, false)
        FROM _up u LEFT JOIN _up_owner o USING (source_id, execution_id)
        WHERE NOT EXISTS (SELECT 1 FROM _down_owner d
                          WHERE d.source_id = u.source_id AND d.execution_id = u.execution_id)
        """
    )
    con.execute(
        """
        INSERT INTO graphlet_members
        SELECT m.graphlet_id, 'execution', m.execution_id, x.role, m.source_id, m.position, m.attributed
        FROM _mx m JOIN _x x USING (source_id, execution_id)
        UNION ALL
        SELECT m.graphlet_id, 'artifact', a.artifact_id, a.role, m.source_id, m.position, m.attributed
        FROM _mx m JOIN _a a
          ON a.source_id = m.source_id AND a.producer_id = m.execution_id
        UNION ALL
        -- inputs with no recorded producer (external data) of the trainer and its upstream
        SELECT DISTINCT m.graphlet_id, 'artifact', ext.artifact_id, ext.role, m.source_id, 'upstream', false
        FROM (SELECT ev.source_id, ev.execution_id, a.artifact_id, a.role
              FROM _a a JOIN events ev USING (source_id, artifact_id)
              WHERE a.producer_id IS NULL AND ev.type = 'INPUT') ext
        JOIN _mx m ON m.source_id = ext.source_id AND m.execution_id = ext.execution_id
        WHERE m.position IN ('trainer', 'upstream')
        """
    )
    con.execute(
        """
        INSERT INTO graphlets
        WITH ex AS (
            SELECT m.graphlet_id,
                   sum(coalesce(x.duration_s, 0)) FILTER (WHERE m.attributed) AS compute_s,
                   sum(coalesce(x.duration_s, 0)) AS lineage_compute_s,
                   max(x.update_time) FILTER (WHERE m.position IN ('trainer', 'downstream')) AS ended_at,
                   count(*) AS n_executions
            FROM _mx m JOIN _x x USING (source_id, execution_id)
            GROUP BY ALL
        ),
        art AS (
            SELECT gm.graphlet_id,
                   bool_or(a.pushed) FILTER (WHERE a.role = 'deployment' AND gm.position <> 'upstream') AS pushed,
                   bool_or(a.blessed) FILTER (WHERE a.role = 'blessing' AND gm.position <> 'upstream') AS blessed,
                   arg_max(a.artifact_id, {'p': a.pushed, 'id': a.artifact_id})
                       FILTER (WHERE a.role = 'deployment' AND gm.position <> 'upstream') AS deployment_artifact_id,
                   bool_or(a.role = 'blessing' AND NOT a.blessed AND gm.position <> 'upstream') AS rejected,
                   count(*) AS n_artifacts
            FROM graphlet_members gm
            JOIN _a a ON a.source_id = gm.source_id AND a.artifact_id = gm.entity_id
            WHERE gm.entity = 'artifact' AND gm.source_id IN (SELECT source_id FROM _scope)
            GROUP BY ALL
        )
        SELECT t.graphlet_id, t.source_id, t.pipeline, t.trainer_id, t.model_artifact_id,
               t.run_context, t.started_at, ex.ended_at, ex.compute_s, ex.lineage_compute_s,
               art.blessed, coalesce(art.pushed, false),
               t.run_context_id, t.component, t.state, art.deployment_artifact_id,
               (t.state = 'FAILED' OR art.deployment_artifact_id IS NOT NULL
                OR coalesce(art.rejected, false)) AS closed,
               ex.n_executions, coalesce(art.n_artifacts, 0)
        FROM _trainers t JOIN ex USING (graphlet_id) LEFT JOIN art USING (graphlet_id)
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _gown AS
        SELECT source_id, execution_id, graphlet_id FROM _mx WHERE attributed
        """
    )
    for tmp in ("_up", "_down", "_down_owner", "_up_owner", "_mx", "_trainers"):
        con.execute(f"DROP TABLE IF EXISTS {tmp}")
