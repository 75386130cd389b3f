"""Pre-run hook: should the next training of a pipeline run or be pruned?

``decide`` learns the policy from the warehouse's whole history (every training whose
outcome is known), then describes the *upcoming* training of the lane that trained last as it
would look if its trainer started at ``at`` (default: just after the newest record of its
source; see ``optimizer.pruning.upcoming``). This is the batch path of ``frugal prune decide``; the
service (``frugal serve``) keeps the policy and every lane's upcoming training warm instead
(``optimizer.pruning.live``) and answers by lookup.

The decision says prune or run, the calibrated push probability, the threshold, and why:
a cadence guard, the fallback, or the features that weighed most. Under the controlled rule
with a known cost (the lane's last trainer seconds) the comparison is on the expected pushes
lost per second of waste saved, ``p / ((1 - p) x cost)``, against the policy's key threshold,
as in the replay; the replay's running budget needs the record of earlier decisions, which a
single decision does not have.

The learned policy (features of the whole history, model, threshold) is kept in memory per
warehouse file, keyed by its graphlet count and newest record, the decision time and the
configs: deciding for every pipeline of an unchanged warehouse learns once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from optimizer.errors import OptimizerError
from optimizer.pruning.features import FeatureConfig, build_features
from optimizer.pruning.policy import PolicyConfig, guard_reason, prune_key, train_policy, upcoming_age_terms
from optimizer.pruning.predictor import Contribution
from optimizer.pruning.upcoming import NEXT_PREFIX, upcoming_extension

__all__ = ["Decision", "decide", "NEXT_PREFIX"]

log = logging.getLogger(__name__)

_CACHE: dict = {}
_CACHE_SIZE = 4


@dataclass(frozen=True)
class Decision:
    """What the policy says about one upcoming training."""

    pipeline: str
    lane: str
    action: str                      # "prune" | "run"
    probability: float | None        # calibrated P(push); None under the fallback
    threshold: float | None
    reasons: tuple[str, ...]
    contributions: tuple[Contribution, ...]
    at: pd.Timestamp
    fallback: str | None = None
    cost_s: float | None = None      # expected seconds from the trainer on (the lane's last trainer)
    key: float | None = None         # p / ((1 - p) x cost_s) when the policy ranks by it
    key_threshold: float | None = None  # prune when key < key_threshold (else probability < threshold)
    added_age: float | None = None      # freshness: expected added age (h^2) if pruned; the key's numerator

    def to_dict(self) -> dict:
        return {
            "pipeline": self.pipeline, "lane": self.lane, "action": self.action,
            "probability": self.probability, "threshold": self.threshold,
            "cost_s": self.cost_s, "key": self.key, "key_threshold": self.key_threshold,
            "added_age": self.added_age,
            "reasons": list(self.reasons), "at": self.at.isoformat(), "fallback": self.fallback,
            "contributions": [{"feature": c.feature, "value": c.value, "contribution": c.contribution}
                              for c in self.contributions],
        }


def _last_graphlet(con, pipeline: str) -> tuple:
    row = con.execute("""
        SELECT g.graphlet_id, g.source_id, g.trainer_execution_id, e.create_time
        FROM graphlets g JOIN executions e ON e.source_id = g.source_id AND e.execution_id = g.trainer_execution_id
        WHERE g.pipeline = $p ORDER BY e.create_time DESC, g.graphlet_id DESC LIMIT 1
    """, {"p": pipeline}).fetchone()
    if row is None:
        known = [r[0] for r in con.execute(
            "SELECT pipeline FROM graphlets GROUP BY 1 ORDER BY count(*) DESC LIMIT 10").fetchall()]
        hint = f"known pipelines include: {', '.join(map(str, known))}" if known else \
            "the warehouse holds no graphlets: run `frugal analyze` first"
        raise OptimizerError(f"pipeline {pipeline!r} has no trainings in the warehouse; {hint}")
    return row


def _cache_key(con, at, *configs):
    """Identity of what a learned policy depends on, or None for in-memory warehouses."""
    path = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
                       ).fetchone()
    if not path or not path[0]:
        return None
    state = con.execute("""
        SELECT (SELECT count(*) FROM graphlets), (SELECT max(started_at) FROM graphlets),
               (SELECT max(ended_at) FROM graphlets),
               (SELECT greatest(max(update_time), max(create_time)) FROM executions)
    """).fetchone()
    return (str(Path(path[0]).resolve()), *state, pd.Timestamp(at), *(repr(c) for c in configs))


def decide(warehouse, pipeline: str, *, at=None, config: PolicyConfig = PolicyConfig(),
           predictor_config=None, feature_config: FeatureConfig = FeatureConfig()) -> Decision:
    """Decide prune or run for the next training of ``pipeline`` (see the module docstring).

    ``warehouse`` is a DuckDB connection or a warehouse path (opened read-only).
    """
    if isinstance(warehouse, (str, Path)):
        from provenance.warehouse import connect

        if not Path(warehouse).exists():
            raise OptimizerError(f"warehouse {warehouse} does not exist; create it with `frugal ingest`")
        con = connect(str(warehouse), read_only=True)
    else:
        con = warehouse
    last = _last_graphlet(con, pipeline)
    if at is None:
        newest = con.execute("""
            SELECT greatest(max(update_time), max(create_time)) FROM executions WHERE source_id = $s
        """, {"s": last[1]}).fetchone()[0]
        at = pd.Timestamp(newest) + pd.Timedelta(milliseconds=1)
    at = pd.Timestamp(at)
    at = at.tz_convert("UTC").tz_localize(None) if at.tzinfo is not None else at

    from optimizer.pruning.replay import replay_frame

    key = _cache_key(con, at, config, predictor_config, feature_config)
    if key is not None and key in _CACHE:
        columns, keys, policy = _CACHE[key]
    else:
        frame, columns, keys = replay_frame(con, feature_config, with_keys=True)
        policy = train_policy(frame, columns, at, config, predictor_config)
        if key is not None:
            while len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = (columns, keys, policy)
    chosen: list = []
    nxt = build_features(con, feature_config, pipeline=pipeline, property_keys=keys,
                         extend=upcoming_extension(at=at.to_pydatetime(), selected=chosen))
    # the lane that trained last
    lanes = chosen[0].sort_values(["s0", "gid"]) if chosen else None
    row = nxt.frame[nxt.frame["graphlet_id"] == lanes["next_id"].iloc[-1]] if lanes is not None and len(lanes) else None
    if row is None or row.empty:  # pragma: no cover - the extension always adds the row
        raise OptimizerError(f"could not describe the next training of {pipeline!r}")
    row = row.iloc[0]
    guard = guard_reason(row["h_trainings_before"], row["h_hours_since_push"],
                         row["h_median_push_interval_h"], config,
                         longest_interval_h=row.get("h_longest_push_interval_h"))
    reasons: list[str] = []
    contributions: tuple[Contribution, ...] = ()
    if policy.predictor is None:
        return Decision(pipeline, row["lane"], "run", None, None, (policy.fallback,), (), at,
                        fallback=policy.fallback)
    X = row[list(columns)].to_numpy(dtype=np.float64, na_value=np.nan).reshape(1, -1)
    p = float(policy.predictor.predict(X)[0])
    contributions = tuple(policy.predictor.explain(X, top=3)[0])
    cost = None
    if config.cost_feature is not None and config.cost_feature in row.index:
        c = row[config.cost_feature]
        cost = float(c) if c is not None and not pd.isna(c) and float(c) > 0 else None
    # ranked as the policy ranks: by p / ((1 - p) x cost) when it has a key threshold and a cost
    key = float(prune_key([p], [cost])[0]) if policy.key_threshold is not None and cost is not None else None
    loss = None
    if config.freshness:
        terms = upcoming_age_terms(p, row, cost, config)
        loss, key = terms.loss, terms.key
        guard = guard or terms.guard
    if guard is not None:
        action = "run"
        reasons.append(f"cadence guard: {guard}")
    else:
        action = "prune" if policy.prunes(p, cost, age_key=key if loss is not None else None) else "run"
        reasons.append(_threshold_reason(p, cost, key, policy, below=action == "prune", loss=loss))
    for c in contributions:
        value = "not recorded" if c.value is None else f"{c.value:g}"
        direction = "raises" if c.contribution > 0 else "lowers"
        reasons.append(f"{c.feature} = {value} {direction} the odds of a push ({c.contribution:+.2f})")
    return Decision(pipeline, row["lane"], action, p, policy.threshold, tuple(reasons), contributions, at,
                    cost_s=cost, key=key, key_threshold=policy.key_threshold if key is not None else None,
                    added_age=loss)


def _threshold_reason(p: float, cost: float | None, key: float | None, policy, *, below: bool,
                      loss: float | None = None) -> str:
    where = "below" if below else "at or above"
    if loss is not None:
        return (f"expected added age of the deployed model {loss:.3g} h^2 (P(push) {p:.3f}), per second of waste "
                f"saved {key:.3g}, is {where} the threshold {policy.key_threshold:.3g}")
    if key is not None:
        return (f"expected pushes lost per second of waste saved, {p:.3f} / ((1 - {p:.3f}) x {cost:.0f} s) = "
                f"{key:.3g}, is {where} the threshold {policy.key_threshold:.3g}")
    return f"push probability {p:.3f} is {where} the threshold {policy.threshold:.3f}"
