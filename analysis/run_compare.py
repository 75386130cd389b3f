"""What differs between two runs of a pipeline: structure, configuration, input data, outcome.

- **Structure**: the components that ran in one run and not in the other.
- **Configuration**: every execution property per component, bookkeeping left out (the
  analysis config's volatile names and every ``__name__`` property). A property holding a JSON
  object or list (TFX's ``custom_config``, ``train_args``, ``input_config``) is compared leaf by
  leaf, so a hyperparameter that moved shows as ``custom_config.learning_rate`` and nothing
  else. A CACHED execution did no work: its configuration is that of the execution whose
  outputs it re-emits (TFX records a cache hit with slightly different properties, e.g. the
  unresolved ``span-{SPAN}`` pattern), so a fully cached run equals the run it reused.
- **Inputs**: the data that enters the run: the outputs of its ingestion executions (role
  ``data-ingest``, or no input and not a resolver; a cached one re-emits the data it read
  before) and any input artifact that no execution produced. Compared by artifact, and where
  both sides record a content fingerprint by content: a new artifact holding the same data is
  no change. A change is ``new span``, ``new data`` (same span, other content: appended
  files), ``added``, ``removed`` or ``other artifact``.
- **Outcome**: blessed, pushed, the trainer and its model, compute and wasted seconds, and per
  component the state and seconds in each run.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from analysis.config import AnalysisConfig
from analysis.pipeline_runs import (
    PipelineRef,
    find_pipeline,
    members_sql,
    node_state,
    resolve_run,
    rows,
    run_executions,
    run_table,
)
from analysis.runs import BOOKKEEPING_PROPERTIES

__all__ = [
    "compare",
    "compare_runs",
    "configurations",
    "diff_configuration",
    "diff_inputs",
    "flatten_property",
    "run_inputs",
]

_SPAN_NAMES = ("span",)
_VERSION_NAMES = ("version",)


def flatten_property(name: str, value: Any) -> dict[str, Any]:
    """``{name: value}``, or for a JSON object/list held in a string one entry per leaf
    (``custom_config.learning_rate``, ``input_config.splits.0.pattern``)."""
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {name: value}
        out: dict[str, Any] = {}

        def walk(prefix: str, node: Any) -> None:
            if isinstance(node, dict) and node:
                for k in sorted(node):
                    walk(f"{prefix}.{k}", node[k])
            elif isinstance(node, list) and node:
                for i, v in enumerate(node):
                    walk(f"{prefix}.{i}", v)
            else:
                out[prefix] = node

        walk(name, parsed)
        return out
    return {name: value}


def _value(r: dict) -> Any:
    kind = r["value_type"]
    if kind == "int":
        return r["int_value"]
    if kind == "double":
        return r["double_value"]
    if kind == "bool":
        return r["bool_value"]
    if r["string_value"] is not None:
        return r["string_value"]
    return next((r[k] for k in ("int_value", "double_value", "bool_value") if r[k] is not None), None)


def configurations(con, ref: PipelineRef, config: AnalysisConfig | None = None,
                   runs: list[str] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """``{run: {component: {property: value}}}`` for every run of ``ref`` (or just ``runs``).

    One query for the whole pipeline. A component that ran more than once in a run takes its
    latest execution; a CACHED execution takes the properties of the execution it reused.
    """
    config = config or AnalysisConfig()
    volatile = sorted(set(config.volatile_properties) | set(BOOKKEEPING_PROPERTIES))
    members, params = members_sql(ref)
    only = "AND m.run IN (SELECT unnest(?::VARCHAR[]))" if runs is not None else ""
    found = rows(
        con,
        f"""
        WITH m AS ({members}),
        x AS (SELECT m.run, x.execution_id, x.component, x.state, x.create_time
              FROM m JOIN analysis_executions x ON x.source_id = ? AND x.execution_id = m.execution_id
              WHERE true {only}),
        reused AS (  -- a cached execution stands for the producer of what it re-emits
            SELECT e.execution_id, min(a.producer_id) AS original
            FROM events e
            JOIN x ON x.execution_id = e.execution_id AND x.state = 'CACHED'
            JOIN analysis_artifacts a ON a.source_id = e.source_id AND a.artifact_id = e.artifact_id
            JOIN analysis_executions p ON p.source_id = a.source_id AND p.execution_id = a.producer_id
            WHERE e.source_id = ? AND e.type = 'OUTPUT' AND p.component = x.component
              AND a.producer_id <> e.execution_id
            GROUP BY e.execution_id
        ),
        latest AS (
            SELECT x.run, x.component, coalesce(r.original, x.execution_id) AS effective_id
            FROM x LEFT JOIN reused r USING (execution_id)
            QUALIFY row_number() OVER (PARTITION BY x.run, x.component
                                       ORDER BY x.create_time DESC, x.execution_id DESC) = 1
        )
        SELECT l.run, l.component, p.name, p.is_custom, p.value_type,
               p.int_value, p.double_value, p.string_value, p.bool_value
        FROM latest l JOIN properties p
          ON p.source_id = ? AND p.entity = 'execution' AND p.entity_id = l.effective_id
        WHERE p.name NOT IN (SELECT unnest(?::VARCHAR[]))
          AND NOT (starts_with(p.name, '__') AND ends_with(p.name, '__'))
        ORDER BY l.run, l.component, p.name, p.is_custom
        """,
        params + [ref.source_id] + ([runs] if runs is not None else []) + [ref.source_id, ref.source_id, volatile],
    )
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
    for r in found:
        props = out[r["run"]][r["component"]]
        for k, v in flatten_property(r["name"], _value(r)).items():
            props.setdefault(k, v)  # declared property first (is_custom false sorts first)
    # every run has an entry, also one whose components record no properties
    for run in (runs if runs is not None else [r["run"] for r in run_table(con, ref)]):
        out[run]
    return {run: {c: dict(p) for c, p in comps.items()} for run, comps in out.items()}


def diff_configuration(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]],
                       order: list[str] | None = None) -> list[dict]:
    """Changed properties of the components present in both ``a`` and ``b``."""
    common = [c for c in (order or sorted(a)) if c in a and c in b]
    common += sorted(c for c in a if c in b and c not in common)
    changed = []
    for comp in common:
        pa, pb = a[comp], b[comp]
        for name in sorted(set(pa) | set(pb)):
            if name in pa and name in pb:
                if _same(pa[name], pb[name]):
                    continue
                change = "changed"
            else:
                change = "added" if name in pb else "removed"
            changed.append({"component": comp, "property": name, "a": pa.get(name), "b": pb.get(name),
                            "change": change})
    return changed


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, bool) or isinstance(y, bool):
        return x == y and type(x) is type(y)
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        return float(x) == float(y)
    return x == y


def run_inputs(con, ref: PipelineRef, config: AnalysisConfig | None = None,
               runs: list[str] | None = None) -> dict[str, dict[tuple[str, str], list[dict]]]:
    """``{run: {(component, key): [artifact, ...]}}``: the data entering each run.

    An artifact is ``{"artifact_id", "type", "uri", "span", "version", "fingerprint",
    "created_at"}``; ``span``/``version`` are the artifact's properties of that name (custom
    first: current TFX writes ``Examples.span`` as a custom property), ``fingerprint`` the
    first of the analysis config's fingerprint properties it has.
    """
    config = config or AnalysisConfig()
    members, params = members_sql(ref)
    only = "AND m.run IN (SELECT unnest(?::VARCHAR[]))" if runs is not None else ""
    found = rows(
        con,
        f"""
        WITH m AS ({members}),
        x AS (SELECT m.run, x.execution_id, x.component, x.role
              FROM m JOIN analysis_executions x ON x.source_id = ? AND x.execution_id = m.execution_id
              WHERE true {only}),
        ev AS (SELECT e.* FROM events e WHERE e.source_id = ?
                 AND e.execution_id IN (SELECT execution_id FROM x)),
        ingest AS (
            SELECT x.* FROM x
            WHERE x.role = 'data-ingest'
               OR (x.role IS DISTINCT FROM 'resolver'
                   AND NOT EXISTS (SELECT 1 FROM ev WHERE ev.execution_id = x.execution_id AND ev.type = 'INPUT'))
        ),
        roots AS (
            SELECT i.run, i.component, coalesce(ev.path_key, '') AS key, ev.artifact_id
            FROM ingest i JOIN ev ON ev.execution_id = i.execution_id AND ev.type = 'OUTPUT'
            UNION
            SELECT x.run, x.component, coalesce(ev.path_key, ''), ev.artifact_id
            FROM x JOIN ev ON ev.execution_id = x.execution_id AND ev.type = 'INPUT'
            JOIN analysis_artifacts a ON a.source_id = ev.source_id AND a.artifact_id = ev.artifact_id
            WHERE a.producer_id IS NULL AND x.component NOT IN (SELECT component FROM ingest)
        ),
        props AS (
            SELECT p.entity_id AS artifact_id,
                   arg_min(coalesce(CAST(p.int_value AS VARCHAR), p.string_value, CAST(p.double_value AS VARCHAR)),
                           NOT p.is_custom) FILTER (WHERE p.name IN (SELECT unnest(?::VARCHAR[]))) AS span,
                   arg_min(coalesce(CAST(p.int_value AS VARCHAR), p.string_value, CAST(p.double_value AS VARCHAR)),
                           NOT p.is_custom) FILTER (WHERE p.name IN (SELECT unnest(?::VARCHAR[]))) AS version,
                   arg_min(coalesce(p.string_value, CAST(p.int_value AS VARCHAR)),
                           list_position(?::VARCHAR[], p.name)) FILTER (WHERE list_contains(?::VARCHAR[], p.name)) AS fingerprint
            FROM properties p
            WHERE p.source_id = ? AND p.entity = 'artifact'
              AND p.entity_id IN (SELECT artifact_id FROM roots)
            GROUP BY p.entity_id
        )
        SELECT r.run, r.component, r.key, a.artifact_id, a.type_name AS type, a.uri,
               p.span, p.version, p.fingerprint, a.create_time AS created_at
        FROM roots r
        JOIN artifacts a ON a.source_id = ? AND a.artifact_id = r.artifact_id
        LEFT JOIN props p ON p.artifact_id = r.artifact_id
        ORDER BY r.run, r.component, r.key, a.artifact_id
        """,
        params + [ref.source_id] + ([runs] if runs is not None else []) + [
            ref.source_id, list(_SPAN_NAMES), list(_VERSION_NAMES),
            list(config.fingerprint_properties), list(config.fingerprint_properties),
            ref.source_id, ref.source_id],
    )
    out: dict[str, dict[tuple[str, str], list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in found:
        art = {k: r[k] for k in ("artifact_id", "type", "uri", "span", "version", "fingerprint", "created_at")}
        for k in ("span", "version"):
            if art[k] is not None and str(art[k]).lstrip("-").isdigit():
                art[k] = int(art[k])
        art["created_at"] = _iso(art["created_at"])
        out[r["run"]][(r["component"], r["key"])].append(art)
    return {run: dict(v) for run, v in out.items()}


def _iso(t) -> str | None:
    return t.isoformat(sep=" ") if t is not None else None


def _content(art: dict) -> tuple:
    """What an input artifact holds: its fingerprint and span where recorded, else itself."""
    if art.get("fingerprint") is not None:
        return ("fp", art["fingerprint"], art.get("span"), art.get("version"))
    return ("id", art["artifact_id"])


def diff_inputs(a: dict[tuple[str, str], list[dict]], b: dict[tuple[str, str], list[dict]]) -> list[dict]:
    """Inputs of ``b`` that differ from ``a``'s, per (component, key)."""
    changed = []
    for comp, key in sorted(set(a) | set(b)):
        xa, xb = a.get((comp, key), []), b.get((comp, key), [])
        if sorted(map(_content, xa), key=repr) == sorted(map(_content, xb), key=repr):
            continue
        spans_a = {x.get("span") for x in xa} - {None}
        spans_b = {x.get("span") for x in xb} - {None}
        if not xa:
            change = "added"
        elif not xb:
            change = "removed"
        elif spans_a and spans_b and spans_a != spans_b:
            change = "new span"
        elif all(x.get("fingerprint") is not None for x in xa + xb):
            change = "new data"
        else:
            change = "other artifact"
        types = sorted({x["type"] for x in xa + xb if x.get("type")})
        changed.append({"component": comp, "key": key, "type": ", ".join(types), "change": change,
                        "a": xa, "b": xb})
    return changed


