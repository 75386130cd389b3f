"""The simulator: TFX conventions, variety, outcomes, ground truth, determinism, errors, CLI."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from frugal.cli import main
from pipelines.errors import PipelineError
from pipelines.simulator import SimulationResult, simulate

TRAINER = "tfx.components.trainer.component.Trainer"
PUSHER = "tfx.components.pusher.component.Pusher"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> SimulationResult:
    """A moderate current-style corpus shared by the tests of this module."""
    return simulate(tmp_path_factory.mktemp("sim") / "c", pipelines=40, days=40, seed=11, progress=False)


def _db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def _gt(result: SimulationResult, k: int = 0) -> dict:
    return json.loads(result.ground_truth_paths[k].read_text())


def _table_digest(path: Path) -> str:
    db = _db(path)
    h = hashlib.sha256()
    for table in ("Type", "TypeProperty", "ParentType", "Artifact", "ArtifactProperty", "Execution",
                  "ExecutionProperty", "Event", "EventPath", "Context", "ContextProperty", "ParentContext",
                  "Association", "Attribution", "MLMDEnv"):
        # TypeProperty rows come from a protobuf map through the API: compare them by content
        query = ("SELECT * FROM TypeProperty ORDER BY type_id, name" if table == "TypeProperty"
                 else f"SELECT rowid, * FROM {table} ORDER BY rowid")
        for row in db.execute(query):
            h.update(repr(row).encode())
    return h.hexdigest()


def test_schema_version_and_current_tfx_names(corpus):
    db = _db(corpus.store_paths[0])
    assert db.execute("SELECT schema_version FROM MLMDEnv").fetchone() == (10,)
    types = {name for (name,) in db.execute("SELECT name FROM Type")}
    assert {TRAINER, PUSHER, "tfx.dsl.components.common.resolver.Resolver", "Examples", "ModelBlessing",
            "PushedModel", "ExampleAnomalies", "pipeline", "pipeline_run", "node", "execution_cache"} <= types
    # Examples carry the span as a custom property; anomalies a per-split struct; pushes their destination
    span = db.execute("SELECT count(*) FROM ArtifactProperty p JOIN Artifact a ON a.id = p.artifact_id "
                      "JOIN Type t ON t.id = a.type_id WHERE t.name = 'Examples' AND p.name = 'span' "
                      "AND p.is_custom_property = 1").fetchone()[0]
    assert span > 0
    blessed = {v for (v,) in db.execute(
        "SELECT DISTINCT p.string_value FROM ArtifactProperty p JOIN Artifact a ON a.id = p.artifact_id "
        "JOIN Type t ON t.id = a.type_id WHERE t.name = 'ExampleAnomalies' AND p.name = 'blessed'")}
    assert all(v.startswith("mlmd-struct::") for v in blessed) and len(blessed) >= 2
    pushed = db.execute(
        "SELECT p.int_value, count(*) FROM ArtifactProperty p JOIN Artifact a ON a.id = p.artifact_id "
        "JOIN Type t ON t.id = a.type_id WHERE t.name = 'PushedModel' AND p.name = 'pushed' GROUP BY 1").fetchall()
    assert dict(pushed).keys() == {0, 1}
    dest = db.execute("SELECT count(*) FROM ArtifactProperty WHERE name IN ('pushed_destination', 'pushed_version')"
                      ).fetchone()[0]
    assert dest == 2 * dict(pushed)[1]
    # event paths use the components' keys
    keys = {k for (k,) in db.execute("SELECT DISTINCT step_key FROM EventPath WHERE step_key IS NOT NULL")}
    assert {"examples", "model", "blessing", "model_blessing", "baseline_model", "pushed_model", "schema"} <= keys


def test_cached_executions_reemit_existing_artifacts(corpus):
    db = _db(corpus.store_paths[0])
    # every OUTPUT event of a CACHED execution points to an artifact created before it started
    rows = db.execute(
        "SELECT a.create_time_since_epoch, e.create_time_since_epoch FROM Event ev "
        "JOIN Execution e ON e.id = ev.execution_id JOIN Artifact a ON a.id = ev.artifact_id "
        "WHERE e.last_known_state = 5 AND ev.type = 4").fetchall()
    assert len(rows) > 50
    assert all(created < started for created, started in rows)
    # and shares the execution_cache context of the run that produced them
    shared = db.execute(
        "SELECT count(*) FROM Association a JOIN Context c ON c.id = a.context_id JOIN Type t ON t.id = c.type_id "
        "JOIN Execution e ON e.id = a.execution_id WHERE t.name = 'execution_cache' AND e.last_known_state = 5"
    ).fetchone()[0]
    assert shared > 50
    # Resolver hands the baseline over with INTERNAL_OUTPUT events (model and its blessing)
    resolved = db.execute("SELECT count(*) FROM Event ev JOIN Execution e ON e.id = ev.execution_id "
                          "JOIN Type t ON t.id = e.type_id WHERE t.name LIKE '%Resolver' AND ev.type = 6"
                          ).fetchone()[0]
    assert resolved > 0 and resolved % 2 == 0


def test_variety(corpus):
    gt = _gt(corpus)
    pipes = gt["pipelines"]
    assert len({p["cadence_h"] for p in pipes}) >= 4
    assert {p["has_transform"] for p in pipes} == {True, False}
    assert any(p["n_trainers"] > 1 for p in pipes)
    assert any(p["window"] > 1 for p in pipes)
    assert len({p["start"] for p in pipes}) > 5
    states = {t["state"] for t in gt["trainers"]}
    assert states == {"COMPLETE", "FAILED", "CACHED"}
    drivers = [t["drivers"] for t in gt["trainers"] if t["drivers"]]
    for name in ("anomaly", "code_change", "hparam_change", "new_data"):
        assert any(d[name] for d in drivers), name


def test_outcomes_are_noisy_and_vary_between_pipelines(tmp_path):
    res = simulate(tmp_path / "o", pipelines=60, days=45, seed=7, progress=False)
    gt = _gt(res)
    assert 0.30 <= res.counts["not_pushed_fraction"] <= 0.45
    rates = {}
    for t in gt["trainers"]:
        if t["state"] == "COMPLETE":
            rates.setdefault(t["pipeline"], []).append(t["pushed"])
    per_pipe = sorted(sum(v) / len(v) for v in rates.values() if len(v) >= 10)
    assert per_pipe[0] < 0.35 and per_pipe[-1] > 0.9
    # drivers move the probability, but the draw stays uncertain (no near-certain predictions overall)
    probs = [t["push_probability"] for t in gt["trainers"] if t["push_probability"] is not None]
    assert 0.2 < sum(1 for p in probs if 0.2 < p < 0.8) / len(probs)
    anomalous = [t["p_bless"] for t in gt["trainers"] if t["drivers"] and t["drivers"]["anomaly"]]
    clean = [t["p_bless"] for t in gt["trainers"] if t["drivers"] and not t["drivers"]["anomaly"]]
    assert sum(anomalous) / len(anomalous) < sum(clean) / len(clean) - 0.1
    # calibration: realised push rate tracks the true probability
    done = [t for t in gt["trainers"] if t["push_probability"] is not None]
    expected = sum(t["push_probability"] for t in done)
    realised = sum(1 for t in done if t["pushes"] and t["state"] == "COMPLETE")
    assert abs(realised - expected) < 0.08 * len(done)


def test_random_outcome_model_is_drawn_per_seed_and_explains_every_probability(tmp_path):
    import math

    from pipelines.simulator.model import TRAINER_VARIANTS, outcome_model_for

    res = simulate(tmp_path / "r", pipelines=12, days=20, seed=31, mode="mixed", outcome_model="random",
                   progress=False)
    gt = _gt(res)
    m = gt["outcome_model"]
    assert m["name"] == "random" and m == outcome_model_for("random", 31).to_dict()
    assert outcome_model_for("random", 32).to_dict() != m            # another seed, another model
    assert _gt(simulate(tmp_path / "d", pipelines=2, days=2, seed=31, progress=False))["outcome_model"]["name"] == "default"
    pipes = {p["name"]: p for p in gt["pipelines"]}
    checked = 0
    for t in gt["trainers"]:
        d = t["drivers"]
        if d is None or t["p_bless"] in (None, 1.0):
            continue
        o = pipes[t["pipeline"]]["outcome"]
        k = o["scale"]
        suffix = t["node"].rsplit("_", 1)[-1]
        branch = TRAINER_VARIANTS.index(suffix) if "_" in t["node"] and suffix in TRAINER_VARIANTS else 0
        eta = (o["alphas"][branch] + m["b_health"] * d["health"] + k[0] * m["b_anomaly"] * d["anomaly"]
               + k[1] * m["b_drift"] * d["drift"] + k[2] * m["b_new_data"] * d["new_data"]
               + k[3] * m["b_structure"] * d["structure_change"] + k[4] * m["b_history"] * (d["recent_bless_rate"] - 0.6)
               + k[5] * m["b_hour"] * math.cos(2 * math.pi * (d["hour"] - m["hour_peak"]) / 24)
               + k[6] * m["b_code_age"] * math.exp(-d["runs_since_code_change"] / m["code_age_runs"])
               + k[7] * m["b_cycle"] * d["cycle"] + d["shock"])
        # drivers are rounded in the ground truth: compare the blessing probability loosely
        assert t["p_bless"] == pytest.approx(1 / (1 + math.exp(-eta)), abs=2e-3), t
        checked += 1
    assert checked > 100
    with pytest.raises(PipelineError, match="--outcome-model"):
        simulate(tmp_path / "x", pipelines=2, days=2, seed=1, outcome_model="linear", progress=False)


def test_ground_truth_matches_store(corpus):
    gt = _gt(corpus)
    db = _db(corpus.store_paths[0])
    trainers = {x: (s, c, u) for x, s, c, u in db.execute(
        "SELECT e.id, e.last_known_state, e.create_time_since_epoch, e.last_update_time_since_epoch "
        "FROM Execution e JOIN Type t ON t.id = e.type_id WHERE t.name = ?", (TRAINER,))}
    assert len(trainers) == len(gt["trainers"]) == gt["totals"]["trainer_executions"]
    names = {3: "COMPLETE", 4: "FAILED", 5: "CACHED"}
    # pushes per model: COMPLETE pushers whose PushedModel has pushed = 1, traced to the trainer
    pushes = dict(db.execute(
        "SELECT tr.execution_id, count(*) FROM Execution p JOIN Type pt ON pt.id = p.type_id "
        "JOIN Event pin ON pin.execution_id = p.id AND pin.type = 3 "
        "JOIN Event tr ON tr.artifact_id = pin.artifact_id AND tr.type = 4 "
        "JOIN Execution te ON te.id = tr.execution_id AND te.last_known_state = 3 "
        "JOIN Type tt ON tt.id = te.type_id AND tt.name = ? "
        "JOIN Event pout ON pout.execution_id = p.id AND pout.type = 4 "
        "JOIN ArtifactProperty pp ON pp.artifact_id = pout.artifact_id AND pp.name = 'pushed' "
        "WHERE pt.name = ? AND p.last_known_state = 3 AND pp.int_value = 1 GROUP BY 1", (TRAINER, PUSHER)))
    for row in gt["trainers"]:
        state, created, updated = trainers[row["execution_id"]]
        assert names[state] == row["state"]
        assert row["duration_s"] == pytest.approx((updated - created) / 1000, abs=0.002)
        if row["state"] == "COMPLETE":
            assert row["pushes"] == pushes.get(row["execution_id"], 0)
            assert row["pushed"] == (row["pushes"] > 0)
        else:
            assert not row["pushed"]
    totals = gt["totals"]
    assert totals["pushed"] == sum(1 for r in gt["trainers"] if r["state"] == "COMPLETE" and r["pushed"])


def test_blessing_in_store_matches_ground_truth(corpus):
    gt = _gt(corpus)
    db = _db(corpus.store_paths[0])
    # current_model_id on ModelBlessing names the model; the trainer produced it
    blessed = {}
    for model_id, value in db.execute(
            "SELECT m.int_value, b.int_value FROM ArtifactProperty m JOIN ArtifactProperty b "
            "ON b.artifact_id = m.artifact_id AND b.name = 'blessed' WHERE m.name = 'current_model_id'"):
        blessed.setdefault(model_id, set()).add(value)
    model_of = dict(db.execute(
        "SELECT ev.execution_id, ev.artifact_id FROM Event ev JOIN EventPath p ON p.event_id = ev.id "
        "WHERE ev.type = 4 AND p.step_key = 'model'"))
    checked = 0
    for row in gt["trainers"]:
        if row["state"] == "COMPLETE" and row["blessed"] is not None:
            assert blessed[model_of[row["execution_id"]]] == {int(row["blessed"])}
            checked += 1
    assert checked > 100


def test_deterministic_and_independent_of_store_count(tmp_path):
    a = simulate(tmp_path / "a", pipelines=6, days=8, seed=3, progress=False)
    b = simulate(tmp_path / "b", pipelines=6, days=8, seed=3, progress=False)
    c = simulate(tmp_path / "c", pipelines=6, days=8, seed=4, progress=False)
    assert _table_digest(a.store_paths[0]) == _table_digest(b.store_paths[0])
    assert _table_digest(a.store_paths[0]) != _table_digest(c.store_paths[0])
    assert _gt(a)["trainers"] == _gt(b)["trainers"]
    assert _gt(a)["redundant"] == _gt(b)["redundant"]
    k = simulate(tmp_path / "k", pipelines=6, days=8, seed=3, stores=2, progress=False)
    assert len(k.store_paths) == 2 and all(p.exists() for p in k.ground_truth_paths)
    for key in ("trainer_executions", "trainers_complete", "pushed", "executions", "artifacts", "events"):
        assert k.counts[key] == a.counts[key], key


def test_async_has_no_pipeline_runs_and_no_cached_executions(tmp_path):
    res = simulate(tmp_path / "a", pipelines=8, days=10, seed=2, mode="async", progress=False)
    db = _db(res.store_paths[0])
    ctx = dict(db.execute("SELECT t.name, count(*) FROM Context c JOIN Type t ON t.id = c.type_id GROUP BY 1"))
    assert "pipeline_run" not in ctx and ctx["pipeline"] == 8
    assert db.execute("SELECT count(*) FROM Execution WHERE last_known_state = 5").fetchone() == (0,)
    assert all(t["run"] is None for t in _gt(res)["trainers"])


def test_legacy_style(tmp_path):
    res = simulate(tmp_path / "l", pipelines=8, days=10, seed=2, style="legacy", progress=False)
    db = _db(res.store_paths[0])
    assert db.execute("SELECT count(*) FROM Execution WHERE last_known_state IS NOT NULL").fetchone() == (0,)
    states = dict(db.execute("SELECT string_value, count(*) FROM ExecutionProperty WHERE name = 'state' GROUP BY 1"))
    assert {"complete", "cached"} <= states.keys()
    types = {n for (n,) in db.execute("SELECT name FROM Type")}
    assert {"Trainer", "ModelExportPath", "ModelBlessingPath", "ModelPushPath", "run", "component_run"} <= types
    ids = db.execute("SELECT count(*) FROM ArtifactProperty WHERE name = 'pushed_model_id'").fetchone()[0]
    pushed = db.execute("SELECT count(*) FROM ArtifactProperty WHERE name = 'pushed' AND int_value = 1").fetchone()[0]
    assert ids == pushed > 0
    failed = [t for t in _gt(res)["trainers"] if t["state"] == "FAILED"]
    new = states.get("new", 0)
    assert new == len(failed)


@pytest.mark.parametrize("kwargs, message", [
    (dict(pipelines=0, days=3, seed=1), "--pipelines"),
    (dict(pipelines=2, days=0, seed=1), "--days"),
    (dict(pipelines=2, days=3, seed=1, style="old"), "--style"),
    (dict(pipelines=2, days=3, seed=1, mode="batch"), "--mode"),
    (dict(pipelines=2, days=3, seed=1, stores=3), "--stores"),
    (dict(pipelines=2, days=3, seed=1, style="legacy", mode="async"), "asynchronous"),
])
def test_bad_input_is_rejected(tmp_path, kwargs, message):
    with pytest.raises(PipelineError, match=message):
        simulate(tmp_path / "x", progress=False, **kwargs)
    assert not any((tmp_path / "x").glob("*.sqlite")) if (tmp_path / "x").exists() else True


def test_existing_store_is_not_overwritten(tmp_path):
    simulate(tmp_path, pipelines=2, days=2, seed=1, progress=False)
    before = (tmp_path / "mlmd.sqlite").read_bytes()
    with pytest.raises(PipelineError, match="already exists"):
        simulate(tmp_path, pipelines=2, days=2, seed=2, progress=False)
    assert (tmp_path / "mlmd.sqlite").read_bytes() == before
    assert not list(tmp_path.glob(".*partial"))


def test_cli(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "cli"), "--pipelines", "3", "--days", "4", "--seed", "9"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("simulated 3 pipelines") and "trainer executions" in line and "\n" not in line
    assert "redundant re-runs" in line
    assert (tmp_path / "cli" / "mlmd.sqlite").exists()
    assert main(["simulate", "--out", str(tmp_path / "bad"), "--pipelines", "3", "--days", "4", "--seed", "9",
                 "--mode", "nope"]) == 2
    assert "--mode must be one of" in capsys.readouterr().err


def _shape(path: Path) -> tuple[dict, dict, dict]:
    db = _db(path)
    shapes: tuple[dict, dict, dict] = ({}, {}, {})
    queries = (
        "SELECT DISTINCT t.name, p.name, p.is_custom_property FROM ExecutionProperty p "
        "JOIN Execution e ON e.id = p.execution_id JOIN Type t ON t.id = e.type_id",
        "SELECT DISTINCT t.name, p.name, p.is_custom_property FROM ArtifactProperty p "
        "JOIN Artifact a ON a.id = p.artifact_id JOIN Type t ON t.id = a.type_id",
        "SELECT DISTINCT t.name, v.type, p.step_key FROM Event v JOIN EventPath p ON p.event_id = v.id "
        "JOIN Execution e ON e.id = v.execution_id JOIN Type t ON t.id = e.type_id WHERE p.step_key IS NOT NULL",
    )
    for shape, query in zip(shapes, queries):
        for type_name, a, b in db.execute(query):
            shape.setdefault(type_name, set()).add((a, b))
    return shapes


def test_store_looks_like_the_real_tfx_store(corpus, tfx_dir):
    """Every property and event path the real TFX store has on a type, the simulated store has too;
    the only extras come from what the penguin pipeline lacks (Transform, Tuner, InfraValidator, failures)."""
    real = _shape(tfx_dir / "penguin_prod.sqlite")
    mine = _shape(corpus.store_paths[0])
    allowed_extras = {("__execution_result__", 1), (3, "transform_graph"), (3, "hyperparameters"),
                      (3, "infra_blessing")}
    common = 0
    for real_shape, my_shape in zip(real, mine):
        for type_name in set(real_shape) & set(my_shape):
            common += 1
            assert real_shape[type_name] <= my_shape[type_name], type_name
            assert my_shape[type_name] - real_shape[type_name] <= allowed_extras, type_name
    assert common >= 20


def test_attribution_rule_is_the_one_real_tfx_follows(tfx_dir):
    """The writer derives attributions by this rule; it reproduces the real store's exactly."""
    db = _db(tfx_dir / "penguin_prod.sqlite")
    real = set(db.execute("SELECT context_id, artifact_id FROM Attribution"))
    derived = set(db.execute(
        "SELECT DISTINCT a.context_id, e.artifact_id FROM Event e JOIN Association a ON a.execution_id = e.execution_id "
        "JOIN Context c ON c.id = a.context_id JOIN Type t ON t.id = c.type_id "
        "WHERE t.name != 'execution_cache' OR e.type = 4"))
    assert real == derived and len(real) > 300
