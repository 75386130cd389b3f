"""What pruning costs, measured from the decision ledger: the shadow report and the audit.

``shadow_report``: the pipelines asked in ``shadow`` mode (every training ran; the ledger says
which the policy would have pruned). Per pipeline and source, over its shadow decisions:

- ``decisions``: decisions answered in shadow mode; ``would_prune``: those whose verdict was prune;
- ``compute_saved_s``: what the would-be prunes would have saved: for a decision matched to its
  training (ledger outcome ``ran``) the training's skippable compute (the trainer and everything
  after it, ``features.graphlet_outcomes`` ``skippable_s``); for one not matched yet
  (``pending``) the decision's expected ``cost_s``; a run that never trained (``not_run``) 0;
- ``pushes_lost``: would-be prunes whose training pushed a model;
- ``added_age_h2`` (h x h): exactly how much older the deployed model would have been, integrated
  over time: the lane's pushes (per trainer node) replayed without those of the would-be prunes;
  from each push on, until the lane's next push (the last one: until the lane's newest training
  ended), the deployed model would have been the last kept one, older by the hours between the
  two models' trainings (``trained_at``); a pruned first push of a lane (no model before it) adds 0;
- ``added_age_h``: ``added_age_h2`` over the hours of the shadow period (the first shadow decision
  to the lane's newest training): the average number of hours the deployed model would have
  been older during shadow.

``audit``: in ``enforce`` mode a share ``propensity`` of the model's would-be prunes ran anyway
(``explored``). Each explored training is a random draw among the would-be prunes, so what
the explored ones that pushed cost, weighted by ``(1 - propensity) / propensity`` (inverse
propensity weighting: the ones not explored were pruned), estimates what the prunes actually
enforced cost. A 95% normal-approximation interval goes with it (with no explored push, its
upper end is the rule of three: 3 explored pushes), beside what the policy predicted for the
enforced prunes (the sum of their push probabilities; the sum of their expected added age).
With no explored training matched yet the intervals are None; with no explored push the added
age's upper end is None (nothing to extrapolate from).

Pure reads on a DuckDB connection.
"""

from __future__ import annotations

import math

import pandas as pd

__all__ = ["shadow_report", "audit", "SHADOW_KEYS", "AUDIT_KEYS"]

SHADOW_KEYS = ("pipeline", "source", "decisions", "would_prune", "compute_saved_s", "pushes_lost",
               "added_age_h", "added_age_h2", "since", "ran", "pending")
AUDIT_KEYS = ("would_prune", "explored", "explored_matched", "explored_pushes", "enforced_prunes",
              "estimated_pushes_lost", "pushes_lost_ci95", "predicted_pushes_lost", "estimated_added_age_h2",
              "added_age_h2_ci95", "predicted_added_age_h2")
Z95 = 1.959963984540054


def _has(con, table: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                            [table]).fetchone()[0])


def _trainings(con, pipelines) -> pd.DataFrame:
    """The graphlets of ``pipelines``: id, source, pipeline, lane (trainer node), pushed, trained_at,
    ended_at, skippable_s (empty without an analysed warehouse)."""
    from optimizer.pruning.features import graphlet_outcomes

    cols = ["graphlet_id", "source_id", "pipeline", "lane", "pushed", "trained_at", "ended_at", "skippable_s"]
    if not pipelines or not _has(con, "graphlets"):
        return pd.DataFrame(columns=cols)
    frames = []
    for p in sorted(set(pipelines)):
        out = graphlet_outcomes(con, pipeline=p)[["graphlet_id", "pushed", "trained_at", "ended_at", "skippable_s"]]
        keys = con.execute("SELECT graphlet_id, source_id, pipeline, coalesce(trainer_component, '') AS lane, "
                           "started_at FROM graphlets WHERE pipeline = ?", [p]).df()
        frames.append(keys.merge(out, on="graphlet_id", how="inner"))
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols + ["started_at"])
    df["ended_at"] = pd.to_datetime(df["ended_at"]).fillna(pd.to_datetime(df["started_at"]))
    df["trained_at"] = pd.to_datetime(df["trained_at"]).fillna(df["ended_at"])
    return df


