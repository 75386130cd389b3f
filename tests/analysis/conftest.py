"""Fixtures of the analysis tests: warehouses ingested from the real TFX stores."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TFX_DIR = Path(__file__).resolve().parents[1] / "data" / "tfx"


@pytest.fixture(scope="session")
def analyzed_tfx_warehouse(tmp_path_factory) -> Path:
    """A warehouse with both real TFX stores ingested and analyzed (read-only for tests)."""
    import analysis
    from provenance.ingest import ingest

    folder = tmp_path_factory.mktemp("tfx_wh")
    stores = []
    for name in ("penguin_prod", "penguin_minimal"):
        dst = folder / f"{name}.sqlite"
        shutil.copyfile(TFX_DIR / f"{name}.sqlite", dst)
        stores.append(dst)
    warehouse = folder / "warehouse.duckdb"
    ingest(stores, warehouse, progress=False)
    analysis.analyze(warehouse)
    return warehouse


@pytest.fixture
def tfx_con(analyzed_tfx_warehouse):
    """A read-only DuckDB connection to the analyzed TFX warehouse."""
    import duckdb

    con = duckdb.connect(str(analyzed_tfx_warehouse), read_only=True)
    yield con
    con.close()


def truth_graphlets(ground_truth: dict) -> dict[int, dict]:
    """Executed trainers of a ground-truth file -> {pushed, blessed, run}.

    A trainer's model is pushed in its own run or in a following run that reused the trainer
    from cache (TFX re-runs Evaluator and Pusher when the baseline changed).
    """
    out: dict[int, dict] = {}
    current = None
    for run in ground_truth["runs"]:
        trainer = run["nodes"]["Trainer"]
        pushed = any(run.get("model_pushed_this_run", {}).values())
        blessed = run.get("model_blessed", {})
        if trainer["status"] == "executed":
            current = trainer["execution_id"]
            out[current] = {"pushed": pushed, "blessed": any(blessed.values()) if blessed else None,
                            "run": run["run_index"]}
        elif current is not None and pushed:
            out[current]["pushed"] = True
    return out


@pytest.fixture(scope="session")
def truth():
    """Return truth_graphlets (a function) to tests."""
    return truth_graphlets


# --------------------------------------------------------------------------------------------
# Random provenance histories written through the ml_metadata API (real MLMD SQLite stores).
# A *plan* is plain data (drawn by hypothesis in test_properties.py); build_store writes it.

CURRENT_TYPES = {
    "gen": "tfx.components.example_gen.csv_example_gen.component.CsvExampleGen",
    "stats": "tfx.components.statistics_gen.component.StatisticsGen",
    "trainer": "tfx.components.trainer.component.Trainer",
    "resolver": "tfx.dsl.components.common.resolver.Resolver",
    "evaluator": "tfx.components.evaluator.component.Evaluator",
    "pusher": "tfx.components.pusher.component.Pusher",
    "examples": "Examples", "statistics": "ExampleStatistics", "model": "Model",
    "blessing": "ModelBlessing", "pushed": "PushedModel",
    "pipeline": "pipeline", "run": "pipeline_run",
}
LEGACY_TYPES = {
    "gen": "CsvExampleGen", "stats": "StatisticsGen", "trainer": "Trainer",
    "resolver": "ResolverNode", "evaluator": "Evaluator", "pusher": "Pusher",
    "examples": "ExamplesPath", "statistics": "ExampleStatisticsPath", "model": "ModelExportPath",
    "blessing": "ModelBlessingPath", "pushed": "ModelPushPath",
    "pipeline": None, "run": "run",
}


def build_store(path: Path, plan: dict) -> dict:
    """Write a provenance history into a new MLMD SQLite store at ``path``.

    ``plan``: {"legacy": bool, "async": bool, "runs": [{"new_data": bool, "trainers": [
    {"state": "COMPLETE"|"FAILED"|"CACHED", "evaluate": bool, "blessed": bool, "push": bool,
     "rerun_downstream": bool}, ...]}, ...]}. Trainer slot i of every run is the same component.
    Returns what was written: {"executions": {id: {...}}, "events": [(exec, art, type, path)],
    "artifacts": {id: {...}}} for the test oracles.
    """
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    names = {**(LEGACY_TYPES if plan["legacy"] else CURRENT_TYPES), **plan.get("names", {})}
    cfg = pb.ConnectionConfig()
    cfg.sqlite.filename_uri = str(path)
    cfg.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    store = metadata_store.MetadataStore(cfg)
    exec_types = {}
    for key in ("gen", "stats", "trainer", "resolver", "evaluator", "pusher"):
        et = pb.ExecutionType(name=names[key])
        if plan["legacy"]:
            for prop in ("state", "pipeline_name", "component_id", "run_id"):
                et.properties[prop] = pb.STRING
        exec_types[key] = store.put_execution_type(et)
    art_types = {k: store.put_artifact_type(pb.ArtifactType(name=names[k]))
                 for k in ("examples", "statistics", "model", "blessing", "pushed")}
    ctx_types = {}
    for key in ("pipeline", "run"):
        if names[key]:
            ct = pb.ContextType(name=names[key])
            if plan["legacy"]:
                ct.properties["pipeline_name"] = pb.STRING
            ctx_types[key] = store.put_context_type(ct)

    record = {"executions": {}, "events": [], "artifacts": {}, "model_of": {}, "pushes": []}
    STATE = {"COMPLETE": pb.Execution.COMPLETE, "FAILED": pb.Execution.FAILED, "CACHED": pb.Execution.CACHED}
    pipeline_ctx = None
    if "pipeline" in ctx_types:
        pipeline_ctx = pb.Context(type_id=ctx_types["pipeline"], name="p")
        [pipeline_ctx.id] = store.put_contexts([pipeline_ctx])

    def artifact(kind: str, **custom) -> pb.Artifact:
        a = pb.Artifact(type_id=art_types[kind], uri=f"/x/{kind}/{len(record['artifacts'])}")
        for k, v in custom.items():
            a.custom_properties[k].int_value = int(v)
        [aid] = store.put_artifacts([a])
        a.id = aid
        record["artifacts"][aid] = {"kind": kind, **custom}
        return a

    def execute(kind, state, component, run_ctx, run_no, inputs=(), outputs=(), internal=()):
        e = pb.Execution(type_id=exec_types[kind])
        if plan["legacy"]:
            e.properties["state"].string_value = state.lower()
            e.properties["pipeline_name"].string_value = "p"
            e.properties["component_id"].string_value = component
            e.properties["run_id"].string_value = f"r{run_no}"
        else:
            e.last_known_state = STATE[state]
        pairs = []
        for typ, arts in ((pb.Event.INPUT, inputs), (pb.Event.OUTPUT, outputs), (pb.Event.INTERNAL_OUTPUT, internal)):
            for key, a in arts:
                ev = pb.Event(type=typ)
                ev.path.steps.add().key = key
                ev.path.steps.add().index = 0
                pairs.append((a, ev))
        ctxs = []
        if run_ctx is not None:
            ctxs.append(run_ctx)
        if pipeline_ctx is not None:
            ctxs.append(pipeline_ctx)
        eid, _, _ = store.put_execution(e, pairs, ctxs, reuse_context_if_already_exist=True)
        record["executions"][eid] = {"kind": kind, "state": state, "component": component, "run": run_no}
        for a, ev in pairs:
            name = {pb.Event.INPUT: "INPUT", pb.Event.OUTPUT: "OUTPUT"}.get(ev.type, "INTERNAL_OUTPUT")
            record["events"].append((eid, a.id, name, ev.path.steps[0].key))
        return eid

    examples = stats = None
    slots: dict[int, dict] = {}  # trainer slot -> last model, blessing, pushed artifacts
    baseline = None
    for run_no, run in enumerate(plan["runs"]):
        run_ctx = None
        if not plan["async"] and "run" in ctx_types:
            run_ctx = pb.Context(type_id=ctx_types["run"], name=f"run-{run_no}")
            if plan["legacy"]:
                run_ctx.properties["pipeline_name"].string_value = "p"
            [run_ctx.id] = store.put_contexts([run_ctx])
        if run["new_data"] or examples is None:
            # with "chain_data", ingestion reads its previous output (incremental ingestion)
            previous = [("previous", examples)] if plan.get("chain_data") and examples is not None else []
            examples = artifact("examples")
            execute("gen", "COMPLETE", "ExampleGen", run_ctx, run_no, inputs=previous,
                    outputs=[("examples", examples)])
            stats = artifact("statistics")
            execute("stats", "COMPLETE", "StatisticsGen", run_ctx, run_no,
                    inputs=[("examples", examples)], outputs=[("statistics", stats)])
        else:
            execute("gen", "CACHED", "ExampleGen", run_ctx, run_no, outputs=[("examples", examples)])
            execute("stats", "CACHED", "StatisticsGen", run_ctx, run_no,
                    inputs=[("examples", examples)], outputs=[("statistics", stats)])
        for slot, t in enumerate(run["trainers"]):
            comp = f"Trainer{slot}"
            prev = slots.get(slot)
            state = t["state"]
            if state == "CACHED" and prev is None:
                state = "COMPLETE"
            ins = [("examples", examples)]
            if state == "FAILED":
                execute("trainer", "FAILED", comp, run_ctx, run_no, inputs=ins)
                continue
            if state == "CACHED":
                model = prev["model"]
                execute("trainer", "CACHED", comp, run_ctx, run_no, inputs=ins, outputs=[("model", model)])
                if not t["rerun_downstream"] and prev.get("pushed") is not None:
                    # fully cached: downstream re-emits the previous outputs
                    if prev.get("blessing") is not None:
                        execute("evaluator", "CACHED", f"Evaluator{slot}", run_ctx, run_no,
                                inputs=[("model", model)], outputs=[("blessing", prev["blessing"])])
                    execute("pusher", "CACHED", f"Pusher{slot}", run_ctx, run_no,
                            inputs=[("model", model)], outputs=[("pushed_model", prev["pushed"])])
                    continue
            else:
                model = artifact("model")
                tid = execute("trainer", "COMPLETE", comp, run_ctx, run_no, inputs=ins, outputs=[("model", model)])
                record["model_of"][tid] = model.id
            blessing = None
            if t["evaluate"]:
                base = [baseline] if baseline is not None and baseline.id != model.id else []
                execute("resolver", "COMPLETE", "Resolver", run_ctx, run_no,
                        internal=[("model", b) for b in base])
                blessing = artifact("blessing", blessed=t["blessed"])
                execute("evaluator", "COMPLETE", f"Evaluator{slot}", run_ctx, run_no,
                        inputs=[("examples", examples), ("model", model)] + [("baseline_model", b) for b in base],
                        outputs=[("blessing", blessing)])
            pushed_flag = t["push"] and (blessing is None or t["blessed"])
            pushed = artifact("pushed", pushed=pushed_flag)
            record["pushes"].append((model.id, bool(pushed_flag)))
            execute("pusher", "COMPLETE", f"Pusher{slot}", run_ctx, run_no,
                    inputs=[("model", model)] + ([("model_blessing", blessing)] if blessing else []),
                    outputs=[("pushed_model", pushed)])
            if blessing is not None and t["blessed"]:
                baseline = model
            slots[slot] = {"model": model, "blessing": blessing, "pushed": pushed}
    return record


@pytest.fixture(scope="session")
def mlmd_history():
    """Return build_store (a function: path, plan -> record) to tests."""
    return build_store
