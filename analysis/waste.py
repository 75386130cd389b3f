"""Waste: which executions never led to a deployed model.

An execution *leads to deployment* when an execution that produced a pushed deployment
artifact (custom property ``pushed`` = 1) is reachable from it along OUTPUT -> INPUT edges
(``_edges``; re-emissions by cached executions and resolvers and baseline-model inputs
make no edge, see :mod:`analysis.lineage`). Computed backwards from the deployers by iterated
set-based joins.

An execution that spent compute (COMPLETE, FAILED, CANCELED) and leads to no deployment is
*wasted*, unless it is *undetermined*: inside the censoring window at the end of history. Its
fate is determined once its pipeline started a later graphlet (trainer created after the
execution ended) that did not use it -- a rolling window of spans has moved past it -- or,
for a trainer and the executions downstream of it, once its own graphlet is closed (deployment
artifact written, model rejected by the evaluator, or trainer failed).
"""

from __future__ import annotations

from analysis.lineage import closure

__all__ = ["build_waste"]


def build_waste(con, max_steps: int = 200) -> None:
    """Compute temporary table ``_waste`` (leads, undetermined) for the sources in ``_scope``."""
    closure(
        con,
        seed_sql="""
            SELECT DISTINCT a.source_id, a.producer_id AS execution_id
            FROM _a a JOIN _scope USING (source_id)
            WHERE a.role = 'deployment' AND a.pushed AND a.producer_id IS NOT NULL""",
        step_sql="""
            SELECT e.source_id, e.src AS execution_id
            FROM _frontier f JOIN _edges e ON e.source_id = f.source_id AND e.dst = f.execution_id""",
        out="_leads",
        max_steps=max_steps,
    )
    # n_after: graphlets of the pipeline started after the execution ended (ASOF join on the
    # ranked start times); used_after: how many of those used it. Determined once a later
    # graphlet ran without it.
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _gstarts AS
        SELECT source_id, pipeline, started_at,
               count(*) OVER (PARTITION BY source_id, pipeline ORDER BY started_at DESC
                              ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n_from_here
        FROM graphlets JOIN _scope USING (source_id)
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _waste AS
        WITH x AS (
            SELECT x.source_id, x.execution_id, x.pipeline, x.spent,
                   coalesce(x.update_time, x.create_time) AS ended,
                   l.execution_id IS NOT NULL AS leads
            FROM _x x JOIN _scope USING (source_id)
            LEFT JOIN _leads l USING (source_id, execution_id)
        ),
        -- only executions that spent compute and lead nowhere can be undetermined
        open AS (SELECT * FROM x WHERE spent AND NOT leads),
        after AS (
            SELECT o.source_id, o.execution_id, coalesce(g.n_from_here, 0) AS n_after
            FROM open o ASOF LEFT JOIN _gstarts g
              ON o.source_id = g.source_id AND o.pipeline = g.pipeline AND g.started_at > o.ended
        ),
        used_after AS (
            SELECT o.source_id, o.execution_id,
                   count(DISTINCT gm.graphlet_id) FILTER (WHERE g.started_at > o.ended) AS n_used,
                   bool_or(g.closed AND gm.position IN ('trainer', 'downstream')) AS closed
            FROM open o
            JOIN graphlet_members gm ON gm.source_id = o.source_id AND gm.entity_id = o.execution_id
                                    AND gm.entity = 'execution'
            JOIN graphlets g USING (graphlet_id)
            GROUP BY ALL
        )
        SELECT x.source_id, x.execution_id, x.leads,
               x.spent AND NOT x.leads
               AND NOT coalesce(a.n_after > coalesce(u.n_used, 0), false)
               AND NOT coalesce(u.closed, false) AS undetermined
        FROM x
        LEFT JOIN after a USING (source_id, execution_id)
        LEFT JOIN used_after u USING (source_id, execution_id)
        """
    )
    for tmp in ("_leads", "_gstarts"):
        con.execute(f"DROP TABLE IF EXISTS {tmp}")
