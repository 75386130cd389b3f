"""Pipeline pages' data on the real TFX stores equals their ground truth: the DAG's components,
every node's state in every run, and what compare() reports between any two runs."""

from __future__ import annotations

import itertools

import pytest

from analysis.errors import UnknownPipelineError, UnknownRunError
from analysis.pipeline_runs import find_pipeline, resolve_run
from analysis.pipeline_view import history, list_pipelines, pipeline_dag, pipeline_view, run_nodes
from analysis.run_compare import compare

STORES = ("penguin_prod", "penguin_minimal")
TRUTH_STATE = {"executed": "executed", "resolver_executed": "executed", "cached": "cached"}


def _data_versions(runs: list[dict]) -> list[int]:
    """Per run, which data it read: the index of the last run that changed the data."""
    out, current = [], 0
    for i, run in enumerate(runs):
        if run["data_changes"]:
            current = i
        out.append(current)
    return out


def _code_versions(runs: list[dict]) -> list[int]:
    out, current = [], 0
    for run in runs:
        current += bool(run["code_change"])
        out.append(current)
    return out


@pytest.mark.parametrize("store", STORES)
def test_dag_has_exactly_the_pipelines_components(tfx_con, tfx_ground_truth, store):
    truth = tfx_ground_truth(store)
    expected = {name for run in truth["runs"] for name in run["nodes"]}
    dag = pipeline_dag(tfx_con, find_pipeline(tfx_con, truth["pipeline_name"]))
    assert {n["component"] for n in dag["nodes"]} == expected
    assert len(dag["nodes"]) == len(expected)


def test_dag_edges_are_the_penguin_wiring(tfx_con):
    dag = pipeline_dag(tfx_con, find_pipeline(tfx_con, "penguin_prod"))
    edges = {(e["from"], e["to"], tuple(e["artifact_types"])) for e in dag["edges"]}
    assert edges == {
        ("CsvExampleGen", "StatisticsGen", ("Examples",)),
        ("CsvExampleGen", "Trainer", ("Examples",)),
        ("CsvExampleGen", "Evaluator", ("Examples",)),
        ("StatisticsGen", "SchemaGen", ("ExampleStatistics",)),
        ("StatisticsGen", "ExampleValidator", ("ExampleStatistics",)),
        ("SchemaGen", "ExampleValidator", ("Schema",)),
        ("SchemaGen", "Trainer", ("Schema",)),
        ("Trainer", "Evaluator", ("Model",)),
        ("latest_blessed_model_resolver", "Evaluator", ("Model",)),  # the baseline model
        ("Trainer", "Pusher", ("Model",)),
        ("Evaluator", "Pusher", ("ModelBlessing",)),
    }
    order = [n["component"] for n in dag["nodes"]]
    for e in dag["edges"]:
        assert order.index(e["from"]) < order.index(e["to"])
    minimal = pipeline_dag(tfx_con, find_pipeline(tfx_con, "penguin_minimal"))
    assert [n["component"] for n in minimal["nodes"]] == ["CsvExampleGen", "Trainer", "Pusher"]


@pytest.mark.parametrize("store", STORES)
def test_every_nodes_state_in_every_run_equals_ground_truth(tfx_con, tfx_ground_truth, store):
    truth = tfx_ground_truth(store)
    ref = find_pipeline(tfx_con, truth["pipeline_name"])
    for run in truth["runs"]:
        nodes = {n["component"]: n for n in run_nodes(tfx_con, ref, run["pipeline_run_id"])}
        assert set(nodes) == set(run["nodes"])
        for name, node in run["nodes"].items():
            assert nodes[name]["state"] == TRUTH_STATE[node["status"]], (run["run_index"], name)
            assert nodes[name]["execution_ids"] == [node["execution_id"]]
            assert nodes[name]["mlmd_state"] == node["mlmd_execution_state"]
        executed = sorted(n for n, x in nodes.items() if x["state"] == "executed" and x["role"] != "resolver")
        assert executed == sorted(run["executed_nodes"])
        assert sorted(n for n, x in nodes.items() if x["state"] == "cached") == sorted(run["cached_nodes"])
        for x in nodes.values():  # cached work spent nothing, so it cannot be wasted
            assert (x["wasted"] is None) == (x["state"] == "cached")


