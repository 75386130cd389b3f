"""Runner: the optimized (rewritten) Beam pipeline gives the same outputs as the unoptimized
one, on the real DirectRunner with real (tiny) TensorFlow training; missing or corrupt
materializations are recomputed; the store stays within its budget."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from pipelines.artifact_store import ArtifactStore
from pipelines.examples.penguins import PenguinConfig, build_pipeline, make_dataset
from optimizer.reuse.optimize import optimize
from provenance.run_history import RunHistory
from pipelines.runner import (RunOptions, optimizer_config, pipeline_costs, pipeline_graph,
                              run_pipeline)

BASE = PenguinConfig(epochs=1, hidden=8, threshold=0.5)
THRESHOLD = dataclasses.replace(BASE, threshold=0.97)
HIDDEN = dataclasses.replace(BASE, hidden=12)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("penguin-data")
    make_dataset(d, 400, seed=3)
    return d


@pytest.fixture(scope="module")
def unoptimized(data_dir):
    """Outputs of plain runs (no reuse, nothing stored), computed once per config; Beam
    options are passed through explicitly."""
    cache: dict[PenguinConfig, dict] = {}

    def outputs(config: PenguinConfig) -> dict:
        if config not in cache:
            opts = RunOptions(reuse=False, beam_args=("--runner=DirectRunner", "--direct_num_workers=1"))
            result = run_pipeline(build_pipeline(data_dir, config), opts)
            assert result.beam_used and set(result.actions().values()) == {"compute"}
            cache[config] = dict(result.outputs)
        return cache[config]

    return outputs


@pytest.fixture(scope="module")
def iterations(data_dir, tmp_path_factory):
    """A short history of optimized runs against one artifact store (materialize all)."""
    art = tmp_path_factory.mktemp("art")
    opts = RunOptions(artifacts=art, policy="all")
    runs = {}
    for label, config in (("first", BASE), ("again", BASE), ("evaluation", THRESHOLD),
                          ("hyper", HIDDEN), ("revert", BASE)):
        runs[label] = (config, run_pipeline(build_pipeline(data_dir, config), opts))
    return art, runs


def test_optimized_runs_equal_unoptimized_runs(iterations, unoptimized):
    _, runs = iterations
    for label, (config, result) in runs.items():
        assert result.outputs == unoptimized(config), label
    first = runs["first"][1]
    assert first.outputs["evaluate"]["eval_rows"] > 0 and "pushed" in first.outputs["push"]


def test_plans_follow_what_changed(iterations, data_dir):
    _, runs = iterations
    first = runs["first"][1]
    assert set(first.actions().values()) == {"compute"}
    again = runs["again"][1]
    assert not again.beam_used
    assert again.actions() == {**{n: "prune" for n in first.nodes}, "evaluate": "load", "push": "load"}
    # on this tiny data recomputing a cheap step can beat loading it, so only the decisions
    # that costs cannot flip are pinned: changed nodes compute, the (Keras) training is loaded
    # when unchanged, and every plan is feasible.
    acts = runs["evaluation"][1].actions()
    assert acts["evaluate"] == acts["push"] == "compute"
    assert acts["train"] == "load"
    acts = runs["hyper"][1].actions()
    assert acts["train"] == acts["evaluate"] == acts["push"] == "compute"
    assert not runs["revert"][1].beam_used
    # only Python steps changed and their inputs are stored: they run in-process, no Beam
    assert not runs["evaluation"][1].beam_used and not runs["hyper"][1].beam_used
    assert acts["train_data"] == "load"
    for config, result in runs.values():
        assert_feasible(result, build_pipeline(data_dir, config))


def assert_feasible(result, pipeline) -> None:
    """Every computed node has each input computed or loaded; every output is produced."""
    acts = result.actions()
    for c in pipeline.components:
        if acts[c.name] == "compute":
            assert all(acts[p] in ("compute", "load") for p in c.inputs.values()), c.name
    assert all(acts[o] in ("compute", "load") for o in pipeline.requested_outputs())


def test_corrupt_or_missing_materialization_falls_back_to_compute(data_dir, iterations, unoptimized, tmp_path):
    art, runs = iterations
    shutil.copytree(art, tmp_path / "art")
    store = ArtifactStore(tmp_path / "art")
    nodes = runs["first"][1].nodes
    part = next(store.path(nodes["train"].fingerprint).glob("*.parquet"))
    raw = bytearray(part.read_bytes())
    raw[len(raw) // 2] ^= 0x55
    part.write_bytes(bytes(raw))  # corrupt: checksum mismatch
    store.delete(nodes["eval_data"].fingerprint)  # missing
    (store.path(nodes["evaluate"].fingerprint) / "MANIFEST.json").unlink()  # half-written
    next(store.path(nodes["push"].fingerprint).glob("*.parquet")).unlink()  # lost part

    result = run_pipeline(build_pipeline(data_dir, BASE), RunOptions(artifacts=tmp_path / "art", policy="all"))
    acts = result.actions()
    assert {acts[n] for n in ("train", "eval_data", "evaluate", "push")} == {"compute"}
    assert_feasible(result, build_pipeline(data_dir, BASE))
    assert result.outputs == unoptimized(BASE)
    assert store.verify(nodes["train"].fingerprint) is not None  # recomputed and stored again


def test_budget_is_respected_and_results_stay_exact(data_dir, unoptimized, tmp_path):
    budget = 40_000
    opts = RunOptions(artifacts=tmp_path / "art", budget_bytes=budget, policy="frugal")
    evicted = set()
    for config in (BASE, THRESHOLD):
        result = run_pipeline(build_pipeline(data_dir, config), opts)
        assert result.outputs == unoptimized(config)
        assert result.store_bytes <= budget
        assert ArtifactStore(tmp_path / "art").total_bytes() <= budget
        evicted |= set(result.evicted)
    # evictions are recorded in MLMD: DELETED, and every stored output valued for later runs
    from provenance.run_history import read_run_history

    history = read_run_history(tmp_path / "art" / "mlmd.sqlite")
    states = {a.name: a.state for a in history.artifacts.values()}
    stored = {e.key for e in ArtifactStore(tmp_path / "art").entries()}
    assert evicted and all(states[fp] == "DELETED" for fp in evicted - stored)
    assert all(states[fp] == "LIVE" for fp in stored)
    assert all(a.recreation_s is not None for a in history.artifacts.values() if a.name in stored)


def test_exact_match_strategy_loads_every_needed_cached_node(data_dir):
    p = build_pipeline(data_dir, BASE)
    fps = p.fingerprints()
    stored = {"train": 100, "eval_data": 100, "clean": 100}
    opts = RunOptions(strategy="exact")
    plan = optimize(pipeline_graph(p, fps, stored), pipeline_costs(p, fps, RunHistory(), None),
                    optimizer_config(opts, p.requested_outputs()))
    assert dict(plan.decisions) == {"raw": "prune", "clean": "prune", "stats": "prune", "features": "prune",
                                    "train_data": "prune", "eval_data": "load", "train": "load",
                                    "evaluate": "compute", "push": "compute"}
    assert plan.write == frozenset()  # no artifact folder: nothing to write


def test_costs_come_from_the_runs_recorded_in_mlmd(iterations, data_dir):
    from provenance.run_history import read_run_history

    art, runs = iterations
    assert not (art / "history.json").exists()
    history = read_run_history(art / "mlmd.sqlite", pipeline="penguins")
    assert len(history.runs) == len(runs) and len(history.executions) == len(runs) * len(runs["first"][1].nodes)
    first = runs["first"][1]
    p = build_pipeline(data_dir, BASE)
    costs = pipeline_costs(p, p.fingerprints(), history, None)
    train = [e for e in history.executions if e.component == "penguins.train" and e.action == "compute"]
    # the compute cost of the unchanged training is the median of its recorded durations
    same = sorted(e.duration_s for e in train if e.fingerprint == first.nodes["train"].fingerprint)
    assert costs.nodes["train"].basis == "fingerprint"
    assert costs.nodes["train"].compute_cost == pytest.approx(same[len(same) // 2] if len(same) % 2 else
                                                               sum(same[len(same) // 2 - 1:len(same) // 2 + 1]) / 2)
    assert costs.nodes["train"].size_bytes == first.nodes["train"].size_bytes
    # recurrence: train ran BASE, BASE, BASE, HIDDEN, BASE: 4 trials after the first, 3 hits
    assert costs.nodes["train"].recurrence == pytest.approx((3 + 1) / (4 + 2))
    # the engine start-up measured by the first run (the only one that started Beam)
    assert [r.startup_s is not None for r in history.runs] == [True, False, False, False, False]
    assert costs.startup_s == history.runs[0].startup_s


def test_steps_run_on_their_own_are_measured_by_mlmd_stamps(iterations):
    """Python steps run in-process are recorded RUNNING then COMPLETE as they run (MLMD's own
    stamps measure them); steps fused inside one Beam pipeline carry a duration property."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    from provenance.run_history import read_run_history

    art, runs = iterations
    cfg = pb.ConnectionConfig()
    cfg.sqlite.filename_uri = str(art / "mlmd.sqlite")
    cfg.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READONLY
    ms = metadata_store.MetadataStore(cfg)
    by_name = {e.name: e for e in ms.get_executions()}
    evaluation, first = runs["evaluation"][1], runs["first"][1]
    assert not evaluation.beam_used and first.beam_used
    alone = [n for n, a in evaluation.actions().items() if a == "compute"]
    assert alone == ["evaluate", "push"]
    history = {e.execution_id: e for e in read_run_history(art / "mlmd.sqlite").executions}
    for n in alone:
        e = by_name[f"{evaluation.run_id}.{n}"]
        assert "duration_s" not in e.custom_properties and pb.Execution.State.Name(e.last_known_state) == "COMPLETE"
        stamped = (e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000.0
        assert 0.0 <= stamped <= evaluation.wall_s and history[e.id].duration_s == stamped
        assert stamped >= evaluation.nodes[n].seconds - 0.002  # the stamps enclose the step
    for n in ("train", "clean"):
        e = by_name[f"{first.run_id}.{n}"]
        assert e.custom_properties["duration_s"].double_value == history[e.id].duration_s > 0
