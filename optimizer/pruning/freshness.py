"""The deployed model's freshness: how old each pipeline's serving model is, with and without pruning.

Definitions (docs/pruning.md, "Two yardsticks"): per pipeline, the *deployed model* at time t is
the newest pushed model whose push was done before t; its *age* at t is t minus the end of the
training that produced it. Over a period, a pipeline's *age integral* is its age integrated over
time (hours x hours, from the first moment it has a deployed model); the fleet's *added age* is
the sum of the pipelines' age integrals with pruning over the same sum without, minus 1. Per
pipeline also the *longest age* (the oldest its deployed model got) with and without.

A pipeline that trains several models (several trainer nodes: *lanes*) deploys each of them: the
unit here is the lane, which is the pipeline itself where a pipeline has one trainer (as most do).

Pruning a training removes its push, if it had one: the model it would have deployed is never
deployed, and the previous one serves until the next kept push. Outcomes of the trainings that
ran are taken as recorded (a pruned training does not change what later ones do).

``age_terms`` gives the controller the same quantities ahead of time: what one prune is expected
to add to the age integral and how much age integral one training's slot accounts for.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from optimizer.pruning.features import hours_since_epoch

__all__ = ["age_integrals", "freshness_metrics", "age_terms", "slot_terms"]


def age_integrals(frame: pd.DataFrame, pruned: np.ndarray, since, until) -> pd.DataFrame:
    """Per pipeline (per lane: pipeline and trainer node), the age integral (h^2) and the longest age (h) of its deployed model over
    [``since``, ``until``], without and with pruning.

    ``frame``: one row per training with ``source_id``, ``pipeline``, ``pushed``, ``push_time``
    (when the push was done) and ``trained_at`` (end of the training; ``push_time`` when absent),
    covering the history before ``since`` too (the model deployed when the period starts).
    ``pruned``: one flag per row. A pipeline counts from the first moment it has a deployed model
    in the world without pruning (the same window for both worlds).
    """
    pruned = np.asarray(pruned, dtype=bool)
    t0, t1 = float(hours_since_epoch([since])[0]), float(hours_since_epoch([until])[0])
    pushed = frame["pushed"].to_numpy(dtype=bool)
    d = hours_since_epoch(frame["push_time"])
    e = hours_since_epoch(frame["trained_at"]) if "trained_at" in frame.columns else d.copy()
    e = np.where(np.isnan(e), d, e)
    sel = pushed & ~np.isnan(d) & (d < t1)
    lane = frame["lane"].to_numpy() if "lane" in frame.columns else frame["pipeline"].to_numpy()
    rows = pd.DataFrame({"source_id": frame["source_id"].to_numpy()[sel], "pipeline": frame["pipeline"].to_numpy()[sel],
                         "lane": lane[sel], "d": d[sel], "e": np.minimum(e[sel], d[sel]), "kept": ~pruned[sel]})
    out = []
    for (source, pipeline, lane_id), part in rows.groupby(["source_id", "pipeline", "lane"], sort=True):
        part = part.sort_values("d", kind="stable")
        first = part["d"].iloc[0]
        start = max(t0, first)
        if start >= t1:
            continue
        row = {"source_id": source, "pipeline": pipeline, "lane": lane_id, "hours": t1 - start}
        for label, keep in (("without", np.ones(len(part), dtype=bool)), ("with", part["kept"].to_numpy())):
            integral, longest = _integrate(part["d"].to_numpy()[keep], part["e"].to_numpy()[keep], start, t1)
            row[f"age_h2_{label}"] = integral
            row[f"longest_age_h_{label}"] = longest
        out.append(row)
    cols = ["source_id", "pipeline", "lane", "hours", "age_h2_without", "longest_age_h_without", "age_h2_with",
            "longest_age_h_with"]
    return pd.DataFrame(out, columns=cols)


def _integrate(deployed: np.ndarray, trained: np.ndarray, start: float, end: float) -> tuple[float, float]:
    """Integral and maximum over [start, end] of t - (end of training of the newest model deployed before t)."""
    if len(deployed) == 0:
        return float("nan"), float("nan")
    # the model serving at t is the newest by deploy time; its training end is a running max
    # only if trainings end in deploy order, which need not hold: take the serving one as is
    order = np.argsort(deployed, kind="stable")
    d, e = deployed[order], trained[order]
    # serving intervals: [d_k, d_{k+1}); before d_0 nothing serves (the window starts at or after it)
    bounds = np.append(d[1:], np.inf)
    a = np.clip(d, start, end)
    b = np.clip(bounds, start, end)
    # the last deploy before ``start`` serves from ``start``
    live = b > a
    if not live.any():
        return 0.0, 0.0
    age_a, age_b = a[live] - e[live], b[live] - e[live]
    return float(((age_b ** 2 - age_a ** 2) / 2.0).sum()), float(age_b.max())


def freshness_metrics(integrals: pd.DataFrame, *, longest_factor: float = 2.0) -> dict:
    """The fleet's added age and the per-pipeline longest-age ratios of ``age_integrals``."""
    if integrals.empty:
        return {"added_age": 0.0, "pipelines": 0, "longest_age_ratio_max": None,
                "pipelines_longest_over": 0, "longest_factor": longest_factor}
    without = float(integrals["age_h2_without"].sum())
    with_ = float(integrals["age_h2_with"].sum())
    ratio = integrals["longest_age_h_with"] / integrals["longest_age_h_without"].where(
        integrals["longest_age_h_without"] > 0)
    hours = float(integrals["hours"].sum())
    return {
        "added_age": with_ / without - 1.0 if without > 0 else 0.0,
        "mean_age_h_without": without / hours if hours > 0 else None,
        "mean_age_h_with": with_ / hours if hours > 0 else None,
        "pipelines": int(len(integrals)),
        "longest_age_ratio_max": float(ratio.max()) if ratio.notna().any() else None,
        "longest_age_ratio_median": float(ratio.median()) if ratio.notna().any() else None,
        "pipelines_longest_over": int((ratio > longest_factor + 1e-9).sum()),
        "longest_factor": longest_factor,
    }


