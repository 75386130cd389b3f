"""The live policy: a learned policy kept in memory, every lane's upcoming training described ahead.

The batch ``optimizer.pruning.hook.decide`` learns and describes on every call (seconds). A service
instead keeps three values current and decides by lookup:

- ``LearnedPolicy``: the trained policy with its feature columns, property keys and version,
  saved beside the warehouse (``save``/``load``, atomic) so a restart serves at once;
- ``describe_upcoming``: the upcoming training of every lane, with its probability, cost,
  cadence guard and strongest features, computed in one set-based feature build after each
  ingest (or for one lane from this run's own inputs);
- ``choose``: the decision for one upcoming training under operator rules and the running
  lost-push budget of the ledger (``Budget``), a pure function.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import math
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from optimizer.errors import OptimizerError
from optimizer.pruning.features import FeatureConfig, build_features
from optimizer.pruning.ledger import Rule
from optimizer.pruning.policy import (Policy, PolicyConfig, cap_allowance, catch_up_target, guard_reason, prune_key,
                                     train_policy, upcoming_age_terms)
from optimizer.pruning.upcoming import NEXT_PREFIX, is_upcoming, upcoming_extension

__all__ = ["LearnedPolicy", "Upcoming", "Budget", "Choice", "learn", "save", "load", "describe_upcoming",
           "upcoming_features", "score_upcoming",
           "choose", "PolicyFileError", "FORMAT", "write_pickle", "lanes_unscored"]

log = logging.getLogger(__name__)

FORMAT = 1  # version of the saved policy file


class PolicyFileError(OptimizerError):
    """A saved policy file cannot be read: it is relearned from the warehouse."""


@dataclass(frozen=True)
class LearnedPolicy:
    """A trained policy and what it needs to score an upcoming training."""

    policy: Policy
    columns: tuple[str, ...]
    property_keys: tuple
    version: str
    trained_at: str
    trainings: int
    pushes: int
    feature_config: FeatureConfig = FeatureConfig()
    format: int = FORMAT

    def to_dict(self) -> dict:
        p = self.policy
        return {"version": self.version, "trained_at": self.trained_at, "trainings": self.trainings,
                "pushes": self.pushes, "fallback": p.fallback, "threshold": p.threshold,
                "key_threshold": p.key_threshold, "features": len(self.columns),
                "max_lost_pushes": p.config.max_lost_pushes, "rule": p.config.rule}


def learn(frame: pd.DataFrame, columns: tuple[str, ...], property_keys, *, config: PolicyConfig = PolicyConfig(),
          predictor_config=None, feature_config: FeatureConfig = FeatureConfig(),
          now: dt.datetime | None = None) -> LearnedPolicy:
    """Train on every training of ``frame`` (``optimizer.pruning.replay.replay_frame``) whose outcome is known."""
    now = now or dt.datetime.now(dt.timezone.utc)
    # every outcome recorded so far is known: learn up to now, or past the newest record of
    # corpora whose clocks run ahead of this machine's
    until = pd.Timestamp(now).tz_convert("UTC").tz_localize(None)
    ended = pd.to_datetime(frame["push_time"]).max() if len(frame) else pd.NaT
    if pd.notna(ended):
        ended = ended.tz_convert("UTC").tz_localize(None) if ended.tzinfo else ended
        until = max(until, ended + pd.Timedelta(seconds=1))
    policy = train_policy(frame, columns, until, config, predictor_config)
    digest = hashlib.sha256(repr((len(frame), int(frame["pushed"].sum()) if len(frame) else 0,
                                  columns, policy.threshold, policy.key_threshold, str(now))).encode()).hexdigest()
    version = f"{now:%Y%m%dT%H%M%SZ}-{digest[:8]}"
    return LearnedPolicy(policy=policy, columns=tuple(columns), property_keys=tuple(tuple(k) for k in property_keys),
                         version=version, trained_at=now.isoformat(), trainings=int(len(frame)),
                         pushes=int(frame["pushed"].sum()) if len(frame) else 0, feature_config=feature_config)


def save(learned: LearnedPolicy, path: str | Path) -> None:
    """Write the policy file atomically (a temporary file renamed over the old one)."""
    write_pickle(learned, path)


def write_pickle(obj, path: str | Path) -> None:
    """Pickle ``obj`` to ``path`` atomically: a synced temporary file renamed over the old one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | Path) -> LearnedPolicy:
    """Read a policy file written by ``save``; PolicyFileError when it is missing or unreadable."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            learned = pickle.load(fh)
    except FileNotFoundError as exc:
        raise PolicyFileError(f"no saved policy at {path}") from exc
    except Exception as exc:  # a truncated or foreign file
        raise PolicyFileError(f"cannot read the saved policy {path} ({exc}); it will be relearned") from exc
    if not isinstance(learned, LearnedPolicy) or learned.format != FORMAT:
        raise PolicyFileError(f"{path} is not a frugal policy file of format {FORMAT}; it will be relearned")
    return learned


@dataclass(frozen=True)
class Upcoming:
    """The upcoming training of one lane, scored by the policy."""

    source_id: str
    pipeline: str
    lane: str
    at: dt.datetime
    probability: float | None
    cost_s: float | None
    key: float | None
    guard: str | None
    contributions: tuple = ()
    inputs: tuple[int, ...] | None = None
    values: tuple[float, ...] = ()     # the features, in the order of LearnedPolicy.columns
    previous_start: dt.datetime | None = None  # when the lane's last training started
    loss: float | None = None          # freshness: expected added age if pruned (h^2)
    mass: float | None = None          # freshness: the age this training accounts for (h^2)
    projected_age_h: float | None = None  # the deployed model's age at the next push if pruned

    def features(self, columns: tuple[str, ...]) -> dict[str, float]:
        """The recorded feature values by name (features not recorded are left out)."""
        return {c: v for c, v in zip(columns, self.values) if not math.isnan(v)}

    @property
    def component(self) -> str:
        return self.lane.rsplit("/", 1)[-1]


def describe_upcoming(con, learned: LearnedPolicy, *, pipeline: str | None = None, lanes=None,
                      inputs=None, at: dt.datetime | None = None, sources=None,
                      prepared: bool = False) -> dict[str, Upcoming]:
    """Score the upcoming training of every lane (of ``pipeline``, ``sources`` or ``lanes``), by lane.

    ``prepared``: ``con`` holds the feature SQL's tables of ``features.prepare_features`` for
    these graphlets (a pipeline slice): only the upcoming rows are added to them."""
    fs, previous = upcoming_features(con, learned, pipeline=pipeline, lanes=lanes, inputs=inputs, at=at,
                                     sources=sources, prepared=prepared)
    return score_upcoming(fs.frame[is_upcoming(fs.frame["graphlet_id"])].reset_index(drop=True), learned,
                          previous, inputs=inputs)


def upcoming_features(con, learned: LearnedPolicy, *, pipeline: str | None = None, lanes=None, inputs=None,
                      at: dt.datetime | None = None, sources=None, prepared: bool = False):
    """The feature build behind ``describe_upcoming``: (the FeatureSet of the upcoming rows and their
    lanes' latest trainings, each lane's last training start)."""
    chosen: list = []
    # the learned columns are fixed: finding monotone counters again would only cost time
    # (a pandas pass over every column, holding the interpreter: the service's requests wait)
    config = dataclasses.replace(learned.feature_config, drop_counters=False)
    fs = build_features(con, config, pipeline=pipeline, property_keys=list(learned.property_keys),
                        extend=upcoming_extension(lanes=lanes, inputs=inputs, at=at, selected=chosen),
                        sources=sources, keep=_upcoming_keep(config), prepared=prepared)
    return fs, (dict(zip(chosen[0]["lane"], chosen[0]["s0"])) if chosen else {})


def score_upcoming(rows: pd.DataFrame, learned: LearnedPolicy, previous: dict, *, inputs=None) -> dict[str, Upcoming]:
    """Score upcoming rows (a feature frame's, ``previous``: lane -> last training start), by lane."""
    if rows.empty:
        return {}
    policy = learned.policy
    config = policy.config
    probs = [None] * len(rows)
    contribs: list = [()] * len(rows)
    X = rows[list(learned.columns)].to_numpy(dtype=np.float64, na_value=np.nan)
    if policy.predictor is not None:
        probs = [float(p) for p in policy.predictor.predict(X)]
        contribs = [tuple(c) for c in policy.predictor.explain(X, top=3)]
    out: dict[str, Upcoming] = {}
    for i, row in rows.iterrows():
        cost = None
        if config.cost_feature is not None and config.cost_feature in rows.columns:
            c = row[config.cost_feature]
            cost = float(c) if c is not None and not pd.isna(c) and float(c) > 0 else None
        p = probs[i]
        key = (float(prune_key([p], [cost])[0]) if p is not None and policy.key_threshold is not None
               and cost is not None else None)
        guard = guard_reason(row["h_trainings_before"], row["h_hours_since_push"],
                             row["h_median_push_interval_h"], config,
                             longest_interval_h=row.get("h_longest_push_interval_h"))
        loss = mass = projected = None
        if config.freshness and p is not None:
            terms = upcoming_age_terms(p, row, cost, config)
            loss, mass, key, projected = terms.loss, terms.mass, terms.key, terms.projected_age_h
            guard = guard or terms.guard
        out[row["lane"]] = Upcoming(
            source_id=str(row["source_id"]), pipeline=str(row["pipeline"]), lane=str(row["lane"]),
            at=pd.Timestamp(row["started_at"]).to_pydatetime(), probability=p, cost_s=cost, key=key, guard=guard,
            contributions=contribs[i], inputs=tuple(int(a) for a in inputs) if inputs is not None else None,
            values=tuple(float(v) for v in X[i]),
            previous_start=pd.Timestamp(previous[row["lane"]]).to_pydatetime() if row["lane"] in previous else None,
            loss=loss, mass=mass, projected_age_h=projected)
    return out


def _upcoming_keep(config: FeatureConfig) -> str:
    """The trainings a description builds: the upcoming rows and their lanes' latest trainings
    (which ``relative_to_lane`` reads), not every training's features: describing is bounded
    at any history's length."""
    rel = max(0, int(config.relative_window)) + 1
    return (f"SELECT graphlet_id FROM (SELECT graphlet_id, starts_with(CAST(graphlet_id AS VARCHAR), "
            f"'{NEXT_PREFIX}') AS upcoming, row_number() OVER (PARTITION BY lane ORDER BY s DESC, "
            f"graphlet_id DESC) AS newest FROM _pf_gl) WHERE upcoming OR newest <= {rel}")


def lanes_unscored(con) -> dict[str, Upcoming]:
    """Every lane's upcoming training, unscored (no policy yet: a service warming up answers from
    these, running every training). One SQL pass over the lanes: no features are built."""
    from optimizer.pruning.features import _check_tables, _columns, _source_sql
    from optimizer.pruning.upcoming import last_trainings

    _check_tables(con)
    for stmt in _source_sql(None, "trainer_component" in _columns(con, "graphlets")).split(";"):
        if stmt.strip():
            con.execute(stmt)
    last = last_trainings(con)
    out: dict[str, Upcoming] = {}
    for row in last.itertuples(index=False):
        start = pd.Timestamp(row.s).to_pydatetime() if pd.notna(row.s) else None
        out[str(row.lane)] = Upcoming(source_id=str(row.source_id), pipeline=str(row.pipeline), lane=str(row.lane),
                                      at=start or dt.datetime.min, probability=None, cost_s=None, key=None,
                                      guard=None, previous_start=start)
    return out


@dataclass(frozen=True)
class Budget:
    """The running budget: expected pushes lost by recent prunes against pushes observed or, under the
    freshness objective, expected added age of recent prunes against the age recent decisions account for."""

    lost: float = 0.0          # sum of the push probabilities (freshness: added age) of recent model prunes
    observed: float = 0.0      # pushes observed over the policy's recent window (freshness: age accounted)
    share: float = 0.02        # PolicyConfig.budget_share: max_lost_pushes (or max_added_age) x safety
    z: float = 1.5             # control_z (not used under freshness)
    freshness: bool = False

    @classmethod
    def for_policy(cls, config: PolicyConfig, *, lost: float, observed: float) -> "Budget":
        """The budget the replay's controller (``controlled_decisions``) holds a policy of ``config`` to."""
        return cls(lost=lost, observed=observed, share=config.budget_share, z=config.control_z,
                   freshness=config.freshness)

    def allows(self, p: float) -> bool:
        """Whether one more prune of expected loss ``p`` (a push probability, or an added age) fits."""
        after = self.lost + p
        if self.freshness:
            return after <= self.share * max(self.observed - after, 0.0) + 1e-12
        return after + self.z * math.sqrt(after) <= self.share * (self.observed + after) + 1e-12

    def unspent(self) -> float:
        """Expected lost pushes the budget would still allow (``cap_allowance`` less ``lost``)."""
        return cap_allowance(self.share, self.z, self.observed) - self.lost

    def target(self, policy: Policy) -> float | None:
        """The window threshold's target share under this budget (``policy.catch_up_target``), as the
        replay's controller computes it: the unspent allowance spread over ``catch_up`` windows of
        the expected pushes of the window kept with the policy. None: no catch-up."""
        config = policy.config
        if (config.catch_up is None or config.rule != "controlled" or policy.recent is None
                or config.freshness):
            return None
        return catch_up_target(config, self.observed, self.lost, float(np.sum(policy.recent[0])),
                               budget=self.share, z=self.z)


@dataclass(frozen=True)
class Choice:
    """What ``choose`` decided, with its reasons."""

    action: str
    probability: float | None
    threshold: float | None
    reasons: tuple[str, ...]
    fallback: str | None = None
    rule: str | None = None
    model_prune: bool = False
    extra: dict = field(default_factory=dict)


def choose(up: Upcoming, learned: LearnedPolicy | None, *, rule: Rule | None = None,
           budget: Budget | None = None, max_model_age_h: float | None = None) -> Choice:
    """Decide run or prune for an upcoming training (a rule wins, then the fallback, guards, model, budget).

    ``max_model_age_h``: the pipeline's own model-age SLO (from an operator rule), which holds the
    training back when the deployed model would pass it if pruned."""
    p = up.probability
    threshold = None if learned is None or learned.policy.predictor is None else learned.policy.threshold
    if rule is not None:
        return Choice(rule.action, p, threshold, (f"operator rule: {rule.action} ({rule.reason})",), rule=rule.reason)
    if learned is None:
        reason = ("the policy is warming up (no policy learned yet: the first fit has not ended): "
                  "running every training until it has")
        return Choice("run", None, None, (reason,), fallback=reason)
    policy = learned.policy
    if policy.predictor is None or p is None:
        return Choice("run", None, None, (policy.fallback or "no predictor",), fallback=policy.fallback)
    reasons: list[str] = []
    action = "run"
    model_prune = False
    extra: dict = {}
    target = budget.target(policy) if budget is not None else None
    raised = policy.thresholds(target)
    if raised != (policy.threshold, policy.key_threshold):
        extra = {"target": target, "threshold": raised[0], "key_threshold": raised[1]}
    slo = None
    if max_model_age_h is not None and up.projected_age_h is not None and up.projected_age_h > max_model_age_h:
        slo = (f"the deployed model would pass the pipeline's age limit of {max_model_age_h:g} h: "
               f"{up.projected_age_h:.1f} h at the next expected push")
    if up.guard is not None:
        reasons.append(f"cadence guard: {up.guard}")
    elif slo is not None:
        reasons.append(f"model-age SLO: {slo}")
    elif policy.below(p, up.cost_s, raised, age_key=up.key if up.loss is not None else None):
        spend = up.loss if policy.config.freshness else p
        if budget is not None and budget.freshness and not budget.allows(spend):
            reasons.append(f"below the threshold, but the added-age budget is spent: {budget.lost:.3g} h^2 of "
                           f"expected added age by recent prunes against {budget.observed:.3g} h^2 of model age "
                           f"accounted (budget {100 * budget.share:g}%)")
        elif budget is not None and not budget.allows(spend):
            reasons.append(f"below the threshold, but the lost-push budget is spent: expected {budget.lost:.2f} "
                           f"pushes lost by recent prunes against {budget.observed:.0f} observed "
                           f"(budget {100 * budget.share:g}%)")
        else:
            action, model_prune = "prune", True
            reasons.append(_threshold_reason(up, policy, below=True, raised=raised))
    else:
        reasons.append(_threshold_reason(up, policy, below=False, raised=raised))
    if extra and up.guard is None:
        reasons.append(f"threshold raised from the learned one: the lost-push budget has {budget.unspent():.2f} "
                       f"expected pushes unspent, spread over {policy.config.catch_up:g} windows "
                       f"(target {100 * target:.2f}% of expected pushes)")
    for c in up.contributions:
        value = "not recorded" if c.value is None else f"{c.value:g}"
        direction = "raises" if c.contribution > 0 else "lowers"
        reasons.append(f"{c.feature} = {value} {direction} the odds of a push ({c.contribution:+.2f})")
    return Choice(action, p, threshold, tuple(reasons), model_prune=model_prune, extra=extra)


def _threshold_reason(up: Upcoming, policy: Policy, *, below: bool, raised: tuple | None = None) -> str:
    where = "below" if below else "at or above"
    p = up.probability
    threshold, key_threshold = raised if raised is not None else (policy.threshold, policy.key_threshold)
    if up.loss is not None and up.key is not None:
        return (f"expected added age of the deployed model {up.loss:.3g} h^2 (P(push) {p:.3f}), per second of "
                f"waste saved {up.key:.3g}, is {where} the threshold {key_threshold:.3g}")
    if up.key is not None:
        return (f"expected pushes lost per second of waste saved, {p:.3f} / ((1 - {p:.3f}) x {up.cost_s:.0f} s) = "
                f"{up.key:.3g}, is {where} the threshold {key_threshold:.3g}")
    return f"push probability {p:.3f} is {where} the threshold {threshold:.3f}"