def _hours(a, b) -> float:
    return (pd.Timestamp(b) - pd.Timestamp(a)).total_seconds() / 3600.0


def _lane_added_age(lane: pd.DataFrame, removed: set) -> float:
    """h^2 the lane's deployed model would have been older without the pushes of ``removed``
    (graphlet ids): the age gap to the last kept model, integrated until the next push (or the
    lane's newest training's end)."""
    end = lane["ended_at"].max()
    pushes = lane[lane["pushed"].astype(bool)].sort_values(["ended_at", "graphlet_id"]).reset_index(drop=True)
    total, kept = 0.0, None
    for i, row in pushes.iterrows():
        if row["graphlet_id"] not in removed:
            kept = row
            continue
        if kept is None:
            continue            # no model before it: nothing older would have been deployed
        until = pushes.loc[i + 1, "ended_at"] if i + 1 < len(pushes) else end
        total += max(_hours(kept["trained_at"], row["trained_at"]), 0.0) * max(_hours(row["ended_at"], until), 0.0)
    return total


def shadow_report(con, pipeline: str | None = None) -> list[dict]:
    """Per pipeline and source asked in shadow mode, what pruning would have done (module docstring)."""
    if not _has(con, "decisions"):
        return []
    where = "AND pipeline = $p" if pipeline is not None else ""
    d = con.execute(f"""
        SELECT decision_id, decided_at, source_id, pipeline, coalesce(would_prune, false) AS would_prune, outcome,
               outcome_graphlet_id, coalesce(outcome_pushed, false) AS outcome_pushed, cost_s
        FROM decisions WHERE mode = 'shadow' {where}
        ORDER BY pipeline, source_id, decided_at
    """, {"p": pipeline} if pipeline is not None else {}).df()
    if d.empty:
        return []
    trainings = _trainings(con, d["pipeline"].unique().tolist())
    skippable = dict(zip(trainings["graphlet_id"], trainings["skippable_s"]))
    out = []
    for (p, source), g in d.groupby(["pipeline", "source_id"], sort=True, dropna=False):
        wp = g[g["would_prune"].astype(bool)]
        saved = 0.0
        for _, r in wp.iterrows():
            if r["outcome"] == "ran" and r["outcome_graphlet_id"] in skippable:
                saved += float(skippable[r["outcome_graphlet_id"]] or 0.0)
            elif r["outcome"] == "pending":
                saved += float(r["cost_s"]) if pd.notna(r["cost_s"]) else 0.0
        matched = wp[wp["outcome"] == "ran"]
        removed = set(matched["outcome_graphlet_id"].dropna())
        mine = trainings[(trainings["pipeline"] == p) & (trainings["source_id"] == source)]
        age_h2, period_h = 0.0, 0.0
        start = g["decided_at"].min()
        for _, lane in mine.groupby("lane"):
            if removed & set(lane["graphlet_id"]):
                age_h2 += _lane_added_age(lane, removed)
        if not mine.empty:
            period_h = max(_hours(start, mine["ended_at"].max()), 0.0)
        out.append({"pipeline": p, "source": source, "decisions": int(len(g)), "would_prune": int(len(wp)),
                    "compute_saved_s": round(saved, 6), "pushes_lost": int(matched["outcome_pushed"].astype(bool).sum()),
                    "added_age_h": round(age_h2 / period_h, 6) if period_h > 0 else 0.0,
                    "added_age_h2": round(age_h2, 6), "since": pd.Timestamp(start).isoformat() + "Z",
                    "ran": int((g["outcome"] == "ran").sum()), "pending": int((g["outcome"] == "pending").sum())})
    return out


def _ipw(values: list[float], propensities: list[float]) -> tuple[float, float]:
    """Estimate and standard error of what the unexplored would-be prunes cost, from the explored
    ones' ``values``: sum v (1 - p) / p, variance sum v^2 (1 - p) / p^2 (Bernoulli exploration)."""
    est = sum(v * (1 - p) / p for v, p in zip(values, propensities))
    var = sum(v * v * (1 - p) / (p * p) for v, p in zip(values, propensities))
    return est, math.sqrt(var)


