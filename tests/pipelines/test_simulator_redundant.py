"""Redundant re-runs in simulated corpora: the ground truth against the store and the analysis.

The simulator marks every execution that redid the work of an earlier COMPLETE execution of
its node (same configuration, content-identical inputs), however deep in the pipeline, and
says whether the store records it one level deep (``recorded``). The analysis's
``component_runs.redundant`` compares content through lineage (an artifact's key is its
recorded fingerprint or the hash of its producer's key), so on current-style stores it must
flag every one of them, however deep.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import duckdb
import pytest



def _analysed(build, tmp: Path, **kwargs) -> tuple[dict, dict[int, tuple]]:
    """Simulate one store, ingest and analyze it: (ground truth, analysis's redundant runs)."""
    result, wh, _ = build(tmp, **kwargs)
    con = duckdb.connect(str(wh), read_only=True)
    try:
        flagged = {row[0]: row[1:] for row in con.execute(
            "SELECT execution_id, component, component_type, state FROM component_runs "
            "WHERE redundant AND source_id = ?", [result.store_paths[0].stem]).fetchall()}
    finally:
        con.close()
    truth = json.loads(result.ground_truth_paths[0].read_text())
    truth["_store"] = result.store_paths[0]
    return truth, flagged


@pytest.fixture(scope="module")
def current(simulated_warehouse, tmp_path_factory) -> tuple[dict, dict]:
    # 16 pipelines x 20 days, seed 7: one pipeline with caching off, manual re-runs (one a retry
    # whose trainer failed again) and cache-key changes
    return _analysed(simulated_warehouse, tmp_path_factory.mktemp("red"), pipelines=16, days=20, seed=7)


def test_component_runs_flag_exactly_the_redundant_runs(current):
    truth, flagged = current
    rows = truth["redundant"]
    recorded = {r["execution_id"] for r in rows if r["recorded"]}
    assert set(flagged) == {r["execution_id"] for r in rows}
    assert len(recorded) >= 20
    # every cause of redundant work occurs, and most of it lies deeper than one level shows
    assert Counter(r["cause"] for r in rows).keys() == {"caching_off", "manual_rerun", "cache_key_change"}
    assert len(rows) > 2 * len(recorded)
    deep = Counter(r["component"] for r in rows if not r["recorded"])
    assert {"schema_gen", "example_validator", "trainer"} <= deep.keys()
    # a redundant FAILED run records its error as an execution property: never one level visible
    assert any(r["state"] == "FAILED" and not r["recorded"] for r in rows)
    # ExampleGen re-reading an unchanged span and StatisticsGen on its content-identical
    # output are visible through the Examples' input_fingerprint
    shown = Counter(r["component"] for r in rows if r["recorded"])
    assert shown["example_gen"] > 0 and shown["statistics_gen"] > 0
    # trainer rows agree with the list of redundant executions
    trainers = {t["execution_id"] for t in truth["trainers"] if t["redundant"]}
    assert trainers == {r["execution_id"] for r in rows if r["component"] == "trainer"}
    assert truth["totals"]["redundant_executions"] == len(rows)
    assert truth["totals"]["redundant_recorded"] == len(recorded)


def test_redundant_runs_match_their_originals_in_the_store(current):
    """Each redundant execution repeats an earlier COMPLETE one of its node with equal properties."""
    truth, _ = current
    db = sqlite3.connect(f"file:{truth['_store']}?mode=ro", uri=True)
    node_of = dict(db.execute(
        "SELECT a.execution_id, c.name FROM Association a JOIN Context c ON c.id = a.context_id "
        "JOIN Type t ON t.id = c.type_id WHERE t.name = 'node'"))
    state = dict(db.execute("SELECT id, last_known_state FROM Execution"))
    started = dict(db.execute("SELECT id, create_time_since_epoch FROM Execution"))
    props: dict[int, set] = {}
    for xid, name, iv, sv in db.execute("SELECT execution_id, name, int_value, string_value FROM ExecutionProperty "
                                        "WHERE name <> '__execution_result__'"):
        props.setdefault(xid, set()).add((name, iv, sv))
    rows = truth["redundant"]
    assert rows
    for r in rows:
        x, first = r["execution_id"], r["same_as"]
        assert state[first] == 3 and started[first] < started[x]
        assert state[x] == (3 if r["state"] == "COMPLETE" else 4)
        assert node_of[x] == node_of[first] == f"{r['pipeline']}.{r['node']}"
        assert props.get(x) == props.get(first)
    # a redundant ExampleGen wrote a new Examples artifact of the same span and fingerprint
    out = {}
    for xid, name, iv, sv in db.execute(
            "SELECT ev.execution_id, p.name, p.int_value, p.string_value FROM Event ev "
            "JOIN ArtifactProperty p ON p.artifact_id = ev.artifact_id "
            "WHERE ev.type = 4 AND p.name IN ('span', 'input_fingerprint')"):
        out.setdefault(xid, set()).add((name, iv, sv))
    egs = [r for r in rows if r["component"] == "example_gen"]
    assert egs and all(out[r["execution_id"]] == out[r["same_as"]] and len(out[r["same_as"]]) == 2 for r in egs)
    # a pipeline with caching off executes every component on every run: no CACHED execution
    off = {p["name"] for p in truth["pipelines"] if not p["caching"]}
    assert off
    cached_nodes = {node_of[x].split(".")[0] for x, s in state.items() if s == 5}
    assert not off & cached_nodes


@pytest.mark.parametrize("style,mode", [("current", "mixed"), ("legacy", "sync")])
def test_other_shapes(simulated_warehouse, tmp_path, style, mode):
    truth, flagged = _analysed(simulated_warehouse, tmp_path, pipelines=12, days=20, seed=5, style=style, mode=mode)
    rows = {r["execution_id"]: r for r in truth["redundant"]}
    recorded = {x for x, r in rows.items() if r["recorded"]}
    assert rows
    if style == "current":
        assert set(flagged) == set(rows)
        # asynchronous pipelines have no runs to re-run and no cache to turn off
        asynchronous = {p["name"] for p in truth["pipelines"] if p["mode"] == "async"}
        assert asynchronous and not any(r["pipeline"] in asynchronous and r["cause"] != "cache_key_change"
                                        for r in rows.values())
    else:
        # legacy Examples record no fingerprint: ExampleGen and everything after it is invisible
        assert recorded <= set(flagged)
        assert not any(r["component"] == "example_gen" and r["recorded"] for r in rows.values())
        # the analysis also flags ModelValidator re-runs after a new blessed model: their
        # baseline is read inside the component, recorded as no input, so the work differed;
        # lineage carries that verdict on to the Pusher that reads it
        extra = set(flagged) - recorded
        assert extra and all(x not in rows for x in extra)
        kinds = Counter(flagged[x][1] for x in extra)
        assert kinds["ModelValidator"] > 0 and set(kinds) <= {"ModelValidator", "Pusher"}
