"""Everything a pipeline page shows, as JSON-ready values computed from the warehouse.

- :func:`list_pipelines`: every pipeline with trainings: runs, push rate, compute, wasted
  compute and, when the service's ``decisions`` ledger exists, the last decision.
- :func:`pipeline_dag`: the pipeline's DAG as provenance shows it: its components and the
  artifact types that flowed between them (an input read by an execution comes from the
  component that emitted it in the same run, an OUTPUT winning over a resolver's
  INTERNAL_OUTPUT, else from the artifact's producer), in topological order.
- :func:`run_nodes`: for one run, each component's state (``executed``, ``cached``,
  ``failed``, ``running``; ``skipped`` when the component ran before and after this run but
  not in it; ``absent`` when it was not part of the pipeline yet or any more; in an
  asynchronous pipeline, where a run is one training, ``independent`` for a component that is
  part of no training at all (it runs on its own schedule, e.g. a validator whose output no
  trainer reads) and ``elsewhere`` for one that is only part of other trainers' trainings),
  seconds, and whether its work was wasted.
- :func:`history`: the runs in time order with their outcome and compute, and what changed
  from the run before: components added or removed, configuration and input data
  (:mod:`analysis.run_compare`).
- :func:`decisions`: the pre-run hook's decisions for the pipeline and what happened after.
- :func:`pipeline_view`: all of the above for one page.

Functions take a DuckDB connection (read-only is enough) to an analysed warehouse.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator

import networkx as nx

from analysis.config import AnalysisConfig
from analysis.pipeline_runs import (
    PipelineRef,
    find_pipeline,
    members_sql,
    node_state,
    require_analysis,
    resolve_run,
    rows,
    run_executions,
    run_table,
)
from analysis.run_compare import configurations, diff_configuration, diff_inputs, run_inputs

__all__ = [
    "NODE_STATES",
    "decisions",
    "history",
    "list_pipelines",
    "node_state",
    "pipeline_dag",
    "pipeline_summary",
    "pipeline_view",
    "run_nodes",
    "run_views",
]

# The states a node of a run can be drawn in.
NODE_STATES = ("executed", "cached", "failed", "running", "skipped", "absent", "independent", "elsewhere")

def _iso(t) -> str | None:
    return t.isoformat(sep=" ") if t is not None else None


def _r(v, digits: int = 3):
    return None if v is None else round(float(v), digits)


def _has_table(con, name: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()[0])


def _pipeline_rows(con, where: str = "true", params=()) -> list[dict]:
    found = rows(
        con,
        f"""
        WITH g AS (
            SELECT source_id, pipeline, count(*) AS trainings, count(*) FILTER (WHERE pushed) AS pushed,
                   max(started_at) AS last_training_at
            FROM graphlets GROUP BY ALL
        ),
        x AS (
            SELECT source_id, pipeline, count(DISTINCT run_context_id) AS run_contexts,
                   min(create_time) AS first_seen, max(coalesce(update_time, create_time)) AS last_seen,
                   coalesce(sum(duration_s) FILTER (WHERE spent), 0) AS compute_s,
                   coalesce(sum(duration_s) FILTER (WHERE spent AND NOT leads_to_deployment
                                                     AND NOT undetermined), 0) AS wasted_s,
                   coalesce(sum(duration_s) FILTER (WHERE spent AND undetermined), 0) AS undetermined_s
            FROM analysis_executions GROUP BY ALL
        )
        SELECT g.source_id, g.pipeline, g.trainings, g.pushed, g.last_training_at,
               x.run_contexts = 0 AS asynchronous,
               CASE WHEN x.run_contexts = 0 THEN g.trainings ELSE x.run_contexts END AS runs,
               x.first_seen, x.last_seen, x.compute_s, x.wasted_s, x.undetermined_s
        FROM g JOIN x USING (source_id, pipeline)
        WHERE {where}
        ORDER BY g.pipeline, g.source_id
        """,
        params,
    )
    last = _last_decisions(con)
    out = []
    for r in found:
        out.append({
            "pipeline": r["pipeline"],
            "source_id": r["source_id"],
            "asynchronous": bool(r["asynchronous"]),
            "runs": r["runs"],
            "trainings": r["trainings"],
            "pushed": r["pushed"],
            "push_rate": _r(r["pushed"] / r["trainings"], 4) if r["trainings"] else None,
            "compute_s": _r(r["compute_s"]),
            "wasted_s": _r(r["wasted_s"]),
            "undetermined_s": _r(r["undetermined_s"]),
            "wasted_share": _r(r["wasted_s"] / r["compute_s"], 4) if r["compute_s"] else None,
            "first_seen": _iso(r["first_seen"]),
            "last_seen": _iso(r["last_seen"]),
            "last_training_at": _iso(r["last_training_at"]),
            "last_decision": last.get((r["source_id"], r["pipeline"])) or last.get((None, r["pipeline"])),
        })
    return out


def list_pipelines(con) -> list[dict]:
    """Every (source, pipeline) with at least one training, by name."""
    require_analysis(con)
    return _pipeline_rows(con)


def pipeline_summary(con, ref: PipelineRef) -> dict:
    """The index figures of one pipeline."""
    found = _pipeline_rows(con, "g.source_id = ? AND g.pipeline = ?", [ref.source_id, ref.pipeline])
    if found:
        return found[0]
    # a pipeline without trainings still has runs and compute
    return {"pipeline": ref.pipeline, "source_id": ref.source_id, "asynchronous": ref.asynchronous,
            "runs": len(run_table(con, ref)), "trainings": 0, "pushed": 0, "push_rate": None,
            "compute_s": None, "wasted_s": None, "undetermined_s": None, "wasted_share": None,
            "first_seen": None, "last_seen": None, "last_training_at": None, "last_decision": None}


# ----------------------------------------------------------------------------------- decisions

_DECISION_COLUMNS = (
    "decision_id", "decided_at", "source_id", "pipeline", "lane", "run_id", "action", "probability",
    "threshold", "policy_version", "reasons", "fallback", "rule", "inputs", "cost_s", "outcome",
    "outcome_graphlet_id", "outcome_pushed", "matched_at",
)


def _decision(r: dict) -> dict:
    d = {k: r.get(k) for k in _DECISION_COLUMNS}
    for k in ("decided_at", "matched_at"):
        d[k] = _iso(d[k]) if hasattr(d[k], "isoformat") else d[k]
    for k in ("reasons", "inputs"):
        if isinstance(d[k], str):
            try:
                d[k] = json.loads(d[k])
            except ValueError:
                d[k] = [d[k]] if k == "reasons" else d[k]
    if d["reasons"] is None:
        d["reasons"] = []
    for k in ("probability", "threshold", "cost_s"):
        d[k] = _r(d[k], 4)
    return d


def _last_decisions(con) -> dict[tuple, dict]:
    if not _has_table(con, "decisions"):
        return {}
    found = rows(con, """SELECT * FROM decisions
                         QUALIFY row_number() OVER (PARTITION BY source_id, pipeline
                                                    ORDER BY decided_at DESC, decision_id DESC) = 1""")
    return {(r.get("source_id"), r.get("pipeline")): _decision(r) for r in found}


def decisions(con, ref: PipelineRef, limit: int = 100) -> list[dict]:
    """The latest ``limit`` decisions for the pipeline, newest first, each with the run its
    outcome graphlet belongs to (``outcome_run``) when the ledger matched one."""
    if not _has_table(con, "decisions"):
        return []
    found = rows(
        con,
        """SELECT d.*, CASE WHEN g.run_context IS NOT NULL THEN g.run_context
                            ELSE CAST(g.trainer_execution_id AS VARCHAR) END AS outcome_run
           FROM decisions d
           LEFT JOIN graphlets g ON g.graphlet_id = d.outcome_graphlet_id
           WHERE d.pipeline = ? AND (d.source_id IS NULL OR d.source_id = ?)
           ORDER BY d.decided_at DESC, d.decision_id DESC LIMIT ?""",
        [ref.pipeline, ref.source_id, limit],
    )
    return [{**_decision(r), "outcome_run": r.get("outcome_run")} for r in found]


# ------------------------------------------------------------------------------------- the DAG

def pipeline_dag(con, ref: PipelineRef) -> dict:
    """``{"nodes": [{"component", "type_name", "role", "executions", "first_seen", "last_seen"}],
    "edges": [{"from", "to", "artifact_types": [...], "events"}]}`` in topological order."""
    nodes = rows(
        con,
        """SELECT component, arg_max(type_name, create_time) AS type_name, arg_max(role, create_time) AS role,
                  count(*) AS executions, min(create_time) AS first_seen,
                  max(coalesce(update_time, create_time)) AS last_seen
           FROM analysis_executions WHERE source_id = ? AND pipeline = ?
           GROUP BY component""",
        [ref.source_id, ref.pipeline],
    )
    edges = rows(
        con,
        """
        WITH px AS (SELECT execution_id, component, run_context_id FROM analysis_executions
                    WHERE source_id = ? AND pipeline = ?),
        ev AS (SELECT e.execution_id, e.artifact_id, e.type FROM events e
               WHERE e.source_id = ? AND e.execution_id IN (SELECT execution_id FROM px)),
        outs AS (SELECT DISTINCT ev.artifact_id, px.component, px.run_context_id, ev.type = 'OUTPUT' AS real
                 FROM ev JOIN px USING (execution_id) WHERE ev.type IN ('OUTPUT', 'INTERNAL_OUTPUT')),
        ins AS (SELECT DISTINCT ev.artifact_id, ev.execution_id, px.component, px.run_context_id
                FROM ev JOIN px USING (execution_id) WHERE ev.type = 'INPUT'),
        same_run AS (
            SELECT i.execution_id, i.artifact_id, o.component AS src
            FROM ins i JOIN outs o ON o.artifact_id = i.artifact_id AND o.run_context_id = i.run_context_id
            -- a real output wins over a resolver's internal re-emission of the same artifact
            QUALIFY rank() OVER (PARTITION BY i.execution_id, i.artifact_id ORDER BY o.real DESC) = 1
        ),
        produced AS (
            SELECT i.execution_id, i.artifact_id, p.component AS src
            FROM ins i
            JOIN analysis_artifacts a ON a.source_id = ? AND a.artifact_id = i.artifact_id
            JOIN px p ON p.execution_id = a.producer_id
            ANTI JOIN same_run s ON s.execution_id = i.execution_id AND s.artifact_id = i.artifact_id
        ),
        links AS (SELECT * FROM same_run UNION ALL SELECT * FROM produced)
        SELECT l.src AS "from", i.component AS "to",
               list(DISTINCT coalesce(a.type_name, '?') ORDER BY coalesce(a.type_name, '?')) AS artifact_types,
               count(*) AS events
        FROM links l
        JOIN ins i USING (execution_id, artifact_id)
        JOIN artifacts a ON a.source_id = ? AND a.artifact_id = l.artifact_id
        WHERE l.src <> i.component
        GROUP BY ALL
        ORDER BY 1, 2
        """,
        [ref.source_id, ref.pipeline, ref.source_id, ref.source_id, ref.source_id],
    )
    graph = nx.DiGraph()
    first = {n["component"]: (n["first_seen"], n["component"]) for n in nodes}
    graph.add_nodes_from(first)
    graph.add_edges_from((e["from"], e["to"]) for e in edges)
    try:
        order = list(nx.lexicographical_topological_sort(graph, key=lambda c: first[c]))
    except nx.NetworkXUnfeasible:  # a cycle (a component reading another's later output)
        order = sorted(first, key=lambda c: first[c])
    by_name = {n["component"]: n for n in nodes}
    out_nodes = []
    for c in order:
        n = by_name[c]
        out_nodes.append({**n, "first_seen": _iso(n["first_seen"]), "last_seen": _iso(n["last_seen"])})
    return {"nodes": out_nodes, "edges": edges}


def _run_components(con, ref: PipelineRef) -> dict[str, set[str]]:
    members, params = members_sql(ref)
    comps: dict[str, set[str]] = defaultdict(set)
    for run, comp in con.execute(
        f"""SELECT m.run, x.component FROM ({members}) m JOIN analysis_executions x
              ON x.source_id = ? AND x.execution_id = m.execution_id GROUP BY ALL""",
        params + [ref.source_id],
    ).fetchall():
        comps[run].add(comp)
    return comps


def _run_trainers(con, ref: PipelineRef) -> dict[str, str]:
    """``{run: trainer component}`` of an asynchronous pipeline (a run is one trainer's
    training); empty for a synchronous one."""
    if not ref.asynchronous:
        return {}
    return dict(con.execute(
        """SELECT CAST(g.trainer_execution_id AS VARCHAR), x.component
           FROM graphlets g JOIN analysis_executions x
             ON x.source_id = g.source_id AND x.execution_id = g.trainer_execution_id
           WHERE g.source_id = ? AND g.pipeline = ?""",
        [ref.source_id, ref.pipeline],
    ).fetchall())


def _missing_state(c: str, run: str, order: list[str], components: dict[str, set[str]],
                   trainers: dict[str, str]) -> str:
    """The state of component ``c`` in ``run`` where it has no execution.

    Synchronous: ``skipped`` when it ran in an earlier and a later run, else ``absent``.
    Asynchronous (a run is one training): ``independent`` when no training holds it (it runs
    on its own schedule), ``elsewhere`` when only trainings of other trainers hold it, else
    ``skipped``/``absent`` as above among the trainings of this run's trainer.
    """
    if trainers:
        if not any(c in comps for comps in components.values()):
            return "independent"
        lane = trainers.get(run)
        order = [r for r in order if trainers.get(r) == lane]
        if not any(c in components.get(r, ()) for r in order):
            return "elsewhere"
    here = order.index(run)
    seen = [i for i, r in enumerate(order) if c in components.get(r, ())]
    return "skipped" if seen and seen[0] < here < seen[-1] else "absent"


def run_nodes(con, ref: PipelineRef, run: str, dag: dict | None = None,
              order: list[str] | None = None, components: dict[str, set[str]] | None = None,
              trainers: dict[str, str] | None = None) -> list[dict]:
    """Each DAG component's state, seconds and waste in ``run`` (a checked run name).

    ``seconds``: the time its executions in the run took (a cached one: the cache lookup);
    ``compute_s``: of that, what spent compute (not cached); ``wasted``: that compute led to no
    deployment (None when it spent none; ``undetermined`` while too recent to tell).
    """
    dag = dag or pipeline_dag(con, ref)
    if order is None:
        order = [r["run"] for r in run_table(con, ref)]
    components = components if components is not None else _run_components(con, ref)
    trainers = trainers if trainers is not None else _run_trainers(con, ref)
    execs = defaultdict(list)
    for x in run_executions(con, ref, run):
        execs[x["component"]].append(x)
    out = []
    for n in dag["nodes"]:
        c = n["component"]
        xs = execs.get(c, [])
        if xs:
            last = xs[-1]
            spent = [x for x in xs if x["spent"]]
            compute = sum(float(x["duration_s"] or 0) for x in spent)
            state = node_state(last["state"])
            wasted = any(x["wasted"] for x in spent) if spent else None
            undetermined = any(x["undetermined"] for x in spent)
            out.append({
                "component": c, "type_name": last["type_name"], "role": last["role"], "state": state,
                "mlmd_state": last["state"], "seconds": _r(sum(float(x["duration_s"] or 0) for x in xs)),
                "compute_s": _r(compute), "wasted": wasted, "undetermined": undetermined,
                "redundant": any(x["redundant"] for x in xs),
                "execution_ids": [x["execution_id"] for x in xs],
                "graphlet_id": next((x["graphlet_id"] for x in reversed(xs) if x["graphlet_id"]), None),
            })
            continue
        state = _missing_state(c, run, order, components, trainers)
        out.append({"component": c, "type_name": n["type_name"], "role": n["role"], "state": state,
                    "mlmd_state": None, "seconds": None, "compute_s": None, "wasted": None,
                    "undetermined": False, "redundant": False, "execution_ids": [], "graphlet_id": None})
    return out


# ------------------------------------------------------------------------------------ history

def _run_row(r: dict) -> dict:
    return {
        "run": r["run"], "started_at": _iso(r["started_at"]), "ended_at": _iso(r["ended_at"]),
        "executions": r["executions"], "executed": r["executed"], "cached": r["cached"],
        "failed": r["failed"], "components": r["components"],
        "compute_s": _r(r["compute_s"]), "wasted_s": _r(r["wasted_s"]),
        "undetermined_s": _r(r["undetermined_s"]),
        "graphlets": list(r["graphlets"] or []), "trainer_execution_id": r["trainer_execution_id"],
        "trainer_state": node_state(r["trainer_state"]) if r["trainer_state"] else None,
        "model_artifact_id": r["model_artifact_id"],
        "blessed": r["blessed"], "pushed": bool(r["pushed"]),
    }


def history(con, ref: PipelineRef, config: AnalysisConfig | None = None,
            table: list[dict] | None = None, components: dict[str, set[str]] | None = None) -> list[dict]:
    """The runs in time order, each with ``changes`` from the run before it.

    ``changes``: ``components_added`` (first run of a component), ``components_removed`` (a
    component that ran in the previous run and never again), ``properties_changed`` and
    ``inputs_changed`` as in :func:`analysis.run_compare.compare`.
    """
    table = table if table is not None else run_table(con, ref)
    components = components if components is not None else _run_components(con, ref)
    confs = configurations(con, ref, config)
    inputs = run_inputs(con, ref, config)
    order = [r["run"] for r in table]
    seen_before: set[str] = set()
    later: list[set[str]] = [set() for _ in order]
    acc: set[str] = set()
    for i in range(len(order) - 1, -1, -1):
        later[i] = set(acc)  # components of runs after i
        acc |= components.get(order[i], set())
    out = []
    for i, r in enumerate(table):
        run = r["run"]
        comps = components.get(run, set())
        row = _run_row(r)
        row["index"] = i + 1
        if i == 0:
            row["changes"] = None
        else:
            prev = order[i - 1]
            prev_comps = components.get(prev, set())
            removed = sorted(c for c in prev_comps if c not in comps and c not in later[i])
            row["changes"] = {
                "previous": prev,
                "components_added": sorted(comps - seen_before),
                "components_removed": removed,
                "properties_changed": diff_configuration(confs.get(prev, {}), confs.get(run, {})),
                "inputs_changed": diff_inputs(inputs.get(prev, {}), inputs.get(run, {})),
            }
        seen_before |= comps
        out.append(row)
    return out


def pipeline_view(con, name: str, run: str | None = None, source: str | None = None,
                  config: AnalysisConfig | None = None, decision_limit: int = 100) -> dict:
    """The whole pipeline page: summary, DAG, the chosen run's nodes (default: the latest run),
    the history of runs with their changes, and the decisions."""
    ref = find_pipeline(con, name, source)
    chosen = resolve_run(con, ref, run) if run is not None else None
    return next(run_views(con, ref, [chosen] if chosen is not None else None, config, decision_limit))


def run_views(con, ref: PipelineRef, runs: list[str] | None = None, config: AnalysisConfig | None = None,
              decision_limit: int = 100) -> Iterator[dict]:
    """:func:`pipeline_view` for each of ``runs`` (checked names; None: the latest run only),
    computing what the pages share once (a static report writes one page per run)."""
    table = run_table(con, ref)
    order = [r["run"] for r in table]
    dag = pipeline_dag(con, ref)
    components = _run_components(con, ref)
    trainers = _run_trainers(con, ref)
    hist = history(con, ref, config, table=table, components=components)
    base = {
        "pipeline": ref.pipeline,
        "source_id": ref.source_id,
        "asynchronous": ref.asynchronous,
        "run_kind": "graphlet" if ref.asynchronous else "pipeline-run",
        "summary": pipeline_summary(con, ref),
        "dag": dag,
        "run": None,
        "runs": hist,
        "decisions": decisions(con, ref, decision_limit),
    }
    by_name = {h["run"]: h for h in hist}
    for run in (runs if runs is not None else order[-1:] or [None]):
        if run is None:
            yield base
            continue
        yield {**base, "run": {**by_name[run], "nodes": run_nodes(con, ref, run, dag, order, components, trainers)}}
