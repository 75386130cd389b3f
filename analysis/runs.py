"""Component run history: every execution of every component, and which runs were redundant.

A run is *redundant* when it did work (COMPLETE or FAILED) although an earlier COMPLETE run of
the same component (same source, pipeline, component and type) had the same execution
properties and read the same *content*: reuse could have skipped it.

Content is compared through lineage (the Experiment Graph's lineage hash), not one level deep:

- an artifact's *content key* is its recorded content fingerprint where it has one (e.g.
  Examples' ``input_fingerprint``), else a hash of its producer's redundancy key and the
  producer's output event path, else (no producer that completed, or a producer whose key is
  unknown) the artifact's own identity;
- an execution's *redundancy key* is a hash of its component identity, its non-volatile
  execution properties and the multiset of (input event path, input content key). A run without
  input artifacts (data ingestion) is keyed by its outputs' fingerprints instead and has no key
  when those carry none: nothing recorded says its data was the same.

A redundant execution thus gets its original's key, its outputs the original outputs' keys, and
redundancy carries down a re-executed pipeline although every artifact in it is new. Keys are
computed set-based, one round of joins per lineage depth (a handful of rounds), never per node.

Volatile properties (run ids, bookkeeping) are ignored: the configured ones plus the
orchestrator's own bookkeeping, i.e. every ``__name__`` property (TFX writes
``__execution_result__`` when a run fails, ``__external_execution_index__``,
``__stateful_working_dir_index__``), so a FAILED run compares on its configuration. CACHED
executions did no work: they are neither redundant nor an original.
"""

from __future__ import annotations

import logging

from analysis.lineage import _in

__all__ = ["build_component_runs", "BOOKKEEPING_PROPERTIES"]

log = logging.getLogger(__name__)

_VALUE = "coalesce(p.string_value, CAST(p.int_value AS VARCHAR), CAST(p.double_value AS VARCHAR), CAST(p.bool_value AS VARCHAR), '')"

# Written by orchestrators about a run rather than as its configuration, besides every
# ``__name__`` property (a TFX convention for orchestrator-internal properties).
BOOKKEEPING_PROPERTIES = (
    "__execution_result__", "execution_result", "__external_execution_index__",
    "__stateful_working_dir_index__", "stateful_working_dir", "stateful_working_dir_index",
    "run_id", "pipeline_run_id", "state",
)

_TMP = ("_work", "_xin", "_xk", "_ak", "_ready", "_rk")


