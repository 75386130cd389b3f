"""`frugal gc` on a copy of a real TFX store: the plan pins what TFX will read, fits the budget,
and --apply marks DELETED in MLMD (through the ml_metadata API) before it removes files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from analysis.roles import default_roles
from frugal.cli import main
from optimizer.reuse.collect_garbage import plan_collection
from pipelines.errors import PipelineError
from pipelines.pipeline_root import apply_collection, measure_root
from provenance.run_history import read_run_history

DATA = Path(__file__).resolve().parents[1] / "data" / "tfx"
SIZES = {"Model": 300_000, "ModelRun": 50_000, "Examples": 120_000, "ExampleStatistics": 40_000,
         "ModelEvaluation": 30_000, "Schema": 2_000, "ExampleAnomalies": 1_000, "ModelBlessing": 10,
         "PushedModel": 10}


def open_store(path, write=False) -> metadata_store.MetadataStore:
    cfg = pb.ConnectionConfig()
    cfg.sqlite.filename_uri = str(path)
    cfg.sqlite.connection_mode = (pb.SqliteMetadataSourceConfig.READWRITE if write
                                  else pb.SqliteMetadataSourceConfig.READONLY)
    return metadata_store.MetadataStore(cfg)


@pytest.fixture
def tfx_root(tmp_path):
    """penguin_prod's store copied, its artifact URIs moved under a new root that holds files of
    a size per type (the recorded URIs point to the machine that ran TFX)."""
    store = tmp_path / "mlmd.sqlite"
    shutil.copy(DATA / "penguin_prod.sqlite", store)
    root = tmp_path / "root"
    ms = open_store(store, write=True)
    types = {t.id: t.name for t in ms.get_artifact_types()}
    for a in ms.get_artifacts():
        rel = a.uri.split("/root/", 1)[1]
        a.uri = str(root / rel)
        ms.put_artifacts([a])
        (root / rel).mkdir(parents=True, exist_ok=True)
        (root / rel / "data.bin").write_bytes(b"\0" * SIZES[types[a.type_id]])
    return store, root


def newest_pushed_model(store) -> tuple[int, list[int]]:
    """From raw MLMD: the model input of the newest Pusher whose PushedModel has pushed = 1,
    and the blessings that Pusher read."""
    ms = open_store(store)
    atypes = {t.id: t.name for t in ms.get_artifact_types()}
    best = None
    for a in ms.get_artifacts():
        if atypes[a.type_id] == "PushedModel" and a.custom_properties["pushed"].int_value == 1:
            ev = [e for e in ms.get_events_by_artifact_ids([a.id]) if e.type == pb.Event.OUTPUT]
            [pusher] = ms.get_executions_by_id([min(e.execution_id for e in ev)])
            if best is None or pusher.create_time_since_epoch > best.create_time_since_epoch:
                best = pusher
    ins = [e.artifact_id for e in ms.get_events_by_execution_ids([best.id]) if e.type == pb.Event.INPUT]
    arts = {a.id: atypes[a.type_id] for a in ms.get_artifacts_by_id(ins)}
    return [a for a, t in arts.items() if t == "Model"][0], [a for a, t in arts.items() if t == "ModelBlessing"]


def live_without_files(store) -> list[int]:
    return [a.id for a in open_store(store).get_artifacts()
            if a.state == pb.Artifact.LIVE and not Path(a.uri).exists()]


def test_plan_pins_what_tfx_reads_next_and_fits_the_budget(tfx_root):
    store, root = tfx_root
    history = read_run_history(store)
    sizes, absent = measure_root(history, root)
    total = sum(sizes.values())
    assert len(sizes) == 66 and absent == []
    plan = plan_collection(history, sizes, total // 3, roles=default_roles())
    assert plan.bytes_before == total and plan.bytes_after <= total // 3 and not plan.over_budget
    pinned = {v.artifact_id: v.reason for v in plan.verdicts if v.action == "pinned"}
    model, blessings = newest_pushed_model(store)
    assert "newest pushed model" in pinned[model] and blessings and all(b in pinned for b in blessings)
    # what the last run's executions read is pinned
    last_run = max(history.runs, key=lambda r: r.create_time_s).name
    for e in history.executions:
        if e.run == last_run:
            assert all(a in pinned for a in e.inputs), e.component
    # deleted ones are the least valuable per byte, never pinned
    assert plan.delete and all(v.artifact_id not in pinned for v in plan.delete)
    assert plan.recompute_s_risked == pytest.approx(sum(v.recreation_s for v in plan.delete))
    assert sum(p.bytes_before - p.bytes_after for p in plan.pipelines) == total - plan.bytes_after
    # a budget below the pinned bytes keeps every pinned artifact and says so
    tight = plan_collection(history, sizes, 1, roles=default_roles())
    assert tight.over_budget and {v.artifact_id for v in tight.verdicts if v.action != "delete"} == set(pinned)


def test_dry_run_changes_nothing_and_apply_deletes_mlmd_first(tfx_root, capsys):
    store, root = tfx_root
    before = {p: p.stat().st_size for p in root.rglob("*.bin")}
    args = ["gc", str(store), "--pipeline-root", str(root), "--budget", "1MB"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "would delete" in out and "dry run" in out and "penguin_prod" in out
    assert {p: p.stat().st_size for p in root.rglob("*.bin")} == before
    assert all(a.state == pb.Artifact.LIVE for a in open_store(store).get_artifacts())

    stale = open_store(store).get_artifacts_by_id([2])[0]  # files lost by hand: LIVE, nothing on disk
    shutil.rmtree(stale.uri)
    assert main([*args, "--apply", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    deleted = {a["artifact_id"] for a in result["artifacts"] if a["action"] == "delete"}
    assert deleted and result["stale"] == [2] and set(result["marked_deleted"]) == deleted | {2}
    states = {a.id: pb.Artifact.State.Name(a.state) for a in open_store(store).get_artifacts()}
    assert {a for a, s in states.items() if s == "DELETED"} == deleted | {2}
    assert live_without_files(store) == []
    on_disk = sum(sum(f.stat().st_size for f in Path(a.uri).rglob("*") if f.is_file())
                  for a in open_store(store).get_artifacts() if a.state == pb.Artifact.LIVE)
    assert on_disk <= 1_000_000 and not (root / ".frugal-trash").exists()
    model, _ = newest_pushed_model(store)
    assert states[model] == "LIVE" and Path(open_store(store).get_artifacts_by_id([model])[0].uri).exists()
    # a second collection has nothing left to do
    assert main([*args, "--apply", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["marked_deleted"] == []


def test_an_interrupted_apply_leaves_no_live_artifact_without_files(tfx_root):
    store, root = tfx_root
    history = read_run_history(store)
    sizes, absent = measure_root(history, root)
    plan = plan_collection(history, sizes, 500_000, roles=default_roles())
    victims = plan.delete
    assert len(victims) >= 3
    # the third artifact to delete points outside the root: the collection stops there
    bad = victims[2].__class__(**{**vars(victims[2]), "uri": "/etc"})
    broken = plan.__class__(plan.budget_bytes, tuple(bad if v is victims[2] else v for v in plan.verdicts))
    with pytest.raises(PipelineError, match="outside the pipeline root"):
        apply_collection(store, broken, root)
    states = {a.id: pb.Artifact.State.Name(a.state) for a in open_store(store).get_artifacts()}
    assert [states[v.artifact_id] for v in victims[:3]] == ["DELETED", "DELETED", "LIVE"]
    assert live_without_files(store) == []
