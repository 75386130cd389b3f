"""The background refresher: keeps the warehouse and the warm decision state fresh.

A refresh: incremental ingest of each source (a failing source is recorded and retried, the
others go on), analysis of the sources that changed, outcome matching in the ledger, a refit
when enough new trainings arrived (or on schedule, or on demand), the upcoming trainings
scored again, the snapshot and the report rewritten. It runs in a thread of its own at a
lower CPU priority (the refit in a child process, ``frugal.service.refit``), so that decisions,
which only read the ``Warm`` it swaps in, keep the interpreter.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import gc
import logging
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb

from analysis.analyze import analyze
from optimizer.pruning import ledger, live
from optimizer.pruning.policy import PolicyConfig
from optimizer.pruning.training_set import training_frame
from provenance.connections import parse_store
from provenance.errors import ProvenanceError
from provenance.ingest import ingest

from frugal.service import memory
from frugal.service.config import ServiceConfig
from frugal.service.errors import NotReady, ServiceError
from frugal.service.shared import Metrics, SourceStatus, Warm, WarmHolder, now

__all__ = ["Refresher", "settle_heap"]

log = logging.getLogger(__name__)


class Refresher:
    """The sources, their refresh cycle and the thread that runs it (see the module docstring).

    Writes to the warehouse under ``write_lock``; reads on cursors of ``con``; publishes each
    new ``Warm`` through ``holder``.
    """

    def __init__(self, config: ServiceConfig, policy_config: PolicyConfig, con, write_lock: threading.RLock,
                 holder: WarmHolder, metrics: Metrics):
        self.config = config
        self.policy_config = policy_config
        self.con = con
        self.write_lock = write_lock
        self.holder = holder
        self.metrics = metrics
        self._refresh_lock = threading.Lock()
        self.sources: dict[str, SourceStatus] = {}
        ids = config.source_ids or (None,) * len(config.stores)
        for store, sid in zip(config.stores, ids):
            spec = parse_store(store, sid)
            self.sources[spec.source_id] = SourceStatus(spec.source_id, spec.uri, spec.kind, str(store))
        self.refit_requested = False
        # what the refresher is doing now (ingest i/n, analysis, fitting, describing, idle): a first
        # start reports its warm-up with it (/readyz, /api/v1/sources)
        self.progress: dict = {"step": "starting", "detail": None, "since": now().isoformat() + "Z"}
        self.last_refit: dict = {}        # the last refit: when, ok or its error, seconds, training set
        self._refit_failed_at: float | None = None
        self.modes = None                 # the pipelines' modes (frugal.service.modes.Modes), set by the Service
        self.after_describe: list = []    # callables(warm) run after each new warm state (the decider's slices)
        self._hooks_ran = False
        self.last_refresh: dict = {}
        self.report_at: dt.datetime | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._cycles = threading.Condition()      # the refresher's cycles: (started, finished, error)
        self._started = self._finished = 0
        self._cycle_error: Exception | None = None
        # a child refit's snapshot left by a killed service (this process owns the warehouse now)
        self._refit_prefix = f".{config.warehouse.name}.refit-"
        for stale in config.warehouse.parent.glob(self._refit_prefix + "*"):
            shutil.rmtree(stale, ignore_errors=True)

    # ----------------------------------------------------------------------------------- lifecycle
    def restore(self) -> bool:
        """Serve at once from the saved policy and upcoming trainings of an earlier run, if any.

        True when both were restored (decisions can be served now).
        """
        try:
            learned = live.load(self.config.policy_path)
        except live.PolicyFileError as exc:
            log.info("%s", exc)
            return False
        try:
            with open(self.config.snapshot_path, "rb") as fh:
                warm = pickle.load(fh)
            if not isinstance(warm, Warm) or not isinstance(warm.known, dict):
                raise TypeError("not a snapshot of this version")
        except Exception as exc:  # missing or unreadable: the first refresh describes the lanes
            log.info("no usable snapshot of upcoming trainings (%s); policy %s restored", exc, learned.version)
            self.holder.restored = learned
            return False
        self.holder.warm = dataclasses.replace(warm, learned=learned)
        self.holder.pending.discard("policy")
        log.info("restored policy %s and %d upcoming trainings", learned.version, len(warm.upcoming))
        return True

    def start(self) -> None:
        """Start the background refresher (the first refresh runs at once)."""
        self._thread = threading.Thread(target=self._loop, name="frugal-refresher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the loop and wait up to ``timeout`` seconds for a cycle under way to end."""
        self._stop.set()
        self._wake.set()
        with self._cycles:
            self._cycles.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def step(self, name: str, detail: str | None = None) -> None:
        """Record what the refresher does now (``progress``)."""
        self.progress = {"step": name, "detail": detail, "since": now().isoformat() + "Z"}

    def _loop(self) -> None:
        _lower_priority(self.config.background_nice)
        while not self._stop.is_set():
            with self._cycles:
                self._started += 1
            error = None
            try:
                self.refresh()
            except Exception as exc:  # keep serving; the next cycle retries
                error = exc
                log.exception("refresh failed; retrying in %.0f s", self.config.retry_every_s)
            with self._cycles:
                self._finished += 1
                self._cycle_error = error
                self._cycles.notify_all()
            failing = any(s.status == "error" for s in self.sources.values())
            wait = min(self.config.ingest_every_s, self.config.retry_every_s) if failing else self.config.ingest_every_s
            self._wake.wait(wait)
            self._wake.clear()

    # ------------------------------------------------------------------------------------- refresh
    def ingest_sources(self, source_ids=None) -> list[str]:
        """Incremental ingest of each source (all, or ``source_ids``); return those that changed."""
        changed = []
        todo = [sid for sid in self.sources if source_ids is None or sid in source_ids]
        for i, (sid, st) in enumerate(self.sources.items()):
            if source_ids is not None and sid not in source_ids:
                continue
            self.step("ingest", f"{todo.index(sid) + 1}/{len(todo)}: {sid}")
            t0 = time.perf_counter()
            st.last_attempt_at = now()
            marker = st.file_marker()
            if marker is not None and marker == st.marker and st.status == "ok":
                continue                      # the file has not been written since its last ingest
            try:
                with self.write_lock:
                    before = self._source_state(sid)
                    report = ingest([st.store], self.config.warehouse, source_ids=[sid], progress=False,
                                    checkpoint=False)
                    after = self._source_state(sid)
            except (ProvenanceError, duckdb.Error, OSError) as exc:
                st.status, st.error = "error", str(exc)
                st.failures += 1
                log.warning("source %s: %s", sid, exc)
                if self.metrics.ingest_seconds:
                    self.metrics.ingest_seconds(sid, time.perf_counter() - t0, False)
                continue
            rows = sum(report.sources[0].rows.values()) if report.sources else 0
            st.status, st.error, st.failures, st.marker = "ok", None, 0, marker
            st.last_ingest_at, st.last_seconds, st.last_rows = now(), time.perf_counter() - t0, rows
            if self.metrics.ingest_seconds:
                self.metrics.ingest_seconds(sid, st.last_seconds, True)
            if after != before:
                changed.append(sid)
        return changed

    def read_inputs(self, sid: str, artifact_ids: list[int]):
        """The records around a run's input artifacts, read by id from source ``sid``'s store."""
        from provenance.readers.inputs import read_inputs

        st = self.sources[sid]
        return read_inputs(parse_store(st.store, sid), artifact_ids)

    def _source_state(self, sid: str) -> tuple:
        """What an ingest can change of a source (an incremental read re-reads its newest rows)."""
        cur = self.con.cursor()
        try:
            return cur.execute("""
                SELECT (SELECT count(*) FROM executions WHERE source_id = $s),
                       (SELECT max(update_time) FROM executions WHERE source_id = $s),
                       (SELECT count(*) FROM artifacts WHERE source_id = $s),
                       (SELECT max(update_time) FROM artifacts WHERE source_id = $s),
                       (SELECT count(*) FROM events WHERE source_id = $s),
                       (SELECT count(*) FROM properties WHERE source_id = $s),
                       (SELECT count(*) FROM contexts WHERE source_id = $s)
            """, {"s": sid}).fetchone()
        finally:
            cur.close()

    def refresh_now(self, *, refit: bool = False, timeout: float = 3600.0) -> dict:
        """A refresh (with ``refit``, a refit too) that starts now; returns what it did.

        With the refresher running, the refresher does it (woken now), at its lower priority:
        an operator's refit of a large warehouse takes the same CPU share as a scheduled one,
        and requests keep theirs. Without it (a service not started), the caller does.
        """
        if refit:
            self.refit_requested = True
        if self._thread is None or not self._thread.is_alive():
            return self.refresh(force_describe=refit)
        with self._cycles:
            wanted = self._started + 1          # a cycle under way may have read the request too late
            self._wake.set()
            if not self._cycles.wait_for(lambda: self._finished >= wanted or self._stop.is_set(), timeout):
                raise NotReady(f"the refresh did not finish within {timeout:.0f} s; GET /api/v1/sources shows "
                               "its progress")
            if self._stop.is_set() and self._finished < wanted:
                raise ServiceError("the service is shutting down; retry against the restarted service")
            if self._cycle_error is not None:
                raise ServiceError(f"the refresh failed: {self._cycle_error}; see the service log")
        return self.last_refresh

    def refresh(self, *, force_describe: bool = False) -> dict:
        """One refresh cycle (see the module docstring); returns what it did. One at a time."""
        with self._refresh_lock:
            return self._refresh(force_describe)

    def _refresh(self, force_describe: bool) -> dict:
        t0 = time.perf_counter()
        phases: dict[str, float] = {}     # seconds per step: what an operator reads to see where a refresh goes
        lap = t0

        def done(step: str) -> None:
            nonlocal lap
            tick = time.perf_counter()
            phases[step] = round(phases.get(step, 0.0) + tick - lap, 4)
            lap = tick

        holder = self.holder
        self.step("ingest")
        changed = self.ingest_sources()
        done("ingest")
        holder.pending.discard("ingest")
        first = "analysis" in holder.pending
        analyzed: tuple = ()
        matched = 0
        if changed or first:
            self.step("analysis", "every source" if first else ", ".join(changed))
            with self.write_lock:
                cur = self.con.cursor()
                try:
                    # the first time, whatever the analysis finds stale; then exactly what changed
                    analyzed = analyze(cur, sources=None if first else changed).sources_analyzed
                    matched = ledger.match_outcomes(cur, sources=None if first else changed)
                finally:
                    cur.close()
        done("analysis")
        holder.pending.discard("analysis")
        signature = self.signature()
        warm = holder.warm
        did = {"changed_sources": changed, "analyzed": list(analyzed), "matched": matched,
               "refit": False, "described": False}
        learned = warm.learned if warm is not None else holder.restored
        if learned is None and (warm is None or warm.signature != signature) and signature[0]:
            # warming up: answer at once from the lanes, every training run, until the first fit ends
            self.step("warm-up", "listing the lanes")
            holder.warm = warm = self._warmup(signature)
            did["warmup_lanes"] = len(warm.upcoming)
            if self.modes is not None:
                with self.write_lock:
                    cur = self.con.cursor()
                    try:
                        self.modes.persist(cur, warm.known)
                    finally:
                        cur.close()
            done("warmup")
        scored = None     # every lane's upcoming training, when a child refit scored them
        if (learned is None and self._may_retry()) or (learned is not None and self._refit_due(learned)):
            self.step("fitting", f"on {signature[0]} trainings" + (" (first policy)" if learned is None else ""))
            try:
                learned, scored = self._refit()
                did["refit"] = True
            except RefitFailed as exc:   # keep the last policy (or the warm-up's fallback) and say why
                did["refit_error"] = str(exc)
        done("refit")
        if learned is None:     # no policy yet: the warm-up state stays
            self.step("warm-up", f"the first fit failed: {did.get('refit_error')}; retrying later")
            did["seconds"] = time.perf_counter() - t0
            did["phases"] = phases
            self.last_refresh = {**did, "at": now().isoformat() + "Z"}
            return did
        self.step("describing")
        if warm is None or did["refit"] or force_describe or warm.signature != signature:
            # only the lanes of sources that changed need describing again (a lane never spans two)
            partial = (None if warm is None or did["refit"] or force_describe or not changed
                       or warm.learned is not learned else changed)
            base = warm
            if scored is not None:
                # the child scored every lane on the snapshot taken in this cycle, after its ingest
                base, partial = Warm(learned, scored, {}, {}, 0.0, now()), ()
            fresh_warm = self.describe(learned, signature, sources=partial, base=base)
            if did["refit"]:
                settle_heap()   # before a first start serves; after a later refit, one pause a refit
            holder.warm = fresh_warm
            did["described"] = True
            done("describe")
            self._save_snapshot()
            done("snapshot")
        if self.after_describe and holder.warm is not None and (did["described"] or not self._hooks_ran):
            self._hooks_ran = True     # after each new warm state, and once after a restart's first refresh
            for hook in self.after_describe:
                hook(holder.warm)
            done("slices")
        if self.modes is not None and holder.warm is not None:
            with self.write_lock:
                cur = self.con.cursor()
                try:
                    did["modes_recorded"] = self.modes.persist(cur, holder.warm.known)
                finally:
                    cur.close()
        holder.pending.discard("policy")
        if self.config.report:
            since = None if self.report_at is None else (now() - self.report_at).total_seconds()
            if since is None or (did["described"] and since >= self.config.report_every_s):
                self._write_report()
                done("report")
        holder.pending.discard("report")
        if changed or first or did["refit"]:
            # fold this refresh's writes into the file now, between loads, while they are small:
            # a short log keeps the next commits and a restart quick (never mid-load: the service
            # raised the checkpoint threshold)
            try:
                self.con.execute("CHECKPOINT")
            except duckdb.Error as exc:  # busy: the next cycle tries again
                log.info("checkpoint postponed: %s", exc)
            done("checkpoint")
        did["seconds"] = time.perf_counter() - t0
        did["phases"] = phases
        self.last_refresh = {**did, "at": now().isoformat() + "Z"}
        self.step("idle")
        if self.metrics.refresh_seconds:
            self.metrics.refresh_seconds(did["seconds"])
        log.info("refresh: %s", did)
        return did

    def signature(self) -> tuple:
        """What a new training or execution changes: a warm state built at another signature is stale."""
        cur = self.con.cursor()
        try:
            return cur.execute("""
                SELECT (SELECT count(*) FROM graphlets), (SELECT max(started_at) FROM graphlets),
                       (SELECT count(*) FROM graphlets WHERE pushed),
                       (SELECT greatest(max(update_time), max(create_time)) FROM executions),
                       (SELECT count(*) FROM executions)
            """).fetchone()
        finally:
            cur.close()

    def _may_retry(self) -> bool:
        """After a failed refit, wait before the next (unless one is requested)."""
        if self.refit_requested or self._refit_failed_at is None:
            return True
        return time.monotonic() - self._refit_failed_at >= min(self.config.refit_every_s, 600.0)

    def warm_up_now(self) -> bool:
        """At start, without a saved policy: answer from the warehouse's lanes at once, if it holds
        trainings already (a restart before the first fit ended). True when it did."""
        try:
            signature = self.signature()
            if not signature[0]:
                return False
            self.holder.warm = self._warmup(signature)
        except Exception as exc:  # not analysed yet: the first refresh warms up
            log.info("no warm-up from the warehouse yet: %s", exc)
            return False
        self.step("warm-up", "answering from the warehouse's lanes; the first refresh follows")
        return True

    def _warmup(self, signature: tuple) -> Warm:
        """The warm-up state: every lane unscored (decisions run every training: the fallback)."""
        cur = self.con.cursor()
        try:
            upcoming = live.lanes_unscored(cur)
        finally:
            cur.close()
        base = self.describe(None, signature, sources=(), base=Warm(None, upcoming, {}, {}, 0.0, now()))
        return base

    def _refit_due(self, learned: live.LearnedPolicy) -> bool:
        if not self._may_retry():
            return False
        if self.refit_requested:
            return True
        cur = self.con.cursor()
        try:
            n = cur.execute("SELECT count(*) FROM graphlets").fetchone()[0]
        finally:
            cur.close()
        age = (dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(learned.trained_at)).total_seconds()
        return n - learned.trainings >= self.config.refit_after or age >= self.config.refit_every_s

    def _refit(self) -> tuple[live.LearnedPolicy, dict | None]:
        """Learn the policy from the whole warehouse and save it beside it (atomic).

        In a child process on a snapshot (``refit_process``, frugal.service.refit) so that the
        feature build does not hold this process's interpreter; here when that is off or fails.
        Returns the policy and, from a child, every lane's upcoming training scored by it.
        """
        t0 = time.perf_counter()
        self.refit_requested = False
        learned, scored, where = None, None, "in a child process"
        self.last_refit = {"started_at": now().isoformat() + "Z", "ok": None}
        if self.config.refit_process:
            try:
                learned, scored = self._refit_in_child()
            except RefitFailed as exc:
                # out of memory within its limit: learning here would only bring that into the
                # service; keep the last policy and retry later
                self._refit_failed_at = time.monotonic()
                self.last_refit.update(ok=False, error=str(exc), seconds=round(time.perf_counter() - t0, 3))
                log.error("refit failed: %s; the service keeps its last policy", exc)
                raise
            except (OSError, ServiceError, live.PolicyFileError, subprocess.SubprocessError) as exc:
                log.warning("refit in a child process failed (%s); learning in the service process", exc)
        if learned is None:
            where = "in the service process"
            cur = self.con.cursor()
            try:
                frame, columns, keys, plan = training_frame(cur, max_rows=self.config.learn_max_rows,
                                                            memory_bytes=int(self.config.memory_limit
                                                                             * memory.CHILD_LEARNING))
            finally:
                cur.close()
            learned = live.learn(frame, columns, keys, config=self.policy_config)
            learned = dataclasses.replace(learned, trainings=plan.total)
            self.last_refit["training_set"] = plan.to_dict()
            del frame
        self._refit_failed_at = None
        self.last_refit.update(ok=True, error=None, seconds=round(time.perf_counter() - t0, 3),
                               where=where, version=learned.version)
        live.save(learned, self.config.policy_path)
        log.info("policy %s learned from %d trainings in %.1f s %s%s", learned.version, learned.trainings,
                 time.perf_counter() - t0, where,
                 f" (fallback: {learned.policy.fallback})" if learned.policy.fallback else "")
        return learned, scored

    def _refit_in_child(self) -> tuple[live.LearnedPolicy, dict]:
        """Checkpoint, copy the warehouse file, learn from the copy in ``python -m frugal.service.refit``.

        The copy is the checkpointed state: commits after the checkpoint (the ledger's) reach
        only the write-ahead log, which is not copied, and the refresher, which alone
        checkpoints, is the thread running this. Writers of data wait on ``write_lock`` meanwhile.
        """
        work = Path(tempfile.mkdtemp(prefix=self._refit_prefix, dir=self.config.warehouse.parent))
        try:
            copy = work / "warehouse.duckdb"
            with self.write_lock:
                try:
                    self.con.execute("CHECKPOINT")
                except duckdb.Error as exc:  # the copy is then the previous checkpoint's state: still whole
                    log.info("checkpoint before the refit postponed: %s", exc)
                shutil.copyfile(self.config.warehouse, copy)
            settings = work / "policy_config.pkl"
            settings.write_bytes(pickle.dumps(self.policy_config))
            out = work / "policy"
            nice = self.config.background_nice if sys.platform.startswith("linux") else 0
            args = [sys.executable, "-m", "frugal.service.refit", str(copy), str(settings), str(out),
                    "--nice", str(nice), "--parent", str(os.getpid()),
                    "--memory-limit", str(int(self.config.memory_limit))]
            if self.config.learn_max_rows is not None:
                args += ["--max-rows", str(self.config.learn_max_rows)]
            if os.environ.get("FRUGAL_REFIT_ADDRESS_LIMIT"):   # tests: a child that must run out of memory
                args += ["--address-limit", os.environ["FRUGAL_REFIT_ADDRESS_LIMIT"]]
            done = subprocess.run(args, capture_output=True, text=True, timeout=self.config.refit_timeout_s)
            for line in done.stderr.splitlines():
                if line.startswith("training set: "):
                    try:
                        self.last_refit["training_set"] = ast.literal_eval(line[len("training set: "):])
                    except (ValueError, SyntaxError):
                        pass
            if done.returncode != 0:
                why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
                if done.returncode < 0:   # killed by a signal (the OOM killer's is SIGKILL)
                    raise RefitFailed(f"the refit child was killed by signal {-done.returncode}")
                if done.returncode == 3 or _out_of_memory(done.stderr):
                    # out of memory within its limits: learning in this process would fare no better
                    raise RefitFailed(why if done.returncode == 3 else
                                      f"the refit child ran out of memory within its limit: {why}")
                raise ServiceError(why)
            learned = live.load(out)
            with open(str(out) + ".upcoming", "rb") as fh:
                upcoming = pickle.load(fh)
            if not isinstance(upcoming, dict):
                raise ServiceError("the child refit wrote no upcoming trainings")
            return learned, upcoming
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def describe(self, learned: live.LearnedPolicy, signature: tuple, *, sources=None,
                 base: Warm | None = None) -> Warm:
        """A new ``Warm``: every lane's upcoming training scored by ``learned`` (with ``sources`` and
        ``base``, only those sources' lanes again, the others kept from ``base``), pipelines, budget window."""
        cur = self.con.cursor()
        try:
            if sources is not None and base is not None:
                upcoming = {lane: u for lane, u in base.upcoming.items() if u.source_id not in sources}
                if sources:
                    upcoming.update(live.describe_upcoming(cur, learned, sources=list(sources)))
            else:
                upcoming = live.describe_upcoming(cur, learned) if signature[0] else {}
            known = {p: tuple(sorted(ss)) for p, ss in cur.execute(
                "SELECT pipeline, list(DISTINCT source_id) FROM analysis_executions WHERE pipeline IS NOT NULL "
                "GROUP BY pipeline").fetchall()} if _has_table(cur, "analysis_executions") else {}
            window = self.policy_config.window
            observed = cur.execute(f"""
                SELECT coalesce(sum(pushed::INT), 0) FROM (
                    SELECT pushed FROM graphlets WHERE ended_at IS NOT NULL ORDER BY started_at DESC LIMIT {window})
            """).fetchone()[0] if signature[0] else 0
        finally:
            cur.close()
        # each pipeline's lanes, the one that trained last first (the default lane of a decision)
        order = sorted(upcoming.values(), key=lambda u: (u.previous_start or dt.datetime.min, u.lane), reverse=True)
        pipelines: dict[str, dict[str, list[str]]] = {}
        for u in order:
            pipelines.setdefault(u.pipeline, {}).setdefault(u.source_id, []).append(u.lane)
        frozen = {p: {s: tuple(ls) for s, ls in by.items()} for p, by in pipelines.items()}
        for p, by in frozen.items():   # a lane's source has records of its pipeline
            known[p] = tuple(sorted(set(known.get(p, ())) | set(by)))
        return Warm(learned, upcoming, frozen, known, float(observed), now(), signature)

    def _save_snapshot(self) -> None:
        warm = self.holder.warm
        if warm is not None:  # the policy has its own file: the snapshot holds the rest
            live.write_pickle(dataclasses.replace(warm, learned=None), self.config.snapshot_path)

    def _write_report(self) -> None:
        from analysis.report import write_report

        try:
            cur = self.con.cursor()
            try:
                write_report(cur, self.config.report_dir, analyze_first=False,
                             sections=[ledger.ledger_section(cur)])
            finally:
                cur.close()
            self.report_at = now()
        except Exception as exc:  # the report is a convenience; decisions go on
            log.warning("report not rebuilt: %s", exc)


