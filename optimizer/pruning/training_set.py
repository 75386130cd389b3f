"""A bounded training set: what a refit learns from when the warehouse does not fit in memory.

``replay_frame`` builds every training's features (some 200 float columns, and in passing the
long form of every property key) in pandas: at the research's scale (477,691 trainings) the
refit alone passed 15 GB. Here the feature SQL still reads the whole history, in DuckDB (which
keeps to its ``memory_limit`` and spills to disk), but only a bounded set of trainings reaches
pandas:

- the ``recent`` most recent trainings, all of them: the model's validation part (the last
  ``validation_share`` of the known trainings), the threshold chosen on it and the policy's
  recent window all come from here, exactly as with the whole history;
- a stratified sample of the older ones, at most ``older`` (by default as many as ``recent``):
  in each stratum (pipeline x pushed) the same share, the rows chosen by a hash of their id
  (the same rows at every refit while the stratum grows), each weighted ``n / k`` (the
  stratum's trainings over those kept: ``sample_weight``, which ``train_policy`` weighs in the
  fit, the early stopping and the calibration), so the sample stands for the whole stratum;
- for each sampled older training, its ``relative_window`` predecessors in its lane, as context
  only (``relative_to_lane`` reads them), dropped before learning.

``rows_for`` derives ``recent`` from a memory budget: bytes per row ~ columns x 8 x ``factor``
(the frame, its float matrices for the fit, validation and calibration, pandas' copies).
Below the budget the whole history is learned from, unweighted, as ``replay_frame`` would.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd

from optimizer.pruning.features import FeatureConfig, build_features
from optimizer.pruning.ledger import explored_weights
from optimizer.pruning.replay import with_outcomes

__all__ = ["TrainingSetPlan", "rows_for", "training_frame", "BYTES_PER_VALUE", "ROW_FACTOR", "EXPECTED_COLUMNS"]

log = logging.getLogger(__name__)

BYTES_PER_VALUE = 8       # a float64 feature
ROW_FACTOR = 16           # the frame and its copies (matrices for fit / validation / calibration, merges)
                          # and each sampled training's predecessors: the paper corpus's child took
                          # about 31 KB per learned row at 8, twice the estimate
EXPECTED_COLUMNS = 260    # features a warehouse yields at most by default (300 property keys cap many fewer)
MIN_RECENT = 2000         # never fewer recent trainings than this (the policy's window is 1000)


@dataclass(frozen=True)
class TrainingSetPlan:
    """What a bounded training set holds: ``total`` trainings, the ``recent`` newest in full, a
    sample of ``sampled`` of the ``older`` ones (``bounded``: False when it is the whole history)."""

    total: int
    recent: int
    older: int
    sampled: int
    budget_rows: int | None

    @property
    def bounded(self) -> bool:
        return self.sampled < self.older

    def to_dict(self) -> dict:
        return {"total": self.total, "recent": self.recent, "older": self.older, "sampled": self.sampled,
                "budget_rows": self.budget_rows, "bounded": self.bounded}


def rows_for(memory_bytes: int | None, *, columns: int = EXPECTED_COLUMNS, factor: float = ROW_FACTOR) -> int | None:
    """Trainings whose features fit in ``memory_bytes`` (None: no bound)."""
    if memory_bytes is None:
        return None
    return max(MIN_RECENT, int(memory_bytes // (max(columns, 1) * BYTES_PER_VALUE * factor)))


def _plan(con, max_rows: int | None, where: str) -> TrainingSetPlan:
    total = con.execute(f"SELECT count(*) FROM _pf_gl {where}").fetchone()[0]
    if max_rows is None or total <= max_rows:
        return TrainingSetPlan(total, total, 0, 0, max_rows)
    recent = max(1, max_rows // 2)
    older = total - recent
    return TrainingSetPlan(total, recent, older, min(older, max_rows - recent), max_rows)


def training_frame(con, feature_config: FeatureConfig = FeatureConfig(), *, max_rows: int | None = None,
                   memory_bytes: int | None = None, seed: int = 0, until=None):
    """The training set of a refit: (frame, columns, property_keys, plan).

    ``frame`` is as ``optimizer.pruning.replay.replay_frame(con, with_keys=True)`` returns it, with
    a ``sample_weight`` column when it is a sample; at most ``max_rows`` trainings (or
    ``rows_for(memory_bytes)``; neither: every training). ``until``: only trainings that started
    before it (a replay's training set as of then). Temporary tables only.
    """
    where = ""
    if until is not None:
        stamp = pd.Timestamp(until)
        stamp = stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp
        where = f"WHERE s < TIMESTAMP '{stamp.isoformat(sep=' ')}'"
    if max_rows is None:
        max_rows = rows_for(memory_bytes)
    state: dict = {}

    def choose(c) -> None:   # runs inside build_features, once _pf_src exists: plan on the lane table
        from optimizer.pruning.features import _GRAPHLET_SQL, _LANE_SQL

        c.execute(_GRAPHLET_SQL)     # the lanes (_pf_gl), in DuckDB only
        c.execute(_LANE_SQL)
        state["plan"] = plan = _plan(c, max_rows, where)
        if not plan.bounded:
            c.execute(f"CREATE OR REPLACE TEMP TABLE _ts_keep AS SELECT graphlet_id FROM _pf_gl {where}")
            return
        rel = max(0, int(feature_config.relative_window))
        c.execute(f"""
            CREATE OR REPLACE TEMP TABLE _ts_rank AS
            SELECT g.graphlet_id, g.pipeline, g.lane, g.s,
                   coalesce(gr.pushed, false) AS pushed,
                   row_number() OVER (ORDER BY g.s DESC, g.graphlet_id DESC) AS newest,
                   row_number() OVER (PARTITION BY g.lane ORDER BY g.s, g.graphlet_id) AS in_lane
            FROM (SELECT * FROM _pf_gl {where}) g LEFT JOIN graphlets gr USING (graphlet_id);

            CREATE OR REPLACE TEMP TABLE _ts_pick AS
            WITH older AS (
                SELECT *, count(*) OVER (PARTITION BY pipeline, pushed) AS n_stratum,
                       row_number() OVER (PARTITION BY pipeline, pushed
                                          ORDER BY hash(graphlet_id, {int(seed)}), graphlet_id) AS draw
                FROM _ts_rank WHERE newest > {plan.recent}
            ), sized AS (
                SELECT *, greatest(1, CAST(ceil(n_stratum * {plan.sampled / plan.older!r}) AS BIGINT)) AS k
                FROM older
            )
            SELECT graphlet_id, lane, in_lane, n_stratum::DOUBLE / k AS weight FROM sized WHERE draw <= k
            UNION ALL
            SELECT graphlet_id, lane, in_lane, 1.0 AS weight FROM _ts_rank WHERE newest <= {plan.recent};

            CREATE OR REPLACE TEMP TABLE _ts_keep AS
            SELECT graphlet_id FROM _ts_pick
            UNION
            SELECT r.graphlet_id FROM _ts_pick p JOIN _ts_rank r
              ON r.lane = p.lane AND r.in_lane BETWEEN p.in_lane - {rel} AND p.in_lane - 1;
        """)
        state["weights"] = c.execute("SELECT graphlet_id, weight FROM _ts_pick").df()

    # the plan needs the lanes, which build_features makes: plan inside it, before its pandas part
    fs = build_features(con, feature_config, extend=choose,
                        keep="SELECT graphlet_id FROM _ts_keep" if until is not None or _bounded(con, max_rows)
                        else None)
    plan: TrainingSetPlan = state["plan"]
    frame = fs.frame
    if plan.bounded:
        weights = state["weights"]
        frame = frame.merge(weights, on="graphlet_id", how="inner", validate="one_to_one")
        frame = frame.rename(columns={"weight": "sample_weight"})
    frame = with_outcomes(con, frame)
    explored = explored_weights(con)
    if explored:
        # explored trainings stand for the would-be prunes that were never observed
        boost = frame["graphlet_id"].astype(str).map(explored).fillna(1.0).to_numpy(dtype=float)
        base = frame["sample_weight"].to_numpy(dtype=float) if "sample_weight" in frame.columns else 1.0
        frame["sample_weight"] = base * boost
        log.info("training set: %d explored trainings weighted 1 / propensity", int((boost != 1.0).sum()))
    log.info("training set: %s", plan.to_dict())
    return frame, fs.columns, fs.frame.attrs["property_keys"], plan


def _bounded(con, max_rows: int | None) -> bool:
    """Whether the warehouse holds more trainings than ``max_rows`` (then ``keep`` restricts the build)."""
    if max_rows is None:
        return False
    return con.execute("SELECT count(*) FROM graphlets").fetchone()[0] > max_rows
