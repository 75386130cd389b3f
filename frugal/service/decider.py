"""The decider: a pipeline's next training, run or prune, and the ledger row that records it.

A decision reads only the current ``Warm`` (resolves the pipeline to its source and lane, takes
that lane's scored upcoming training), the operator's rules and the budget of recent prunes,
so it costs no query; with ``inputs`` (the "fresh" path) it reads those artifacts and what
wrote and read them from the MLMD store by id, and describes the upcoming training from them
on the pipeline's warm slice (``slices.Slices``). It is answered once its ledger row is
committed (``LedgerWriter``). The operator's rules are written here too, as the decider reads them.

The pipeline's mode (``modes.Modes``, or an active rule's) shapes the answer: ``shadow`` and
``off`` always run (shadow records the verdict as ``would_prune``); in ``enforce`` a model prune
runs anyway with probability ``explore`` (``explored``, ``propensity`` in the ledger), and only
a prune enforced spends the budget.
"""

from __future__ import annotations

import collections
import concurrent.futures
import datetime as dt
import random
import threading
import uuid

from analysis.analyze import analyze
from optimizer.pruning import ledger, live
from optimizer.pruning.pipeline_slice import describe_with_inputs
from optimizer.pruning.policy import PolicyConfig
from provenance.errors import ProvenanceError
from provenance.readers.inputs import MissingInputs

from frugal.service.errors import BadRequest, Conflict, NotFound, NotReady
from frugal.service.ledger_writer import LedgerWriter
from frugal.service.config import MODES
from frugal.service.modes import Modes
from frugal.service.refresher import Refresher
from frugal.service.shared import Metrics, Warm, WarmHolder, now
from frugal.service.slices import Slices

__all__ = ["Decider"]


