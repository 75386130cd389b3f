"""Baselines of the pruning policy: hand-computed values on a tiny history, and their replay."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from optimizer.pruning.baselines import lane_push_rate, last_outcome, last_outcome_probability
from optimizer.pruning.logistic import fit_logistic

T0 = pd.Timestamp("2026-03-01 00:00", tz="UTC")
H = pd.Timedelta(hours=1)


def tiny_history() -> pd.DataFrame:
    """Lane A: five trainings whose outcomes become known late for some; lane B: one known outcome."""
    a = pd.DataFrame({"lane": "A", "started_at": [T0 + i * H for i in range(5)],
                      "push_time": [T0 + h * H for h in (0.5, 2.5, 2.6, 3.5, 4.5)],
                      "pushed": [True, False, True, False, False]})
    b = pd.DataFrame({"lane": "B", "started_at": [T0 + h * H for h in (0.5, 1.5, 3.0)],
                      "push_time": [T0 + 1.0 * H, pd.NaT, T0 + 5 * H],
                      "pushed": [False, False, True]})
    return pd.concat([a, b], ignore_index=True)


def test_lane_push_rate_counts_only_outcomes_known_at_start():
    rate = lane_push_rate(tiny_history())
    # A0: nothing known; A1, A2: A0 pushed (A1 is known only at 2.5 h); A3: A0, A1, A2 (2 of 3);
    # A4: A0..A3 (2 of 4); B0: nothing; B1: B0 not pushed; B2: B0 (B1's outcome never known)
    expected = [1 / 2, 2 / 3, 2 / 3, 3 / 5, 3 / 6, 1 / 2, 1 / 3, 1 / 3]
    np.testing.assert_allclose(rate, expected)


def test_last_outcome_is_the_latest_known_before_start():
    last = last_outcome(tiny_history())
    expected = [math.nan, 1, 1, 1, 0, math.nan, 0, 0]
    np.testing.assert_array_equal(np.isnan(last), np.isnan(expected))
    np.testing.assert_array_equal(last[~np.isnan(last)], np.asarray(expected)[~np.isnan(expected)])


def test_last_outcome_maps_to_the_shrunk_rate_that_followed_each_case():
    train_last = np.array([1, 1, 1, 0, 0, np.nan])
    train_pushed = np.array([True, True, False, False, False, True])
    p = last_outcome_probability(np.array([1.0, 0.0, np.nan]), train_last, train_pushed)
    np.testing.assert_allclose(p, [(2 + 1) / (3 + 2), (0 + 1) / (2 + 2), (1 + 1) / (1 + 2)])


def test_logistic_baseline_learns_a_linear_signal_and_refuses_one_outcome():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(400, 3))
    X[rng.random(X.shape) < 0.1] = np.nan
    X[0, 1] = np.inf
    y = np.nan_to_num(X[:, 2], posinf=0.0) > 0
    model = fit_logistic(X, y)
    p = model.predict(X)
    assert ((p > 0) & (p < 1)).all()
    known = ~np.isnan(X[:, 2])
    assert ((p[known] > 0.5) == y[known]).mean() > 0.95
    assert fit_logistic(X, np.ones(400, dtype=bool)) is None
