"""Write large MLMD SQLite stores fast, for benchmarks and crash tests.

The schema and the types are created with the ml_metadata API, so the file is a genuine
MLMD store; the rows (a TFX-like pipeline run after run: ExampleGen -> StatisticsGen ->
SchemaGen -> Trainer -> Evaluator -> Pusher, with events, path steps, contexts,
attributions, associations and properties) are then bulk-inserted with sqlite3 in the MLMD
table layout, which is ~100x faster than writing them through the API.
"""

from __future__ import annotations

import base64
import random
import sqlite3
from pathlib import Path

from provenance.values import STRUCT_PREFIX

__all__ = ["write_synthetic_store", "ROWS_PER_RUN"]

ROWS_PER_RUN = 103  # approximate MLMD rows (all tables) written per pipeline run

# (execution type, inputs as (key, artifact produced by step i), output key, output artifact type)
_STEPS = (
    ("ExampleGen", (), "examples", "Examples"),
    ("StatisticsGen", (("examples", 0),), "statistics", "ExampleStatistics"),
    ("SchemaGen", (("statistics", 1),), "schema", "Schema"),
    ("Trainer", (("examples", 0), ("schema", 2)), "model", "Model"),
    ("Evaluator", (("model", 3), ("examples", 0)), "blessing", "ModelBlessing"),
    ("Pusher", (("model", 3), ("model_blessing", 4)), "pushed_model", "PushedModel"),
)


def _struct_text(mapping: dict[str, float]) -> str:
    from google.protobuf import struct_pb2

    value = struct_pb2.Struct()
    value.update(mapping)
    return STRUCT_PREFIX + base64.b64encode(value.SerializeToString()).decode("ascii")


