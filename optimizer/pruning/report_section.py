"""The pruning section of the batch report: the replay of the policy over history.

Built here, handed to :func:`analysis.report.write_report` by the caller, so that the
analysis package never imports the optimizer.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from analysis.report import ReportSection
from optimizer.errors import OptimizerError
from optimizer.pruning.policy import PolicyConfig

__all__ = ["pruning_section"]

log = logging.getLogger(__name__)

TITLE = "Pruning policy, replayed over history"


def pruning_section(con, *, max_lost_pushes: float = 0.02, ground_truth: Sequence[Path] = (),
                    objective: str = "freshness", max_added_age: float = 0.05) -> ReportSection:
    """Replay the pruning policy on the warehouse ``con`` and describe it as a report section.

    ``ground_truth``: the simulator's JSON files (true push probabilities), to draw the
    oracle beside the policy. Too little history gives a section that says why and what the
    policy falls back to, never an error.
    """
    from optimizer.pruning.replay import cadence_figure, cadence_summary, evaluate, load_truth, tradeoff_figure

    truth = load_truth(con, list(ground_truth)) if ground_truth else None
    # Split where 60% of the trainings lie before: robust to sources that cover different
    # periods (a time-span split can leave nothing to learn from, or nothing to replay).
    until = con.execute("SELECT quantile_disc(started_at, 0.6) FROM graphlets").fetchone()[0]
    try:
        result = evaluate(con, train_until=until, config=PolicyConfig(
            objective=objective, max_added_age=max_added_age, max_lost_pushes=max_lost_pushes),
                          truth=truth)
    except OptimizerError as exc:
        return ReportSection("pruning", TITLE, intro=f"No replay: {exc}")
    policy = result.policy
    if policy.fallback:
        return ReportSection(
            "pruning", TITLE,
            intro=f"The policy falls back to running every training: {policy.fallback}.",
            numbers={"fallback": ("fallback", policy.fallback, "text")})
    m = result.metrics
    numbers = {
        "train_until": ("trained on graphlets started before", result.train_until.isoformat(), "text"),
        "threshold": ("prune below push probability", policy.threshold, "float"),
        "trainings": ("replayed trainings", m["trainings"], "int"),
        "pruned": ("trainings pruned", m["pruned"], "int"),
        "waste_pruned": ("wasted compute pruned", m["waste_pruned"], "pct"),
        "pushes_lost": ("pushes lost", m["pushes_lost"], "pct"),
        "added_age": ("added age of the deployed models", m["added_age"], "pct"),
        "longest_age_ratio_max": ("longest model age with / without pruning, worst pipeline",
                                  m["longest_age_ratio_max"], "float"),
        "compute_saved_share": ("compute saved (share of all)", m["compute_saved_share"], "pct"),
        "compute_saved_h": ("compute saved (hours)", m["compute_saved_s"] / 3600, "float"),
    }
    cad = cadence_summary(result.cadence)
    if cad.get("pipelines_compared"):
        numbers["median_unchanged"] = ("pipelines whose median push interval is unchanged", cad["median_unchanged"], "int")
        numbers["pipelines_compared"] = ("pipelines compared (3+ pushes)", cad["pipelines_compared"], "int")
    if objective == "freshness":
        numbers["max_added_age"] = ("budget: added age of the deployed models", max_added_age, "pct")
    else:
        numbers["max_lost_pushes"] = ("budget: pushes the policy may lose", max_lost_pushes, "pct")
    for name, b in result.baselines.items():
        numbers[f"{name}_waste_pruned"] = (f"baseline {name.replace('_', ' ')}, held to the policy's loss: "
                                           "waste pruned", b["at_policy_loss"]["waste_pruned"], "pct")
    if result.oracle is not None:
        o = result.oracle
        numbers["oracle_waste_pruned"] = ("oracle (true probability), same guards and budget: waste pruned",
                                          o["waste_pruned"], "pct")
        numbers["oracle_pushes_lost"] = ("oracle: pushes lost", o["pushes_lost"], "pct")
        numbers["oracle_cost_aware_waste_pruned"] = (
            "oracle ranking by pushes lost per second saved (the ceiling of a cost-aware rule): waste pruned",
            o["cost_aware"]["waste_pruned"], "pct")
        numbers["oracle_unguarded_waste_pruned"] = ("oracle without cadence guards: waste pruned",
                                                    o["without_guards"]["waste_pruned"], "pct")
    figures = {"tradeoff": tradeoff_figure(result)}
    if cad.get("pipelines_compared"):
        figures["cadence"] = cadence_figure(result)
    intro = (f"The policy learns from trainings before the split and replays the later ones in time "
             f"order, pruning a training when its predicted push probability is below the threshold "
             f"chosen for at most {100 * max_lost_pushes:.1f}% of pushes lost (docs/pruning.md). The "
             f"trade-off figure draws the baselines (lane push rate, last outcome, logistic regression) "
             f"replayed the same way; squares mark where each one's controller ended.")
    return ReportSection("pruning", TITLE, intro=intro, numbers=numbers, figures=figures)
