"""Garbage collection of a pipeline root (TFX's, or any producer's): what to delete under a budget.

TFX never deletes: a pipeline root grows with every run that computes. This planner chooses
which LIVE artifacts with files to keep under a byte budget, with the materialization
planner's eviction values (``optimizer.reuse.materialize.choose_evictions``, policy ``frugal``),
and never deletes a *pinned* artifact:

- the newest pushed model and the newest blessed model of each pipeline, their blessings and
  the push record (a resolver of the latest blessed model reads them as the next baseline);
- what the latest execution of every node read (a rolling window or a resolver reads it
  again next run);
- the inputs and outputs of every execution still RUNNING (or NEW);
- the artifacts the caller keeps (ids).

Values come from provenance: an artifact's recreation cost is the measured duration of the
execution that produced it plus those of its producers' inputs that are gone already; its
recurrence is how often its component met a cache key (TFX's ``execution_cache`` context, or
frugal's fingerprint) seen before, for the component's latest key, and how often it went back
to an older key, shared among the older keys, for older artifacts. Pure: the caller measures
sizes on disk and applies the plan (``pipelines.pipeline_root``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from optimizer.reuse.costs import CostModel
from optimizer.errors import OptimizerError
from optimizer.reuse.materialize import MaterializationConfig, choose_evictions
from optimizer.reuse.plan import StoreEntry

__all__ = ["ArtifactVerdict", "CollectionPlan", "PipelineSummary", "plan_collection"]

log = logging.getLogger(__name__)

_ACTIVE = ("RUNNING", "NEW")


@dataclass(frozen=True)
class ArtifactVerdict:
    """One artifact of the plan: keep, delete or pinned (with why), its size and value."""

    artifact_id: int
    pipeline: str
    type_name: str
    uri: str
    size_bytes: int
    action: str  # "keep", "delete", "pinned"
    reason: str
    recreation_s: float = 0.0
    recurrence: float = 0.0


@dataclass(frozen=True)
class PipelineSummary:
    """Bytes before and after, bytes freed and recompute seconds risked, per pipeline."""

    pipeline: str
    artifacts: int
    bytes_before: int
    bytes_after: int
    deleted: int
    recompute_s_risked: float


@dataclass(frozen=True)
class CollectionPlan:
    """What a collection does. ``stale``: LIVE artifacts whose files are gone (marking them
    DELETED keeps TFX's cache from hitting them). ``over_budget``: the pinned artifacts alone
    exceed the budget."""

    budget_bytes: int
    verdicts: tuple[ArtifactVerdict, ...]
    stale: tuple[int, ...] = ()
    pipelines: tuple[PipelineSummary, ...] = ()
    over_budget: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def delete(self) -> tuple[ArtifactVerdict, ...]:
        return tuple(v for v in self.verdicts if v.action == "delete")

    @property
    def bytes_before(self) -> int:
        return sum(v.size_bytes for v in self.verdicts)

    @property
    def bytes_after(self) -> int:
        return sum(v.size_bytes for v in self.verdicts if v.action != "delete")

    @property
    def recompute_s_risked(self) -> float:
        return round(sum(v.recreation_s for v in self.delete), 3)

    def to_dict(self) -> dict:
        return {
            "budget_bytes": self.budget_bytes, "bytes_before": self.bytes_before, "bytes_after": self.bytes_after,
            "bytes_freed": self.bytes_before - self.bytes_after, "recompute_s_risked": self.recompute_s_risked,
            "over_budget": self.over_budget, "stale": list(self.stale),
            "pipelines": [vars(p) for p in self.pipelines],
            "artifacts": [vars(v) for v in self.verdicts],
        }


def _role(roles: Any, type_name: str) -> str | None:
    return roles.role_of("artifact", type_name)[0] if roles is not None else None


def _exec_role(roles: Any, type_name: str) -> str | None:
    return roles.role_of("execution", type_name)[0] if roles is not None else None


def plan_collection(history: Any, sizes: Mapping[int, int], budget_bytes: int, *,
                    keep: Iterable[int] = (), absent: Iterable[int] = (), roles: Any = None,
                    model: CostModel | None = None, config: MaterializationConfig | None = None) -> CollectionPlan:
    """Which artifacts of ``history`` (a ``provenance.run_history.RunHistory``) to delete.

    ``sizes``: bytes on disk of the LIVE artifacts under the pipeline root (the candidates);
    ``absent``: LIVE artifacts under the root whose files are gone; ``keep``: artifact ids the
    user pins; ``roles``: an ``analysis.roles.Roles`` (which types are models, blessings,
    deployments; which executions are pushers and evaluators).
    """
    if not isinstance(budget_bytes, int) or budget_bytes < 0:
        raise OptimizerError(f"budget {budget_bytes!r}: give the byte budget as a whole number >= 0")
    model = model or CostModel()
    arts = history.artifacts
    unknown = [a for a in sizes if a not in arts]
    if unknown:
        raise OptimizerError(f"artifacts {unknown[:5]} are not in the MLMD store; measure sizes from the same store")
    execs = list(history.executions)
    producer: dict[int, Any] = {}
    readers: dict[int, list[Any]] = defaultdict(list)
    touched: dict[int, float] = defaultdict(float)
    for e in execs:
        for a in e.outputs:
            if a not in producer or (producer[a].state == "CACHED" and e.state != "CACHED"):
                producer[a] = e
            touched[a] = max(touched[a], e.create_time_s)
        for a in e.inputs:
            readers[a].append(e)
            touched[a] = max(touched[a], e.create_time_s)

    def pipeline_of(a: int) -> str:
        p = producer.get(a)
        return (p.pipeline if p is not None else None) or "(none)"

    pinned: dict[int, str] = {}

    def pin(a: int, why: str) -> None:
        if a in sizes and a not in pinned:
            pinned[a] = why

    # deployments and blessings: the newest pushed and the newest blessed model per pipeline
    pushed: dict[str, tuple[float, int, list[int]]] = {}
    blessed: dict[str, tuple[float, int, list[int]]] = {}
    for e in execs:
        role = _exec_role(roles, e.type_name)
        outs = [arts[a] for a in e.outputs if a in arts]
        ins = [arts[a] for a in e.inputs if a in arts]
        models = [a.artifact_id for a in ins if _role(roles, a.type_name) == "model"]
        if not models:
            continue
        p = e.pipeline or "(none)"
        for o in outs:
            r = _role(roles, o.type_name)
            flag = o.properties.get("pushed") if r == "deployment" else o.properties.get("blessed") if r == "blessing" else None
            if flag != 1:
                continue
            target = pushed if r == "deployment" else blessed
            blessings = [a.artifact_id for a in ins if _role(roles, a.type_name) == "blessing"] + [o.artifact_id]
            # a pusher's model is its one model input; an evaluator's the newest (not the baseline)
            m = max(models, key=lambda x: (arts[x].create_time_s, x)) if role != "pusher" or len(models) > 1 else models[0]
            if p not in target or (e.create_time_s, m) >= target[p][:2]:
                target[p] = (e.create_time_s, m, blessings)
    for what, table in (("pushed", pushed), ("blessed", blessed)):
        for p, (_, m, extra) in table.items():
            pin(m, f"the newest {what} model of {p}")
            for b in extra:
                pin(b, f"belongs to the newest {what} model of {p}")
    # what the latest execution of every node read: a window or resolver reads it next
    latest: dict[str, Any] = {}
    for e in execs:
        if e.state in ("COMPLETE", "CACHED", "RUNNING", "NEW"):
            latest[e.component] = e
    for comp, e in latest.items():
        for a in e.inputs:
            pin(a, f"read by the latest run of {comp}")
    for e in execs:
        if e.state in _ACTIVE:
            for a in (*e.inputs, *e.outputs):
                pin(a, f"used by execution {e.execution_id} ({e.state})")
    for a in keep:
        if a not in arts:
            raise OptimizerError(f"--keep {a}: no artifact with that id in the MLMD store")
        pin(a, "kept by the user")

    # values from provenance
    rows = [(e.run, e.component, e.fingerprint) for e in execs if e.fingerprint is not None]
    stats = _key_stats(rows)
    live = {a.artifact_id for a in arts.values() if a.state == "LIVE"}
    recreation: dict[int, float] = {}

    def recreate(a: int, seen: set[int]) -> float:
        p = producer.get(a)
        if p is None or a in seen:
            return 0.0
        seen.add(a)
        cost = p.duration_s or model.default_compute_s
        for i in p.inputs:
            if i not in live:  # gone already: recreating this one recreates it too
                cost += recreate(i, seen)
        return cost

    entries = []
    for a, size in sizes.items():
        recreation[a] = round(recreate(a, set()), 3)
        entries.append(StoreEntry(key=a, size_bytes=int(size), recreation_cost=recreation[a],
                                  load_cost=model.load_cost(size), recurrence=_recurrence(producer.get(a), stats),
                                  frequency=float(1 + len(readers[a])), last_used=touched.get(a, 0.0),
                                  pinned=a in pinned))
    # an empty artifact frees nothing: deleting it would only risk its recomputation
    evict = {k for k in choose_evictions(entries, budget_bytes, policy="frugal", config=config or MaterializationConfig())
             if sizes[k] > 0}
    verdicts = []
    for e in sorted(entries, key=lambda x: (pipeline_of(x.key), x.key)):
        a = arts[e.key]
        action = "pinned" if e.pinned else "delete" if e.key in evict else "keep"
        reason = pinned.get(e.key) or (
            f"least value per byte: P(reuse) {e.recurrence:.2f}, recreation {e.recreation_cost:.1f} s"
            if action == "delete" else "fits the budget")
        verdicts.append(ArtifactVerdict(e.key, pipeline_of(e.key), a.type_name, a.uri, e.size_bytes, action,
                                        reason, e.recreation_cost, round(e.recurrence, 4)))
    summaries = []
    for p in sorted({v.pipeline for v in verdicts}):
        vs = [v for v in verdicts if v.pipeline == p]
        summaries.append(PipelineSummary(
            p, len(vs), sum(v.size_bytes for v in vs), sum(v.size_bytes for v in vs if v.action != "delete"),
            sum(v.action == "delete" for v in vs), round(sum(v.recreation_s for v in vs if v.action == "delete"), 3)))
    pinned_bytes = sum(v.size_bytes for v in verdicts if v.action == "pinned")
    stale = tuple(sorted(a for a in absent if a in arts and arts[a].state == "LIVE"))
    return CollectionPlan(budget_bytes, tuple(verdicts), stale, tuple(summaries), pinned_bytes > budget_bytes)


def _key_stats(rows: list[tuple]) -> dict[str, dict]:
    """Per component: trials, hits on its previous key, hits on older keys, the latest key and
    how many keys it has had (runs oldest first)."""
    out: dict[str, dict] = {}
    for run_keys in _by_run(rows):
        for comp, keys in run_keys.items():
            s = out.setdefault(comp, {"trials": 0, "latest_hits": 0, "older_hits": 0, "seen": [], "latest": None})
            if s["seen"]:
                s["trials"] += 1
                if s["latest"] in keys:
                    s["latest_hits"] += 1
                elif keys & set(s["seen"]):
                    s["older_hits"] += 1
            for k in sorted(keys):
                if k not in s["seen"]:
                    s["seen"].append(k)
            s["latest"] = sorted(keys)[0] if len(keys) == 1 else s["latest"] if s["latest"] in keys else sorted(keys)[0]
    return out


def _by_run(rows: list[tuple]) -> list[dict[str, set]]:
    order: list = []
    runs: dict = {}
    for run, comp, key in rows:
        if run not in runs:
            runs[run] = defaultdict(set)
            order.append(run)
        runs[run][comp].add(key)
    return [runs[r] for r in order]


def _recurrence(producer: Any, stats: Mapping[str, dict]) -> float:
    """P(the artifact's key comes back next run), (hits + 1) / (trials + 2) smoothed: the
    component's repeats of its latest key for the latest, its returns to older keys shared
    among the older keys otherwise; 0.5 without history."""
    if producer is None or producer.fingerprint is None or producer.component not in stats:
        return 0.5
    s = stats[producer.component]
    if producer.fingerprint == s["latest"]:
        return (s["latest_hits"] + 1.0) / (s["trials"] + 2.0)
    older = max(1, len(s["seen"]) - 1)
    return (s["older_hits"] + 1.0) / (s["trials"] + 2.0) / older