class Decider:
    """Decisions on the warm state of ``holder``; rules and the budget's recent prunes (see the module docstring)."""

    def __init__(self, policy_config: PolicyConfig, con, write_lock: threading.RLock, holder: WarmHolder,
                 refresher: Refresher, ledger_writer: LedgerWriter, metrics: Metrics, *, modes: Modes | None = None,
                 default_mode: str = "enforce", explore: float = 0.0, explore_seed: int = 0):
        self.modes = modes
        self.default_mode = default_mode
        self.explore = float(explore)
        self._rng = random.Random(explore_seed)
        self._draw_lock = threading.Lock()
        self.policy_config = policy_config
        self.con = con
        self.write_lock = write_lock
        self.holder = holder
        self.refresher = refresher
        self._ledger = ledger_writer
        self.metrics = metrics
        self.rules = ledger.load_rules(con)
        self.slices = Slices(con)     # pipelines' slices for decisions from inputs
        self._recent_prunes: collections.deque = collections.deque(maxlen=policy_config.window)

    def recall_prunes(self) -> None:
        """The budget's recent prunes from the ledger (a restarted service spends what it had spent):
        their push probabilities, or under the freshness objective their expected added age."""
        spent = "added_age" if self.policy_config.freshness else "probability"
        for row in self.con.execute(f"""
            SELECT {spent} FROM decisions WHERE action = 'prune' AND rule IS NULL AND fallback IS NULL
            ORDER BY decided_at DESC LIMIT ?""", [self.policy_config.window]).fetchall():
            self._recent_prunes.appendleft(float(row[0] or 0.0))

    # ----------------------------------------------------------------------------------- decisions
    def _resolve(self, warm: Warm, pipeline: str, source: str | None) -> str | None:
        """The source of ``pipeline`` (None: known but without trainings)."""
        known_sources = warm.known.get(pipeline, ())
        if not known_sources:
            names = sorted(warm.pipelines)
            hint = f"; known pipelines include {', '.join(names[:10])}" if names else "; the warehouse holds none yet"
            raise NotFound(f"unknown pipeline {pipeline!r}: no source of this service has recorded it{hint}. "
                           "Use the MLMD pipeline name as in graphlets.pipeline")
        if source is not None:
            if source not in known_sources:
                raise NotFound(f"pipeline {pipeline!r} is not in source {source!r}; it is in: {', '.join(known_sources)}")
            return source
        if len(known_sources) > 1:
            raise Conflict(f"pipeline {pipeline!r} is in several sources ({', '.join(known_sources)}); "
                           "say which with \"source\"")
        return known_sources[0]

    def _lane(self, warm: Warm, pipeline: str, source: str, lane: str | None) -> str | None:
        lanes = (warm.pipelines.get(pipeline) or {}).get(source, ())
        if not lanes:
            return None
        if lane is None:
            return lanes[0]
        for full in lanes:
            if lane == full or lane == full.rsplit("/", 1)[-1]:
                return full
        raise NotFound(f"pipeline {pipeline!r} has no trainer node {lane!r}; its lanes: "
                       f"{', '.join(lx.rsplit('/', 1)[-1] for lx in lanes)}")

    def budget(self, warm: Warm) -> live.Budget:
        """Recent prunes against pushes observed, or under the freshness objective their expected
        added age against the age the policy's recent window accounts for (as the replay's controller)."""
        observed = warm.observed_pushes
        if self.policy_config.freshness:
            recent = warm.learned.policy.recent if warm.learned is not None else None
            observed = float(sum(recent[4])) if recent is not None and len(recent) > 4 else 0.0
        return live.Budget.for_policy(self.policy_config, lost=float(sum(self._recent_prunes)), observed=observed)

    def mode_of(self, pipeline: str, source: str | None, rule: ledger.Rule | None = None) -> str:
        """The pipeline's mode: an active rule's, else the one recorded when the service first saw it."""
        if rule is not None and rule.mode is not None:
            return rule.mode
        if self.modes is None:
            return self.default_mode
        return self.modes.recorded(pipeline, source)

    def active_rule(self, pipeline: str, source: str | None) -> ledger.Rule | None:
        rule = self.rules.get(pipeline)
        if rule is None or not rule.active(now()):
            return None
        if rule.source_id is not None and source is not None and rule.source_id != source:
            return None
        return rule

    def decide(self, pipeline: str, *, source: str | None = None, lane: str | None = None,
               run_id: str | None = None, inputs: list[int] | None = None, explain: bool = False) -> dict:
        """Decide for the next training of ``pipeline``; the decision is in the ledger before it returns."""
        answer, future = self.decide_async(pipeline, source=source, lane=lane, run_id=run_id, inputs=inputs,
                                           explain=explain)
        future.result()
        return answer

    def decide_async(self, pipeline: str, *, source: str | None = None, lane: str | None = None,
                     run_id: str | None = None, inputs: list[int] | None = None,
                     explain: bool = False) -> tuple[dict, concurrent.futures.Future]:
        """The decision and the future of its ledger commit: answer only once the future is done."""
        warm = self.holder.warm
        if warm is None and inputs is None:
            raise NotReady("not ready yet: pending " + ", ".join(sorted(self.holder.pending)) + "; retry shortly")
        kind = "lookup"
        if inputs is not None:
            warm, up, source, lane_full = self._fresh(pipeline, source, lane, inputs)
            kind = "fresh"
        else:
            source = self._resolve(warm, pipeline, source)
            lane_full = self._lane(warm, pipeline, source, lane)
            up = warm.upcoming.get(lane_full) if lane_full else None
        rule = self.active_rule(pipeline, source)
        pin = rule if rule is not None and rule.action is not None else None   # a rule may set only a mode
        mode = self.mode_of(pipeline, source, rule)
        learned = warm.learned if warm is not None else None
        if up is None:
            if pin is not None:
                choice = live.Choice(pin.action, None, None, (f"operator rule: {pin.action} ({pin.reason})",),
                                     rule=pin.reason)
            else:
                reason = ("too little history: no training of this pipeline is recorded yet, so every training "
                          "runs until there is")
                choice = live.Choice("run", None, None, (reason,), fallback=reason)
        else:
            choice = live.choose(up, learned, rule=pin, budget=self.budget(warm),
                                 max_model_age_h=rule.max_model_age_h if rule is not None else None)
        action, reasons = choice.action, list(choice.reasons)
        would_prune = choice.action == "prune"
        explored, propensity = False, None
        if mode == "shadow":
            action = "run"
            reasons.insert(0, "shadow mode: would prune, ran" if would_prune else "shadow mode: would run, ran")
        elif mode == "off":
            action, would_prune = "run", False
            reasons = ["pruning is off for this pipeline (mode off): every training runs"]
        elif choice.model_prune and self.explore > 0:
            # a model prune (never a rule's) runs anyway with probability explore: what pruning
            # costs is then measured on a random share of would-be prunes (GET /api/v1/audit)
            propensity = self.explore
            with self._draw_lock:
                explored = self._rng.random() < self.explore
            if explored:
                action = "run"
                reasons.insert(0, "explored: ran to measure what pruning costs")
        if kind == "fresh" and self.modes is not None and self.modes.has_pending():
            with self.write_lock:     # a worker thread that wrote anyway: the new pipeline's mode now
                cur = self.con.cursor()
                try:
                    self.modes.persist(cur, {})
                finally:
                    cur.close()
        version = learned.version if learned is not None else "none"
        decision_id = uuid.uuid4().hex
        row = {"decision_id": decision_id, "decided_at": now(), "source_id": source, "pipeline": pipeline,
               "lane": lane_full or lane, "run_id": run_id, "action": action,
               "probability": choice.probability, "threshold": choice.threshold, "policy_version": version,
               "reasons": reasons, "fallback": choice.fallback, "rule": choice.rule,
               "inputs": inputs, "cost_s": up.cost_s if up is not None else None,
               "added_age": up.loss if up is not None else None, "mode": mode, "would_prune": would_prune,
               "explored": explored, "propensity": propensity}
        future = self._ledger.submit(row)   # the caller answers once it is committed
        if choice.model_prune and action == "prune":   # only a prune enforced spends the budget
            spent = up.loss if self.policy_config.freshness else choice.probability
            self._recent_prunes.append(float(spent or 0.0))
        if self.metrics.decision:
            self.metrics.decision(action, kind)
        answer = {"decision_id": decision_id, "action": action, "probability": choice.probability,
                  "threshold": choice.threshold, "reasons": reasons, "fallback": choice.fallback,
                  "policy_version": version, "pipeline": pipeline, "source": source,
                  "lane": (lane_full.rsplit("/", 1)[-1] if lane_full else lane), "run_id": run_id,
                  "inputs": inputs, "mode": mode, "would_prune": would_prune, "explored": explored}
        if explain:
            answer["features"] = up.features(learned.columns) if up is not None and learned is not None else {}
            answer["upcoming_at"] = up.at.isoformat() + "Z" if up is not None else None
        return answer, future

    def _fresh(self, pipeline: str, source: str | None, lane: str | None, inputs: list[int]):
        """Describe the upcoming training from this run's ``inputs``, read from the MLMD store by id.

        On the pipeline's warm slice (``slices.Slices``), not the whole warehouse: the cost does
        not grow with the fleet. A pipeline this service has never seen is read first (its
        source ingested and analysed), so that it has a slice.
        """
        if not inputs:
            raise BadRequest("\"inputs\" is empty: give the MLMD artifact ids of this run's upstream, or leave it out")
        ids = [int(a) for a in inputs]
        warm = self.holder.warm
        if source is not None and source not in self.refresher.sources:
            raise NotFound(f"unknown source {source!r}; this service reads: {', '.join(self.refresher.sources)}")
        if warm is None or pipeline not in warm.known:
            warm = self._read_new_pipeline(pipeline, source)
        source = self._resolve(warm, pipeline, source)
        try:
            batch = self.refresher.read_inputs(source, ids)
        except MissingInputs as exc:
            raise BadRequest(f"{exc} (source {source!r})") from exc
        except ProvenanceError as exc:
            raise NotReady(f"cannot read this run's inputs from source {source!r}: {exc}") from exc
        lane_full = self._lane(warm, pipeline, source, lane)
        if lane_full is None:
            return warm, None, source, None
        if warm.learned is None:      # warming up: the lane's unscored training, every training runs
            return warm, warm.upcoming.get(lane_full), source, lane_full
        sl = self.slices.get(warm, source, pipeline)
        up = describe_with_inputs(sl, warm.learned, lane_full, batch, ids, prepare=False)
        self.slices.prepare_soon(sl, warm.learned)    # (a slice cut for this decision: after it)
        return warm, up, source, lane_full

    def _read_new_pipeline(self, pipeline: str, source: str | None) -> Warm:
        """Ingest and analyse the sources, so that a pipeline seen for the first time is known."""
        self.refresher.ingest_sources([source] if source is not None else None)
        with self.write_lock:
            cur = self.con.cursor()
            try:
                analyze(cur)
            finally:
                cur.close()
        warm = self.holder.warm
        learned = warm.learned if warm is not None else self.holder.restored
        if learned is not None:
            self.holder.warm = warm = self.refresher.describe(learned, self.refresher.signature())
        if warm is None:
            raise NotReady("not ready yet: the policy is being learned; retry shortly")
        return warm

    # --------------------------------------------------------------------------------------- rules
    def put_rule(self, pipeline: str, action: str | None, reason: str, expires_at: dt.datetime | None,
                 source: str | None, *, mode: str | None = None,
                 max_model_age_h: float | None = None) -> ledger.Rule:
        if action is None and mode is None and max_model_age_h is None:
            raise BadRequest("a rule needs an \"action\" (run or prune), a \"mode\" (enforce, shadow or off) "
                             "or a \"max_model_age_h\", or several of them")
        if action is not None and action not in ("run", "prune"):
            raise BadRequest(f"action must be \"run\" or \"prune\", not {action!r}")
        if mode is not None and mode not in MODES:
            raise BadRequest(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if max_model_age_h is not None and not max_model_age_h > 0:
            raise BadRequest(f"max_model_age_h must be > 0 hours, not {max_model_age_h!r}")
        if not reason or not reason.strip():
            raise BadRequest("a rule needs a reason (who pinned it and why), e.g. \"data incident 4711\"")
        if expires_at is not None:
            if expires_at.tzinfo is not None:
                expires_at = expires_at.astimezone(dt.timezone.utc).replace(tzinfo=None)
            if expires_at <= now():
                raise BadRequest(f"expires_at {expires_at.isoformat()}Z is in the past")
        rule = ledger.Rule(pipeline, action, reason.strip(), now(), expires_at, source, mode,
                           None if max_model_age_h is None else float(max_model_age_h))
        with self.write_lock:
            cur = self.con.cursor()
            try:
                ledger.put_rule(cur, rule)
            finally:
                cur.close()
        self.rules = {**self.rules, pipeline: rule}
        return rule

    def delete_rule(self, pipeline: str) -> None:
        with self.write_lock:
            cur = self.con.cursor()
            try:
                found = ledger.delete_rule(cur, pipeline)
            finally:
                cur.close()
        if not found:
            raise NotFound(f"pipeline {pipeline!r} has no rule; GET /api/v1/rules lists them")
        rules = dict(self.rules)
        rules.pop(pipeline, None)
        self.rules = rules
