"""Pruning policy: skip a training when its predicted push probability is below a threshold.

Two rules (``PolicyConfig.rule``). ``"controlled"`` (the default, ``controlled_decisions``):
a threshold chosen at each decision on the latest ``window`` trainings by *expected* lost
pushes (``window_threshold``), optionally raised by what the running budget left unspent
(``catch_up_target``, over ``catch_up`` windows; off by default), trainings ranked by expected pushes lost per
second of waste saved (``prune_key``, with ``cost_feature``), and a running budget on the
expected lost pushes, padded by ``control_z`` Poisson standard deviations. ``"validation"`` (the previous rule):
the threshold is chosen on a validation period (the latest part of the past) as the largest
one whose replayed lost pushes stay within the user's budget (times ``safety``). Lost pushes
are counted either as *observed* (``threshold_by="observed"``, the default: the pushes
actually among the pruned trainings) or as *expected* (the sum of the calibrated
probabilities of the pruned trainings over the sum of all probabilities, which reads no
outcome); either count is padded by ``confidence_z`` Poisson standard deviations. A replay
(optimizer.pruning.replay) retrains the policy ``refits`` times on an expanding window. Two cadence guards always win over the model:

- never prune one of a lane's first ``min_history`` trainings;
- never prune when the lane's last push (in the world the policy has shaped) is older than
  ``push_age_factor`` times its typical (median) interval between pushes, or older than
  ``max_push_age_h``; never prune a lane that has not pushed yet.

With too little history to learn from (fewer than ``min_train`` trainings with known
outcomes, or fewer than ``min_class`` pushed or unpushed ones: e.g. the real TFX stores) the
policy falls back to running every training, and says so.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from optimizer.pruning.features import hours_since_epoch
from optimizer.pruning.freshness import age_terms, slot_terms

__all__ = ["PolicyConfig", "Policy", "guard_reason", "replay_decisions", "choose_threshold", "train_policy",
           "lost_share", "REPLAY_COLUMNS", "window_threshold", "controlled_decisions",
           "recent_window", "prune_key", "RULES", "OBJECTIVES", "AgeTerms", "upcoming_age_terms", "cost_of", "cap_allowance", "catch_up_target"]

RULES = ("validation", "controlled")
OBJECTIVES = ("freshness", "pushes")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PolicyConfig:
    """Budget and guards of the pruning policy (see the module docstring).

    ``objective``: what the budget bounds. ``"freshness"`` (the default): the deployed models'
    added age, at most ``max_added_age`` of the fleet's age integral (optimizer.pruning.freshness);
    ``"pushes"``: the share of pushes lost, at most ``max_lost_pushes``. ``max_model_age_h``: a
    model-age SLO, never prune when the deployed model would pass it at the lane's next expected
    push; when None, the age limit is ``age_factor`` x the lane's typical interval between pushes.
    Both age guards apply under the freshness objective.
    """

    objective: str = "freshness"
    max_added_age: float = 0.05
    max_model_age_h: float | None = None
    age_factor: float = 2.0
    max_lost_pushes: float = 0.02
    safety: float = 1.0
    confidence_z: float = 1.0
    threshold_by: str = "observed"
    rule: str = "controlled"
    window: int = 1000
    window_share: float = 1.0
    control_z: float = 1.0
    catch_up: float | None = None   # 0.5: tried, did not help on fresh seeds (docs/pruning.md)
    cost_feature: str | None = "h_skippable_s_median"
    refits: int = 8
    min_history: int = 5
    push_age_factor: float = 2.0
    max_push_age_h: float | None = None
    longest_factor: float | None = None   # 1.0: tried, bought nothing on fresh seeds (docs/pruning.md)
    min_train: int = 200
    min_class: int = 20
    validation_share: float = 0.3

    def __post_init__(self) -> None:
        from optimizer.errors import OptimizerError

        if not 0.0 <= self.max_lost_pushes < 1.0:
            raise OptimizerError(
                f"max_lost_pushes must be a share in [0, 1), got {self.max_lost_pushes}; "
                "e.g. 0.02 for at most 2% of pushes lost")
        if self.objective not in OBJECTIVES:
            raise OptimizerError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if not 0.0 <= self.max_added_age < 10.0:
            raise OptimizerError(f"max_added_age must be a share >= 0, got {self.max_added_age}; e.g. 0.05 for "
                                 "deployed models at most 5% older on average")
        if self.max_model_age_h is not None and not self.max_model_age_h > 0:
            raise OptimizerError(f"max_model_age_h must be > 0 hours or None, got {self.max_model_age_h}")
        if not self.age_factor > 1.0:
            raise OptimizerError(f"age_factor must be > 1, got {self.age_factor}")
        if self.objective == "freshness" and self.rule != "controlled":
            raise OptimizerError("the freshness objective needs rule='controlled'; use objective='pushes' with "
                                 "rule='validation'")
        if self.threshold_by not in ("expected", "observed"):
            raise OptimizerError(f"threshold_by must be 'expected' or 'observed', got {self.threshold_by!r}")
        if self.rule not in RULES:
            raise OptimizerError(f"rule must be one of {', '.join(RULES)}, got {self.rule!r}")
        if self.window < 1 or self.control_z < 0 or not 0 < self.window_share <= 1:
            raise OptimizerError(f"window must be >= 1, window_share in (0, 1] and control_z >= 0, got "
                                 f"{self.window}, {self.window_share} and {self.control_z}")
        if self.catch_up is not None and not self.catch_up > 0:
            raise OptimizerError(f"catch_up must be > 0 (windows over which an unspent budget is spent) or None "
                                 f"(off), got {self.catch_up}")
        if self.refits < 1:
            raise OptimizerError(f"refits must be >= 1 (1 = train once), got {self.refits}")
        if self.min_history < 0 or self.push_age_factor <= 0:
            raise OptimizerError("min_history must be >= 0 and push_age_factor > 0")

    @property
    def freshness(self) -> bool:
        return self.objective == "freshness"

    @property
    def budget_share(self) -> float:
        """The running budget: ``max_added_age x safety`` of the age integral (freshness), or
        ``max_lost_pushes x safety`` of the pushes."""
        return (self.max_added_age if self.freshness else self.max_lost_pushes) * self.safety

    @property
    def window_target(self) -> float:
        """The window threshold's share of expected pushes: ``budget_share x window_share``."""
        return self.budget_share * self.window_share