_OOM_SIGNS = ("MemoryError", "Out of Memory", "cannot allocate memory", "failed to map segment",
              "std::bad_alloc", "Cannot allocate memory")


def _out_of_memory(stderr: str) -> bool:
    """Whether a child's error output says it ran out of memory (or address space)."""
    return any(sign in stderr for sign in _OOM_SIGNS)


class RefitFailed(ServiceError):
    """A refit that ran out of memory within its limit (or was killed): the last policy stays."""


def settle_heap() -> None:
    """Collect garbage once, then move every object that survived out of the collector's reach.

    A full (generation 2) collection walks every tracked object while holding the interpreter:
    with a policy, 55,000 trainings' history and a thousand lanes described, that held every
    request for 100-250 ms (once a minute at a 5 s refresh). What startup and a refit leave behind lives as
    long as the process (modules, the model, the described lanes), so after ``gc.freeze`` later
    collections walk only what was made since. Objects frozen are still freed by reference
    counting when dropped; only a reference cycle among them would stay, and they hold few.
    """
    gc.collect()
    gc.freeze()


def _lower_priority(nice: int) -> None:
    """Give the calling thread (the refresher) a lower CPU priority than the requests' threads.

    On 2 cores a refresh (ingest, analysis, feature build: a second of CPU) competes with the
    event loop; Linux schedules threads, not processes, so the requests keep their priority.
    DuckDB runs the refresher's queries in this thread (threads = cores - 1 leaves the pool
    small), so they follow it. Elsewhere ``setpriority`` would renice the whole process: skipped.
    """
    if not nice or not sys.platform.startswith("linux"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError as exc:
        log.info("refresher keeps its priority: %s", exc)


def _has_table(cur, name: str) -> bool:
    return bool(cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()[0])