def write_synthetic_store(path: str | Path, runs: int, seed: int = 0) -> dict[str, int]:
    """Create a new MLMD SQLite store at ``path`` holding ``runs`` pipeline runs.

    Returns the number of rows written per MLMD table.
    """
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    path = Path(path)
    if path.exists():
        path.unlink()
    cfg = pb.ConnectionConfig()
    cfg.sqlite.filename_uri = str(path)
    store = metadata_store.MetadataStore(cfg)
    bases = {"Examples": pb.ArtifactType.DATASET, "ExampleStatistics": pb.ArtifactType.STATISTICS,
             "Model": pb.ArtifactType.MODEL, "PushedModel": pb.ArtifactType.MODEL}
    ebases = {"Trainer": pb.ExecutionType.TRAIN, "Evaluator": pb.ExecutionType.EVALUATE,
              "Pusher": pb.ExecutionType.DEPLOY, "StatisticsGen": pb.ExecutionType.PROCESS}
    atype, etype = {}, {}
    for _, _, _, name in _STEPS:
        t = pb.ArtifactType(name=name)
        if name in bases:
            t.base_type = bases[name]
        t.properties["span"] = pb.INT
        atype[name] = store.put_artifact_type(t)
    for name, _, _, _ in _STEPS:
        t = pb.ExecutionType(name=name)
        if name in ebases:
            t.base_type = ebases[name]
        etype[name] = store.put_execution_type(t)
    pipeline_t = store.put_context_type(pb.ContextType(name="pipeline"))
    run_t = store.put_context_type(pb.ContextType(name="pipeline_run"))
    del store

    rng = random.Random(seed)
    artifacts, executions, contexts = [], [], []
    events, paths, attributions, associations, parents = [], [], [], [], []
    aprops, eprops, cprops = [], [], []
    t0 = 1_600_000_000_000
    contexts.append((1, pipeline_t, "synthetic_pipeline", t0, t0))
    aid = xid = evid = 0
    blessed_struct = _struct_text({"train": 1.0, "eval": 1.0})
    for r in range(runs):
        cid = r + 2
        start = t0 + r * 3_600_000
        contexts.append((cid, run_t, f"run-{r:07d}", start, start))
        parents.append((cid, 1))
        cprops.append((cid, "run_index", 1, r, None, None, None))
        made: list[int] = []
        now = start
        failed = rng.random() < 0.05
        for step, (ename, inputs, out_key, aname) in enumerate(_STEPS):
            xid += 1
            took = rng.randint(1_000, 600_000 if ename == "Trainer" else 60_000)
            state = 4 if (failed and ename == "Trainer") else (5 if rng.random() < 0.1 else 3)
            executions.append((xid, etype[ename], state, f"{ename}-{r}", None, now, now + took))
            eprops.append((xid, "module", 1, None, None, f"mod_{ename.lower()}@{r % 17}", None))
            eprops.append((xid, "seed", 1, rng.randint(0, 9), None, None, None))
            associations.extend(((1, xid), (cid, xid)))
            for key, src in inputs:
                evid += 1
                events.append((evid, made[src], xid, 3, now))
                paths.extend(((evid, 0, None, key), (evid, 1, 0, None)))
            now += took
            aid += 1
            made.append(aid)
            artifacts.append((aid, atype[aname], f"/srv/pipe/{aname}/{aid}", 2, None, None, now, now))
            aprops.append((aid, "tfx_version", 1, None, None, "1.21.0", None))
            if aname == "Examples":
                aprops.append((aid, "span", 0, r, None, None, None))
            elif aname == "ModelBlessing":
                aprops.append((aid, "blessed", 1, None, None, blessed_struct if r % 10 == 0 else None, None)
                              if r % 10 == 0 else (aid, "blessed", 1, int(rng.random() < 0.7), None, None, None))
            elif aname == "PushedModel":
                aprops.append((aid, "pushed", 1, int(rng.random() < 0.6), None, None, None))
            attributions.extend(((1, aid), (cid, aid)))
            evid += 1
            events.append((evid, aid, xid, 4, now))
            paths.extend(((evid, 0, None, out_key), (evid, 1, 0, None)))

    con = sqlite3.connect(path)
    try:
        with con:
            con.executemany("INSERT INTO Context (id, type_id, name, create_time_since_epoch, "
                            "last_update_time_since_epoch) VALUES (?,?,?,?,?)", contexts)
            con.executemany("INSERT INTO ParentContext (context_id, parent_context_id) VALUES (?,?)", parents)
            con.executemany("INSERT INTO Execution (id, type_id, last_known_state, name, external_id, "
                            "create_time_since_epoch, last_update_time_since_epoch) VALUES (?,?,?,?,?,?,?)",
                            executions)
            con.executemany("INSERT INTO Artifact (id, type_id, uri, state, name, external_id, "
                            "create_time_since_epoch, last_update_time_since_epoch) VALUES (?,?,?,?,?,?,?,?)",
                            artifacts)
            con.executemany("INSERT INTO Event (id, artifact_id, execution_id, type, milliseconds_since_epoch) "
                            "VALUES (?,?,?,?,?)", events)
            con.executemany("INSERT INTO EventPath (event_id, is_index_step, step_index, step_key) "
                            "VALUES (?,?,?,?)", paths)
            con.executemany("INSERT INTO Attribution (context_id, artifact_id) VALUES (?,?)", attributions)
            con.executemany("INSERT INTO Association (context_id, execution_id) VALUES (?,?)", associations)
            for table, idcol, rows in (("ArtifactProperty", "artifact_id", aprops),
                                       ("ExecutionProperty", "execution_id", eprops),
                                       ("ContextProperty", "context_id", cprops)):
                con.executemany(f"INSERT INTO {table} ({idcol}, name, is_custom_property, int_value, "
                                "double_value, string_value, bool_value) VALUES (?,?,?,?,?,?,?)", rows)
    finally:
        con.close()
    return {
        "Artifact": len(artifacts), "Execution": len(executions), "Context": len(contexts),
        "Event": len(events), "EventPath": len(paths), "Attribution": len(attributions),
        "Association": len(associations), "ParentContext": len(parents),
        "ArtifactProperty": len(aprops), "ExecutionProperty": len(eprops), "ContextProperty": len(cprops),
    }