def age_terms(prob, age_h, duration_h, wait_h, slot_h) -> tuple[np.ndarray, np.ndarray]:
    """(expected added age, age accounted) of trainings, both in h^2, as known when they start.

    A training that would push at about ``duration_h`` after its start replaces a model ``age_h``
    old at the start by one ``duration_h`` old: pruning it leaves the deployed model older by
    about ``age_h + duration_h`` until the pipeline's next push, ``wait_h`` later (its typical
    interval between pushes: its training cadence over its push rate). The expected added age
    integral is the push probability times that product. The age a training's slot accounts for
    is the age integral of the pipeline until its next training, ``slot_h`` later (the interval
    since its previous training): ``age_h x slot_h + slot_h^2 / 2``. Summed over a window, the
    second is the fleet's age integral there, the denominator of the added age. NaN inputs give
    NaN (the cadence guards hold such trainings back).
    """
    p = np.clip(np.asarray(prob, dtype=float), 0.0, 1.0)
    age = np.maximum(np.asarray(age_h, dtype=float), 0.0)
    dur = np.nan_to_num(np.maximum(np.asarray(duration_h, dtype=float), 0.0), nan=0.0)
    wait = np.asarray(wait_h, dtype=float)
    slot = np.maximum(np.asarray(slot_h, dtype=float), 0.0)
    return slot_terms(p, age, dur, wait, slot)


def slot_terms(p, age_h, duration_h, wait_h, slot_h):
    """The arithmetic of ``age_terms`` on numbers or arrays as they are (no clipping): the
    controller calls it once per decision with the age of the world it has shaped."""
    return p * (age_h + duration_h) * wait_h, age_h * slot_h + slot_h * slot_h / 2.0
