"""Baselines the pruning policy must beat: one-line rules and a linear model on the same features.

Each baseline turns what is known when a training starts into a push probability, so that it
can be replayed exactly like the policy (same guards, same controller, same budget, same cost
ranking) and compared at the same loss:

- ``lane_push_rate``: the lane's shrunk push rate ``(pushes + 1) / (outcomes + 2)`` over the
  lane's trainings whose outcome was known before the start (no model at all);
- ``last_outcome``: the lane's last known outcome (pushed or not), mapped to the push rate
  that followed each of the two cases (and "no outcome yet") in the history known at each
  refit, shrunk like the rule above;
- ``logistic``: a logistic regression on the policy's own features (median-imputed,
  standardized), refitted at the same times as the policy on what was known then.

They read only outcomes with ``push_time`` before the start, like the features.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from optimizer.pruning.features import hours_since_epoch

__all__ = ["BASELINES", "lane_push_rate", "last_outcome", "last_outcome_probability"]

log = logging.getLogger(__name__)

BASELINES = ("lane_push_rate", "last_outcome", "logistic")


def _known_before(frame: pd.DataFrame):
    """Per row, within its lane: (outcomes known before the start, pushes among them, last known outcome).

    The last known outcome is 1.0 (pushed), 0.0 (not) or NaN (none known yet); "last" is the
    outcome that became known latest before the start.
    """
    n = len(frame)
    count = np.zeros(n)
    pushes = np.zeros(n)
    last = np.full(n, np.nan)
    start = hours_since_epoch(frame["started_at"])
    known = hours_since_epoch(frame["push_time"])
    pushed = frame["pushed"].to_numpy(dtype=bool)
    for _, idx in frame.groupby("lane", sort=False).indices.items():
        idx = np.asarray(idx)
        k = known[idx]
        ok = ~np.isnan(k)
        kidx = idx[ok]
        order = np.argsort(known[kidx], kind="stable")
        t = known[kidx][order]
        outcome = pushed[kidx][order].astype(float)
        # outcomes known strictly before each start
        m = np.searchsorted(t, start[idx], side="left")
        count[idx] = m
        if len(t):
            prev = np.maximum(m - 1, 0)
            pushes[idx] = np.where(m > 0, np.cumsum(outcome)[prev], 0.0)
            last[idx] = np.where(m > 0, outcome[prev], np.nan)
    return count, pushes, last


def lane_push_rate(frame: pd.DataFrame) -> np.ndarray:
    """``(pushes + 1) / (outcomes + 2)`` over the lane's outcomes known before each start."""
    count, pushes, _ = _known_before(frame)
    return (pushes + 1.0) / (count + 2.0)


def last_outcome(frame: pd.DataFrame) -> np.ndarray:
    """The lane's last outcome known before each start: 1.0 pushed, 0.0 not, NaN none yet."""
    return _known_before(frame)[2]


def last_outcome_probability(last: np.ndarray, train_last: np.ndarray, train_pushed: np.ndarray) -> np.ndarray:
    """Map each last outcome (1, 0, NaN) to ``(pushes + 1) / (n + 2)`` of the training rows in the same case."""
    last = np.asarray(last, dtype=float)
    train_last = np.asarray(train_last, dtype=float)
    train_pushed = np.asarray(train_pushed, dtype=bool)
    out = np.empty(len(last))
    for case in (0.0, 1.0, None):
        sel = np.isnan(last) if case is None else last == case
        tsel = np.isnan(train_last) if case is None else train_last == case
        out[sel] = (train_pushed[tsel].sum() + 1.0) / (tsel.sum() + 2.0)
    return out
