"""Upcoming trainings: every lane's next training, described as if its trainer started now.

A pre-run decision needs the features of a training that has not started. For each lane
(pipeline and trainer node) the upcoming training is built from the lane's last training:

- upstream: the last training's upstream created before its trainer started, plus every
  execution of the pipeline that finished since (new data, new validation results) and what
  it wrote; or, when the caller names this run's upstream artifacts (``inputs``), exactly
  those artifacts and the executions that wrote them;
- trainer inputs: the last trainer's inputs, each replaced by the newest artifact of the same
  type written since (a rolling window keeps its length);
- trainer configuration: the last trainer's (provenance knows no later pipeline definition).

``upcoming_extension`` returns the ``extend`` callback of ``optimizer.pruning.features.build_features``:
one set-based pass adds the upcoming training of every selected lane, so the service describes
all lanes of a warehouse with one feature build. An upcoming training's graphlet id is
``NEXT_PREFIX`` followed by its lane.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd

from optimizer.pruning.features import _GRAPHLET_SQL, _LANE_SQL, _LANES_SELECT, PATH_ROLES

__all__ = ["NEXT_PREFIX", "upcoming_extension", "is_upcoming", "last_trainings"]

NEXT_PREFIX = "__next__/"


def is_upcoming(graphlet_ids: pd.Series) -> pd.Series:
    """Which rows of a feature frame are upcoming trainings."""
    return graphlet_ids.astype(str).str.startswith(NEXT_PREFIX)


def _tables(con) -> set[str]:
    # (duckdb_tables(): a few times faster than information_schema on a decision's path)
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


# each lane's last training among the graphlets of ``_pf_gl`` (none of them upcoming)
_LAST_SQL = f"""
    SELECT * FROM ({_LANES_SELECT}) WHERE NOT starts_with(CAST(graphlet_id AS VARCHAR), '{NEXT_PREFIX}')
    QUALIFY row_number() OVER (PARTITION BY lane ORDER BY s DESC, graphlet_id DESC) = 1
"""


def last_trainings(con) -> pd.DataFrame:
    """The last training of every lane among the graphlets in the feature SQL's ``_pf_src``.

    Columns: graphlet_id, source_id, pipeline, lane, component, s (trainer start), by lane.
    """
    con.execute(_GRAPHLET_SQL)
    con.execute(_LANE_SQL)
    return con.execute(f"{_LAST_SQL} ORDER BY lane").df()


def upcoming_extension(*, lanes: Sequence[str] | None = None, at: dt.datetime | None = None,
                       inputs: Sequence[int] | None = None, selected: list | None = None):
    """The ``extend`` callback adding the upcoming training of each lane (see the module docstring).

    ``lanes``: only these lanes (default: every lane of the graphlets being built). ``at``: the
    upcoming trainer's start (default: just after the newest record of the lane's source).
    ``inputs``: MLMD artifact ids of this run's upstream (with exactly one lane). ``selected``:
    a list that receives the DataFrame of chosen (next_id, last graphlet, lane, at) rows.
    """
    if inputs is not None and (lanes is None or len(lanes) != 1):
        raise ValueError("inputs describe one run: give exactly one lane with them")

    def extend(con) -> None:   # build_features has found the lanes (``_pf_gl``) before it calls this
        now = ("(SELECT greatest(max(update_time), max(create_time)) FROM executions e "
               "WHERE e.source_id = l.source_id) + INTERVAL 1 millisecond" if at is None else "$at::TIMESTAMP")
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _pf_next AS
            SELECT '{NEXT_PREFIX}' || CAST(l.lane AS VARCHAR) AS next_id, CAST(l.graphlet_id AS VARCHAR) AS gid,
                   CAST(l.source_id AS VARCHAR) AS src, CAST(l.pipeline AS VARCHAR) AS pipeline,
                   CAST(l.lane AS VARCHAR) AS lane, l.s AS s0, $explicit AS explicit, {now} AS at
            FROM ({_LAST_SQL}) l {"WHERE list_contains($lanes, l.lane)" if lanes is not None else ""}
        """, {"explicit": inputs is not None, **({"at": at} if at is not None else {}),
              **({"lanes": list(lanes)} if lanes is not None else {})})
        con.execute("CREATE OR REPLACE TEMP TABLE _pf_next_inputs AS "
                    "SELECT next_id, unnest(CAST($ids AS BIGINT[])) AS artifact_id FROM _pf_next",
                    {"ids": [int(a) for a in inputs or []]})
        if inputs is not None:   # the run starts after its own inputs were written
            con.execute("""
                UPDATE _pf_next n SET "at" = greatest(n.at, (
                    SELECT max(a.create_time) + INTERVAL 1 millisecond FROM _pf_next_inputs i
                    JOIN artifacts a ON a.source_id = n.src AND a.artifact_id = i.artifact_id))
            """)
        if selected is not None:
            selected.append(con.execute("SELECT * FROM _pf_next").df())
        _add_rows(con)

    return extend


