"""A pipeline's runs as the provenance records them: which executions make up each run.

A *run* of a synchronous pipeline is its pipeline-run context (TFX ``pipeline_run``, pre-2020
``run``), named by the context's name. Asynchronous pipelines record no such context: there a
run is one model graphlet, named by its trainer's execution id (the trainer, the upstream
executions that produced its inputs and the downstream ones that took its model towards
deployment). Either way a run is a set of executions of one (source, pipeline), and every
function here works on that set, read from the analysed warehouse (``analysis_executions``,
``graphlets``, ``graphlet_members``; run :func:`analysis.analyze` first).

Functions take a DuckDB connection (read-only is enough) and return plain values.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.errors import AmbiguousPipelineError, AnalysisError, UnknownPipelineError, UnknownRunError

__all__ = [
    "PipelineRef",
    "find_pipeline",
    "members_sql",
    "require_analysis",
    "node_state",
    "resolve_run",
    "rows",
    "run_executions",
    "run_table",
]


@dataclass(frozen=True)
class PipelineRef:
    """One pipeline of one source; ``asynchronous`` when it records no pipeline-run contexts."""

    source_id: str
    pipeline: str
    asynchronous: bool


_STATE_OF = {"COMPLETE": "executed", "CACHED": "cached", "FAILED": "failed", "CANCELED": "failed",
             "NEW": "running", "RUNNING": "running"}


def node_state(mlmd_state: str | None) -> str:
    """The page's state of an execution from its (effective) MLMD state: executed, cached,
    failed (FAILED, CANCELED, or died), running; ``skipped`` when there is none."""
    return _STATE_OF.get(mlmd_state or "", "failed" if mlmd_state else "skipped")


def rows(con, sql: str, params=()) -> list[dict]:
    """Run ``sql`` and return its rows as dicts."""
    cur = con.execute(sql, list(params))
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def require_analysis(con) -> None:
    """Raise :class:`AnalysisError` (saying to run `frugal analyze`) when the warehouse lacks the analysis."""
    have = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    missing = [t for t in ("analysis_executions", "graphlets", "graphlet_members") if t not in have]
    if missing:
        raise AnalysisError(
            f"the warehouse has not been analysed (no {', '.join(missing)}); "
            "run `frugal analyze --warehouse W` first"
        )


def find_pipeline(con, name: str, source: str | None = None) -> PipelineRef:
    """The pipeline called ``name`` (in ``source`` when given).

    Raises :class:`UnknownPipelineError` when no source has it and
    :class:`AmbiguousPipelineError` when several do and ``source`` is None.
    """
    require_analysis(con)
    found = con.execute(
        """SELECT source_id, bool_and(run_context_id IS NULL) AS asynchronous
           FROM analysis_executions WHERE pipeline = ? AND (? IS NULL OR source_id = ?)
           GROUP BY source_id ORDER BY source_id""",
        [name, source, source],
    ).fetchall()
    if not found:
        known = [r[0] for r in con.execute(
            "SELECT DISTINCT pipeline FROM analysis_executions ORDER BY 1 LIMIT 20").fetchall()]
        where = f" in source {source!r}" if source else ""
        raise UnknownPipelineError(
            f"no pipeline {name!r}{where} in the warehouse; known pipelines: "
            f"{', '.join(map(repr, known)) or 'none (ingest and analyse a store first)'}"
        )
    if len(found) > 1:
        raise AmbiguousPipelineError(
            f"pipeline {name!r} is in several sources ({', '.join(r[0] for r in found)}); "
            "say which with source=SOURCE_ID"
        )
    return PipelineRef(source_id=found[0][0], pipeline=name, asynchronous=bool(found[0][1]))


def members_sql(ref: PipelineRef) -> tuple[str, list]:
    """SQL selecting ``(run, execution_id)`` for every run of ``ref``, and its parameters.

    Synchronous: the executions associated with each pipeline-run context. Asynchronous: the
    execution members of each graphlet, the run named by the trainer's execution id.
    """
    if ref.asynchronous:
        return (
            """SELECT CAST(g.trainer_execution_id AS VARCHAR) AS run, m.entity_id AS execution_id
               FROM graphlets g JOIN graphlet_members m USING (graphlet_id)
               WHERE g.source_id = ? AND g.pipeline = ? AND m.entity = 'execution'""",
            [ref.source_id, ref.pipeline],
        )
    return (
        """SELECT run_context AS run, execution_id FROM analysis_executions
           WHERE source_id = ? AND pipeline = ? AND run_context IS NOT NULL""",
        [ref.source_id, ref.pipeline],
    )


def resolve_run(con, ref: PipelineRef, run: str) -> str:
    """Check that ``run`` names a run of ``ref``; return its canonical name.

    A synchronous pipeline's run is its run context's name; a trainer execution id is
    accepted too and names the run that trainer belongs to.
    """
    sql, params = members_sql(ref)
    run = str(run).strip()
    hit = con.execute(f"SELECT run FROM ({sql}) WHERE run = ? LIMIT 1", params + [run]).fetchone()
    if hit:
        return hit[0]
    if not ref.asynchronous and run.isdigit():
        hit = con.execute(
            f"""SELECT m.run FROM ({sql}) m JOIN graphlets g
                  ON g.source_id = ? AND g.trainer_execution_id = m.execution_id
                WHERE m.execution_id = ? LIMIT 1""",
            params + [ref.source_id, int(run)],
        ).fetchone()
        if hit:
            return hit[0]
    latest = [r[0] for r in con.execute(
        f"""SELECT m.run FROM ({sql}) m JOIN analysis_executions x
              ON x.source_id = ? AND x.execution_id = m.execution_id
            GROUP BY m.run ORDER BY min(x.create_time) DESC LIMIT 3""",
        params + [ref.source_id],
    ).fetchall()]
    what = "trainer execution id" if ref.asynchronous else "pipeline-run context name (or trainer execution id)"
    raise UnknownRunError(
        f"pipeline {ref.pipeline!r} has no run {run!r}; a run is named by its {what}; "
        f"latest runs: {', '.join(map(repr, latest)) or 'none'}"
    )


def run_table(con, ref: PipelineRef) -> list[dict]:
    """One row per run of ``ref`` in time order (a graphlet by its trainer's start): when, how
    many executions in which state,
    compute, wasted and undetermined seconds, graphlets touched, blessed and pushed.

    ``pushed``: the run produced a deployment artifact whose ``pushed`` is 1 (a cached Pusher
    that re-emits an old one did not push). ``blessed``: a blessing the run emitted (a cached
    Evaluator re-emits its original verdict) says blessed; None when the run emitted none.
    """
    members, params = members_sql(ref)
    return rows(
        con,
        f"""
        WITH m AS ({members}),
        x AS (SELECT m.run, x.* FROM m JOIN analysis_executions x
                ON x.source_id = ? AND x.execution_id = m.execution_id),
        w AS (
            SELECT run, min(create_time) AS started_at, max(coalesce(update_time, create_time)) AS ended_at,
                   count(*) AS executions,
                   count(*) FILTER (WHERE state = 'COMPLETE') AS executed,
                   count(*) FILTER (WHERE state = 'CACHED') AS cached,
                   count(*) FILTER (WHERE state IN ('FAILED', 'CANCELED')) AS failed,
                   count(DISTINCT component) AS components,
                   coalesce(sum(duration_s) FILTER (WHERE spent), 0) AS compute_s,
                   coalesce(sum(duration_s) FILTER (WHERE spent AND NOT leads_to_deployment
                                                     AND NOT undetermined), 0) AS wasted_s,
                   coalesce(sum(duration_s) FILTER (WHERE spent AND undetermined), 0) AS undetermined_s,
                   list(DISTINCT graphlet_id ORDER BY graphlet_id) FILTER (WHERE graphlet_id IS NOT NULL) AS graphlets,
                   max(execution_id) FILTER (WHERE role = 'trainer' AND did_work) AS trainer_execution_id,
                   max(state) FILTER (WHERE role = 'trainer') AS trainer_state
            FROM x GROUP BY run
        ),
        o AS (
            SELECT x.run,
                   bool_or(a.pushed) FILTER (WHERE a.role = 'deployment' AND a.producer_id = x.execution_id) AS pushed,
                   bool_or(a.blessed) FILTER (WHERE a.role = 'blessing') AS blessed,
                   max(a.artifact_id) FILTER (WHERE a.role = 'model' AND x.role = 'trainer') AS model_artifact_id
            FROM x JOIN events e ON e.source_id = ? AND e.execution_id = x.execution_id AND e.type = 'OUTPUT'
            JOIN analysis_artifacts a ON a.source_id = e.source_id AND a.artifact_id = e.artifact_id
            GROUP BY x.run
        )
        SELECT w.*, coalesce(o.pushed, false) AS pushed, o.blessed, o.model_artifact_id
        FROM w LEFT JOIN o USING (run)
        LEFT JOIN (SELECT CAST(trainer_execution_id AS VARCHAR) AS run, started_at AS trained_at
                   FROM graphlets WHERE source_id = ? AND pipeline = ? AND ?) t USING (run)
        ORDER BY coalesce(t.trained_at, w.started_at), w.run
        """,
        params + [ref.source_id, ref.source_id, ref.source_id, ref.pipeline, ref.asynchronous],
    )


def run_executions(con, ref: PipelineRef, run: str) -> list[dict]:
    """Every execution of one run in time order, with its state, seconds and waste flags."""
    members, params = members_sql(ref)
    return rows(
        con,
        f"""
        SELECT x.execution_id, x.component, x.type_name, x.role, x.state, x.duration_s, x.spent,
               x.leads_to_deployment, x.undetermined,
               x.spent AND NOT x.leads_to_deployment AND NOT x.undetermined AS wasted,
               x.redundant, x.graphlet_id, x.create_time, x.update_time
        FROM ({members}) m JOIN analysis_executions x
          ON x.source_id = ? AND x.execution_id = m.execution_id
        WHERE m.run = ?
        ORDER BY x.create_time, x.execution_id
        """,
        params + [ref.source_id, run],
    )