@pytest.mark.parametrize("store", STORES)
def test_compare_any_two_runs_reports_exactly_the_ground_truths_changes(tfx_con, tfx_ground_truth, store):
    truth = tfx_ground_truth(store)
    runs = truth["runs"]
    data, code = _data_versions(runs), _code_versions(runs)
    for i, j in itertools.combinations(range(len(runs)), 2):
        a, b = runs[i], runs[j]
        c = compare(tfx_con, truth["pipeline_name"], a["pipeline_run_id"], b["pipeline_run_id"])
        where = (a["run_index"], b["run_index"])
        assert c["components_added"] == [] and c["components_removed"] == [], where
        # hyperparameters: exactly the ones that moved, with their old and new values
        hp = {p["property"].split(".", 1)[1]: (p["a"], p["b"]) for p in c["properties_changed"]
              if p["component"] == "Trainer" and p["property"].startswith("custom_config.")}
        moved = {k: (a["hyperparameters"][k], b["hyperparameters"][k]) for k in a["hyperparameters"]
                 if a["hyperparameters"][k] != b["hyperparameters"][k]}
        assert hp == moved, where
        # code: the module's checksum is in module_path, and changes exactly with the code
        assert any(p["property"] == "module_path" for p in c["properties_changed"]) == (code[i] != code[j]), where
        # data: an input changes exactly when the runs read different data
        assert bool(c["inputs_changed"]) == (data[i] != data[j]), where
        if data[i] != data[j]:
            [change] = c["inputs_changed"]
            assert (change["component"], change["key"], change["type"]) == ("CsvExampleGen", "examples", "Examples")
            span_a = runs[data[i]]["data_changes"][0]["span"]
            span_b = runs[data[j]]["data_changes"][0]["span"]
            assert [x["span"] for x in change["a"]] == [span_a] and [x["span"] for x in change["b"]] == [span_b]
            assert change["change"] == ("new span" if span_a != span_b else "new data"), where
        # same data, code and hyperparameters: nothing else differs either
        if data[i] == data[j] and code[i] == code[j] and not moved:
            assert c["properties_changed"] == [], where
        for side, run in (("a", a), ("b", b)):
            out = c["outcome"][side]
            blessed = run["model_blessed"]
            assert out["blessed"] == (any(blessed.values()) if blessed else None), where
            assert out["pushed"] == any(run["model_pushed_this_run"].values()), where


def test_a_hyperparameter_change_shows_that_parameter_and_no_other(tfx_con, tfx_ground_truth):
    runs = tfx_ground_truth("penguin_prod")["runs"]
    # run 4 -> 5: learning rate and epochs (and the step count of the bad run) moved, nothing else
    c = compare(tfx_con, "penguin_prod", runs[3]["pipeline_run_id"], runs[4]["pipeline_run_id"])
    assert [(p["component"], p["property"], p["a"], p["b"]) for p in c["properties_changed"]] == [
        ("Trainer", "custom_config.epochs", 5, 1),
        ("Trainer", "custom_config.learning_rate", 0.01, 1e-05),
        ("Trainer", "train_args.num_steps", 100, 10),
    ]
    assert c["inputs_changed"] == []
    # run 6 -> 7: only the trainer module's code
    c = compare(tfx_con, "penguin_prod", runs[5]["pipeline_run_id"], runs[6]["pipeline_run_id"])
    assert [(p["component"], p["property"]) for p in c["properties_changed"]] == [("Trainer", "module_path")]


def test_a_fully_cached_run_shows_no_change(tfx_con, tfx_ground_truth):
    for store, i in (("penguin_prod", 2), ("penguin_prod", 10), ("penguin_minimal", 1)):
        runs = tfx_ground_truth(store)["runs"]
        assert runs[i]["executed_nodes"] == []
        c = compare(tfx_con, store, runs[i - 1]["pipeline_run_id"], runs[i]["pipeline_run_id"])
        assert (c["components_added"], c["components_removed"], c["properties_changed"], c["inputs_changed"]) == (
            [], [], [], [])
        assert c["outcome"]["b"]["pushed"] is False and c["outcome"]["b"]["compute_s"] < 0.05