def _add_rows(con) -> None:
    roles = ", ".join(f"'{r}'" for r in PATH_ROLES)
    con.execute("""
        INSERT INTO _pf_src BY NAME
        SELECT n.next_id AS graphlet_id, s.source_id, s.pipeline, NULL AS trainer_execution_id, s.config_id,
               n.at AS started_at, NULL AS ended_at, false AS pushed, NULL AS run_context, s.component,
               false AS blessed
        FROM _pf_src s JOIN _pf_next n ON s.graphlet_id = n.gid
    """)
    found = ""
    if "analysis_executions" in _tables(con):
        found = f"""
            SELECT n.next_id, x.execution_id FROM _pf_next n
            JOIN analysis_executions x ON x.source_id = n.src AND x.pipeline = n.pipeline
            WHERE NOT n.explicit AND x.create_time >= n.s0 AND x.update_time <= n.at
              AND coalesce(x.role, '') NOT IN ({roles})
            UNION
        """
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _pf_new AS
        {found}
        SELECT i.next_id, ev.execution_id FROM _pf_next_inputs i JOIN _pf_next n USING (next_id)
        JOIN events ev ON ev.source_id = n.src AND ev.artifact_id = i.artifact_id AND ev.type = 'OUTPUT'
    """)
    con.execute("""
        INSERT INTO _pf_msrc BY NAME
        SELECT n.next_id AS graphlet_id, m.entity, m.entity_id FROM _pf_next n
        JOIN graphlet_members m ON m.graphlet_id = n.gid
        LEFT JOIN executions e ON m.entity = 'execution' AND e.source_id = n.src AND e.execution_id = m.entity_id
        LEFT JOIN artifacts a ON m.entity = 'artifact' AND a.source_id = n.src AND a.artifact_id = m.entity_id
        WHERE coalesce(e.create_time, a.create_time) < n.s0
          -- with this run's inputs, they replace the earlier upstream of the same types
          AND NOT (n.explicit AND (
                (m.entity = 'artifact' AND a.type_name IN (
                    SELECT a2.type_name FROM _pf_next_inputs i
                    JOIN artifacts a2 ON a2.source_id = n.src AND a2.artifact_id = i.artifact_id
                    WHERE i.next_id = n.next_id))
             OR (m.entity = 'execution' AND e.type_name IN (
                    SELECT x.type_name FROM _pf_new w
                    JOIN executions x ON x.source_id = n.src AND x.execution_id = w.execution_id
                    WHERE w.next_id = n.next_id))))
        UNION
        SELECT next_id, 'execution', execution_id FROM _pf_new
        UNION
        SELECT w.next_id, 'artifact', ev.artifact_id FROM _pf_new w JOIN _pf_next n USING (next_id)
        JOIN events ev ON ev.source_id = n.src AND ev.execution_id = w.execution_id AND ev.type = 'OUTPUT'
        UNION
        SELECT next_id, 'artifact', artifact_id FROM _pf_next_inputs
    """)
    con.execute("""
        INSERT INTO _pf_insrc BY NAME
        WITH old AS (
            SELECT n.next_id, i.artifact_id, a.type_name, a.create_time,
                   row_number() OVER (PARTITION BY n.next_id, a.type_name ORDER BY a.create_time, a.artifact_id) AS k
            FROM _pf_next n JOIN _pf_insrc i ON i.graphlet_id = n.gid
            JOIN artifacts a ON a.source_id = n.src AND a.artifact_id = i.artifact_id
        ), written AS (
            SELECT w.next_id, ev.artifact_id FROM _pf_new w JOIN _pf_next n USING (next_id)
            JOIN events ev ON ev.source_id = n.src AND ev.execution_id = w.execution_id AND ev.type = 'OUTPUT'
            UNION
            SELECT next_id, artifact_id FROM _pf_next_inputs
        ), fresh AS (
            SELECT DISTINCT w.next_id, a.artifact_id, a.type_name, a.create_time
            FROM written w JOIN _pf_next n USING (next_id)
            JOIN artifacts a ON a.source_id = n.src AND a.artifact_id = w.artifact_id
            WHERE a.create_time <= n.at
              AND EXISTS (SELECT 1 FROM old o WHERE o.next_id = w.next_id AND o.type_name = a.type_name)
              AND NOT EXISTS (SELECT 1 FROM old o WHERE o.next_id = w.next_id AND o.artifact_id = a.artifact_id)
        ), nfresh AS (SELECT next_id, type_name, count(*) AS n FROM fresh GROUP BY 1, 2),
        window_len AS (SELECT next_id, type_name, count(*) AS n FROM old GROUP BY 1, 2),
        newest AS (
            SELECT f.next_id, f.artifact_id FROM (
                SELECT f.*, row_number() OVER (PARTITION BY next_id, type_name
                                               ORDER BY create_time DESC, artifact_id DESC) AS r
                FROM fresh f) f JOIN window_len w USING (next_id, type_name)
            WHERE f.r <= w.n
        )
        SELECT o.next_id AS graphlet_id, o.artifact_id FROM old o LEFT JOIN nfresh f USING (next_id, type_name)
        WHERE o.k > coalesce(f.n, 0)
        UNION
        SELECT next_id AS graphlet_id, artifact_id FROM newest
    """)