@dataclass(frozen=True)
class Policy:
    """A trained policy: predictor (None = fallback: run everything) and threshold."""

    config: PolicyConfig
    threshold: float
    predictor: object | None = None
    fallback: str | None = None
    validation: dict = field(default_factory=dict)
    recent: tuple | None = field(default=None, repr=False, compare=False)
    key_threshold: float | None = None

    def prunes(self, probability: float, cost: float | None = None, target: float | None = None,
               age_key: float | None = None) -> bool:
        """Whether a training that the guards allow is below the threshold.

        Under the controlled rule with a cost (``config.cost_feature``: the lane's median
        skippable seconds) the comparison is on ``prune_key(probability, cost)`` against
        ``key_threshold``; otherwise on the probability against ``threshold``. (The running
        budget of ``controlled_decisions`` needs the record of earlier decisions, which a
        single decision does not have.) ``target``: the window's share of expected pushes that
        the threshold may spend, when a running budget raised it (``catch_up_target``; see
        ``thresholds``); None keeps the learned thresholds.
        """
        if self.predictor is None:
            return False
        return self.below(probability, cost, self.thresholds(target), age_key=age_key)

    def below(self, probability: float, cost: float | None, thresholds: tuple[float, float | None],
              age_key: float | None = None) -> bool:
        """Whether ``probability`` (with ``cost``, its key) is below ``thresholds`` = (threshold, key_threshold).

        Under the freshness objective the key is ``age_key``, the training's expected added age
        per second of waste saved (``upcoming_age_terms``); a training without one is never
        pruned there.
        """
        threshold, key_threshold = thresholds
        if self.config.freshness:
            return age_key is not None and key_threshold is not None and bool(age_key < key_threshold)
        if key_threshold is not None and cost is not None:
            return bool(prune_key([probability], [cost])[0] < key_threshold)
        return bool(probability < threshold)

    def thresholds(self, target: float | None = None) -> tuple[float, float | None]:
        """(threshold, key_threshold) at ``target`` over the window kept when the policy was learned.

        None, or the target the policy was learned at, gives the learned ones. Only the
        controlled rule recomputes (``window_threshold`` over ``recent``), and never below the
        learned thresholds.
        """
        base = self.config.window_target
        if (target is None or self.config.rule != "controlled" or self.recent is None or len(self.recent[0]) == 0
                or target <= base):
            return self.threshold, self.key_threshold
        p, g = self.recent[0], self.recent[1]
        threshold = max(self.threshold, window_threshold(p, g, target))
        key_threshold = self.key_threshold
        if key_threshold is not None and len(self.recent) > 2:
            key_threshold = max(key_threshold, window_threshold(p, g, target, self.recent[2]))
        return threshold, key_threshold