def test_history_carries_each_runs_changes_and_outcome(tfx_con, tfx_ground_truth):
    runs = tfx_ground_truth("penguin_prod")["runs"]
    ref = find_pipeline(tfx_con, "penguin_prod")
    hist = history(tfx_con, ref)
    assert [h["run"] for h in hist] == [r["pipeline_run_id"] for r in runs]
    assert hist[0]["changes"] is None
    for h, run in zip(hist[1:], runs[1:]):
        c = compare(tfx_con, "penguin_prod", h["changes"]["previous"], h["run"])
        assert h["changes"]["properties_changed"] == c["properties_changed"]
        assert h["changes"]["inputs_changed"] == c["inputs_changed"]
        assert h["pushed"] == any(run["model_pushed_this_run"].values())
        assert h["executed"] == len([n for n in run["nodes"].values() if n["status"] != "cached"])
        assert h["cached"] == len(run["cached_nodes"])
    # compute per run sums to the pipeline's compute
    summary = next(p for p in list_pipelines(tfx_con) if p["pipeline"] == "penguin_prod")
    assert sum(h["compute_s"] for h in hist) == pytest.approx(summary["compute_s"], abs=0.01)
    assert sum(h["wasted_s"] for h in hist) == pytest.approx(summary["wasted_s"], abs=0.01)


def test_index_figures_equal_the_graphlets(tfx_con, truth, tfx_ground_truth):
    rows = {p["pipeline"]: p for p in list_pipelines(tfx_con)}
    assert set(rows) == set(STORES)
    for store in STORES:
        expected = truth(tfx_ground_truth(store))
        pushed = sum(v["pushed"] for v in expected.values())
        assert (rows[store]["trainings"], rows[store]["pushed"]) == (len(expected), pushed)
        assert rows[store]["push_rate"] == pytest.approx(pushed / len(expected), abs=1e-4)
        assert rows[store]["runs"] == len(tfx_ground_truth(store)["runs"])
        assert rows[store]["last_decision"] is None  # no ledger in this warehouse


def test_runs_are_named_by_context_or_trainer_and_unknown_names_say_what_exists(tfx_con, tfx_ground_truth):
    runs = tfx_ground_truth("penguin_prod")["runs"]
    ref = find_pipeline(tfx_con, "penguin_prod")
    trainer = runs[3]["nodes"]["Trainer"]["execution_id"]
    assert resolve_run(tfx_con, ref, str(trainer)) == runs[3]["pipeline_run_id"]
    with pytest.raises(UnknownRunError, match=runs[-1]["pipeline_run_id"]):
        compare(tfx_con, "penguin_prod", "no-such-run", runs[0]["pipeline_run_id"])
    with pytest.raises(UnknownPipelineError, match="penguin_minimal"):
        pipeline_view(tfx_con, "nope")


def test_async_pipeline_runs_are_graphlets_and_a_skipped_node_is_skipped(tmp_path, mlmd_history):
    import duckdb

    import analysis
    from provenance.ingest import ingest

    plan = {"legacy": False, "async": True, "runs": [
        {"new_data": True, "trainers": [{"state": "COMPLETE", "evaluate": True, "blessed": True, "push": True,
                                         "rerun_downstream": False}]},
        {"new_data": True, "trainers": [{"state": "COMPLETE", "evaluate": False, "blessed": False, "push": True,
                                         "rerun_downstream": False}]},
        {"new_data": False, "trainers": [{"state": "COMPLETE", "evaluate": True, "blessed": False, "push": True,
                                          "rerun_downstream": False}]},
    ]}
    record = mlmd_history(tmp_path / "async.sqlite", plan)
    ingest([tmp_path / "async.sqlite"], tmp_path / "w.duckdb", progress=False)
    analysis.analyze(tmp_path / "w.duckdb")
    trainers = sorted(e for e, x in record["executions"].items() if x["kind"] == "trainer")
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        view = pipeline_view(con, "p", run=str(trainers[1]))
        assert view["asynchronous"] and [r["run"] for r in view["runs"]] == [str(t) for t in trainers]
        # no component ids in this store: components are named by their type
        nodes = {n["role"]: n for n in view["run"]["nodes"]}
        assert nodes["trainer"]["state"] == "executed" and nodes["evaluator"]["state"] == "skipped"
        assert nodes["trainer"]["execution_ids"] == [trainers[1]]
        c = compare(con, "p", str(trainers[0]), str(trainers[1]))
        assert c["components_removed"] == [nodes["evaluator"]["component"]]
        assert c["outcome"]["a"]["pushed"] is True and c["outcome"]["b"]["pushed"] is True
        assert c["outcome"]["a"]["blessed"] is True and c["outcome"]["b"]["blessed"] is None
        assert [i["change"] for i in c["inputs_changed"]] == ["other artifact"]
        c = compare(con, "p", str(trainers[0]), str(trainers[2]))
        assert c["outcome"]["b"]["pushed"] is False and c["outcome"]["b"]["blessed"] is False
    finally:
        con.close()