def build_component_runs(con, volatile_properties: tuple[str, ...] = (), max_steps: int = 200) -> None:
    """Compute temporary table ``_runs`` (redundant, redundant_of) for the sources in ``_scope``."""
    volatile = _in(tuple(volatile_properties) + BOOKKEEPING_PROPERTIES)
    # only runs that did work can be redundant or be the original (a COMPLETE run)
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _work AS
        SELECT x.source_id, x.execution_id, x.state,
               hash(x.source_id, x.pipeline, x.component, x.type_name) AS ident,
               {'t': x.create_time, 'id': x.execution_id} AS pos
        FROM _x x JOIN _scope USING (source_id) WHERE x.did_work
        """
    )
    # input events of working runs; an artifact read under two keys has one event whose path
    # chains both (``model/0/baseline_model/0``): count it once under each
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _xin AS
        SELECT ev.source_id, ev.execution_id, ev.artifact_id,
               unnest(CASE WHEN regexp_full_match(ev.path, '[^/]+/[0-9]+(/[^/]+/[0-9]+)+')
                           THEN regexp_extract_all(ev.path, '[^/]+/[0-9]+')
                           ELSE [coalesce(ev.path, '')] END) AS path
        FROM events ev JOIN _work USING (source_id, execution_id)
        WHERE ev.type = 'INPUT'
        """
    )
    # content keys known without lineage: a fingerprint, or the artifact itself when no
    # completed run produced it (its content is only known to be itself)
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _ak AS
        SELECT a.source_id, a.artifact_id,
               CASE WHEN a.fingerprint IS NOT NULL THEN hash('fp', a.fingerprint)
                    ELSE hash('id', a.source_id, a.artifact_id) END AS k
        FROM _a a
        LEFT JOIN _work p ON p.source_id = a.source_id AND p.execution_id = a.producer_id
        SEMI JOIN (SELECT DISTINCT source_id, artifact_id FROM _xin) i
            ON i.source_id = a.source_id AND i.artifact_id = a.artifact_id
        WHERE a.fingerprint IS NOT NULL OR p.state IS DISTINCT FROM 'COMPLETE'
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _props AS
        SELECT p.source_id, p.entity_id AS execution_id,
               sum(hash(p.name, p.is_custom, {_VALUE})) AS h, count(*) AS n
        FROM properties p JOIN _work w ON w.source_id = p.source_id AND w.execution_id = p.entity_id
        WHERE p.entity = 'execution' AND p.name NOT IN {volatile}
          AND NOT (starts_with(p.name, '__') AND ends_with(p.name, '__'))
        GROUP BY ALL
        """
    )
    # runs without inputs: keyed by their outputs' fingerprints, no key when any lacks one
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _xk AS
        WITH outs AS (
            SELECT ev.source_id, ev.execution_id,
                   CASE WHEN bool_and(a.fingerprint IS NOT NULL)
                        THEN sum(hash('out', coalesce(ev.path, ''), a.fingerprint)) END AS h,
                   count(*) AS n
            FROM events ev JOIN _work USING (source_id, execution_id)
            JOIN _a a USING (source_id, artifact_id)
            WHERE ev.type = 'OUTPUT'
            GROUP BY ALL
        )
        SELECT w.source_id, w.execution_id,
               CASE WHEN o.h IS NOT NULL
                    THEN hash(w.ident, 'out', o.h, o.n, pr.h, pr.n) END AS k
        FROM _work w
        LEFT JOIN outs o USING (source_id, execution_id)
        LEFT JOIN _props pr USING (source_id, execution_id)
        ANTI JOIN _xin i ON i.source_id = w.source_id AND i.execution_id = w.execution_id
        """
    )
    con.execute("CREATE OR REPLACE TEMP TABLE _rk AS SELECT * FROM _xk")
    steps = 0
    while True:
        # outputs of the runs keyed last round: content follows from the producer's key
        con.execute(
            """
            INSERT INTO _ak
            SELECT a.source_id, a.artifact_id,
                   CASE WHEN r.k IS NOT NULL THEN hash('out', r.k, coalesce(ev.path, ''))
                        ELSE hash('id', a.source_id, a.artifact_id) END
            FROM _rk r
            JOIN _a a ON a.source_id = r.source_id AND a.producer_id = r.execution_id
            JOIN events ev ON ev.source_id = a.source_id AND ev.artifact_id = a.artifact_id
                          AND ev.execution_id = r.execution_id AND ev.type = 'OUTPUT'
            JOIN _work w ON w.source_id = r.source_id AND w.execution_id = r.execution_id
            WHERE a.fingerprint IS NULL AND w.state = 'COMPLETE'
            QUALIFY row_number() OVER (PARTITION BY a.source_id, a.artifact_id ORDER BY ev.path) = 1
            """
        )
        if steps >= max_steps:
            log.warning("redundancy keys stopped after %d rounds without reaching a fixpoint", steps)
            break
        steps += 1
        # runs whose every input now has a content key
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE _ready AS
            SELECT i.source_id, i.execution_id, sum(hash(i.path, k.k)) AS h, count(*) AS n
            FROM _xin i LEFT JOIN _ak k USING (source_id, artifact_id)
            GROUP BY ALL HAVING count(k.k) = count(*)
            """
        )
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE _rk AS
            SELECT r.source_id, r.execution_id, hash(w.ident, 'in', r.h, r.n, pr.h, pr.n) AS k
            FROM _ready r JOIN _work w USING (source_id, execution_id)
            LEFT JOIN _props pr USING (source_id, execution_id)
            """
        )
        if not con.execute("SELECT count(*) FROM _rk").fetchone()[0]:
            break
        con.execute("INSERT INTO _xk SELECT * FROM _rk")
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _xin AS SELECT * FROM _xin "
            "ANTI JOIN _ready r USING (source_id, execution_id)"
        )
    log.debug("redundancy keys: %d rounds", steps)
    # runs left without a key (a lineage cycle) keep none and are never redundant
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _runs AS
        WITH sigs AS (
            SELECT w.source_id, w.execution_id, w.state, w.pos, xk.k
            FROM _work w LEFT JOIN _xk xk USING (source_id, execution_id)
        ),
        firsts AS (
            SELECT k, min(pos) AS first FROM sigs WHERE k IS NOT NULL AND state = 'COMPLETE' GROUP BY k
        )
        SELECT s.source_id, s.execution_id,
               f.first IS NOT NULL AND s.pos > f.first AS redundant,
               CASE WHEN s.pos > f.first THEN f.first.id END AS redundant_of
        FROM sigs s LEFT JOIN firsts f USING (k)
        """
    )
    for tmp in _TMP + ("_props",):
        con.execute(f"DROP TABLE IF EXISTS {tmp}")