def guard_reason(n_prior: float, hours_since_push: float, typical_interval_h: float,
                 config: PolicyConfig, longest_interval_h: float | None = None) -> str | None:
    """Why a training must run whatever the model says, or None when pruning is allowed."""
    if not n_prior >= config.min_history:
        return f"one of the lane's first {config.min_history} trainings"
    if hours_since_push is None or math.isnan(hours_since_push):
        return "the lane has not pushed a model yet"
    if config.max_push_age_h is not None and hours_since_push > config.max_push_age_h:
        return f"last push {hours_since_push:.1f} h ago exceeds the limit of {config.max_push_age_h:g} h"
    if typical_interval_h is None or math.isnan(typical_interval_h):
        return "the lane's push cadence is not known yet (fewer than two pushes)"
    limit = config.push_age_factor * typical_interval_h
    if hours_since_push > limit:
        return (f"last push {hours_since_push:.1f} h ago exceeds {config.push_age_factor:g} x the "
                f"typical interval of {typical_interval_h:.1f} h")
    if (config.longest_factor is not None and longest_interval_h is not None and not math.isnan(longest_interval_h)
            and hours_since_push > config.longest_factor * longest_interval_h):
        return (f"last push {hours_since_push:.1f} h ago exceeds {config.longest_factor:g} x the lane's "
                f"longest interval between pushes so far, {longest_interval_h:.1f} h")
    return None


@dataclass(frozen=True)
class AgeTerms:
    """One upcoming training under the freshness objective: its expected added age if pruned and
    the age it accounts for (h^2, ``age_terms``), its key (added age per second of waste saved),
    the deployed model's age at the lane's next expected push if it is pruned (None: unknown) and
    why the model-age guard holds it back (None: it does not)."""

    loss: float
    mass: float
    key: float
    projected_age_h: float | None
    guard: str | None


def upcoming_age_terms(p: float, row, cost_s: float | None, config: PolicyConfig) -> AgeTerms:
    """``AgeTerms`` of one training from its feature ``row``, as the replay's controller computes them
    (``controlled_decisions``)."""
    age, wait, slot = (math.nan if v is None or pd.isna(v) else float(v)
                       for v in (row["h_hours_since_push"], row["h_median_push_interval_h"],
                                 row.get("p_hours_since_prev_training")))
    duration = 0.0 if cost_s is None or config.cost_feature is None else max(float(cost_s), 0.0) / 3600.0
    slot = wait if math.isnan(slot) else slot
    loss, mass = (float(v[0]) for v in age_terms([p], [age], [duration], [wait], [slot]))
    if config.cost_feature is None:
        key = loss
    else:
        key = float(prune_key([p], [cost_s if cost_s is not None else math.nan], loss=[loss])[0])
    limit_h = float(_age_limit(wait, config))
    guard = None
    # the age the deployed model reaches at the next expected push if this training is pruned
    projected = (0.0 if math.isnan(age) else age) + duration + wait
    if config.max_model_age_h is not None and projected > limit_h:
        guard = (f"the deployed model would pass its age limit of {limit_h:g} h: {projected:.1f} h at the "
                 f"next expected push (now {age:.1f} h, the lane pushes every {wait:.1f} h)")
    elif config.max_model_age_h is None and projected > limit_h:
        guard = (f"the deployed model would reach {projected:.1f} h at the next expected push, past "
                 f"{config.age_factor:g} x the lane's typical interval between pushes ({wait:.1f} h)")
    return AgeTerms(loss, 0.0 if math.isnan(mass) else mass, key,
                    None if math.isnan(age) or math.isnan(projected) else projected, guard)


REPLAY_COLUMNS = ("lane", "started_at", "n_prior", "hours_since_push", "typical_interval_h",
                  "pushed", "push_time")   # and optionally "longest_interval_h" (config.longest_factor)


def replay_decisions(frame: pd.DataFrame, prob: np.ndarray, threshold,
                     config: PolicyConfig) -> tuple[np.ndarray, np.ndarray]:
    """Replay trainings in time order with the policy on; return (pruned, guarded) flags.

    ``frame`` has REPLAY_COLUMNS. ``hours_since_push`` is what was recorded (the world
    without the policy) and seeds each lane's state at its first replayed training; from
    then on the last push is the last *kept* push known before each start (``push_time`` is
    when a pushed training's outcome became known). ``threshold`` is one number or one per
    row (a replay that retrains as it goes).
    """
    n = len(frame)
    pruned = np.zeros(n, dtype=bool)
    guarded = np.zeros(n, dtype=bool)
    if n == 0:
        return pruned, guarded
    start, push_t, pushed, n_prior, since, typical = _replay_arrays(frame)
    longest = _longest_limit(frame, config)
    prob = np.asarray(prob, dtype=float)
    ths = np.broadcast_to(np.asarray(threshold, dtype=float), (n,))
    order = np.lexsort((start, frame["lane"].to_numpy()))
    lanes = frame["lane"].to_numpy()
    cur_lane = None
    last_push = math.nan
    pending: list[float] = []
    min_hist = config.min_history
    factor = config.push_age_factor
    max_age = config.max_push_age_h
    for i in order:
        s = start[i]
        if lanes[i] != cur_lane:
            cur_lane = lanes[i]
            last_push = s - since[i] if not math.isnan(since[i]) else math.nan
            pending = []
        if pending:
            keep = []
            for t in pending:
                if t < s:
                    if math.isnan(last_push) or t > last_push:
                        last_push = t
                else:
                    keep.append(t)
            pending = keep
        age = s - last_push
        ok = (n_prior[i] >= min_hist and not math.isnan(age) and not math.isnan(typical[i])
              and age <= factor * typical[i] and (max_age is None or age <= max_age) and not age > longest[i])
        if not ok:
            guarded[i] = True
        elif prob[i] < ths[i]:
            pruned[i] = True
            continue
        if pushed[i] and not math.isnan(push_t[i]):
            pending.append(push_t[i])
    return pruned, guarded


