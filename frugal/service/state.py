"""The service: owner of the warehouse and of the parts that work on it, and their lifecycle.

One ``Service`` owns the DuckDB warehouse (DuckDB allows one writing process). Writers
(ingest, analysis, rules, ledger) take ``write_lock`` (the ledger writer its ``ledger_lock``);
readers use their own cursor. What a decision reads is one immutable ``Warm`` value, held in
one ``WarmHolder``: the refresher (``refresher.Refresher``) rebuilds it after each refresh
and swaps it in one assignment, so a request never sees half an update; the decider
(``decider.Decider``) reads it; the ledger writer (``ledger_writer.LedgerWriter``) commits
decisions in groups. The routers and the command line talk to this object only.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import os
import threading

import duckdb

from optimizer.pruning import ledger, live
from optimizer.pruning.policy import PolicyConfig
from provenance.warehouse import connect

from frugal.service import memory
from frugal.service.config import ServiceConfig
from frugal.service.decider import Decider
from frugal.service.ledger_writer import LedgerWriter
from frugal.service.modes import Modes
from frugal.service.refresher import Refresher, settle_heap
from frugal.service.shared import Metrics, SourceStatus, Warm, WarmHolder

__all__ = ["Service"]


class Service:
    """Owner of the warehouse, the refresher, the decider and the ledger writer (see the module docstring)."""

    def __init__(self, config: ServiceConfig, metrics: Metrics | None = None):
        self.config = config
        self.metrics = metrics or Metrics()
        self.policy_config = PolicyConfig(objective=config.objective, max_added_age=config.max_added_age,
                                          max_model_age_h=config.max_model_age_h,
                                          max_lost_pushes=config.max_lost_pushes)
        self.con = connect(config.warehouse)
        # its share of the memory limit, spilling beyond it (set before external access is shut) beside the warehouse (frugal.service.memory)
        memory.apply_duckdb_limits(self.con, int(config.memory_limit * memory.SERVICE_DUCKDB),
                                   memory.temp_directory(config.warehouse))
        # user SQL runs on this process's warehouse: no file, network or extension access at all
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET autoinstall_known_extensions = false")
        self.con.execute("SET autoload_known_extensions = false")
        ledger.create_ledger_tables(self.con)
        self.con.execute("CHECKPOINT")
        # a checkpoint blocks commits: fold the log in on the refresher's schedule, not mid-load
        self.con.execute("SET checkpoint_threshold = '1GB'")
        # background work on one core: the other stays free for the requests it would delay
        self.con.execute(f"SET threads = {max(1, (os.cpu_count() or 2) - 1)}")
        self.write_lock = threading.RLock()
        self.ledger_lock = threading.Lock()
        self.holder = WarmHolder()
        self.refresher = Refresher(config, self.policy_config, self.con, self.write_lock, self.holder, self.metrics)
        self._ledger = LedgerWriter(self.con, self.ledger_lock, self.metrics.ledger_commit)
        self.modes = Modes(self.con, config.mode, config.new_pipeline_mode)
        self.refresher.modes = self.modes
        self.decider = Decider(self.policy_config, self.con, self.write_lock, self.holder, self.refresher,
                               self._ledger, self.metrics, modes=self.modes, default_mode=config.mode,
                               explore=config.explore, explore_seed=config.explore_seed)
        self.refresher.after_describe.append(self.decider.slices.rewarm)   # gates' slices warm again
        self.decider.slices.want_recent_gates()    # and, after a restart, those of the last gates
        if self.refresher.restore():   # serve at once from an earlier run's policy and upcoming trainings
            self.decider.recall_prunes()
        elif self.holder.restored is None:   # no policy yet: answer (every training runs) while it warms up
            self.refresher.warm_up_now()
        settle_heap()   # before the first request: what startup loaded is never scanned again

    # ----------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the background refresher (the first refresh runs at once)."""
        self.refresher.start()

    def stop(self, timeout: float = 30.0) -> None:
        self.refresher.stop(timeout)
        self._ledger.close()
        try:
            self.con.execute("CHECKPOINT")
        except duckdb.Error:
            pass
        self.con.close()

    # -------------------------------------------------------------------------------------- status
    @property
    def warm(self) -> Warm | None:
        return self.holder.warm

    @property
    def ready(self) -> bool:
        """A policy is in use (learned, restored or its fallback): the warm-up is over."""
        warm = self.holder.warm
        return warm is not None and warm.learned is not None

    @property
    def answering(self) -> bool:
        """Decisions are answered: by the policy, or while it warms up by its fallback (run)."""
        return self.holder.warm is not None

    def progress(self) -> dict:
        """What the refresher does now, the last refit, the memory limit (``/api/v1/sources``)."""
        return {"step": self.refresher.progress, "warming_up": not self.ready, "answering": self.answering,
                "last_refit": self.refresher.last_refit,
                "memory_limit": memory.format_size(int(self.config.memory_limit)),
                "slices": self.decider.slices.stats()}

    @property
    def sources(self) -> dict[str, SourceStatus]:
        return self.refresher.sources

    @property
    def last_refresh(self) -> dict:
        return self.refresher.last_refresh

    @property
    def rules(self) -> dict[str, ledger.Rule]:
        return self.decider.rules

    def readiness(self) -> dict:
        warm = self.holder.warm
        ready = warm is not None and warm.learned is not None
        return {"ready": ready, "pending": sorted(self.holder.pending),
                "answering": warm is not None,
                "warmup": None if ready else {"step": self.refresher.progress["step"],
                                              "detail": self.refresher.progress["detail"],
                                              "since": self.refresher.progress["since"],
                                              "decisions": ("answered: every training runs until the first "
                                                            "policy is fitted" if warm is not None else
                                                            "not yet: the warehouse is being loaded")},
                "policy_version": warm.learned.version if warm is not None and warm.learned is not None else None,
                "fallback": (warm.learned.policy.fallback if warm is not None and warm.learned is not None
                             else None),
                "sources": {s: st.status for s, st in self.sources.items()},
                "upcoming_trainings": len(warm.upcoming) if warm is not None else 0}

    # ------------------------------------------------------------------------ refresher and decider
    def refresh_now(self, *, refit: bool = False, timeout: float = 3600.0) -> dict:
        """A refresh (with ``refit``, a refit too) that starts now; returns what it did (``Refresher.refresh_now``)."""
        return self.refresher.refresh_now(refit=refit, timeout=timeout)

    def budget(self, warm: Warm) -> live.Budget:
        return self.decider.budget(warm)

    def decide(self, pipeline: str, *, source: str | None = None, lane: str | None = None,
               run_id: str | None = None, inputs: list[int] | None = None, explain: bool = False) -> dict:
        """Decide for the next training of ``pipeline`` (``Decider.decide``); in the ledger before it returns."""
        return self.decider.decide(pipeline, source=source, lane=lane, run_id=run_id, inputs=inputs,
                                   explain=explain)

    def decide_async(self, pipeline: str, *, source: str | None = None, lane: str | None = None,
                     run_id: str | None = None, inputs: list[int] | None = None,
                     explain: bool = False) -> tuple[dict, concurrent.futures.Future]:
        """The decision and the future of its ledger commit (``Decider.decide_async``): answer once it is done."""
        return self.decider.decide_async(pipeline, source=source, lane=lane, run_id=run_id, inputs=inputs,
                                         explain=explain)

    def put_rule(self, pipeline: str, action: str | None, reason: str, expires_at: dt.datetime | None,
                 source: str | None, *, mode: str | None = None,
                 max_model_age_h: float | None = None) -> ledger.Rule:
        return self.decider.put_rule(pipeline, action, reason, expires_at, source, mode=mode,
                                     max_model_age_h=max_model_age_h)

    def delete_rule(self, pipeline: str) -> None:
        self.decider.delete_rule(pipeline)
