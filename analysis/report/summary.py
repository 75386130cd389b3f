"""The report's numbers: one JSON-ready dict computed with SQL over the analysed warehouse."""

from __future__ import annotations

__all__ = ["compute_summary", "quantiles"]

TOP_N = 10


def _rows(con, sql: str, params=None) -> list[dict]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _num(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v
    return round(float(v), 6)


def quantiles(values: list[float]) -> dict:
    """p10/p50/p90/max of a list (nearest-rank), None entries when empty."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return {"n": 0, "p10": None, "p50": None, "p90": None, "max": None}

    def q(p: float):
        return _num(vals[min(len(vals) - 1, int(p * len(vals)))])

    return {"n": len(vals), "p10": q(0.1), "p50": q(0.5), "p90": q(0.9), "max": _num(vals[-1])}


def compute_summary(con, top_n: int = TOP_N) -> dict:
    """Every figure the report shows, from the analysis tables and views."""
    ov = _rows(con, """
        SELECT (SELECT count(*) FROM analysis_state) AS sources,
               (SELECT count(DISTINCT (source_id, pipeline)) FROM analysis_executions) AS pipelines,
               (SELECT count(DISTINCT (source_id, run_context_id)) FROM analysis_executions
                 WHERE run_context_id IS NOT NULL) AS pipeline_runs,
               (SELECT count(*) FROM analysis_executions) AS executions,
               (SELECT count(*) FROM graphlets) AS trainings,
               (SELECT count(*) FROM graphlets WHERE pushed) AS pushed_trainings,
               (SELECT count(*) FROM analysis_artifacts WHERE role = 'deployment' AND pushed
                   AND producer_id IS NOT NULL) AS pushes,
               (SELECT coalesce(sum(duration_s), 0) / 3600 FROM execution_waste) AS compute_h,
               (SELECT coalesce(sum(duration_s) FILTER (WHERE wasted), 0) / 3600 FROM execution_waste) AS wasted_h,
               (SELECT coalesce(sum(duration_s) FILTER (WHERE undetermined), 0) / 3600 FROM execution_waste) AS undetermined_h,
               (SELECT count(*) FROM component_runs WHERE redundant) AS redundant_runs,
               (SELECT coalesce(sum(duration_s) FILTER (WHERE redundant), 0) / 3600 FROM component_runs) AS redundant_h,
               (SELECT min(create_time) FROM analysis_executions) AS first_seen,
               (SELECT max(coalesce(update_time, create_time)) FROM analysis_executions) AS last_seen
    """)[0]
    overview = {k: (str(v) if k in ("first_seen", "last_seen") else _num(v)) for k, v in ov.items()}
    t = overview["trainings"] or 0
    overview["push_rate"] = _num(overview["pushed_trainings"] / t) if t else None
    c = overview["compute_h"] or 0
    overview["wasted_share"] = _num(overview["wasted_h"] / c) if c else None
    overview["redundant_share"] = _num(overview["redundant_h"] / c) if c else None

    lifespan = [r["d"] for r in _rows(con, """
        SELECT epoch(max(coalesce(update_time, create_time)) - min(create_time)) / 86400 AS d
        FROM analysis_executions GROUP BY source_id, pipeline""")]
    per_pipeline = [r["n"] for r in _rows(con, """
        SELECT count(g.graphlet_id) AS n FROM (SELECT DISTINCT source_id, pipeline FROM analysis_executions) p
        LEFT JOIN graphlets g USING (source_id, pipeline) GROUP BY p.source_id, p.pipeline""")]
    sizes = [r["n"] for r in _rows(con, "SELECT n_executions AS n FROM graphlets")]
    distributions = {
        "pipeline_lifespan_days": quantiles(lifespan),
        "trainings_per_pipeline": quantiles(per_pipeline),
        "graphlet_executions": quantiles(sizes),
    }
    by_component = [{k: _num(v) if k != "role" and k != "component_type" else v for k, v in r.items()}
                    for r in _rows(con, f"""
        SELECT coalesce(role, 'unmapped') AS role, component_type,
               count(*) AS executions,
               count(*) FILTER (WHERE wasted) AS wasted_executions,
               coalesce(sum(duration_s), 0) / 3600 AS compute_h,
               coalesce(sum(duration_s) FILTER (WHERE wasted), 0) / 3600 AS wasted_h
        FROM execution_waste GROUP BY ALL ORDER BY wasted_h DESC, component_type LIMIT {top_n}""")]
    by_pipeline = [{k: _num(v) if k not in ("source_id", "pipeline") else v for k, v in r.items()}
                   for r in _rows(con, f"""
        SELECT source_id, pipeline, count(DISTINCT graphlet_id) FILTER (WHERE role = 'trainer') AS trainings,
               coalesce(sum(duration_s), 0) / 3600 AS compute_h,
               coalesce(sum(duration_s) FILTER (WHERE wasted), 0) / 3600 AS wasted_h
        FROM execution_waste GROUP BY ALL ORDER BY wasted_h DESC, pipeline LIMIT {top_n}""")]
    redundant = [{k: _num(v) if k not in ("component_type",) else v for k, v in r.items()}
                 for r in _rows(con, f"""
        SELECT component_type, count(*) FILTER (WHERE redundant) AS redundant_runs, count(*) AS runs,
               coalesce(sum(duration_s) FILTER (WHERE redundant), 0) / 3600 AS redundant_h
        FROM component_runs GROUP BY ALL HAVING count(*) FILTER (WHERE redundant) > 0
        ORDER BY redundant_h DESC, component_type LIMIT {top_n}""")]
    busiest = _rows(con, """
        SELECT source_id, pipeline, count(*) AS trainings, count(*) FILTER (WHERE pushed) AS pushed
        FROM graphlets GROUP BY ALL ORDER BY trainings DESC, pipeline LIMIT 3""")
    unmapped = _rows(con, """
        SELECT kind, type_name, sum(uses) AS uses FROM unmapped_types GROUP BY ALL ORDER BY uses DESC, type_name""")
    examples = {}
    for key, cond in (("pushed", "g.pushed"), ("wasted", "NOT g.pushed AND w.wasted")):
        r = _rows(con, f"""
            SELECT g.graphlet_id FROM graphlets g
            JOIN execution_waste w ON w.source_id = g.source_id AND w.execution_id = g.trainer_execution_id
            WHERE {cond}
            ORDER BY g.n_executions > 12, -- legible: the largest with at most 12 executions
                     CASE WHEN g.n_executions <= 12 THEN -g.n_executions ELSE g.n_executions END,
                     g.started_at DESC, g.graphlet_id LIMIT 1""")
        examples[key] = r[0]["graphlet_id"] if r else None
    return {
        "overview": overview,
        "distributions": distributions,
        "waste_by_component": by_component,
        "waste_by_pipeline": by_pipeline,
        "redundant_by_component": redundant,
        "busiest_pipelines": [{k: _num(v) if k not in ("source_id", "pipeline") else v for k, v in r.items()}
                              for r in busiest],
        "unmapped_types": [{**r, "uses": int(r["uses"])} for r in unmapped],
        "example_graphlets": examples,
    }