def test_decisions_are_listed_with_the_run_they_led_to(tmp_path, analyzed_tfx_warehouse, tfx_ground_truth):
    import shutil

    import duckdb

    from analysis.pipeline_view import decisions

    path = tmp_path / "w.duckdb"
    shutil.copyfile(analyzed_tfx_warehouse, path)
    runs = tfx_ground_truth("penguin_prod")["runs"]
    con = duckdb.connect(str(path))
    try:
        from optimizer.pruning.ledger import create_ledger_tables, record_decision

        create_ledger_tables(con)
        common = {"source_id": "penguin_prod", "pipeline": "penguin_prod", "lane": None, "run_id": None,
                  "threshold": 0.2, "policy_version": "v1", "fallback": None, "rule": None, "inputs": None}
        record_decision(con, {**common, "decision_id": "d1", "decided_at": "2026-11-21 22:24:05", "action": "run",
                              "probability": 0.7, "reasons": ["push probability 0.70 >= 0.20"], "cost_s": 7.4})
        record_decision(con, {**common, "decision_id": "d2", "decided_at": "2026-11-21 22:26:16",
                              "action": "prune", "probability": 0.1,
                              "reasons": ["push probability 0.10 < 0.20", "<b>bold</b>"], "cost_s": 12.4})
        # what the ledger's matching writes once the training it governed is seen
        con.execute("""UPDATE decisions SET outcome = 'ran', outcome_graphlet_id = 'penguin_prod:38',
                       outcome_pushed = false, matched_at = '2026-11-21 22:25:00' WHERE decision_id = 'd1'""")
        listed = decisions(con, find_pipeline(con, "penguin_prod"))
        assert [d["decision_id"] for d in listed] == ["d2", "d1"]
        assert listed[1]["outcome_run"] == runs[4]["pipeline_run_id"]  # trainer 38 ran in run 5
        assert listed[0]["reasons"] == ["push probability 0.10 < 0.20", "<b>bold</b>"]
        last = {p["pipeline"]: p["last_decision"] for p in list_pipelines(con)}
        assert last["penguin_prod"]["decision_id"] == "d2" and last["penguin_minimal"] is None
    finally:
        con.close()


def test_a_pipeline_in_two_sources_must_be_chosen(tmp_path, tfx_store):
    import duckdb

    import analysis
    from analysis.errors import AmbiguousPipelineError
    from provenance.ingest import ingest

    store = tfx_store("penguin_minimal")
    ingest([store, store], tmp_path / "w.duckdb", source_ids=["east", "west"], progress=False)
    analysis.analyze(tmp_path / "w.duckdb")
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        with pytest.raises(AmbiguousPipelineError, match="east, west"):
            pipeline_view(con, "penguin_minimal")
        view = pipeline_view(con, "penguin_minimal", source="west")
        assert view["source_id"] == "west" and len(view["runs"]) == 4
        assert [p["source_id"] for p in list_pipelines(con)] == ["east", "west"]
    finally:
        con.close()


