"""SQL views over the analysis tables: the names users query with ``frugal sql``.

- ``execution_waste``: every execution that spent compute (COMPLETE, FAILED, CANCELED) with
  whether it led to a deployment, whether its fate is still undetermined (censoring window),
  and ``wasted`` = neither.
- ``component_runs``: every execution of every component in time order, with ``redundant``
  (same inputs and properties as an earlier COMPLETE run of that component).
- ``unmapped_types``: type names in use that no role rule maps (listed in the report).
"""

from __future__ import annotations

__all__ = ["create_views", "VIEWS"]

VIEWS: dict[str, str] = {
    "execution_waste": """
        CREATE OR REPLACE VIEW execution_waste AS
        SELECT source_id, execution_id, pipeline, component, type_name AS component_type, role,
               state, leads_to_deployment, undetermined,
               NOT leads_to_deployment AND NOT undetermined AS wasted,
               duration_s, graphlet_id, run_context, create_time AS started_at, update_time AS ended_at
        FROM analysis_executions
        WHERE spent""",
    "component_runs": """
        CREATE OR REPLACE VIEW component_runs AS
        SELECT source_id, pipeline, component, type_name AS component_type, role, execution_id,
               state, redundant, redundant_of, run_context, create_time AS started_at,
               update_time AS ended_at, duration_s,
               row_number() OVER (PARTITION BY source_id, pipeline, component
                                  ORDER BY create_time, execution_id) AS run_number
        FROM analysis_executions""",
    "unmapped_types": """
        CREATE OR REPLACE VIEW unmapped_types AS
        SELECT r.kind, r.type_name, u.source_id, u.uses
        FROM type_roles r
        JOIN (SELECT 'execution' AS kind, type_name, source_id, count(*) AS uses FROM executions GROUP BY ALL
              UNION ALL SELECT 'artifact', type_name, source_id, count(*) FROM artifacts GROUP BY ALL
              UNION ALL SELECT 'context', type_name, source_id, count(*) FROM contexts GROUP BY ALL) u
          ON u.kind = r.kind AND u.type_name = r.type_name
        WHERE r.role IS NULL""",
}


def create_views(con) -> None:
    """Create or replace every analysis view (idempotent)."""
    for ddl in VIEWS.values():
        con.execute(ddl)
