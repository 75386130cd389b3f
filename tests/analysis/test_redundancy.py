"""Redundant runs through lineage: ``component_runs.redundant`` against what really repeated.

A re-executed chain on unchanged data creates new artifacts that record no fingerprint; only
lineage says they hold the same content. Checked on hand-built MLMD stores (each case named),
on simulated corpora against the simulator's ground truth (every redundant execution, however
deep), and on the real TFX store, whose re-executions all had different inputs.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

import analysis
from provenance.ingest import ingest

_TYPES = {
    "Gen": "tfx.components.example_gen.csv_example_gen.component.CsvExampleGen",
    "Stats": "tfx.components.statistics_gen.component.StatisticsGen",
    "Trainer": "tfx.components.trainer.component.Trainer",
    "Evaluator": "tfx.components.evaluator.component.Evaluator",
}
_STATE = {"COMPLETE": pb.Execution.COMPLETE, "FAILED": pb.Execution.FAILED, "CACHED": pb.Execution.CACHED}


class _Store:
    """A real MLMD SQLite store written the way TFX writes one (contexts, events, properties)."""

    def __init__(self, path: Path):
        cfg = pb.ConnectionConfig()
        cfg.sqlite.filename_uri = str(path)
        cfg.sqlite.connection_mode = 3
        self.s = metadata_store.MetadataStore(cfg)
        self.types: dict[tuple[str, str], int] = {}
        self.ctx: dict[str, int] = {}
        self.runs = 0

    def _type(self, kind: str, name: str) -> int:
        if (kind, name) not in self.types:
            put = {"artifact": (pb.ArtifactType, self.s.put_artifact_type),
                   "execution": (pb.ExecutionType, self.s.put_execution_type),
                   "context": (pb.ContextType, self.s.put_context_type)}[kind]
            self.types[kind, name] = put[1](put[0](name=name))
        return self.types[kind, name]

    def _context(self, type_name: str, name: str) -> pb.Context:
        if name not in self.ctx:
            [self.ctx[name]] = self.s.put_contexts([pb.Context(type_id=self._type("context", type_name), name=name)])
        return pb.Context(id=self.ctx[name], type_id=self._type("context", type_name), name=name)

    def new_run(self, pipeline: str) -> str:
        self.runs += 1
        return f"{pipeline}-run{self.runs}"

    def execute(self, pipeline: str, run: str, node: str, state: str = "COMPLETE",
                props: dict | None = None, inputs: list[tuple[object, int]] = (),
                outputs: list[tuple[str, str, dict]] = ()) -> tuple[int, list[int]]:
        """Record one execution; ``inputs``: (path steps, artifact id); ``outputs``: (key, type, props)
        of new artifacts, or (key, artifact id) re-emitted (a CACHED run). Returns (id, output ids)."""
        x = pb.Execution(type_id=self._type("execution", _TYPES[node]), last_known_state=_STATE[state])
        for k, v in (props or {}).items():
            if isinstance(v, int):
                x.custom_properties[k].int_value = v
            else:
                x.custom_properties[k].string_value = v
        pairs = []
        for steps, aid in inputs:
            [art] = self.s.get_artifacts_by_id([aid])
            ev = pb.Event(type=pb.Event.INPUT)
            for step in ([steps, 0] if isinstance(steps, str) else steps):
                if isinstance(step, str):
                    ev.path.steps.add().key = step
                else:
                    ev.path.steps.add().index = step
            pairs.append((art, ev))
        for out in outputs:
            ev = pb.Event(type=pb.Event.OUTPUT)
            ev.path.steps.add().key = out[0]
            ev.path.steps.add().index = 0
            if isinstance(out[1], int):
                [art] = self.s.get_artifacts_by_id([out[1]])
            else:
                art = pb.Artifact(type_id=self._type("artifact", out[1]), uri=f"/srv/{run}/{node}/{out[0]}",
                                  state=pb.Artifact.LIVE)
                for k, v in out[2].items():
                    art.custom_properties[k].string_value = v
            pairs.append((art, ev))
        contexts = [self._context("pipeline", pipeline), self._context("pipeline_run", run),
                    self._context("node", f"{pipeline}.{node}")]
        xid, aids, _ = self.s.put_execution(x, pairs, contexts)
        return xid, aids[len(inputs):]


def _redundant(store: Path, wh: Path) -> dict[int, int | None]:
    ingest([store], wh, source_ids=["h"], progress=False)
    analysis.analyze(wh)
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return dict(con.execute("SELECT execution_id, redundant_of FROM component_runs WHERE redundant").fetchall())
    finally:
        con.close()


def _chain(st: _Store, pipeline: str, gen_out: dict, module: str = "m1", state: str = "COMPLETE",
           extra: dict | None = None, baseline: int | None = None) -> dict[str, int]:
    """ExampleGen -> StatisticsGen -> Trainer -> Evaluator, all executed; returns execution and
    artifact ids by name."""
    run = st.new_run(pipeline)
    gen, [ex] = st.execute(pipeline, run, "Gen", props={"input_base": "/data"},
                           outputs=[("examples", "Examples", gen_out)])
    stats, [sa] = st.execute(pipeline, run, "Stats", inputs=[("examples", ex)],
                             outputs=[("statistics", "ExampleStatistics", {})])
    trainer, models = st.execute(pipeline, run, "Trainer", state=state,
                                 props={"module_path": module, **(extra or {})},
                                 inputs=[("examples", ex), ("statistics", sa)],
                                 outputs=[] if state == "FAILED" else [("model", "Model", {})])
    out = {"gen": gen, "stats": stats, "trainer": trainer, "examples": ex}
    if models:
        model = models[0]
        # the first model is its own baseline: MLMD keeps one event chaining both paths
        ins = ([(["model", 0, "baseline_model", 0], model)] if baseline is None
               else [("model", model), ("baseline_model", baseline)])
        out["evaluator"], _ = st.execute(pipeline, run, "Evaluator", props={"eval_config": "acc>0.6"},
                                         inputs=[("examples", ex), *ins],
                                         outputs=[("evaluation", "ModelEvaluation", {})])
        out["model"] = model
    return out


def test_redundancy_follows_lineage_down_a_reexecuted_chain(tmp_path):
    st = _Store(tmp_path / "s.sqlite")
    first = _chain(st, "p", {"input_fingerprint": "fp1"})
    # caching off, unchanged data: a new Examples with the same fingerprint, new artifacts
    # without one downstream; the Evaluator now reads a baseline content-equal to its model
    again = _chain(st, "p", {"input_fingerprint": "fp1"}, baseline=first["model"])
    # a retry that fails: TFX records the error as `__execution_result__`
    failed = _chain(st, "p", {"input_fingerprint": "fp1"}, state="FAILED",
                    extra={"__execution_result__": "code: 13 result_message: 'OOM'"})
    # new code on the same data, then new data with the old code
    code = _chain(st, "p", {"input_fingerprint": "fp1"}, module="m2", baseline=first["model"])
    data = _chain(st, "p", {"input_fingerprint": "fp2"}, baseline=first["model"])
    # a fully cached run re-emits the existing artifacts: it did no work
    run = st.new_run("p")
    cached = [st.execute("p", run, "Gen", state="CACHED", props={"input_base": "/data"},
                         outputs=[("examples", first["examples"])])[0]]
    # a pipeline whose Examples record no fingerprint: nothing says its data was the same
    blind = [_chain(st, "q", {}), _chain(st, "q", {})]

    got = _redundant(tmp_path / "s.sqlite", tmp_path / "w.duckdb")
    expected = {again[n]: first[n] for n in ("gen", "stats", "trainer", "evaluator")}
    # the failed retry compares on its configuration; its upstream re-ran on the same content
    expected |= {failed[n]: first[n] for n in ("gen", "stats", "trainer")}
    expected |= {code[n]: first[n] for n in ("gen", "stats")}
    assert got == expected
    assert not {code["trainer"], code["evaluator"], *data.values(), *cached} & got.keys()
    assert not {x for chain in blind for x in chain.values()} & got.keys()


def test_real_tfx_store_has_no_redundant_runs(tfx_store, tfx_ground_truth, tmp_path):
    """penguin_prod re-executed nodes only on new data, code or hyperparameters (its ground
    truth), or with caching on: nothing it ran was redundant."""
    truth = tfx_ground_truth("penguin_prod")
    executed = sum(n["status"] == "executed" for r in truth["runs"] for n in r["nodes"].values())
    assert executed > 12  # it does re-execute, with different inputs
    assert _redundant(tfx_store("penguin_prod"), tmp_path / "w.duckdb") == {}


def _simulated(build, tmp: Path, **kwargs) -> tuple[dict, dict, dict]:
    result, wh, _ = build(tmp, **kwargs)
    con = duckdb.connect(str(wh), read_only=True)
    try:
        flagged = {(s, x): (c, t, of) for s, x, c, t, of in con.execute(
            "SELECT source_id, execution_id, component, component_type, redundant_of FROM component_runs "
            "WHERE redundant").fetchall()}
        consumers = con.execute(
            """SELECT DISTINCT i.source_id, i.execution_id, o.execution_id FROM events i
               JOIN events o ON o.source_id = i.source_id AND o.artifact_id = i.artifact_id
               WHERE i.type = 'INPUT' AND o.type = 'OUTPUT'""").fetchall()
    finally:
        con.close()
    truth = {}
    for path in result.ground_truth_paths:
        source = path.name.removesuffix(".ground_truth.json")
        truth |= {(source, r["execution_id"]): r for r in json.loads(path.read_text())["redundant"]}
    upstream: dict[tuple, set] = {}
    for s, x, producer in consumers:
        upstream.setdefault((s, x), set()).add(producer)
    return truth, flagged, upstream


@pytest.mark.parametrize("mode,pipelines,seed", [("sync", 8, 6), ("sync", 8, 7), ("mixed", 12, 5)])
def test_every_redundant_run_of_a_current_corpus_is_found(simulated_warehouse, tmp_path, mode, pipelines, seed):
    truth, flagged, _ = _simulated(simulated_warehouse, tmp_path, pipelines=pipelines, days=20, seed=seed, mode=mode)
    assert truth and flagged.keys() == truth.keys()
    assert all(flagged[k][2] == r["same_as"] for k, r in truth.items())
    if seed == 6:
        # caching off and manual re-runs: most of it lies deeper than one level shows,
        # FAILED retries included
        assert sum(not r["recorded"] for r in truth.values()) > 2 * sum(r["recorded"] for r in truth.values())
        assert {"schema_gen", "trainer", "evaluator", "pusher"} <= {r["component"] for r in truth.values()}
        assert any(r["state"] == "FAILED" for r in truth.values())
    if seed == 7:
        assert "cache_key_change" in {r["cause"] for r in truth.values()}


def test_legacy_corpus_shows_only_what_lineage_records(simulated_warehouse, tmp_path):
    """Legacy stores record no fingerprint: ExampleGen re-reading the same data and all it feeds
    are invisible. The known false positive: a legacy ModelValidator reads its baseline inside
    the component (no input event), so a re-run after a new blessed model looks redundant, and
    so does the Pusher that consumes its verdict."""
    truth, flagged, upstream = _simulated(simulated_warehouse, tmp_path, pipelines=12, days=20, seed=5, style="legacy")
    assert truth and not any(r["recorded"] for r in truth.values())
    assert not flagged.keys() & {k for k, r in truth.items() if r["component"] == "example_gen"}
    extra = flagged.keys() - truth.keys()
    validators = {k for k in extra if flagged[k][1] == "ModelValidator"}
    assert validators
    assert all(flagged[k][1] == "Pusher" and {(k[0], p) for p in upstream[k]} & validators
               for k in extra - validators)
    assert Counter(flagged[k][1] for k in extra).keys() <= {"ModelValidator", "Pusher"}