def window_threshold(prob, guarded, budget: float, key=None, mass=None) -> float:
    """Largest threshold whose *expected* lost pushes stay within ``budget`` x expected pushes.

    Under the freshness objective ``prob`` holds each training's expected added age and
    ``mass`` the age it accounts for (``age_terms``): the budget is then ``budget`` x the sum of
    ``mass``, spent by the expected added age of the pruned trainings.

    Over a window of trainings with calibrated push probabilities ``prob``: expected pushes are
    the sum of all probabilities, expected lost pushes the sum over the trainings a threshold
    would prune (those whose ``key``, by default the probability itself, is below it and that
    are not ``guarded``). No outcome is read, so the window may end just before the decision.
    Returns the smallest key left unpruned (0.0 when nothing fits the budget), so that
    ``key < threshold`` prunes exactly the trainings that fit.
    """
    p = np.asarray(prob, dtype=float)
    g = np.asarray(guarded, dtype=bool)
    k_all = p if key is None else np.asarray(key, dtype=float)
    total = float(p.sum()) if mass is None else float(np.nansum(np.asarray(mass, dtype=float)))
    free = ~g & np.isfinite(k_all) & np.isfinite(p)
    if total <= 0 or not free.any():
        return 0.0
    order = np.argsort(k_all[free], kind="stable")
    q = k_all[free][order]
    k = int(np.searchsorted(np.cumsum(p[free][order]), budget * total + 1e-12, side="right"))
    if k == 0:
        return 0.0
    if k >= len(q):
        return float(q[-1]) + 1e-9 if key is not None else min(float(q[-1]) + 1e-9, 1.0)
    return float(q[k])


