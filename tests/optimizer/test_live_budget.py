"""The live service's budget (optimizer.pruning.live.Budget, choose): the replay's catch-up, applied per decision."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from optimizer.pruning.live import Budget, LearnedPolicy, Upcoming, choose
from optimizer.pruning.policy import Policy, PolicyConfig, cap_allowance, catch_up_target, window_threshold

P = np.linspace(0.05, 0.95, 100)         # the window kept with the policy: expected pushes 50
G = np.zeros(100, dtype=bool)


def learned(catch_up=0.5) -> LearnedPolicy:
    cfg = PolicyConfig(objective="pushes", max_lost_pushes=0.05, control_z=1.0, catch_up=catch_up, cost_feature=None)
    policy = Policy(cfg, threshold=window_threshold(P, G, 0.05), predictor=object(), recent=(P, G, P))
    return LearnedPolicy(policy, (), (), "v1", "2026-03-01T00:00:00+00:00", 100, 50)


def upcoming(p: float) -> Upcoming:
    return Upcoming("s", "pipe", "pipe/Trainer", dt.datetime(2026, 3, 1), p, None, None, None)


def test_learned_threshold_is_the_budget_rate():
    # the first 18 probabilities (0.05 ... 0.205) sum to 2.29, the 19th (0.214) would make 2.5 + 0.004
    # > 5% of 50: the threshold is the 19th probability, 0.214 (pruned: the 18 below it)
    assert learned().policy.threshold == pytest.approx(P[18])


def test_unspent_budget_raises_the_threshold_as_the_replay_does():
    allowed = cap_allowance(0.05, 1.0, 400.0)                 # 16 expected lost pushes on 400 observed
    lp = learned()
    spent = Budget(lost=allowed, observed=400.0, share=0.05, z=1.0)
    slack = Budget(lost=allowed - 2.0, observed=400.0, share=0.05, z=1.0)
    assert slack.unspent() == pytest.approx(2.0)
    # the replay's controller, in the same state (window, pushes counted, expected loss), aims at
    # the same target: 5% plus 2 pushes over half a window of 50 expected pushes = 13%
    target = slack.target(lp.policy)
    assert target == pytest.approx(catch_up_target(lp.policy.config, 400.0, allowed - 2.0, float(P.sum()))) \
        == pytest.approx(0.05 + 2.0 / 25.0)
    assert lp.policy.thresholds(target)[0] == pytest.approx(window_threshold(P, G, 0.13))
    assert spent.target(lp.policy) == pytest.approx(0.05)
    # a training between the learned threshold (0.214) and the raised one runs while the budget is
    # spent, and is pruned while 2 expected pushes are unspent (the cap still allows it)
    up = upcoming(0.3)
    assert lp.policy.threshold < 0.3 < lp.policy.thresholds(target)[0]
    assert choose(up, lp, budget=spent).action == "run"
    c = choose(up, lp, budget=slack)
    assert c.action == "prune" and c.model_prune and c.extra["target"] == pytest.approx(0.13)
    assert any(r.startswith("threshold raised from the learned one") for r in c.reasons)
    assert c.threshold == lp.policy.threshold                  # the ledger keeps the learned threshold
    # catch-up off: the learned threshold whatever the budget
    assert choose(up, learned(catch_up=None), budget=slack).action == "run"
    # a training above the raised threshold runs either way
    assert choose(upcoming(0.9), lp, budget=slack).action == "run"


def test_the_cap_still_binds_after_the_threshold_is_raised():
    lp = learned()
    allowed = cap_allowance(0.05, 1.0, 400.0)
    nearly = Budget(lost=allowed - 0.2, observed=400.0, share=0.05, z=1.0)
    # 0.2 unspent: target 5.8%, threshold 0.232; a training at 0.22 is under it, but 0.22 more
    # expected lost pushes would pass the cap
    assert not lp.policy.prunes(0.22) and lp.policy.prunes(0.22, None, nearly.target(lp.policy))
    assert not nearly.allows(0.22) and nearly.allows(0.19)
    c = choose(upcoming(0.22), lp, budget=nearly)
    assert c.action == "run" and any("budget is spent" in r for r in c.reasons)


def test_the_live_budget_holds_the_share_the_replay_holds_including_safety():
    # the replay's controller caps at max_lost_pushes x safety (PolicyConfig.budget_share); the
    # service's budget must too: with safety 0.5, 12 expected lost pushes on 400 observed are
    # within 5% (cap 16) but not within 2.5% (cap 7.9)
    cfg = PolicyConfig(objective="pushes", max_lost_pushes=0.05, safety=0.5, control_z=1.0)
    b = Budget.for_policy(cfg, lost=11.8, observed=400.0)
    assert b.share == pytest.approx(0.025) and b.z == 1.0
    assert not b.allows(0.2)
    assert Budget.for_policy(PolicyConfig(objective="pushes", max_lost_pushes=0.05, control_z=1.0), lost=11.8, observed=400.0).allows(0.2)
    assert b.unspent() == pytest.approx(cap_allowance(0.025, 1.0, 400.0) - 11.8)