def _interval(est: float, se: float, hits: int, propensities: list[float]) -> list[float | None] | None:
    if not propensities:   # no explored training matched yet: nothing measured
        return None
    if hits == 0:   # nothing seen: a zero-width interval would claim certainty; rule of three
        w = sum((1 - p) / p for p in propensities) / len(propensities)
        return [0.0, round(3.0 * w, 6)]
    return [round(max(0.0, est - Z95 * se), 6), round(est + Z95 * se, 6)]


def _audit_part(rows: pd.DataFrame, trainings: pd.DataFrame) -> dict:
    explored = rows[rows["explored"].astype(bool)]
    enforced = rows[(rows["action"] == "prune") & ~rows["explored"].astype(bool)]
    matched = explored[(explored["outcome"] == "ran") & explored["outcome_graphlet_id"].notna()]
    props = [float(p) for p in matched["propensity"]]
    pushed = [1.0 if bool(x) else 0.0 for x in matched["outcome_pushed"]]
    est, se = _ipw(pushed, props)
    # each explored training's added age had it been pruned alone (h^2)
    ages = []
    by_id = trainings.set_index("graphlet_id") if not trainings.empty else None
    for _, r in matched.iterrows():
        a = 0.0
        if by_id is not None and r["outcome_graphlet_id"] in by_id.index:
            t = by_id.loc[r["outcome_graphlet_id"]]
            lane = trainings[(trainings["source_id"] == t["source_id"]) & (trainings["pipeline"] == t["pipeline"])
                             & (trainings["lane"] == t["lane"])]
            a = _lane_added_age(lane, {r["outcome_graphlet_id"]})
        ages.append(a)
    age_est, age_se = _ipw(ages, props)
    hits = int(sum(pushed))
    return {"would_prune": int(len(rows)), "explored": int(len(explored)), "explored_matched": int(len(matched)),
            "explored_pushes": hits, "enforced_prunes": int(len(enforced)),
            "estimated_pushes_lost": round(est, 6), "pushes_lost_ci95": _interval(est, se, hits, props),
            "predicted_pushes_lost": round(float(enforced["probability"].fillna(0).sum()), 6),
            "estimated_added_age_h2": round(age_est, 6),
            # no explored push: no magnitude to extrapolate from, the upper end is unknown (None)
            "added_age_h2_ci95": (None if not props else
                                  [round(max(0.0, age_est - Z95 * age_se), 6), round(age_est + Z95 * age_se, 6)]
                                  if hits else [0.0, None]),
            "predicted_added_age_h2": round(float(enforced["added_age"].fillna(0).sum()), 6)}


def audit(con, pipeline: str | None = None) -> dict:
    """What the enforced prunes cost, estimated from the explored ones (module docstring): over all
    pipelines, and per pipeline and source."""
    empty = pd.DataFrame(columns=["pipeline", "source_id", "action", "explored", "propensity", "outcome",
                                  "outcome_graphlet_id", "outcome_pushed", "probability", "added_age"])
    rows = empty
    if _has(con, "decisions"):
        where = "AND pipeline = $p" if pipeline is not None else ""
        # the model's would-be prunes in enforce mode, each explored with probability propensity
        rows = con.execute(f"""
            SELECT pipeline, source_id, action, coalesce(explored, false) AS explored, propensity, outcome,
                   outcome_graphlet_id, coalesce(outcome_pushed, false) AS outcome_pushed, probability, added_age
            FROM decisions
            WHERE mode = 'enforce' AND would_prune AND propensity > 0 AND rule IS NULL {where}
        """, {"p": pipeline} if pipeline is not None else {}).df()
    trainings = _trainings(con, rows.loc[rows["explored"].astype(bool), "pipeline"].unique().tolist())
    total = _audit_part(rows, trainings)
    per = [{"pipeline": p, "source": s, **_audit_part(g, trainings)}
           for (p, s), g in rows.groupby(["pipeline", "source_id"], sort=True)] if not rows.empty else []
    return {**total, "pipelines": per}
