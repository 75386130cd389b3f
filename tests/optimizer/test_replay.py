"""Replay evaluation: arithmetic on a hand-made history, determinism, end to end on a simulated corpus."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from frugal.cli import main
from optimizer.errors import OptimizerError
from optimizer.pruning.features import build_features
from optimizer.pruning.policy import PolicyConfig, replay_decisions
from optimizer.pruning.predictor import PredictorConfig, fit_predictor
from optimizer.pruning.freshness import age_integrals, freshness_metrics
from optimizer.pruning.replay import (replay_frame, censored_replay, _true_probability, cadence, cadence_summary, cadence_figure, evaluate, load_truth, replay_metrics,
                                      tradeoff_figure)
from provenance.warehouse import connect

T0 = pd.Timestamp("2026-03-01 00:00")
H = pd.Timedelta(hours=1)
CONFIG = PolicyConfig(objective="pushes", min_history=2, push_age_factor=1.5)


def hand_history() -> tuple[pd.DataFrame, np.ndarray]:
    """The history of test_policy: pruned a1, a3 (a push) and b2 at threshold 0.3."""
    a = pd.DataFrame({
        "lane": "A", "pipeline": "pa", "started_at": [T0 + i * H for i in range(6)],
        "n_prior": [10, 11, 12, 13, 14, 15], "hours_since_push": [0.5] * 6, "typical_interval_h": [1.0] * 6,
        "pushed": [True, False, True, True, False, True],
        "skippable_s": [10.0, 20, 30, 40, 50, 60], "skippable_wasted_s": [0.0, 20, 0, 0, 50, 0],
    })
    b = pd.DataFrame({
        "lane": "B", "pipeline": "pb", "started_at": [T0 + 0.5 * H, T0 + 1.5 * H, T0 + 2.5 * H],
        "n_prior": [0, 1, 2], "hours_since_push": [math.nan] * 3, "typical_interval_h": [math.nan, math.nan, 1.0],
        "pushed": [False, True, False], "skippable_s": [5.0, 6, 7], "skippable_wasted_s": [5.0, 0, 7],
    })
    frame = pd.concat([a, b], ignore_index=True)
    frame["push_time"] = frame["started_at"] + 0.25 * H
    return frame, np.array([0.9, 0.1, 0.2, 0.05, 0.1, 0.95, 0.01, 0.01, 0.01])


class TestReplayArithmetic:
    def test_shares_of_waste_pushes_and_compute(self):
        frame, prob = hand_history()
        pruned, _ = replay_decisions(frame, prob, 0.3, CONFIG)
        m = replay_metrics(frame, pruned, wasted_total_s=100.0, compute_total_s=400.0)
        assert m["pruned"] == 3 and m["trainings"] == 9
        assert (m["pushes"], m["pushes_lost_count"], m["pushes_lost"]) == (5, 1, pytest.approx(0.2))
        assert m["wasted_pruned_s"] == 27.0                  # a1 (20) + b2 (7); a3 pushed: no waste
        assert m["waste_pruned"] == pytest.approx(0.27)
        assert m["skippable_wasted_s"] == 82.0
        assert m["waste_pruned_of_skippable"] == pytest.approx(27 / 82)
        assert m["compute_saved_s"] == 67.0                  # 20 + 40 + 7
        assert m["compute_saved_share"] == pytest.approx(67 / 400)

    def test_without_totals_the_skippable_parts_are_the_denominators(self):
        frame, prob = hand_history()
        pruned, _ = replay_decisions(frame, prob, 0.3, CONFIG)
        m = replay_metrics(frame, pruned)
        assert m["waste_pruned"] == pytest.approx(27 / 82)
        assert m["compute_saved_share"] == pytest.approx(67 / 228)

    def test_cadence_with_and_without(self):
        frame, prob = hand_history()
        pruned, _ = replay_decisions(frame, prob, 0.3, CONFIG)
        cad = cadence(frame, pruned).set_index("pipeline")
        # pa pushes at 0.25, 2.25, 3.25, 5.25 h; the policy drops 3.25
        assert cad.loc["pa", "pushes_without"] == 4 and cad.loc["pa", "pushes_with"] == 3
        assert cad.loc["pa", "median_h_without"] == pytest.approx(2.0)
        assert cad.loc["pa", "longest_h_without"] == pytest.approx(2.0)
        assert cad.loc["pa", "median_h_with"] == pytest.approx(2.5)
        assert cad.loc["pa", "longest_h_with"] == pytest.approx(3.0)
        assert cad.loc["pb", "pushes_without"] == 1 and math.isnan(cad.loc["pb", "median_h_without"])
        s = cadence_summary(cad.reset_index())
        assert s["pipelines_compared"] == 1 and s["median_unchanged"] == 0
        assert s["median_ratio_max"] == pytest.approx(1.25) and s["longest_ratio_max"] == pytest.approx(1.5)


def test_predictor_is_deterministic_for_a_seed():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(600, 5))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (np.nan_to_num(X[:, 0]) + rng.normal(scale=0.7, size=600) > 0).astype(float)
    cols = tuple(f"f{i}" for i in range(5))
    runs = [fit_predictor(X[:400], y[:400], X[400:], y[400:], cols, PredictorConfig(seed=7)) for _ in range(2)]
    p1, p2 = (r.predict(X) for r in runs)
    np.testing.assert_array_equal(p1, p2)
    assert ((p1 > 0) & (p1 < 1)).all()
    # calibrated on the validation period: mean prediction near the observed rate there
    assert abs(runs[0].predict(X[400:]).mean() - y[400:].mean()) < 0.05
    top = runs[0].explain(X[:1], top=2)[0]
    assert len(top) <= 2 and all(c.feature in cols for c in top)
    assert runs[0].importance(1)[0][0] == "f0"
    # importance is the mean absolute share of the calibrated log-odds over the known past, both
    # halves together: a model of the line alone still ranks its driver first
    imp = dict(runs[0].importance(5))
    assert imp["f0"] == pytest.approx(np.abs(runs[0].contributions(X)).mean(axis=0)[0])
    line = fit_predictor(X[:400], y[:400], X[400:], y[400:], cols, PredictorConfig(seed=7, linear_weight=1.0))
    assert line.importance(1)[0][0] == "f0"
    assert line.importance(5)[0][1] == pytest.approx(line.calibration[0] * np.abs(
        line.linear.contributions(X)).mean(axis=0)[0])


def test_predictor_learns_from_the_validation_period_and_explains_its_log_odds():
    """A driver that starts to matter in the validation period is learned only by refitting on it."""
    from sklearn.metrics import roc_auc_score

    from optimizer.pruning.predictor import _logit

    rng = np.random.default_rng(11)
    n = 1500
    X = rng.normal(size=(n, 4))
    late = np.arange(n) >= 700   # the validation period (700-1000) and the future: f1 matters too
    z = X[:, 0] + np.where(late, 1.5 * X[:, 1], 0.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
    cols = tuple(f"f{i}" for i in range(4))
    fit, val, future = slice(0, 700), slice(700, 1000), slice(1000, n)
    auc = {}
    for refit in (True, False):
        p = fit_predictor(X[fit], y[fit], X[val], y[val], cols, PredictorConfig(refit_all=refit))
        auc[refit] = roc_auc_score(y[future], p.predict(X[future]))
    assert auc[True] > auc[False] + 0.05, auc
    # contributions (trees' and line's, calibrated) add up to the log-odds, up to one intercept
    rest = _logit(p.predict(X)) - p.contributions(X).sum(axis=1)
    assert np.ptp(rest) < 1e-9
    assert p.explain(X[:1], top=1)[0][0].feature in ("f0", "f1")


@pytest.fixture(scope="module")
def sim_eval(prune_sim):
    con = connect(str(prune_sim.warehouse), read_only=True)
    truth = load_truth(con, prune_sim.ground_truth)
    result = evaluate(con, truth=truth, config=PolicyConfig(objective="pushes"),
                      predictor_config=PredictorConfig(seed=1))
    return con, truth, result


@pytest.fixture(scope="module")
def fresh_eval(prune_sim):
    con = connect(str(prune_sim.warehouse), read_only=True)
    truth = load_truth(con, prune_sim.ground_truth)
    return con, evaluate(con, truth=truth, predictor_config=PredictorConfig(seed=1))


def test_freshness_objective_holds_the_added_age_and_the_longest_age(fresh_eval, prune_sim, tmp_path):
    """The default objective: the deployed models' added age within 5%, no lane's longest model age
    more than doubled, figures under both yardsticks for the policy, its baselines and the oracle,
    and the figures recomputed from the decisions alone (what --decisions-out writes) agree."""
    con, r = fresh_eval
    m = r.metrics
    assert r.policy.config.objective == "freshness" and m["objective"] == "freshness"
    assert m["pruned"] > 0 and 0 < m["waste_pruned"] <= 1
    assert 0 < m["added_age"] <= r.policy.config.max_added_age
    assert m["longest_age_ratio_max"] <= 2.0 and m["pipelines_longest_over"] == 0
    for b in r.baselines.values():
        assert {"waste_pruned", "pushes_lost", "added_age", "longest_age_ratio_max"} <= set(b)
    lane = r.baselines["lane_push_rate"]["hindsight_at_budget"]
    assert lane["added_age"] <= r.policy.config.max_added_age + 1e-12
    assert {"added_age", "waste_pruned", "pushes_lost"} <= set(r.oracle["controlled"])
    # recompute the added age from the decisions and the warehouse, independently of the replay
    out = tmp_path / "decisions.csv"
    assert main(["prune", "evaluate", "-w", str(prune_sim.warehouse), "--decisions-out", str(out),
                 "--format", "json", "--seed", "1"]) == 0
    dec = pd.read_csv(out)
    assert list(dec.columns[:6]) == ["source_id", "trainer_execution_id", "started_at", "probability", "pruned",
                                     "guarded"]
    assert int(dec["pruned"].sum()) == m["pruned"]
    rows = con.execute("""
        SELECT g.source_id, g.pipeline, g.trainer_execution_id, g.pushed, g.ended_at, e.update_time AS trained_at
        FROM graphlets g JOIN executions e ON e.source_id = g.source_id AND e.execution_id = g.trainer_execution_id
        WHERE g.pushed""").df()
    pruned = set(zip(dec.loc[dec["pruned"], "source_id"], dec.loc[dec["pruned"], "trainer_execution_id"]))
    since = pd.Timestamp(r.train_until).tz_convert("UTC").tz_localize(None)
    end = con.execute("SELECT greatest(max(started_at), max(ended_at)) FROM graphlets WHERE started_at >= ?",
                      [since.to_pydatetime()]).fetchone()[0]
    lanes = replay_frame(con)[0][["source_id", "trainer_execution_id", "lane"]]   # the lane: pipeline and trainer node
    rows = rows.merge(lanes, on=["source_id", "trainer_execution_id"])
    total = {"with": 0.0, "without": 0.0}
    for _, part in rows.groupby("lane"):
        part = part.sort_values("ended_at")
        d = part["ended_at"].to_numpy(dtype="datetime64[ns]").astype(float) / 3.6e12
        e = part["trained_at"].to_numpy(dtype="datetime64[ns]").astype(float) / 3.6e12
        keep = ~np.array([(s, t) in pruned for s, t in zip(part["source_id"], part["trainer_execution_id"])])
        t0 = max(since.value / 3.6e12, d[0])
        t1 = pd.Timestamp(end).value / 3.6e12
        for label, k in (("without", np.ones(len(d), bool)), ("with", keep)):
            # integrate age on a fine grid: independent of the closed form the replay uses
            grid = np.linspace(t0, t1, 20001)
            idx = np.searchsorted(d[k], grid, side="right") - 1
            ages = grid - e[k][idx]
            total[label] += float(np.trapz(ages, grid))
    assert total["with"] / total["without"] - 1 == pytest.approx(m["added_age"], abs=2e-3)


def test_age_integrals_hand_worked():
    """One lane: pushes done at hours 0, 10, 20 (trained 1 h before each), window [5, 30]."""
    hours = lambda h: pd.Timestamp("2026-01-01") + pd.Timedelta(hours=h)  # noqa: E731
    frame = pd.DataFrame({"source_id": "s", "pipeline": "p", "lane": "s/p/Trainer", "pushed": True,
                          "push_time": [hours(0), hours(10), hours(20)],
                          "trained_at": [hours(-1), hours(9), hours(19)]})
    it = age_integrals(frame, np.array([False, False, False]), hours(5), hours(30))
    # without: ages 6..11 on [5,10), 1..11 on [10,20), 1..11 on [20,30)
    without = (11 ** 2 - 6 ** 2) / 2 + 2 * (11 ** 2 - 1) / 2
    assert it["age_h2_without"].iloc[0] == pytest.approx(without)
    assert it["longest_age_h_without"].iloc[0] == pytest.approx(11)
    it = age_integrals(frame, np.array([False, True, False]), hours(5), hours(30))
    # the push at 10 pruned: the model trained at -1 serves until 20 (ages 6..21)
    assert it["age_h2_with"].iloc[0] == pytest.approx((21 ** 2 - 6 ** 2) / 2 + (11 ** 2 - 1) / 2)
    assert it["longest_age_h_with"].iloc[0] == pytest.approx(21)
    fm = freshness_metrics(it)
    assert fm["added_age"] == pytest.approx(((21 ** 2 - 36) / 2 + 60) / without - 1)
    assert fm["longest_age_ratio_max"] == pytest.approx(21 / 11) and fm["pipelines_longest_over"] == 0


def test_evaluation_on_a_simulated_corpus_is_consistent(sim_eval, prune_sim):
    con, truth, r = sim_eval
    assert r.policy.predictor is not None and r.policy.fallback is None
    d = r.decisions
    assert len(d) == r.metrics["trainings"] and int(d["pruned"].sum()) == r.metrics["pruned"]
    assert int((d["pruned"] & d["pushed"]).sum()) == r.metrics["pushes_lost_count"]
    assert not (d["pruned"] & d["guarded"]).any()
    assert (pd.to_datetime(d["started_at"], utc=True) >= r.train_until).all()
    assert r.metrics["pruned"] > 0 and 0 < r.metrics["waste_pruned"] <= 1
    assert r.policy.validation["validation_pushes_lost_counted"] <= r.policy.config.max_lost_pushes * r.policy.config.safety
    # the replay retrains at evenly spaced times; each training is decided by the latest policy
    # trained before it started, on what was known by then
    assert len(r.refits) == r.policy.config.refits and r.refits[0][0] == r.train_until
    starts = pd.to_datetime(d["started_at"], utc=True)
    for k, (since, th, _fb) in enumerate(r.refits):
        upto = r.refits[k + 1][0] if k + 1 < len(r.refits) else starts.max() + pd.Timedelta(seconds=1)
        part = d[(starts >= since) & (starts < upto)]
        assert len(part) > 0 and (part["refit_threshold"] == th).all()
    # the controlled rule: pruned below the (sliding) threshold; run at or above it, or capped by
    # the running budget; the key ranks by expected pushes lost per second of waste saved
    assert r.metrics["rule"] == "controlled" and r.policy.key_threshold is not None
    assert (d.loc[d["pruned"], "key"] < d.loc[d["pruned"], "threshold"]).all()
    ran = d[~d["pruned"] & ~d["guarded"]]
    assert ((ran["key"] >= ran["threshold"]) | ran["capped"]).all()
    assert d["threshold"].nunique() > 1                     # the threshold follows the window
    # the running budget holds in expectation: probabilities of pruned trainings vs pushes
    assert d.loc[d["pruned"], "probability"].sum() <= r.policy.config.max_lost_pushes * (
        d.loc[~d["pruned"], "pushed"].sum() + d.loc[d["pruned"], "probability"].sum())
    assert 0.5 < r.metrics["auc"] <= 1 and 0 < r.metrics["brier"] < 0.25
    # the oracle sees every replayed training's true probability and keeps to the budget
    assert r.oracle["trainings_without_truth"] == 0
    assert r.oracle["pushes_lost"] <= max(r.metrics["pushes_lost"], r.policy.config.max_lost_pushes)
    assert len(truth) >= len(d)
    assert 0 <= r.oracle["waste_pruned_at_policy_loss"] <= r.oracle["waste_pruned"]
    # the cost-aware oracle (ranked by p / ((1 - p) x seconds)) keeps to the same budget
    cost_aware = r.oracle["cost_aware"]
    assert cost_aware["pushes_lost"] <= r.oracle["budget"] + 1e-12
    assert 0.0 <= cost_aware["waste_pruned"] <= cost_aware["waste_pruned_of_skippable"] <= 1.0
    # the curve starts at no pruning and contains the chosen point
    assert r.curve.iloc[0]["waste_pruned"] == 0
    for th in d["refit_threshold"].unique():
        assert np.isclose(r.curve["threshold"], th).any()
    data = json.loads(json.dumps(r.to_dict()))
    assert data["metrics"]["pushes_lost"] == pytest.approx(r.metrics["pushes_lost"])
    assert tradeoff_figure(r).axes[0].get_xlabel() == "pushes lost (%)"
    assert len(cadence_figure(r).axes[0].collections) == 2


def test_evaluation_is_deterministic(sim_eval):
    con, truth, r = sim_eval
    f1, f2 = (build_features(con).frame for _ in range(2))
    pd.testing.assert_frame_equal(f1, f2, check_exact=True)
    again = evaluate(con, truth=truth, config=PolicyConfig(objective="pushes"), predictor_config=PredictorConfig(seed=1))
    pd.testing.assert_frame_equal(r.decisions, again.decisions)
    assert r.policy.threshold == again.policy.threshold
    assert r.to_dict() == again.to_dict()


def test_cli_evaluate_json_and_errors(prune_sim, capsys):
    args = ["prune", "evaluate", "--warehouse", str(prune_sim.warehouse), "--format", "json",
            "--train-until", "2026-01-22", "--max-lost-pushes", "0.05"]
    for p in prune_sim.ground_truth:
        args += ["--ground-truth", str(p)]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["train_until"].startswith("2026-01-22")
    assert data["policy"]["max_lost_pushes"] == 0.05
    assert data["oracle"]["budget"] >= 0.05
    assert set(data["metrics"]) >= {"waste_pruned", "pushes_lost", "compute_saved_s", "compute_saved_share"}
    assert main(["prune", "evaluate", "--warehouse", str(prune_sim.warehouse), "--format", "xml"]) == 2
    assert "table or json" in capsys.readouterr().err
    assert main(["prune", "evaluate", "--warehouse", str(prune_sim.warehouse), "--train-until", "2031-01-01"]) == 2
    assert "earlier --train-until" in capsys.readouterr().err
    assert main(["prune", "evaluate", "--warehouse", "/nonexistent/w.duckdb"]) == 2
    assert "frugal ingest" in capsys.readouterr().err


def test_cli_evaluate_table(sim_eval):
    from frugal.commands.prune import evaluate_lines

    data = sim_eval[2].to_dict()
    text = "\n".join(evaluate_lines(data))
    assert "waste pruned" in text and "oracle" in text and "cadence:" in text
    assert f"{100 * data['metrics']['waste_pruned']:.1f}%" in text


def test_baselines_are_replayed_beside_the_policy(sim_eval):
    from frugal.commands.prune import evaluate_lines
    from optimizer.pruning.baselines import lane_push_rate
    from optimizer.pruning.replay import replay_frame

    con, _, r = sim_eval
    data = r.to_dict()
    assert set(data["baselines"]) == {"lane_push_rate", "last_outcome", "logistic"}
    for name, b in data["baselines"].items():
        # held, in hindsight and under the same guards, to the pushes the policy lost
        assert b["at_policy_loss"]["pushes_lost"] <= r.metrics["pushes_lost"] + 1e-12
        assert 0.0 <= b["at_policy_loss"]["waste_pruned"] <= 1.0
        if b["at_policy_loss"]["waste_pruned"] > 0:
            assert b["policy_ratio_at_policy_loss"] == pytest.approx(
                r.metrics["waste_pruned"] / b["at_policy_loss"]["waste_pruned"])
        p = r.decisions[f"{name}_probability"].to_numpy()
        assert ((p > 0) & (p <= 1)).all()
    # the rule's probability of each replayed training is the lane's shrunk rate over the whole history
    frame, _ = replay_frame(con)
    rate = pd.Series(lane_push_rate(frame), index=frame["graphlet_id"])
    np.testing.assert_allclose(r.decisions["lane_push_rate_probability"],
                               rate.loc[r.decisions["graphlet_id"]].to_numpy())
    text = "\n".join(evaluate_lines(data))
    assert "lane push rate" in text and "logistic" in text and "last outcome" in text
    labels = [line.get_label() for line in tradeoff_figure(r).axes[0].get_lines()]
    assert sum(label.startswith("baseline") for label in labels) == 3


def test_load_truth_reads_the_documented_format_and_rejects_others(tmp_path):
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE TABLE sources (source_id VARCHAR, uri VARCHAR)")
    con.execute("INSERT INTO sources VALUES ('s1', '/x/penguin.sqlite')")
    good = tmp_path / "penguin.ground_truth.json"
    good.write_text(json.dumps({"store": "penguin.sqlite", "trainers": [
        {"execution_id": 7, "push_probability": 0.25}, {"execution_id": 9, "push_probability": None}]}))
    truth = load_truth(con, [good])
    assert truth.to_dict("records") == [{"source_id": "s1", "trainer_execution_id": 7, "push_probability": 0.25}]
    guessed = tmp_path / "penguin.other.json"
    guessed.write_text(json.dumps({"store_path": "penguin.sqlite", "trainings": {"a": {"execution_id": 7}}}))
    with pytest.raises(OptimizerError, match="docs/simulator.md"):
        load_truth(con, [guessed])


def test_censored_replay_learns_only_what_a_live_policy_observes(prune_sim):
    """Uncensored, the censored replay is the evaluation's replay (same refits, same probabilities,
    same prunes); censored, the refits leave the pruned trainings out and the predictions change;
    explored, about the asked share of the would-be prunes runs, drawn reproducibly."""
    con = connect(str(prune_sim.warehouse), read_only=True)
    truth = load_truth(con, prune_sim.ground_truth)
    frame, columns = replay_frame(con)
    started = pd.to_datetime(frame["started_at"], utc=True)
    until = started.min() + (started.max() - started.min()) * 0.6
    config = PolicyConfig(refits=4)
    full = censored_replay(frame, columns, until, config, PredictorConfig(seed=1), censor=False)
    ev = evaluate(con, train_until=until, config=config, predictor_config=PredictorConfig(seed=1), baselines=False)
    np.testing.assert_allclose(full.probability, ev.decisions["probability"].to_numpy())
    assert (full.would_prune == ev.decisions["pruned"].to_numpy()).all() and full.would_prune.any()
    censored = censored_replay(frame, columns, until, config, PredictorConfig(seed=1))
    later = censored.segment > 0
    assert not np.allclose(censored.probability[later], full.probability[later])
    np.testing.assert_allclose(censored.probability[~later], full.probability[~later])
    explored = censored_replay(frame, columns, until, config, PredictorConfig(seed=1), explore=0.5, seed=3)
    share = explored.explored[explored.would_prune].mean()
    assert 0.25 < share < 0.75 and not explored.explored[~explored.would_prune].any()
    again = censored_replay(frame, columns, until, config, PredictorConfig(seed=1), explore=0.5, seed=3)
    assert (again.explored == explored.explored).all()
    p_true, missing = _true_probability(explored.rows, truth)
    cal = explored.calibration(p_true)
    assert missing == 0 and cal["would_prune"] == int(explored.would_prune.sum())
    assert cal["true"] == pytest.approx(float(p_true[explored.would_prune].mean()))