def _outcome(run: dict) -> dict:
    keys = ("run", "started_at", "ended_at", "blessed", "pushed", "trainer_execution_id", "trainer_state",
            "model_artifact_id", "compute_s", "wasted_s", "undetermined_s", "executed", "cached", "failed",
            "graphlets")
    out = {k: run.get(k) for k in keys}
    for k in ("started_at", "ended_at"):
        out[k] = _iso(out[k])
    for k in ("compute_s", "wasted_s", "undetermined_s"):
        out[k] = round(float(out[k] or 0), 3)
    out["trainer_state"] = node_state(out["trainer_state"]) if out["trainer_state"] else None
    out["graphlets"] = list(out["graphlets"] or [])
    return out


def _components(con, ref: PipelineRef, run: str) -> dict[str, dict]:
    comps: dict[str, dict] = {}
    for x in run_executions(con, ref, run):
        c = comps.setdefault(x["component"], {"state": None, "mlmd_state": None, "seconds": 0.0,
                                              "execution_ids": []})
        c["state"], c["mlmd_state"] = node_state(x["state"]), x["state"]
        c["seconds"] = round(c["seconds"] + float(x["duration_s"] or 0), 3)
        c["execution_ids"].append(x["execution_id"])
    return comps


def compare_runs(con, ref: PipelineRef, a: str, b: str, config: AnalysisConfig | None = None) -> dict:
    """:func:`compare` for a resolved pipeline; ``a`` and ``b`` are checked run names."""
    a, b = resolve_run(con, ref, a), resolve_run(con, ref, b)
    table = {r["run"]: r for r in run_table(con, ref)}
    ca, cb = _components(con, ref, a), _components(con, ref, b)
    order = list(dict.fromkeys(list(ca) + list(cb)))
    confs = configurations(con, ref, config, runs=sorted({a, b}))
    ins = run_inputs(con, ref, config, runs=sorted({a, b}))
    return {
        "pipeline": ref.pipeline,
        "source_id": ref.source_id,
        "run_kind": "graphlet" if ref.asynchronous else "pipeline-run",
        "a": a,
        "b": b,
        "components_added": [c for c in cb if c not in ca],
        "components_removed": [c for c in ca if c not in cb],
        "properties_changed": diff_configuration(confs.get(a, {}), confs.get(b, {}), order),
        "inputs_changed": diff_inputs(ins.get(a, {}), ins.get(b, {})),
        "outcome": {"a": _outcome(table[a]), "b": _outcome(table[b])},
        "components": [
            {"component": c,
             "a": ca.get(c), "b": cb.get(c)}
            for c in order
        ],
    }


def compare(con, pipeline: str, a: str, b: str, source: str | None = None,
            config: AnalysisConfig | None = None) -> dict:
    """What differs between runs ``a`` and ``b`` of ``pipeline`` (JSON-ready).

    ``{"components_added", "components_removed", "properties_changed": [{"component",
    "property", "a", "b", "change"}], "inputs_changed": [{"component", "key", "type",
    "change", "a": [artifact], "b": [artifact]}], "outcome": {"a": {...}, "b": {...}},
    "components": [{"component", "a": {"state", "mlmd_state", "seconds", "execution_ids"},
    "b": ...}]}`` (a side is None where the component did not run).
    A run is a pipeline-run context name, or for an asynchronous pipeline a trainer
    execution id. Raises :class:`analysis.errors.UnknownPipelineError` /
    :class:`analysis.errors.UnknownRunError` for names the warehouse does not hold.
    """
    return compare_runs(con, find_pipeline(con, pipeline, source), a, b, config)
