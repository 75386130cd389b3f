"""Fixtures of the optimizer tests.

Pruning (test_features, test_policy, test_replay, test_hook): ``prune_sim`` is a small simulated
corpus, ingested and analyzed once per session; ``mlmd_history`` writes a TFX-shaped MLMD store
through the ml_metadata API with chosen outcomes per run and returns a handle to mutate it.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TFX = "tfx.components."
EXEC_TYPES = {
    "gen": TFX + "example_gen.csv_example_gen.component.CsvExampleGen",
    "stats": TFX + "statistics_gen.component.StatisticsGen",
    "validator": TFX + "example_validator.component.ExampleValidator",
    "trainer": TFX + "trainer.component.Trainer",
    "evaluator": TFX + "evaluator.component.Evaluator",
    "pusher": TFX + "pusher.component.Pusher",
}
ARTIFACT_TYPES = ("Examples", "ExampleStatistics", "ExampleAnomalies", "Model", "ModelBlessing", "PushedModel")


@dataclass(frozen=True)
class PruneCorpus:
    """A simulated corpus in an analyzed warehouse."""

    warehouse: Path
    ground_truth: tuple[Path, ...]
    stores: tuple[Path, ...]


@pytest.fixture(scope="session")
def prune_sim(simulated_warehouse, tmp_path_factory) -> PruneCorpus:
    """12 pipelines over 30 days (about 950 trainings), simulated, ingested, analyzed."""
    sim, warehouse, _ = simulated_warehouse(tmp_path_factory.mktemp("prune_sim"), pipelines=12, days=30, seed=5)
    return PruneCorpus(warehouse, tuple(sim.ground_truth_paths), tuple(sim.store_paths))


@dataclass
class MlmdHistory:
    """A TFX-shaped MLMD store written through the ml_metadata API, one pipeline, one run per spec."""

    path: Path
    runs: list[dict]
    ids: list[dict] = field(default_factory=list)

    def store(self):
        from ml_metadata.metadata_store import metadata_store
        from ml_metadata.proto import metadata_store_pb2

        cfg = metadata_store_pb2.ConnectionConfig()
        cfg.sqlite.filename_uri = str(self.path)
        cfg.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        return metadata_store.MetadataStore(cfg)

    def copy(self, dst: Path) -> MlmdHistory:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.path, dst)
        return MlmdHistory(dst, [dict(r) for r in self.runs], [dict(i) for i in self.ids])

    def set_custom(self, kind: str, entity_id: int, name: str, value) -> None:
        """Overwrite one custom property of an existing artifact or execution."""
        s = self.store()
        obj = (s.get_artifacts_by_id if kind == "artifact" else s.get_executions_by_id)([entity_id])[0]
        _set(obj.custom_properties[name], value)
        (s.put_artifacts if kind == "artifact" else s.put_executions)([obj])


def _set(value_proto, value) -> None:
    if isinstance(value, bool) or isinstance(value, int):
        value_proto.int_value = int(value)
    elif isinstance(value, float):
        value_proto.double_value = value
    else:
        value_proto.string_value = str(value)


def write_runs(history: MlmdHistory, runs: list[dict], pipeline: str = "shop") -> None:
    """Append runs: each dict has span, anomalies_ok, lr, blessed, pushed (see mlmd_history)."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    s = history.store()
    et = {k: s.put_execution_type(pb.ExecutionType(name=v)) for k, v in EXEC_TYPES.items()}
    at = {n: s.put_artifact_type(pb.ArtifactType(name=n)) for n in ARTIFACT_TYPES}
    ct = {n: s.put_context_type(pb.ContextType(name=n)) for n in ("pipeline", "pipeline_run", "node")}

    def context(type_key: str, name: str):
        found = s.get_context_by_type_and_name(type_key, name)
        if found is not None:
            return found
        c = pb.Context(type_id=ct[type_key], name=name)
        c.id = s.put_contexts([c])[0]
        return c

    pipe = context("pipeline", pipeline)
    nodes = {k: context("node", f"{pipeline}.{k}") for k in EXEC_TYPES}

    def run_exec(key, run_ctx, inputs, outputs, props=None):
        time.sleep(0.003)  # distinct millisecond timestamps, as a real orchestrator leaves them
        e = pb.Execution(type_id=et[key], last_known_state=pb.Execution.COMPLETE)
        for k, v in (props or {}).items():
            _set(e.custom_properties[k], v)
        pairs = []
        for path, art in inputs:
            pairs.append((art, _event(pb.Event.INPUT, path)))
        made = []
        for path, type_name, aprops in outputs:
            a = pb.Artifact(type_id=at[type_name], uri=f"/srv/{type_name}/{len(history.ids)}-{path}",
                            state=pb.Artifact.LIVE)
            for k, v in aprops.items():
                _set(a.custom_properties[k], v)
            pairs.append((a, _event(pb.Event.OUTPUT, path)))
            made.append(a)
        eid, aids, _ = s.put_execution(e, pairs, [pipe, run_ctx, nodes[key]])
        out_ids = aids[len(inputs):]
        arts = s.get_artifacts_by_id(out_ids) if out_ids else []
        return eid, arts

    for spec in runs:
        i = len(history.ids)
        run_ctx = context("pipeline_run", f"run-{i}")
        ids: dict = {}
        ids["gen"], (examples,) = run_exec("gen", run_ctx, [], [("examples", "Examples", {"span": spec["span"]})],
                                           {"input_base": "/data", "span": spec["span"]})
        ids["stats"], (stats,) = run_exec("stats", run_ctx, [("examples", examples)],
                                          [("statistics", "ExampleStatistics", {"span": spec["span"]})])
        ids["validator"], (anomalies,) = run_exec(
            "validator", run_ctx, [("statistics", stats)],
            [("anomalies", "ExampleAnomalies", {"blessed": '{"train": %d, "eval": 1}' % int(spec["anomalies_ok"])})])
        ids["trainer"], (model,) = run_exec(
            "trainer", run_ctx, [("examples", examples)], [("model", "Model", {})],
            {"train_args": json.dumps({"num_steps": 100}), "custom_config": json.dumps({"lr": spec["lr"]}),
             "module_path": "trainer@v1", "state": "complete"})
        ids["evaluator"], (blessing,) = run_exec("evaluator", run_ctx, [("model", model)],
                                                 [("blessing", "ModelBlessing", {"blessed": int(spec["blessed"])})])
        ids["pusher"], (pushed,) = run_exec("pusher", run_ctx, [("model", model), ("blessing", blessing)],
                                            [("pushed_model", "PushedModel", {"pushed": int(spec["pushed"])})])
        ids.update(examples=examples.id, statistics=stats.id, anomalies=anomalies.id, model=model.id,
                   blessing=blessing.id, pushed_model=pushed.id)
        history.ids.append(ids)
        history.runs.append(dict(spec))


def _event(kind, key: str):
    from ml_metadata.proto import metadata_store_pb2 as pb

    ev = pb.Event(type=kind)
    ev.path.steps.add().key = key
    return ev


@pytest.fixture
def mlmd_history(tmp_path):
    """Return a function runs -> MlmdHistory written through the ml_metadata API.

    A run is a dict: span (int), anomalies_ok (bool), lr (float), blessed (bool), pushed (bool).
    """

    def make(runs: list[dict], name: str = "history") -> MlmdHistory:
        h = MlmdHistory(tmp_path / "store" / f"{name}.sqlite", [])
        h.path.parent.mkdir(parents=True, exist_ok=True)
        write_runs(h, runs)
        return h

    make.write_runs = write_runs
    return make
