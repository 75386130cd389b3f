"""Replay evaluation: train on the past, replay the future in time order with the policy on.

``evaluate`` splits the warehouse's graphlets at ``train_until``: the policy learns from
trainings whose outcome was known by then, and every later training is replayed in time
order as if the policy had been on. It reports

- ``waste_pruned``: wasted compute the policy skips / all wasted compute of the period
  (``waste_pruned_of_skippable``: the same over what a decision at trainer start can skip
  at all: the trainer and everything after it);
- ``pushes_lost``: pushed trainings the policy skips / all pushed trainings;
- compute saved, in seconds and as a share of all compute of the period;
- cadence per pipeline: median and longest interval between pushes, with and without;
- the trade-off curve (waste pruned vs pushes lost over thresholds);
- with ground truth (the simulator's true push probabilities), an oracle that prunes by the
  true probability under the same guards, at the same lost-push budget, and the same true
  probabilities decided online by the policy's controller (``oracle["controlled"]``): what a
  perfect predictor would get on every bar.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from optimizer.errors import OptimizerError
from optimizer.pruning.baselines import BASELINES, lane_push_rate, last_outcome, last_outcome_probability
from optimizer.pruning.features import FeatureConfig, build_features, graphlet_outcomes, hours_since_epoch
from optimizer.pruning.freshness import age_integrals, freshness_metrics
from optimizer.pruning.logistic import fit_logistic
from optimizer.pruning.policy import (Policy, PolicyConfig, choose_threshold, controlled_decisions, cost_of,
                                      prune_key, recent_window, replay_decisions, train_policy)

__all__ = ["ReplayResult", "evaluate", "replay_metrics", "cadence", "cadence_summary",
           "tradeoff_curve", "load_truth", "store_sources", "tradeoff_figure", "cadence_figure", "replay_frame",
           "CensoredReplay", "censored_replay", "with_outcomes"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayResult:
    """Everything an evaluation found; ``to_dict`` is what ``--format json`` prints."""

    train_until: pd.Timestamp
    policy: Policy
    metrics: dict
    cadence: pd.DataFrame
    curve: pd.DataFrame
    oracle: dict | None = None
    oracle_curve: pd.DataFrame | None = None
    decisions: pd.DataFrame = field(default_factory=pd.DataFrame)
    refits: tuple = ()
    baselines: dict = field(default_factory=dict)
    baseline_curves: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        pol = self.policy
        out = {
            "train_until": self.train_until.isoformat(),
            "policy": {
                "threshold": pol.threshold, "fallback": pol.fallback, "objective": pol.config.objective,
                "max_added_age": pol.config.max_added_age, "max_model_age_h": pol.config.max_model_age_h,
                "age_factor": pol.config.age_factor,
                "max_lost_pushes": pol.config.max_lost_pushes, "safety": pol.config.safety,
                "confidence_z": pol.config.confidence_z, "threshold_by": pol.config.threshold_by,
                "rule": pol.config.rule, "window": pol.config.window, "window_share": pol.config.window_share,
                "control_z": pol.config.control_z, "cost_feature": pol.config.cost_feature,
                "key_threshold": pol.key_threshold,
                "refits": [{"from": r[0], "threshold": r[1], "fallback": r[2]} for r in self.refits],
                "min_history": pol.config.min_history, "push_age_factor": pol.config.push_age_factor,
                "max_push_age_h": pol.config.max_push_age_h, "validation": pol.validation,
                "top_features": ([{"feature": f, "weight": g} for f, g in pol.predictor.importance(10)]
                                 if pol.predictor is not None else []),
            },
            "metrics": self.metrics,
            "cadence_summary": cadence_summary(self.cadence),
            "curve": self.curve.to_dict(orient="records"),
        }
        if self.baselines:
            out["baselines"] = self.baselines
        if self.oracle is not None:
            out["oracle"] = self.oracle
            out["policy_vs_oracle"] = (self.metrics["waste_pruned"] / self.oracle["waste_pruned"]
                                       if self.oracle["waste_pruned"] > 0 else None)
            free = self.oracle.get("without_guards", {}).get("waste_pruned")
            out["policy_vs_oracle_unguarded"] = self.metrics["waste_pruned"] / free if free else None
        return _jsonable(out)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if np.isnan(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    return obj


def replay_frame(con, feature_config: FeatureConfig = FeatureConfig(), *, with_keys: bool = False):
    """Features joined with outcomes and the columns the replay needs.

    Returns (frame, columns), or (frame, columns, property_keys) with ``with_keys``.
    """
    fs = build_features(con, feature_config)
    frame = with_outcomes(con, fs.frame)
    if with_keys:
        return frame, fs.columns, fs.frame.attrs["property_keys"]
    return frame, fs.columns


def with_outcomes(con, features: pd.DataFrame) -> pd.DataFrame:
    """Features (one row per graphlet) joined with their outcomes and the columns the replay and the
    policy read (``REPLAY_COLUMNS``), in time order."""
    out = graphlet_outcomes(con)
    frame = features.merge(out, on="graphlet_id", how="left", validate="one_to_one").copy()
    frame["n_prior"] = frame["h_trainings_before"]
    frame["hours_since_push"] = frame["h_hours_since_push"]
    frame["typical_interval_h"] = frame["h_median_push_interval_h"]
    frame["longest_interval_h"] = frame["h_longest_push_interval_h"]
    frame["push_time"] = frame["ended_at"]
    frame["pushed"] = frame["pushed"].fillna(False).astype(bool)
    return frame.sort_values(["started_at", "graphlet_id"], kind="stable").reset_index(drop=True)


def replay_metrics(frame: pd.DataFrame, pruned: np.ndarray, *, wasted_total_s: float | None = None,
                   compute_total_s: float | None = None) -> dict:
    """The arithmetic of one replay: shares of waste pruned, pushes lost and compute saved.

    ``frame`` holds pushed, skippable_s and skippable_wasted_s per training. Without totals,
    the wasted and total compute are the skippable parts of these trainings.
    """
    pruned = np.asarray(pruned, dtype=bool)
    pushed = frame["pushed"].to_numpy(dtype=bool)
    skip = frame["skippable_s"].to_numpy(dtype=float)
    skip_w = frame["skippable_wasted_s"].to_numpy(dtype=float)
    skippable_wasted = float(skip_w.sum())
    wasted_total = skippable_wasted if wasted_total_s is None else float(wasted_total_s)
    compute_total = float(skip.sum()) if compute_total_s is None else float(compute_total_s)
    wasted_pruned = float(skip_w[pruned].sum())
    saved = float(skip[pruned].sum())
    n_push = int(pushed.sum())
    lost = int((pushed & pruned).sum())
    return {
        "trainings": int(len(frame)), "pruned": int(pruned.sum()),
        "pushes": n_push, "pushes_lost_count": lost,
        "pushes_lost": lost / n_push if n_push else 0.0,
        "wasted_s": wasted_total, "wasted_pruned_s": wasted_pruned,
        "waste_pruned": wasted_pruned / wasted_total if wasted_total > 0 else 0.0,
        "skippable_wasted_s": skippable_wasted,
        "waste_pruned_of_skippable": wasted_pruned / skippable_wasted if skippable_wasted > 0 else 0.0,
        "compute_s": compute_total, "compute_saved_s": saved,
        "compute_saved_share": saved / compute_total if compute_total > 0 else 0.0,
    }


def cadence(frame: pd.DataFrame, pruned: np.ndarray) -> pd.DataFrame:
    """Per pipeline: pushes and the median and longest interval between pushes (hours), without and with."""
    pruned = np.asarray(pruned, dtype=bool)
    pushes = frame.loc[frame["pushed"].to_numpy(dtype=bool), ["pipeline", "push_time"]].copy()
    pushes["kept"] = ~pruned[frame["pushed"].to_numpy(dtype=bool)]
    pushes["t"] = hours_since_epoch(pushes["push_time"])
    rows = []
    for pipeline, part in pushes.groupby("pipeline", sort=True):
        row = {"pipeline": pipeline}
        for label, sel in (("without", part), ("with", part[part["kept"]])):
            t = np.sort(sel["t"].dropna().to_numpy())
            gaps = np.diff(t)
            row[f"pushes_{label}"] = int(len(t))
            row[f"median_h_{label}"] = float(np.median(gaps)) if len(gaps) else np.nan
            row[f"longest_h_{label}"] = float(gaps.max()) if len(gaps) else np.nan
        rows.append(row)
    cols = ["pipeline", "pushes_without", "median_h_without", "longest_h_without",
            "pushes_with", "median_h_with", "longest_h_with"]
    return pd.DataFrame(rows, columns=cols)


def cadence_summary(cad: pd.DataFrame, tolerance: float = 0.05) -> dict:
    """How many pipelines kept their median interval between pushes (exactly, within ``tolerance``)."""
    comp = cad[cad["pushes_without"] >= 3].copy()
    if comp.empty:
        return {"pipelines_compared": 0}
    ratio = comp["median_h_with"] / comp["median_h_without"]
    longest = comp["longest_h_with"] / comp["longest_h_without"]
    exact = np.isclose(comp["median_h_with"], comp["median_h_without"], rtol=1e-9, atol=1e-9)
    return {
        "pipelines_compared": int(len(comp)),
        "median_unchanged": int(exact.sum()),
        "median_within_tolerance": int((np.abs(ratio - 1) <= tolerance).sum()),
        "tolerance": tolerance,
        "median_ratio_max": float(ratio.max()),
        "median_ratio_mean": float(ratio.mean()),
        "longest_ratio_median": float(longest.median()),
        "longest_ratio_max": float(longest.max()),
    }


def tradeoff_curve(frame: pd.DataFrame, prob: np.ndarray, config: PolicyConfig, *, points: int = 21,
                   wasted_total_s: float | None = None, extra: tuple[float, ...] = ()) -> pd.DataFrame:
    """Waste pruned and pushes lost when replaying at thresholds spread over the probabilities."""
    prob = np.asarray(prob, dtype=float)
    qs = np.unique(np.concatenate([np.quantile(prob, np.linspace(0, 1, points)) if len(prob) else [],
                                   [0.0], np.asarray(extra, dtype=float)]))
    rows = []
    for th in qs:
        pruned, _ = replay_decisions(frame, prob, float(th), config)
        m = replay_metrics(frame, pruned, wasted_total_s=wasted_total_s)
        rows.append({"threshold": float(th), "waste_pruned": m["waste_pruned"],
                     "pushes_lost": m["pushes_lost"], "compute_saved_s": m["compute_saved_s"]})
    return pd.DataFrame(rows)


def _period_totals(con, since: pd.Timestamp) -> tuple[float | None, float | None]:
    """All and wasted compute (s) of executions created at or after ``since``."""
    have = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "execution_waste" not in have:
        return None, None
    row = con.execute("""
        SELECT sum(w.duration_s) FILTER (WHERE NOT w.leads_to_deployment AND NOT coalesce(w.undetermined, false)),
               sum(w.duration_s)
        FROM execution_waste w
        JOIN executions e ON e.source_id = w.source_id AND e.execution_id = w.execution_id
        WHERE e.create_time >= $since
    """, {"since": since.tz_convert("UTC").tz_localize(None).to_pydatetime()}).fetchone()
    return (round(float(row[0] or 0.0), 6), round(float(row[1] or 0.0), 6))


def store_sources(con) -> dict[str, str]:
    """Ingested sources by their store's file name and stem: how a ground-truth file's ``store``
    names the source it describes."""
    out = {}
    for sid, uri in con.execute("SELECT source_id, uri FROM sources").fetchall():
        out[Path(str(uri)).name] = out[Path(str(uri)).stem] = sid
    return out


def load_truth(con, paths) -> pd.DataFrame:
    """Read ground-truth files: the true push probability of each trainer execution.

    The format is documented in docs/simulator.md ("Ground truth"), the one ``frugal
    simulate`` writes beside each store: a JSON object with ``store`` (the store's file name,
    matched to an ingested source by file name or stem) and ``trainers``, a list of objects
    with ``execution_id`` and ``push_probability`` (other keys are ignored; a trainer without
    a probability, e.g. a cached one, is skipped). Returns source_id, trainer_execution_id,
    push_probability.
    """
    by_name = store_sources(con)
    rows = []
    for path in map(Path, paths):
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("store"), str) \
                or not isinstance(data.get("trainers"), list):
            raise OptimizerError(
                f"{path} is not a ground-truth file: expected a JSON object with 'store' (file name) "
                "and 'trainers' (a list of {execution_id, push_probability}); see docs/simulator.md")
        store = data["store"]
        sid = by_name.get(Path(store).name) or by_name.get(Path(store).stem)
        if sid is None:
            raise OptimizerError(f"{path}: no ingested source matches its store {store!r}; ingest the "
                                 "store beside it first")
        for t in data["trainers"]:
            if t.get("push_probability") is not None:
                rows.append((sid, int(t["execution_id"]), float(t["push_probability"])))
    return pd.DataFrame(rows, columns=["source_id", "trainer_execution_id", "push_probability"])


def evaluate(con, *, train_until=None, config: PolicyConfig = PolicyConfig(), predictor_config=None,
             feature_config: FeatureConfig = FeatureConfig(), truth: pd.DataFrame | None = None,
             curve_points: int = 21, train_share: float = 0.6, baselines: bool = True) -> ReplayResult:
    """Train on graphlets before ``train_until`` (default: ``train_share`` of the time span) and replay the rest.

    With ``baselines`` the three baselines of optimizer.pruning.baselines are replayed the same way.
    """
    frame, columns = replay_frame(con, feature_config)
    if frame.empty:
        raise OptimizerError("the warehouse holds no graphlets; run `frugal analyze` after ingesting stores")
    started = pd.to_datetime(frame["started_at"], utc=True)
    if train_until is None:
        t0, t1 = started.min(), started.max()
        until = t0 + (t1 - t0) * train_share
    else:
        until = _utc(train_until)
    test = frame[started >= until].reset_index(drop=True)
    if test.empty:
        raise OptimizerError(f"no training starts at or after {until:%Y-%m-%d %H:%M}; choose an earlier "
                             "--train-until")
    # expanding window: retrain at ``config.refits`` evenly spaced times of the replayed period,
    # each time on what was known by then, and decide the trainings up to the next retraining
    t_test = pd.to_datetime(test["started_at"], utc=True)
    bounds = _refit_bounds(until, t_test, config.refits)
    X = test[list(columns)].to_numpy(dtype=np.float64, na_value=np.nan)
    base = _BaselineInputs(frame, started, until, columns, config) if baselines else None
    prob = np.ones(len(test))
    threshold = np.zeros(len(test))
    modelled = np.zeros(len(test), dtype=bool)
    refits = []
    policy = None
    for k in range(config.refits):
        sel = ((t_test >= bounds[k]) & (t_test < bounds[k + 1])).to_numpy()
        if k > 0 and not sel.any():
            continue
        pol_k = train_policy(frame, columns, bounds[k], config, predictor_config)
        policy = policy or pol_k
        refits.append((bounds[k], pol_k.threshold if pol_k.predictor is not None else None, pol_k.fallback))
        if pol_k.predictor is not None and sel.any():
            prob[sel] = pol_k.predictor.predict(X[sel])
            threshold[sel] = pol_k.threshold
            modelled |= sel
        if base is not None:
            base.refit(bounds[k], sel, first=k == 0)
    cost = cost_of(test, config)
    if config.rule == "controlled":
        # the sliding window supersedes each refit's threshold (computed on the same trainings)
        pruned, guarded, used = controlled_decisions(test, prob, 0.0, config, cost=cost,
                                                     history=policy.recent if policy is not None else None)
        key = prob if cost is None else prune_key(prob, cost)
        used = np.where(modelled, used, 0.0)
    else:
        pruned, guarded = replay_decisions(test, prob, threshold, config)
        used, key = threshold, prob
    wasted_total, compute_total = _period_totals(con, until)
    metrics = replay_metrics(test, pruned, wasted_total_s=wasted_total, compute_total_s=compute_total)
    metrics["guarded"] = int(guarded.sum())
    metrics["rule"] = config.rule
    metrics["objective"] = config.objective
    ages = _Ages(frame, started >= until, until, test, config)
    metrics.update(ages.metrics(pruned))
    if config.rule == "controlled" and policy is not None:
        metrics["guards"] = _guard_ablation(test, prob, config, cost, policy.recent, wasted_total, pruned, ages)
    # the policy's own ranking held in hindsight to the pushes it lost (the baselines' footing
    # below): the gap to ``waste_pruned`` is what deciding online costs
    _, own = _hindsight(test, key, metrics["pushes_lost"], config)
    metrics["ranking_at_own_loss"] = replay_metrics(test, own, wasted_total_s=wasted_total)["waste_pruned"]
    cad = cadence(test, pruned)
    # ranking and calibration of the trainings a model decided (not those under the fallback)
    metrics.update(_quality(test["pushed"].to_numpy(dtype=bool)[modelled], prob[modelled]))
    curve = tradeoff_curve(test, prob, config, points=curve_points, wasted_total_s=wasted_total,
                           extra=tuple(np.unique(threshold)))
    decisions = test[["graphlet_id", "source_id", "pipeline", "lane", "trainer_execution_id",
                      "started_at", "pushed"]].copy()
    decisions["probability"] = prob
    decisions["key"] = key
    decisions["threshold"] = used
    decisions["refit_threshold"] = threshold
    # below the threshold but run: the running budget of the controlled rule was spent
    decisions["capped"] = ~pruned & ~guarded & (key < used)
    decisions["pruned"] = pruned
    decisions["guarded"] = guarded
    baseline_results = {}
    baseline_curves = {}
    if base is not None:
        for name in BASELINES:
            p_b, hist_b = base.probabilities(name), base.history(name)
            baseline_results[name] = _baseline_replay(test, p_b, hist_b, config, cost, metrics, wasted_total,
                                                      compute_total, ages)
            baseline_curves[name] = tradeoff_curve(test, p_b, config, points=curve_points,
                                                   wasted_total_s=wasted_total)
            decisions[f"{name}_probability"] = p_b
        if config.freshness:
            lane = ages.lane_rule(base.probabilities("lane_push_rate"), config.max_added_age, wasted_total)
            baseline_results["lane_push_rate"]["hindsight_at_budget"] = {
                k: lane[k] for k in ("waste_pruned", "pushes_lost", "added_age", "longest_age_ratio_max", "threshold")}
            baseline_results["lane_push_rate"]["policy_ratio_at_budget"] = (
                metrics["waste_pruned"] / lane["waste_pruned"] if lane["waste_pruned"] > 0 else None)
    oracle = oracle_curve = None
    if truth is not None and not truth.empty:
        p_true, missing = _true_probability(test, truth)
        budget = max(metrics["pushes_lost"], config.max_lost_pushes)
        th_o, pr_o = _hindsight(test, p_true, budget, config)
        oracle = replay_metrics(test, pr_o, wasted_total_s=wasted_total, compute_total_s=compute_total)
        oracle.update(_quality(test["pushed"].to_numpy(dtype=bool), p_true))
        oracle.update({"threshold": th_o, "budget": budget, "trainings_without_truth": missing,
                       "cadence_summary": cadence_summary(cadence(test, pr_o))})
        # the same oracle held to the pushes the policy actually lost: ranking quality alone
        _, pr_same = _hindsight(test, p_true, metrics["pushes_lost"], config)
        same = replay_metrics(test, pr_same, wasted_total_s=wasted_total, compute_total_s=compute_total)
        oracle["waste_pruned_at_policy_loss"] = same["waste_pruned"]
        # what the cadence guards cost: the oracle with no guard at all, same budget
        free = replace(config, min_history=0, push_age_factor=1e12, max_push_age_h=None, longest_factor=None)
        _, pr_free = _hindsight(test, p_true, budget, free)
        oracle["without_guards"] = {
            **{k: v for k, v in replay_metrics(test, pr_free, wasted_total_s=wasted_total).items()
               if k in ("waste_pruned", "pushes_lost", "waste_pruned_of_skippable")},
            "cadence_summary": cadence_summary(cadence(test, pr_free))}
        # the ceiling for a cost-aware rule: the oracle ranking by expected pushes lost per
        # second of waste saved, p / ((1 - p) x the training's skippable seconds), same guards
        # and budget (a knapsack by ratio; ``waste_pruned`` above ranks by p alone)
        key_true = prune_key(p_true, test["skippable_s"].to_numpy(dtype=float))
        _, pr_c = _hindsight(test, key_true, budget, config)
        oracle["cost_aware"] = {k: v for k, v in replay_metrics(test, pr_c, wasted_total_s=wasted_total).items()
                                if k in ("waste_pruned", "pushes_lost", "waste_pruned_of_skippable")}
        _, pr_cf = _hindsight(test, key_true, budget, free)
        oracle["cost_aware"]["without_guards"] = replay_metrics(
            test, pr_cf, wasted_total_s=wasted_total)["waste_pruned"]
        if config.rule == "controlled":
            lane_p = base.probabilities("lane_push_rate") if base is not None else None
            oracle["controlled"] = _controlled_oracle(frame, started < until, test, truth, p_true, config, cost, ages,
                                                      wasted_total, lane_p)
        oracle_curve = tradeoff_curve(test, p_true, config, points=curve_points, wasted_total_s=wasted_total)
        decisions["true_probability"] = p_true
    log.info("replayed %d trainings after %s: waste pruned %.3f, pushes lost %.4f",
             len(test), until, metrics["waste_pruned"], metrics["pushes_lost"])
    return ReplayResult(until, policy, metrics, cad, curve, oracle, oracle_curve, decisions, tuple(refits),
                        baseline_results, baseline_curves)


def _utc(ts) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _refit_bounds(until: pd.Timestamp, starts: pd.Series, refits: int) -> list[pd.Timestamp]:
    """The replay's refit times: ``refits`` evenly spaced from ``until`` to just after the last
    start, and that end; the policy trained at bound k decides the trainings up to bound k + 1."""
    end = starts.max() + pd.Timedelta(seconds=1)
    return [until + (end - until) * k / refits for k in range(refits)] + [end]


def _controlled_oracle(frame: pd.DataFrame, before: pd.Series, test: pd.DataFrame, truth: pd.DataFrame,
                       p_true: np.ndarray, config: PolicyConfig, cost, ages, wasted_total, lane_p) -> dict:
    """The true probabilities decided *online*, by the policy's own controller, guards and cost key.

    Not a ceiling on ranking (the hindsight oracle above is) but on everything else: what a
    perfect predictor gets from this controller on the bars of docs/pruning.md (the loss it
    lands at against the budget, the cadence it keeps, the waste it prunes against the lane
    push rate held in hindsight to that loss). Where this fails a bar, no better model passes it.
    """
    past = frame[before.to_numpy()]
    history = recent_window(past, _true_probability(past, truth)[0], config)
    pruned, _, _ = controlled_decisions(test, p_true, 0.0, config, cost=cost, history=history)
    m = replay_metrics(test, pruned, wasted_total_s=wasted_total)
    out = {k: m[k] for k in ("pruned", "waste_pruned", "pushes_lost", "pushes_lost_count")}
    out.update(ages.metrics(pruned))
    spent = out["added_age"] if config.freshness else m["pushes_lost"]
    out["budget_spent"] = spent / config.budget_share if config.budget_share > 0 else None
    out["cadence_summary"] = cadence_summary(cadence(test, pruned))
    if lane_p is not None and config.freshness:
        lane = ages.lane_rule(lane_p, config.max_added_age, wasted_total)["waste_pruned"]
        out["lane_push_rate_at_budget"] = lane
        out["vs_lane_push_rate"] = m["waste_pruned"] / lane if lane > 0 else None
    elif lane_p is not None:
        lane = _held_to_loss(test, lane_p, cost, m["pushes_lost"], config, wasted_total)["waste_pruned"]
        out["lane_push_rate_at_its_loss"] = lane
        out["vs_lane_push_rate"] = m["waste_pruned"] / lane if lane > 0 else None
    return out


GUARD_VARIANTS = {
    "without_min_history": {"min_history": 0},
    "without_push_age": {"push_age_factor": 1e12, "max_push_age_h": None},
    "with_longest_guard": {"longest_factor": 1.0},
    "without_longest_guard": {"longest_factor": None},
    "longest_instead_of_push_age": {"push_age_factor": 1e12, "max_push_age_h": None, "longest_factor": 1.0},
    "without_guards": {"min_history": 0, "push_age_factor": 1e12, "max_push_age_h": None, "longest_factor": None},
}


def _guard_ablation(test: pd.DataFrame, prob: np.ndarray, config: PolicyConfig, cost, history,
                    wasted_total, policy_pruned: np.ndarray, ages) -> dict:
    """What each cadence guard buys: the same probabilities replayed by the controller with the
    guard switched off (or, for the optional longest-interval guard, on at 1x), and the waste
    pruned, pushes lost and cadence kept there, to compare with the policy's own replay
    (``policy_pruned``, which stands for a variant that leaves the config as it is)."""
    out = {}
    for name, change in GUARD_VARIANTS.items():
        cfg = replace(config, **change)
        pruned = (policy_pruned if cfg == config
                  else controlled_decisions(test, prob, 0.0, cfg, cost=cost, history=history)[0])
        m = replay_metrics(test, pruned, wasted_total_s=wasted_total)
        cad = cadence_summary(cadence(test, pruned))
        out[name] = {"waste_pruned": m["waste_pruned"], "pushes_lost": m["pushes_lost"],
                     **{k: v for k, v in ages.metrics(pruned).items() if k in ("added_age", "longest_age_ratio_max")},
                     "median_within_tolerance": cad.get("median_within_tolerance"),
                     "longest_ratio_max": cad.get("longest_ratio_max"),
                     "longest_ratio_median": cad.get("longest_ratio_median")}
    return out


class _Ages:
    """The freshness yardstick of a replay: added age and longest-age ratios of a set of prunes of
    the replayed rows (``optimizer.pruning.freshness``), the history before the replay included."""

    def __init__(self, frame: pd.DataFrame, replayed: pd.Series, until: pd.Timestamp, test: pd.DataFrame,
                 config: PolicyConfig):
        self.frame, self.rows, self.until, self.test, self.config = frame, replayed.to_numpy(), until, test, config
        ends = pd.concat([pd.to_datetime(test["started_at"], utc=True), pd.to_datetime(test["push_time"], utc=True)])
        self.end = ends.max()

    def integrals(self, pruned: np.ndarray) -> pd.DataFrame:
        full = np.zeros(len(self.frame), dtype=bool)
        full[self.rows] = np.asarray(pruned, dtype=bool)
        return age_integrals(self.frame, full, self.until, self.end)

    def metrics(self, pruned: np.ndarray) -> dict:
        m = freshness_metrics(self.integrals(pruned), longest_factor=self.config.age_factor)
        return {k: m[k] for k in ("added_age", "mean_age_h_without", "mean_age_h_with", "longest_age_ratio_max",
                                  "longest_age_ratio_median", "pipelines_longest_over")}

    def lane_rule(self, key: np.ndarray, budget: float, wasted_total) -> dict:
        """A threshold on ``key`` (e.g. the lane's shrunk push rate) chosen in hindsight on the replayed
        period as the largest whose added age stays within ``budget``, under the cadence guards."""
        cands = np.unique(np.concatenate([[0.0], np.asarray(key, dtype=float)[np.isfinite(key)]]))
        lo, hi = 0, len(cands)
        best = np.zeros(len(self.test), dtype=bool)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            pruned, _ = replay_decisions(self.test, key, cands[mid], self.config)
            if self.metrics(pruned)["added_age"] <= budget + 1e-12:
                lo, best = mid, pruned
            else:
                hi = mid
        m = replay_metrics(self.test, best, wasted_total_s=wasted_total)
        m.update(self.metrics(best))
        m["threshold"] = float(cands[lo])
        return m


class _BaselineInputs:
    """The baselines' probabilities for the replayed rows, refitted at the policy's refit times."""

    def __init__(self, frame: pd.DataFrame, started: pd.Series, until: pd.Timestamp, columns, config: PolicyConfig):
        self.frame, self.columns, self.config = frame, list(columns), config
        self.started = started
        self.ended = pd.to_datetime(frame["push_time"], utc=True)
        self.test = (started >= until).to_numpy()
        self.rate_all = lane_push_rate(frame)
        self.last_all = last_outcome(frame)
        self.X_all = frame[self.columns].to_numpy(dtype=np.float64, na_value=np.nan)
        self.pushed_all = frame["pushed"].to_numpy(dtype=bool)
        # the last ``window`` trainings before the replay seed each controller's window
        before = np.flatnonzero(~self.test)
        self.tail = before[np.argsort(hours_since_epoch(frame["started_at"].iloc[before]), kind="stable")][-config.window:]
        n = int(self.test.sum())
        self.prob = {"lane_push_rate": self.rate_all[self.test], "last_outcome": np.ones(n), "logistic": np.ones(n)}
        self.tail_prob = {"lane_push_rate": self.rate_all[self.tail], "last_outcome": np.ones(len(self.tail)),
                          "logistic": np.ones(len(self.tail))}

    def refit(self, bound: pd.Timestamp, sel: np.ndarray, first: bool) -> None:
        """Refit the learned baselines on outcomes known by ``bound``; predict the rows ``sel`` of the replay."""
        known = ((self.started < bound) & (self.ended < bound)).to_numpy()
        test_rows = np.flatnonzero(self.test)[sel]
        last_p = last_outcome_probability(self.last_all, self.last_all[known], self.pushed_all[known])
        enough = known.sum() >= self.config.min_train
        model = fit_logistic(self.X_all[known], self.pushed_all[known]) if enough else None
        self.prob["last_outcome"][sel] = last_p[test_rows] if enough else 1.0
        self.prob["logistic"][sel] = model.predict(self.X_all[test_rows]) if model is not None and sel.any() else 1.0
        if first:
            self.tail_prob["last_outcome"] = last_p[self.tail] if enough else np.ones(len(self.tail))
            self.tail_prob["logistic"] = (model.predict(self.X_all[self.tail]) if model is not None and len(self.tail)
                                          else np.ones(len(self.tail)))

    def probabilities(self, name: str) -> np.ndarray:
        return self.prob[name]

    def history(self, name: str) -> tuple:
        return recent_window(self.frame.iloc[self.tail], self.tail_prob[name], self.config)


def _baseline_replay(test: pd.DataFrame, prob: np.ndarray, history: tuple, config: PolicyConfig, cost,
                     policy_metrics: dict, wasted_total, compute_total, ages) -> dict:
    """One baseline replayed like the policy (same guards, controller, budget and cost ranking), and
    held in hindsight to the pushes the policy lost (its ranking at the same loss)."""
    pruned, _, _ = controlled_decisions(test, prob, 0.0, config, cost=cost, history=history)
    m = replay_metrics(test, pruned, wasted_total_s=wasted_total, compute_total_s=compute_total)
    out = {k: m[k] for k in ("pruned", "waste_pruned", "waste_pruned_of_skippable", "pushes_lost",
                             "pushes_lost_count", "compute_saved_share")}
    out.update(ages.metrics(pruned))
    out["cadence_summary"] = cadence_summary(cadence(test, pruned))
    out.update(_quality(test["pushed"].to_numpy(dtype=bool), prob))
    at = _held_to_loss(test, prob, cost, policy_metrics["pushes_lost"], config, wasted_total)
    out["at_policy_loss"] = {"waste_pruned": at["waste_pruned"], "pushes_lost": at["pushes_lost"]}
    pol = policy_metrics["waste_pruned"]
    out["policy_ratio_at_policy_loss"] = pol / at["waste_pruned"] if at["waste_pruned"] > 0 else None
    out["policy_ratio"] = pol / m["waste_pruned"] if m["waste_pruned"] > 0 else None
    return out


def _true_probability(rows: pd.DataFrame, truth: pd.DataFrame) -> tuple[np.ndarray, int]:
    """The true push probability of each row, and how many rows the truth does not cover
    (given 1.0: never pruned by an oracle)."""
    p = rows[["source_id", "trainer_execution_id"]].merge(
        truth, on=["source_id", "trainer_execution_id"], how="left")["push_probability"].to_numpy(dtype=float)
    missing = np.isnan(p)
    return np.where(missing, 1.0, p), int(missing.sum())


def _held_to_loss(test: pd.DataFrame, prob: np.ndarray, cost, loss: float, config: PolicyConfig,
                  wasted_total) -> dict:
    """``prob`` ranked by the controller's key (``prune_key`` with ``cost``) and held in hindsight
    to ``loss`` of the pushes, same guards: that ranking's replay metrics at the same loss."""
    key = prob if cost is None else prune_key(prob, cost)
    _, pruned = _hindsight(test, key, loss, config)
    return replay_metrics(test, pruned, wasted_total_s=wasted_total)


def _hindsight(frame: pd.DataFrame, key: np.ndarray, budget: float, config: PolicyConfig) -> tuple[float, np.ndarray]:
    """The oracle's (threshold, pruned): the threshold on ``key`` chosen on the replayed period
    itself to lose at most ``budget`` of its pushes, and the replay at it."""
    threshold, _ = choose_threshold(frame, key, budget, config)
    return threshold, replay_decisions(frame, key, threshold, config)[0]


def _quality(y: np.ndarray, p: np.ndarray) -> dict:
    """Ranking (AUC) and calibration (Brier score) of probabilities against outcomes."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    both = len(np.unique(y)) == 2 and len(y) > 0
    return {"auc": float(roc_auc_score(y, p)) if both else float("nan"),
            "brier": float(brier_score_loss(y, p)) if len(y) else float("nan")}


def tradeoff_figure(result: ReplayResult):
    """Matplotlib figure: waste pruned vs pushes lost over thresholds (policy, oracle, chosen point)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    c = result.curve.sort_values("pushes_lost")
    ax.plot(100 * c["pushes_lost"], 100 * c["waste_pruned"], marker="o", ms=3, label="predictor")
    if result.oracle_curve is not None:
        o = result.oracle_curve.sort_values("pushes_lost")
        ax.plot(100 * o["pushes_lost"], 100 * o["waste_pruned"], ls="--", label="oracle (true probability)")
    for k, (name, c_b) in enumerate(sorted(result.baseline_curves.items())):
        c_b = c_b.sort_values("pushes_lost")
        line, = ax.plot(100 * c_b["pushes_lost"], 100 * c_b["waste_pruned"], lw=1, ls=":",
                        label=f"baseline: {name.replace('_', ' ')}")
        b = result.baselines.get(name)
        if b is not None:
            ax.scatter([100 * b["pushes_lost"]], [100 * b["waste_pruned"]], color=line.get_color(), marker="s",
                       s=18, zorder=4)
    m = result.metrics
    ax.scatter([100 * m["pushes_lost"]], [100 * m["waste_pruned"]], color="red", zorder=5,
               label=f"chosen threshold {result.policy.threshold:.3f}")
    ax.axvline(100 * result.policy.config.max_lost_pushes, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("pushes lost (%)")
    ax.set_ylabel("wasted compute pruned (%)")
    ax.set_title("Pruning trade-off on the replayed period")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def cadence_figure(result: ReplayResult):
    """Matplotlib figure: per pipeline, median interval between pushes with vs without the policy."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cad = result.cadence[result.cadence["pushes_without"] >= 3]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(cad["median_h_without"], cad["median_h_with"], s=10, label="median interval")
    ax.scatter(cad["longest_h_without"], cad["longest_h_with"], s=10, marker="x", label="longest interval")
    lim = np.nanmax(np.concatenate([cad[["longest_h_without", "longest_h_with"]].to_numpy().ravel(), [1.0]]))
    ax.plot([0, lim], [0, lim], color="grey", lw=0.8)
    ax.set_xscale("symlog")
    ax.set_yscale("symlog")
    ax.set_xlabel("hours between pushes, without pruning")
    ax.set_ylabel("hours between pushes, with pruning")
    ax.set_title("Deployment cadence per pipeline")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class CensoredReplay:
    """A replay whose refits learn only what a live policy observes (``censored_replay``)."""

    rows: pd.DataFrame          # the replayed trainings
    probability: np.ndarray     # the policy's predicted push probability of each
    would_prune: np.ndarray     # the policy's verdict (explored ones included)
    explored: np.ndarray        # would-be prunes run anyway (observed, weighted 1 / explore in refits)
    segment: np.ndarray         # the refit that decided each row (0 .. refits - 1)

    def calibration(self, truth_p: np.ndarray, since_segment: int = 0) -> dict:
        """Predicted against true push rate of the would-be prunes decided from ``since_segment`` on."""
        sel = self.would_prune & (self.segment >= since_segment)
        if not sel.any():
            return {"would_prune": 0, "predicted": None, "true": None, "gap": None}
        pred, true = float(self.probability[sel].mean()), float(np.asarray(truth_p)[sel].mean())
        return {"would_prune": int(sel.sum()), "predicted": pred, "true": true, "gap": pred - true}


def censored_replay(frame: pd.DataFrame, columns, until, config: PolicyConfig = PolicyConfig(),
                    predictor_config=None, *, explore: float = 0.0, seed: int = 0,
                    censor: bool = True) -> CensoredReplay:
    """Replay as ``evaluate`` does, but with each refit learning what a live policy would know.

    A pruned training is never observed: with ``censor`` the refits leave out every replayed
    training the policy pruned before them (``evaluate`` learns from every recorded outcome,
    which a live policy cannot). With ``explore`` a share of the would-be prunes, drawn with
    ``seed``, runs anyway: observed, and weighted ``1 / explore`` in the refits, so that they
    stand for all the would-be prunes and the history stays unbiased. ``frame`` is
    ``replay_frame``'s; the budget, guards and controller are the policy's.
    """
    if not 0.0 <= explore <= 1.0:
        raise OptimizerError(f"explore must be a share in [0, 1], got {explore}")
    started = pd.to_datetime(frame["started_at"], utc=True)
    until = _utc(until)
    is_test = (started >= until).to_numpy()
    rows = frame[is_test].reset_index(drop=True)
    index = np.flatnonzero(is_test)
    t_rows = pd.to_datetime(rows["started_at"], utc=True)
    bounds = _refit_bounds(until, t_rows, config.refits)
    X = rows[list(columns)].to_numpy(dtype=np.float64, na_value=np.nan)
    draws = np.random.default_rng(seed).random(len(rows))
    prob = np.ones(len(rows))
    would = np.zeros(len(rows), dtype=bool)
    explored = np.zeros(len(rows), dtype=bool)
    segment = np.zeros(len(rows), dtype=int)
    cost = cost_of(rows, config)
    first = None
    for k in range(config.refits):
        sel = ((t_rows >= bounds[k]) & (t_rows < bounds[k + 1])).to_numpy()
        segment[sel] = k
        data = frame
        if censor:
            hidden = np.zeros(len(frame), dtype=bool)
            hidden[index] = would & ~explored
            weight = np.ones(len(frame))
            weight[index[explored]] = 1.0 / explore if explore > 0 else 1.0
            data = frame[~hidden].copy()
            data["sample_weight"] = weight[~hidden]
        policy = train_policy(data, columns, bounds[k], config, predictor_config)
        first = first or policy
        if policy.predictor is not None and sel.any():
            prob[sel] = policy.predictor.predict(X[sel])
        upto = (t_rows < bounds[k + 1]).to_numpy()
        pruned, _, _ = controlled_decisions(rows[upto], prob[upto], 0.0, config,
                                            cost=None if cost is None else cost[upto],
                                            history=first.recent)
        now = sel[upto]
        would[sel] = pruned[now]
        explored[sel] = would[sel] & (draws[sel] < explore)
    return CensoredReplay(rows, prob, would, explored, segment)
