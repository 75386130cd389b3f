"""Component run history: every execution of every component, and which runs were redundant.

A run is *redundant* when it did work (COMPLETE or FAILED) although an earlier COMPLETE run of
the same component (same source, pipeline, component and type) had the same inputs and the
same execution properties: reuse could have skipped it. Inputs compare by event path and
artifact: by content fingerprint where the artifact records one, else by artifact id. A run
without input artifacts (data ingestion) compares by the fingerprints of its outputs, and is
never redundant when those carry no fingerprint: nothing recorded says its data was the same.
Volatile properties (run ids, bookkeeping) are ignored.
"""

from __future__ import annotations

from analysis.lineage import _in

__all__ = ["build_component_runs"]

_VALUE = "coalesce(p.string_value, CAST(p.int_value AS VARCHAR), CAST(p.double_value AS VARCHAR), CAST(p.bool_value AS VARCHAR), '')"


def build_component_runs(con, volatile_properties: tuple[str, ...] = ()) -> None:
    """Compute temporary table ``_runs`` (redundant, redundant_of) for the sources in ``_scope``."""
    volatile = _in(volatile_properties) if volatile_properties else "(NULL)"
    # only runs that did work can be redundant or be the original (a COMPLETE run)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _work AS SELECT source_id, execution_id FROM _x "
        "JOIN _scope USING (source_id) WHERE did_work"
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _runs AS
        WITH ins AS (
            -- order-free digest of the (path, fingerprint or artifact id) pairs
            SELECT ev.source_id, ev.execution_id,
                   sum(hash(ev.path, a.fingerprint, CASE WHEN a.fingerprint IS NULL THEN ev.artifact_id END)) AS h,
                   count(*) AS n
            FROM events ev JOIN _work USING (source_id, execution_id)
            JOIN _a a USING (source_id, artifact_id)
            WHERE ev.type = 'INPUT'
            GROUP BY ALL
        ),
        outs AS (
            SELECT ev.source_id, ev.execution_id,
                   CASE WHEN bool_and(a.fingerprint IS NOT NULL) THEN sum(hash('out', ev.path, a.fingerprint)) END AS h,
                   count(*) AS n
            FROM events ev JOIN _work USING (source_id, execution_id)
            JOIN _a a USING (source_id, artifact_id)
            WHERE ev.type = 'OUTPUT'
            GROUP BY ALL
        ),
        props AS (
            SELECT p.source_id, p.entity_id AS execution_id,
                   sum(hash(p.name, p.is_custom, {_VALUE})) AS h, count(*) AS n
            FROM properties p JOIN _work w ON w.source_id = p.source_id AND w.execution_id = p.entity_id
            WHERE p.entity = 'execution' AND p.name NOT IN {volatile}
            GROUP BY ALL
        ),
        sigs AS (
            SELECT x.source_id, x.execution_id, x.state, x.did_work,
                   {{'t': x.create_time, 'id': x.execution_id}} AS pos,
                   CASE WHEN coalesce(ins.h, outs.h) IS NOT NULL
                        THEN hash(x.source_id, x.pipeline, x.component, x.type_name,
                                  coalesce(ins.h, outs.h), coalesce(ins.n, outs.n), props.h, props.n) END AS k
            FROM _x x JOIN _work USING (source_id, execution_id)
            LEFT JOIN ins USING (source_id, execution_id)
            LEFT JOIN outs USING (source_id, execution_id)
            LEFT JOIN props USING (source_id, execution_id)
        ),
        firsts AS (
            SELECT k, min(pos) AS first FROM sigs WHERE k IS NOT NULL AND state = 'COMPLETE' GROUP BY k
        )
        SELECT s.source_id, s.execution_id,
               s.did_work AND f.first IS NOT NULL AND s.pos > f.first AS redundant,
               CASE WHEN s.did_work AND s.pos > f.first THEN f.first.id END AS redundant_of
        FROM sigs s LEFT JOIN firsts f USING (k)
        """
    )
    con.execute("DROP TABLE IF EXISTS _work")