def prune_key(prob, cost, loss=None) -> np.ndarray:
    """Expected pushes lost per expected second of waste saved: ``p / ((1 - p) * cost)``.

    With ``loss`` (the freshness objective: each training's expected added age) the numerator is
    ``loss`` instead of ``p``: expected added age per second of waste saved.

    Pruning the trainings with the smallest key first saves the most wasted compute for each
    push given up. ``cost`` is what a training is expected to cost from the trainer on (e.g. the
    lane's median skippable seconds, ``h_skippable_s_median``); an unknown or non-positive cost gives an infinite key
    (never pruned by the key).
    """
    p = np.clip(np.asarray(prob, dtype=float), 0.0, 1.0 - 1e-9)
    c = np.asarray(cost, dtype=float)
    num = p if loss is None else np.asarray(loss, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / ((1.0 - p) * c)
    return np.where(np.isfinite(c) & (c > 0), out, np.inf)


def cap_allowance(budget: float, z: float, pushes: float) -> float:
    """The most expected lost pushes ``L`` the running budget allows: ``L + z sqrt(L) = budget (pushes + L)``.

    ``pushes`` are those counted without the pruned trainings (observed, plus the probabilities
    of trainings still running). Zero when there is no budget or nothing counted yet.
    """
    if budget <= 0 or pushes <= 0:
        return 0.0
    if budget >= 1.0:
        return math.inf
    a = 1.0 - budget
    root = (-z + math.sqrt(z * z + 4.0 * a * budget * pushes)) / (2.0 * a)
    return root * root


def catch_up_target(config: PolicyConfig, pushes: float, lost: float, window_expected: float,
                    budget: float | None = None, z: float | None = None) -> float:
    """The window threshold's target share of expected pushes, raised by the budget left unspent.

    The running budget lets ``cap_allowance(budget, control_z, pushes)`` expected pushes be
    lost so far; ``lost`` of them are. The window threshold alone spends at the budget's rate
    (``max_lost_pushes x safety x window_share`` of each window's expected pushes), so pushes it
    did not spend (the padding's hold-back when few pushes are counted, spells with few
    trainings to prune, guards that fire more once the policy prunes) would stay unspent for
    good. The target adds the unspent allowance, spread over ``catch_up`` windows' worth of
    expected pushes (``window_expected`` per window), so the cap, not the threshold's rate, ends
    where the spending stops: at about ``B - z sqrt(B)`` of a budget of ``B`` pushes. Off
    (``catch_up = None``) or without slack, the target is the plain one. ``budget`` and ``z``
    default to the config's (``max_lost_pushes x safety``, ``control_z``).
    """
    base = config.window_target
    budget = config.budget_share if budget is None else budget
    if config.catch_up is None or window_expected <= 0:
        return base
    slack = cap_allowance(budget, config.control_z if z is None else z, pushes) - lost
    if not slack > 0:
        return base
    return base + slack / (config.catch_up * window_expected)


def controlled_decisions(frame: pd.DataFrame, prob: np.ndarray, threshold, config: PolicyConfig, *,
                         history: tuple | None = None, slide: bool = True, budget: float | None = -1.0,
                         cost=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replay with the online budget controller; return (pruned, guarded, threshold used) per row.

    Trainings are decided in time order over all lanes (the budget is shared), with the same
    cadence guards as ``replay_decisions``. A training that the guards allow is pruned when

    1. its probability is below the threshold: the row's own ``threshold`` or, with ``slide``,
       the larger of it and ``window_threshold`` over the ``config.window`` trainings decided
       just before it (seeded with ``history`` = (probabilities, guarded flags[, keys]) of the
       trainings before the replay), at ``max_lost_pushes x safety x window_share``. With
       ``cost`` (per row, e.g. the lane's median skippable seconds) trainings are ranked by
       ``prune_key`` (expected pushes lost per second of waste saved) instead of the probability,
       and thresholds are in that unit;
    2. and the running budget still holds after pruning it:
       ``lost + z * sqrt(lost) <= budget * pushes``, where ``lost`` is the sum of the calibrated
       probabilities of the pruned trainings, ``pushes`` the pushes observed so far among the
       trainings that ran and ended, plus the probabilities of those still running and of the
       pruned ones (``z = config.control_z``, ``budget`` by default ``max_lost_pushes x
       safety``, None switches the cap off).

    With ``config.catch_up`` (and the cap on), the window threshold's target is
    ``catch_up_target``: the budget share plus what the cap would still allow, spread over
    ``catch_up`` windows of expected pushes, so that pushes the threshold left unspent are spent
    later rather than never.

    Only what is known when a training starts is read: outcomes of trainings that ended before
    it (``push_time`` < start), and probabilities of trainings that started before it.
    """
    if budget is not None and budget < 0:
        budget = config.budget_share
    n = len(frame)
    pruned = np.zeros(n, dtype=bool)
    guarded = np.zeros(n, dtype=bool)
    used = np.zeros(n, dtype=float)
    if n == 0:
        return pruned, guarded, used
    start, push_t, pushed, n_prior, since, typical = _replay_arrays(frame)
    longest = _longest_limit(frame, config)
    lanes = frame["lane"].to_numpy()
    prob = np.asarray(prob, dtype=float)
    ths = np.broadcast_to(np.asarray(threshold, dtype=float), (n,))
    target = config.window_target
    z = config.control_z
    fresh = config.freshness
    key = prob if cost is None else prune_key(prob, cost)
    if fresh:
        duration, slot, age_limit, guard_wait = _age_inputs(frame, config, cost)
        cost_arr = None if cost is None else np.asarray(cost, dtype=float)
    win_p: deque = deque(maxlen=config.window)   # pushes: probabilities; freshness: expected added age
    win_g: deque = deque(maxlen=config.window)
    win_k: deque = deque(maxlen=config.window)
    win_m: deque = deque(maxlen=config.window)   # freshness: the age each training accounts for
    if history is not None:
        hk = history[0] if cost is None else (history[2] if len(history) > 2 else
                                              np.full(len(history[0]), np.inf))
        hl = history[3] if fresh and len(history) > 4 else history[0]
        hm = history[4] if fresh and len(history) > 4 else history[0]
        for hp, hg, hkk, hll, hmm in zip(history[0], history[1], hk, hl, hm):
            win_p.append(float(hll))
            win_g.append(bool(hg))
            win_k.append(float(hkk))
            win_m.append(float(hmm))
    last_push: dict = {}           # lane -> last kept push known (hours)
    lane_pending: dict = {}        # lane -> push times of kept pushed trainings not yet known
    running: list = []             # heap of (outcome time, row) of kept trainings still running
    observed = 0.0                 # pushes among kept trainings whose outcome is known
    running_p = 0.0                # probabilities of kept trainings still running
    lost = 0.0                     # pushes: probabilities of pruned trainings; freshness: their added age
    accounted = 0.0                # freshness: the age accounted by every training decided so far
    for i in np.lexsort((np.arange(n), start)):
        s = start[i]
        while running and running[0][0] < s:
            _, j = heapq.heappop(running)
            running_p -= prob[j]
            observed += float(pushed[j])
        lane = lanes[i]
        if lane not in last_push:
            last_push[lane] = s - since[i] if not math.isnan(since[i]) else math.nan
            lane_pending[lane] = []
        pend = lane_pending[lane]
        if pend:
            keep = []
            for t in pend:
                if t < s:
                    if math.isnan(last_push[lane]) or t > last_push[lane]:
                        last_push[lane] = t
                else:
                    keep.append(t)
            lane_pending[lane] = keep
        age = s - last_push[lane]
        ok = (n_prior[i] >= config.min_history and not math.isnan(age) and not math.isnan(typical[i])
              and age <= config.push_age_factor * typical[i]
              and (config.max_push_age_h is None or age <= config.max_push_age_h) and not age > longest[i])
        p_i = prob[i]
        if fresh:
            # expected added age if pruned, the age this slot accounts for, and the age SLO
            a = 0.0 if math.isnan(age) else max(age, 0.0)
            loss_i, mass_i = slot_terms(p_i, a, duration[i], typical[i], slot[i])
            if not math.isfinite(mass_i):
                mass_i = 0.0
            ok = ok and not (a + duration[i] + guard_wait[i] > age_limit[i])
            key_i = loss_i if cost_arr is None else float(prune_key(p_i, cost_arr[i], loss=loss_i))
            accounted += mass_i
        else:
            loss_i, mass_i, key_i = p_i, p_i, key[i]
        th = float(ths[i])
        if slide and win_p:
            wp = np.fromiter(win_p, float, len(win_p))
            wk = None if cost is None and not fresh else np.fromiter(win_k, float, len(win_k))
            if fresh:
                share = target
                th = window_threshold(wp, np.fromiter(win_g, bool, len(win_g)), share, wk,
                                      mass=np.fromiter(win_m, float, len(win_m)))
            else:
                share = target if budget is None else catch_up_target(config, observed + running_p, lost,
                                                                       float(wp.sum()), budget)
                th = max(th, window_threshold(wp, np.fromiter(win_g, bool, len(win_g)), share, wk))
        used[i] = th
        win_p.append(loss_i)
        win_g.append(not ok)
        win_k.append(key_i)
        win_m.append(mass_i)
        if not ok:
            guarded[i] = True
        elif key_i < th:
            after = lost + loss_i
            if fresh:
                fits = budget is None or after <= budget * max(accounted - after, 0.0) + 1e-12
            else:
                fits = (budget is None
                        or after + z * math.sqrt(after) <= budget * (observed + running_p + after) + 1e-12)
            if fits:
                pruned[i] = True
                lost = after
                continue
        if math.isnan(push_t[i]):
            running_p += p_i          # outcome never known within the replay: stays expected
        else:
            heapq.heappush(running, (push_t[i], int(i)))
            running_p += p_i
            if pushed[i]:
                lane_pending[lane].append(push_t[i])
    return pruned, guarded, used


def _age_inputs(frame: pd.DataFrame, config: PolicyConfig, cost) -> tuple[np.ndarray, ...]:
    """Per row, for the freshness objective: the expected hours from start to push (the cost
    feature's seconds, or 0), the slot (hours since the lane's previous training, else its
    typical interval between pushes), the model-age limit (``max_model_age_h``, else
    ``age_factor`` x the lane's typical (median) interval between pushes; infinite when unknown)
    and the wait the age guard assumes after a prune (the lane's typical interval between pushes:
    with the default limit, a lane is pruned only while its model is younger than its typical
    interval less the time to push, so that one missed push keeps its age within twice the
    typical interval). The longest interval so far would be the natural reference, but it is set
    by the rarest gap of the whole history: measured against the longest age of the period that
    follows, lanes that pushed regularly since then came out more than doubled."""
    n = len(frame)
    duration = np.zeros(n) if cost is None else np.nan_to_num(np.asarray(cost, dtype=float) / 3600.0, nan=0.0)
    duration = np.maximum(duration, 0.0)
    typical = frame["typical_interval_h"].to_numpy(dtype=float, na_value=np.nan)
    slot = (frame["p_hours_since_prev_training"].to_numpy(dtype=float, na_value=np.nan)
            if "p_hours_since_prev_training" in frame.columns else np.full(n, np.nan))
    slot = np.where(np.isnan(slot), typical, slot)
    return duration, slot, _age_limit(typical, config), typical


def _age_limit(typical_h, config: PolicyConfig):
    """The model-age limit (h) of trainings whose lanes push every ``typical_h``: ``max_model_age_h``,
    else ``age_factor`` x ``typical_h`` (infinite where that is unknown)."""
    typical_h = np.asarray(typical_h, dtype=float)
    if config.max_model_age_h is not None:
        return np.full(typical_h.shape, float(config.max_model_age_h))
    return np.where(np.isnan(typical_h), np.inf, config.age_factor * typical_h)


def recent_window(data: pd.DataFrame, prob: np.ndarray, config: PolicyConfig) -> tuple[np.ndarray, ...]:
    """The last ``config.window`` trainings of ``data`` (time order) as (probabilities, guarded flags, keys),
    and under the freshness objective also (expected added age, age accounted) from ``age_terms``.

    The guard flags are those of the recorded history (no training pruned), which is what a
    store tells about trainings that already ran. Keys are ``prune_key`` with the
    ``config.cost_feature`` column, or the probabilities without it.
    """
    if len(data) == 0:
        return np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0)
    order = np.lexsort((data["graphlet_id"].astype(str).to_numpy(), hours_since_epoch(data["started_at"])))
    tail = order[-config.window:]
    part = data.iloc[tail]
    p = np.asarray(prob, dtype=float)[tail]
    _, guarded = replay_decisions(part, p, 0.0, config)
    cost = cost_of(part, config)
    if not config.freshness:
        return p, guarded, (p if cost is None else prune_key(p, cost))
    duration, slot, limit, wait = _age_inputs(part, config, cost)
    age = part["hours_since_push"].to_numpy(dtype=float, na_value=np.nan)
    typical = part["typical_interval_h"].to_numpy(dtype=float, na_value=np.nan)
    loss, mass = age_terms(p, age, duration, typical, slot)
    guarded = guarded | (np.nan_to_num(age, nan=0.0) + duration + wait > limit)
    key = loss if cost is None else prune_key(p, cost, loss=loss)
    return p, guarded, key, loss, np.nan_to_num(mass, nan=0.0)


def cost_of(data: pd.DataFrame, config: PolicyConfig) -> np.ndarray | None:
    if config.cost_feature is None or config.cost_feature not in data.columns:
        return None
    return data[config.cost_feature].to_numpy(dtype=float, na_value=np.nan)


def _longest_limit(frame: pd.DataFrame, config: PolicyConfig) -> np.ndarray:
    """Per row, the oldest last push that still allows pruning under ``config.longest_factor``
    (infinite when off, or when the frame has no ``longest_interval_h`` or the lane none yet)."""
    if config.longest_factor is None or "longest_interval_h" not in frame.columns:
        return np.full(len(frame), np.inf)
    lim = config.longest_factor * frame["longest_interval_h"].to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isnan(lim), np.inf, lim)


def _replay_arrays(frame: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """(start h, outcome known h, pushed, trainings before, hours since push, typical interval h)."""
    return (hours_since_epoch(frame["started_at"]), hours_since_epoch(frame["push_time"]),
            frame["pushed"].to_numpy(dtype=bool), frame["n_prior"].to_numpy(dtype=float),
            frame["hours_since_push"].to_numpy(dtype=float), frame["typical_interval_h"].to_numpy(dtype=float))


def lost_share(frame: pd.DataFrame, pruned: np.ndarray) -> float:
    pushed = frame["pushed"].to_numpy(dtype=bool)
    return float((pushed & pruned).sum() / pushed.sum()) if pushed.any() else 0.0


def choose_threshold(frame: pd.DataFrame, prob: np.ndarray, budget: float,
                     config: PolicyConfig, z: float = 0.0, expected: bool = False) -> tuple[float, float]:
    """Largest threshold whose replayed lost-push share stays within ``budget``.

    With ``z > 0`` the count of lost pushes is padded by ``z`` standard deviations (Poisson:
    ``lost + z * sqrt(lost + 1) <= budget * pushes``), so that a small validation period
    chooses a more careful threshold than a large one. Lost pushes grow with the threshold
    (up to the guards' feedback), so a bisection over the sorted distinct probabilities finds
    it. With ``expected`` the lost pushes are the sum of ``prob`` over pruned trainings and the
    pushes the sum of ``prob`` over all (no outcome is read). Returns (threshold, lost share there).
    """
    prob = np.asarray(prob, dtype=float)
    n_push = float(prob.sum()) if expected else int(frame["pushed"].to_numpy(dtype=bool).sum())
    cands = np.unique(np.concatenate([[0.0], np.asarray(prob, dtype=float), [1.0 + 1e-9]]))
    lo, hi = 0, len(cands) - 1          # cands[lo] meets the budget (threshold 0 prunes nothing)
    best_lost = 0.0
    for _ in range(64):
        if hi - lo <= 1:
            break
        mid = (lo + hi) // 2
        pruned, _ = replay_decisions(frame, prob, cands[mid], config)
        if expected:
            lost_n = float(prob[pruned].sum())
            lost = lost_n / n_push if n_push > 0 else 0.0
        else:
            lost = lost_share(frame, pruned)
            lost_n = lost * n_push
        if lost_n + z * math.sqrt(lost_n + 1.0) <= budget * n_push + 1e-9:
            lo, best_lost = mid, lost
        else:
            hi = mid
    return float(cands[lo]), best_lost


def train_policy(data: pd.DataFrame, columns: tuple[str, ...], train_until: pd.Timestamp,
                 config: PolicyConfig = PolicyConfig(), predictor_config=None) -> Policy:
    """Learn the predictor and the threshold from trainings whose outcome was known by ``train_until``.

    ``data`` holds the features (``columns``) joined with the outcomes (``pushed``,
    ``push_time`` = when the outcome was known) and REPLAY_COLUMNS; an optional ``sample_weight``
    column weighs the rows the model learns from (an explored training stands for the would-be
    prunes it was drawn from: weight 1 / propensity). The known past is split in
    time: the first part fits the model, the last ``validation_share`` stops and calibrates it
    (then the model is refitted on both, see optimizer.pruning.predictor) and, under the validation rule,
    chooses the threshold by replaying it under the guards.
    """
    from optimizer.pruning.predictor import PredictorConfig, fit_predictor

    predictor_config = predictor_config or PredictorConfig()
    until = pd.Timestamp(train_until)
    ended = pd.to_datetime(data["push_time"], utc=True)
    started = pd.to_datetime(data["started_at"], utc=True)
    until = until.tz_localize("UTC") if until.tzinfo is None else until
    known = data[(started < until) & (ended < until)].sort_values(["started_at", "graphlet_id"])
    n = len(known)
    n_pos = int(known["pushed"].sum())
    n_neg = n - n_pos
    if n < config.min_train or n_pos < config.min_class or n_neg < config.min_class:
        reason = (f"too little history to learn from: {n} trainings with known outcomes "
                  f"({n_pos} pushed, {n_neg} not) before {until:%Y-%m-%d %H:%M}; a model needs at least "
                  f"{config.min_train}, with {config.min_class} of each outcome. Falling back to running "
                  "every training (no pruning).")
        log.warning(reason)
        return Policy(config, threshold=0.0, predictor=None, fallback=reason,
                      validation={"trainings": n, "pushed": n_pos})
    cut = int(round(n * (1.0 - config.validation_share)))
    fit, val = known.iloc[:cut], known.iloc[cut:]
    X = lambda d: d[list(columns)].to_numpy(dtype=np.float64, na_value=np.nan)  # noqa: E731
    W = lambda d: (d["sample_weight"].to_numpy(dtype=float) if "sample_weight" in d.columns  # noqa: E731
                   else None)
    predictor = fit_predictor(X(fit), fit["pushed"].to_numpy(), X(val), val["pushed"].to_numpy(),
                              columns, predictor_config, w_fit=W(fit), w_val=W(val))
    p_val = predictor.predict(X(val))
    budget = config.max_lost_pushes * config.safety if config.freshness else config.budget_share
    threshold, lost = choose_threshold(val, p_val, budget, config, z=config.confidence_z,
                                       expected=config.threshold_by == "expected")
    pruned, _ = replay_decisions(val, p_val, threshold, config)
    validation_threshold = threshold
    # the trainings that started last before ``until``, whatever their outcome (not read)
    tail = data[started < until].sort_values(["started_at", "graphlet_id"]).iloc[-config.window:]
    recent = recent_window(tail, predictor.predict(X(tail)), config)
    key_threshold = None
    if config.rule == "controlled":
        target = config.window_target
        if config.freshness:
            threshold = window_threshold(recent[0], recent[1], config.max_lost_pushes * config.window_share)
            key_threshold = window_threshold(recent[3], recent[1], target, recent[2], mass=recent[4])
        else:
            threshold = window_threshold(recent[0], recent[1], target)
            if cost_of(tail, config) is not None:
                key_threshold = window_threshold(recent[0], recent[1], target, recent[2])
    wasted = val["skippable_wasted_s"].to_numpy(dtype=float) if "skippable_wasted_s" in val else None
    waste_share = (float(wasted[pruned].sum() / wasted.sum()) if wasted is not None and wasted.sum() > 0
                   else float("nan"))
    log.info("threshold %.4f: validation lost %.4f, skippable waste pruned %.3f", threshold, lost, waste_share)
    return Policy(config, threshold=threshold, predictor=predictor, recent=recent, key_threshold=key_threshold,
                  validation={
        "rule": config.rule, "validation_threshold": validation_threshold,
        "window_trainings": int(len(recent[0])),
        "fit_trainings": int(len(fit)), "validation_trainings": int(len(val)),
        "validation_from": str(val["started_at"].iloc[0]) if len(val) else None,
        "validation_pushes_lost": lost_share(val, pruned), "validation_pushes_lost_counted": lost,
        "threshold_by": config.threshold_by, "validation_skippable_waste_pruned": waste_share,
        "budget_used": budget})
