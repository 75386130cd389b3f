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
    """Fill redundant / redundant_of of ``analysis_executions`` for the sources in ``_scope``."""
    volatile = _in(volatile_properties) if volatile_properties else "(NULL)"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _runs AS
        WITH ins AS (
            SELECT ev.source_id, ev.execution_id,
                   md5(string_agg(coalesce(ev.path, '') || '=' ||
                                  coalesce('fp:' || a.fingerprint, CAST(ev.artifact_id AS VARCHAR)), ','
                                  ORDER BY coalesce(ev.path, ''), coalesce('fp:' || a.fingerprint, CAST(ev.artifact_id AS VARCHAR)))) AS sig
            FROM events ev JOIN _scope USING (source_id)
            JOIN analysis_artifacts a USING (source_id, artifact_id)
            WHERE ev.type = 'INPUT'
            GROUP BY ALL
        ),
        outs AS (
            SELECT ev.source_id, ev.execution_id,
                   CASE WHEN bool_and(a.fingerprint IS NOT NULL)
                        THEN md5('out:' || string_agg(coalesce(ev.path, '') || '=' || a.fingerprint, ','
                                                      ORDER BY coalesce(ev.path, ''), a.fingerprint)) END AS sig
            FROM events ev JOIN _scope USING (source_id)
            JOIN analysis_artifacts a USING (source_id, artifact_id)
            WHERE ev.type = 'OUTPUT'
            GROUP BY ALL
        ),
        props AS (
            SELECT p.source_id, p.entity_id AS execution_id,
                   md5(string_agg(p.name || '=' || {_VALUE}, chr(31) ORDER BY p.name, p.is_custom)) AS sig
            FROM properties p JOIN _scope USING (source_id)
            WHERE p.entity = 'execution' AND p.name NOT IN {volatile}
            GROUP BY ALL
        ),
        sigs AS (
            SELECT x.source_id, x.execution_id, x.pipeline, x.component, x.type_name, x.state,
                   x.did_work, coalesce(ins.sig, outs.sig) AS in_sig, coalesce(props.sig, '') AS prop_sig,
                   row_number() OVER (PARTITION BY x.source_id ORDER BY x.create_time, x.execution_id) AS seq
            FROM analysis_executions x JOIN _scope USING (source_id)
            LEFT JOIN ins USING (source_id, execution_id)
            LEFT JOIN outs USING (source_id, execution_id)
            LEFT JOIN props USING (source_id, execution_id)
        ),
        firsts AS (
            SELECT *, arg_min(execution_id, seq) FILTER (WHERE state = 'COMPLETE') OVER w AS first_complete,
                      min(seq) FILTER (WHERE state = 'COMPLETE') OVER w AS first_seq
            FROM sigs
            WINDOW w AS (PARTITION BY source_id, pipeline, component, type_name, in_sig, prop_sig)
        )
        SELECT source_id, execution_id,
               did_work AND in_sig IS NOT NULL AND first_seq IS NOT NULL AND seq > first_seq AS redundant,
               CASE WHEN did_work AND in_sig IS NOT NULL AND seq > first_seq THEN first_complete END AS redundant_of
        FROM firsts
        """
    )
    con.execute(
        """
        UPDATE analysis_executions x SET redundant = r.redundant, redundant_of = r.redundant_of
        FROM _runs r WHERE x.source_id = r.source_id AND x.execution_id = r.execution_id
        """
    )
    con.execute("DROP TABLE IF EXISTS _runs")