def test_history_tells_removed_components_from_skipped_ones(tmp_path, mlmd_history):
    import duckdb

    import analysis
    from provenance.ingest import ingest

    def run(evaluate: bool) -> dict:
        return {"new_data": True, "trainers": [{"state": "COMPLETE", "evaluate": evaluate, "blessed": True,
                                                "push": True, "rerun_downstream": False}]}

    # the evaluator runs, is skipped once, runs again, then leaves the pipeline for good
    plan = {"legacy": False, "async": False, "runs": [run(True), run(False), run(True), run(False), run(False)]}
    mlmd_history(tmp_path / "s.sqlite", plan)
    ingest([tmp_path / "s.sqlite"], tmp_path / "w.duckdb", progress=False)
    analysis.analyze(tmp_path / "w.duckdb")
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        view = pipeline_view(con, "p")
        roles = {n["component"]: n["role"] for n in view["dag"]["nodes"]}
        evaluator = next(c for c, r in roles.items() if r == "evaluator")
        resolver = next(c for c, r in roles.items() if r == "resolver")
        changes = [h["changes"] for h in view["runs"]]
        assert changes[0] is None
        assert [c["components_removed"] for c in changes[1:]] == [[], [], sorted([evaluator, resolver]), []]
        assert all(c["components_added"] == [] for c in changes[1:])
        ref = find_pipeline(con, "p")
        states = [{n["component"]: n["state"] for n in run_nodes(con, ref, h["run"])}[evaluator]
                  for h in view["runs"]]
        assert states == ["executed", "skipped", "executed", "absent", "absent"]
        c = compare(con, "p", view["runs"][2]["run"], view["runs"][3]["run"])
        assert sorted(c["components_removed"]) == sorted([resolver, evaluator])
    finally:
        con.close()


def test_async_components_outside_every_training_run_on_their_own_not_absent(simulated_warehouse, tmp_path):
    """A simulated asynchronous corpus (no pipeline changes its structure): a component that
    no training holds (the ExampleValidator, whose anomalies no trainer reads) is shown as
    running on its own in every training, a component of another trainer's trainings as being
    elsewhere, and with one trainer no component is ever absent."""
    import json

    import duckdb

    result, warehouse, _ = simulated_warehouse(tmp_path, pipelines=3, days=10, seed=5, mode="async")
    truth = json.loads(result.ground_truth_paths[0].read_text())
    assert all(p["mode"] == "async" and p["structure_changes"] == 0 for p in truth["pipelines"])
    lane_of = {str(t["execution_id"]): t["node"] for t in truth["trainers"]}
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        lanes_checked = 0
        for p in truth["pipelines"]:
            ref = find_pipeline(con, p["name"])
            assert ref.asynchronous
            # the components of the pipeline that no graphlet (training) holds, from the warehouse
            outside = {r[0] for r in con.execute(
                """SELECT DISTINCT x.component FROM analysis_executions x WHERE x.pipeline = ?
                   AND x.component NOT IN (SELECT x2.component FROM graphlets g
                        JOIN graphlet_members m USING (graphlet_id)
                        JOIN analysis_executions x2 ON x2.source_id = g.source_id AND x2.execution_id = m.entity_id
                        WHERE g.pipeline = ? AND m.entity = 'execution')""", [p["name"], p["name"]]).fetchall()}
            assert "ExampleValidator" in outside
            view = pipeline_view(con, p["name"])
            runs = [r["run"] for r in view["runs"]]
            assert set(runs) == {str(t["execution_id"]) for t in truth["trainers"] if t["pipeline"] == p["name"]}
            lanes = {lane_of[r] for r in runs}
            for run in runs:
                nodes = {n["component"]: n for n in run_nodes(con, ref, run)}
                for c in outside:
                    assert nodes[c]["state"] == "independent", (p["name"], run, c)
                    assert nodes[c]["execution_ids"] == [] and nodes[c]["seconds"] is None
                for other in lanes - {lane_of[run]}:  # another trainer's component is not in this training
                    assert nodes[other]["state"] == "elsewhere", (p["name"], run, other)
                    lanes_checked += 1
                assert nodes[lane_of[run]]["state"] in ("executed", "failed")
                if len(lanes) == 1:
                    assert "absent" not in {n["state"] for n in nodes.values()}, (p["name"], run)
        assert lanes_checked > 0  # the corpus has a pipeline with two trainers
    finally:
        con.close()
