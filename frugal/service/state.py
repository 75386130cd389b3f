"""The service's state: the warehouse it owns, the warm decision state, the background refresher.

One ``Service`` owns the DuckDB warehouse (DuckDB allows one writing process). Writers
(ingest, analysis, ledger) take ``write_lock``; readers use their own cursor. What a decision
reads is one immutable ``Warm`` value (learned policy, every lane's scored upcoming training,
pipeline -> sources -> lanes), rebuilt after each refresh and swapped in one assignment, so a
request never sees half an update.

A refresh: incremental ingest of each source (a failing source is recorded and retried, the
others go on), analysis of the sources that changed, outcome matching in the ledger, a refit
when enough new trainings arrived (or on schedule, or on demand), the upcoming trainings
scored again, the report rebuilt.
"""

from __future__ import annotations

import collections
import concurrent.futures
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
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from analysis.analyze import analyze
from optimizer.pruning import ledger, live
from optimizer.pruning.policy import PolicyConfig
from optimizer.pruning.replay import replay_frame
from provenance.connections import parse_store
from provenance.errors import ProvenanceError
from provenance.ingest import ingest
from provenance.warehouse import connect

from frugal.service.config import ServiceConfig

__all__ = ["Service", "Warm", "ServiceError", "NotFound", "Conflict", "NotReady", "BadRequest"]

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """An error answered to the caller with ``status`` and this message."""

    status = 500


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class NotReady(ServiceError):
    status = 503


class BadRequest(ServiceError):
    status = 422


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class Warm:
    """What decisions read: swapped as a whole after every refresh."""

    learned: live.LearnedPolicy | None
    upcoming: dict[str, live.Upcoming]                 # lane -> scored upcoming training
    pipelines: dict[str, dict[str, tuple[str, ...]]]   # pipeline -> source -> lanes (newest first)
    known: dict[str, tuple[str, ...]]                  # pipeline -> sources with records, trained or not
    observed_pushes: float                             # pushes over the policy's recent window
    built_at: dt.datetime
    signature: tuple = ()


@dataclass
class SourceStatus:
    source_id: str
    uri: str
    kind: str
    store: str
    status: str = "pending"          # pending | ok | error
    error: str | None = None
    last_ingest_at: dt.datetime | None = None
    last_attempt_at: dt.datetime | None = None
    last_seconds: float | None = None
    last_rows: int = 0
    failures: int = 0
    marker: tuple | None = None       # SQLite file's (size, mtime) at the last good ingest

    def file_marker(self) -> tuple | None:
        """Size and modification time of a SQLite store and its journal files (None: not a file)."""
        if self.kind != "sqlite":
            return None
        out = []
        for suffix in ("", "-wal", "-journal"):
            try:
                st = os.stat(self.store + suffix)
                out.append((suffix, st.st_size, st.st_mtime_ns))
            except OSError:
                if not suffix:
                    return None
        return tuple(out)

    def to_dict(self) -> dict:
        iso = lambda t: None if t is None else t.replace(tzinfo=dt.timezone.utc).isoformat()  # noqa: E731
        return {"source": self.source_id, "uri": self.uri, "kind": self.kind, "status": self.status,
                "error": self.error, "last_ingest_at": iso(self.last_ingest_at),
                "last_attempt_at": iso(self.last_attempt_at), "last_seconds": self.last_seconds,
                "last_rows": self.last_rows, "failures": self.failures}


@dataclass
class Metrics:
    """Callbacks the service reports to (the HTTP layer wires Prometheus in)."""

    ingest_seconds: object = None       # callable(source_id, seconds, ok)
    refresh_seconds: object = None      # callable(seconds)
    decision: object = None             # callable(action, kind)
    ledger_commit: object = None        # callable(seconds)


class Service:
    """Owner of the warehouse and of everything a decision needs (see the module docstring)."""

    def __init__(self, config: ServiceConfig, metrics: Metrics | None = None):
        self.config = config
        self.metrics = metrics or Metrics()
        self.policy_config = PolicyConfig(max_lost_pushes=config.max_lost_pushes)
        self.con = connect(config.warehouse)
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
        self._refresh_lock = threading.Lock()
        self.ledger_lock = threading.Lock()
        self.rules = ledger.load_rules(self.con)
        self.sources: dict[str, SourceStatus] = {}
        ids = config.source_ids or (None,) * len(config.stores)
        for store, sid in zip(config.stores, ids):
            spec = parse_store(store, sid)
            self.sources[spec.source_id] = SourceStatus(spec.source_id, spec.uri, spec.kind, str(store))
        self.warm: Warm | None = None
        self.pending: set[str] = {"ingest", "analysis", "policy", "report"}
        self.refit_requested = False
        self.last_refresh: dict = {}
        self.report_at: dt.datetime | None = None
        self._recent_prunes: collections.deque = collections.deque(maxlen=self.policy_config.window)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._learned_restored: live.LearnedPolicy | None = None
        self._cycles = threading.Condition()      # the refresher's cycles: (started, finished, error)
        self._started = self._finished = 0
        self._cycle_error: Exception | None = None
        self._ledger = LedgerWriter(self.con, self.ledger_lock, self.metrics.ledger_commit)
        # a child refit's snapshot left by a killed service (this process owns the warehouse now)
        self._refit_prefix = f".{config.warehouse.name}.refit-"
        for stale in config.warehouse.parent.glob(self._refit_prefix + "*"):
            shutil.rmtree(stale, ignore_errors=True)
        self._restore()
        _settle_heap()   # before the first request: what startup loaded is never scanned again

    # ----------------------------------------------------------------------------------- lifecycle
    def _restore(self) -> None:
        """Serve at once from the saved policy and upcoming trainings of an earlier run, if any."""
        try:
            learned = live.load(self.config.policy_path)
        except live.PolicyFileError as exc:
            log.info("%s", exc)
            return
        try:
            with open(self.config.snapshot_path, "rb") as fh:
                warm = pickle.load(fh)
            if not isinstance(warm, Warm) or not isinstance(warm.known, dict):
                raise TypeError("not a snapshot of this version")
        except Exception as exc:  # missing or unreadable: the first refresh describes the lanes
            log.info("no usable snapshot of upcoming trainings (%s); policy %s restored", exc, learned.version)
            self._learned_restored = learned
            return
        self.warm = dataclasses.replace(warm, learned=learned)
        for row in self.con.execute("""
            SELECT probability FROM decisions WHERE action = 'prune' AND rule IS NULL AND fallback IS NULL
            ORDER BY decided_at DESC LIMIT ?""", [self.policy_config.window]).fetchall():
            self._recent_prunes.appendleft(float(row[0] or 0.0))
        self.pending.discard("policy")
        log.info("restored policy %s and %d upcoming trainings", learned.version, len(warm.upcoming))

    def start(self) -> None:
        """Start the background refresher (the first refresh runs at once)."""
        self._thread = threading.Thread(target=self._loop, name="frugal-refresher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        with self._cycles:
            self._cycles.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        self._ledger.close()
        try:
            self.con.execute("CHECKPOINT")
        except duckdb.Error:
            pass
        self.con.close()

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

    @property
    def ready(self) -> bool:
        return self.warm is not None

    # ------------------------------------------------------------------------------------- refresh
    def ingest_sources(self, source_ids=None) -> list[str]:
        """Incremental ingest of each source (all, or ``source_ids``); return those that changed."""
        changed = []
        for sid, st in self.sources.items():
            if source_ids is not None and sid not in source_ids:
                continue
            t0 = time.perf_counter()
            st.last_attempt_at = _now()
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
            st.last_ingest_at, st.last_seconds, st.last_rows = _now(), time.perf_counter() - t0, rows
            if self.metrics.ingest_seconds:
                self.metrics.ingest_seconds(sid, st.last_seconds, True)
            if after != before:
                changed.append(sid)
        return changed

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
            now = time.perf_counter()
            phases[step] = round(phases.get(step, 0.0) + now - lap, 4)
            lap = now

        changed = self.ingest_sources()
        done("ingest")
        self.pending.discard("ingest")
        first = "analysis" in self.pending
        analyzed: tuple = ()
        matched = 0
        if changed or first:
            with self.write_lock:
                cur = self.con.cursor()
                try:
                    # the first time, whatever the analysis finds stale; then exactly what changed
                    analyzed = analyze(cur, sources=None if first else changed).sources_analyzed
                    matched = ledger.match_outcomes(cur, sources=None if first else changed)
                finally:
                    cur.close()
        done("analysis")
        self.pending.discard("analysis")
        signature = self._signature()
        warm = self.warm
        did = {"changed_sources": changed, "analyzed": list(analyzed), "matched": matched,
               "refit": False, "described": False}
        learned = warm.learned if warm is not None else self._learned_restored
        scored = None     # every lane's upcoming training, when a child refit scored them
        if learned is None or self._refit_due(learned):
            learned, scored = self._refit()
            did["refit"] = True
        done("refit")
        if warm is None or did["refit"] or force_describe or warm.signature != signature:
            # only the lanes of sources that changed need describing again (a lane never spans two)
            partial = (None if warm is None or did["refit"] or force_describe or not changed
                       or warm.learned is not learned else changed)
            base = warm
            if scored is not None:
                # the child scored every lane on the snapshot taken in this cycle, after its ingest
                base, partial = Warm(learned, scored, {}, {}, 0.0, _now()), ()
            fresh_warm = self._describe(learned, signature, sources=partial, base=base)
            if did["refit"]:
                _settle_heap()   # before a first start serves; after a later refit, one pause a refit
            self.warm = fresh_warm
            did["described"] = True
            done("describe")
            self._save_snapshot()
            done("snapshot")
        self.pending.discard("policy")
        if self.config.report:
            since = None if self.report_at is None else (_now() - self.report_at).total_seconds()
            if since is None or (did["described"] and since >= self.config.report_every_s):
                self._write_report()
                done("report")
        self.pending.discard("report")
        if changed or first or did["refit"]:
            # fold this refresh's writes into the file now, between loads, while they are small:
            # a short log keeps the next commits and a restart quick (never mid-load: see __init__)
            try:
                self.con.execute("CHECKPOINT")
            except duckdb.Error as exc:  # busy: the next cycle tries again
                log.info("checkpoint postponed: %s", exc)
            done("checkpoint")
        did["seconds"] = time.perf_counter() - t0
        did["phases"] = phases
        self.last_refresh = {**did, "at": _now().isoformat() + "Z"}
        if self.metrics.refresh_seconds:
            self.metrics.refresh_seconds(did["seconds"])
        log.info("refresh: %s", did)
        return did

    def _signature(self) -> tuple:
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

    def _refit_due(self, learned: live.LearnedPolicy) -> bool:
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
        if self.config.refit_process:
            try:
                learned, scored = self._refit_in_child()
            except (OSError, ServiceError, live.PolicyFileError, subprocess.SubprocessError) as exc:
                log.warning("refit in a child process failed (%s); learning in the service process", exc)
        if learned is None:
            where = "in the service process"
            cur = self.con.cursor()
            try:
                frame, columns, keys = replay_frame(cur, with_keys=True)
            finally:
                cur.close()
            learned = live.learn(frame, columns, keys, config=self.policy_config)
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
            done = subprocess.run([sys.executable, "-m", "frugal.service.refit", str(copy), str(settings), str(out),
                                   "--nice", str(nice), "--parent", str(os.getpid())], capture_output=True, text=True,
                                  timeout=self.config.refit_timeout_s)
            if done.returncode != 0:
                raise ServiceError((done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1])
            learned = live.load(out)
            with open(str(out) + ".upcoming", "rb") as fh:
                upcoming = pickle.load(fh)
            if not isinstance(upcoming, dict):
                raise ServiceError("the child refit wrote no upcoming trainings")
            return learned, upcoming
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _describe(self, learned: live.LearnedPolicy, signature: tuple, *, sources=None,
                  base: Warm | None = None) -> Warm:
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
        return Warm(learned, upcoming, frozen, known, float(observed), _now(), signature)

    def _save_snapshot(self) -> None:
        warm = self.warm
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
            self.report_at = _now()
        except Exception as exc:  # the report is a convenience; decisions go on
            log.warning("report not rebuilt: %s", exc)

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
        return live.Budget.for_policy(self.policy_config, lost=float(sum(self._recent_prunes)),
                                      observed=warm.observed_pushes)

    def active_rule(self, pipeline: str, source: str | None) -> ledger.Rule | None:
        rule = self.rules.get(pipeline)
        if rule is None or not rule.active(_now()):
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
        warm = self.warm
        if warm is None and inputs is None:
            raise NotReady("not ready yet: pending " + ", ".join(sorted(self.pending)) + "; retry shortly")
        kind = "lookup"
        if inputs is not None:
            warm, up, source, lane_full = self._fresh(pipeline, source, lane, inputs)
            kind = "fresh"
        else:
            source = self._resolve(warm, pipeline, source)
            lane_full = self._lane(warm, pipeline, source, lane)
            up = warm.upcoming.get(lane_full) if lane_full else None
        rule = self.active_rule(pipeline, source)
        learned = warm.learned if warm is not None else None
        if up is None:
            if rule is not None:
                choice = live.Choice(rule.action, None, None, (f"operator rule: {rule.action} ({rule.reason})",),
                                     rule=rule.reason)
            else:
                reason = ("too little history: no training of this pipeline is recorded yet, so every training "
                          "runs until there is")
                choice = live.Choice("run", None, None, (reason,), fallback=reason)
        else:
            choice = live.choose(up, learned, rule=rule, budget=self.budget(warm))
        version = learned.version if learned is not None else "none"
        decision_id = uuid.uuid4().hex
        row = {"decision_id": decision_id, "decided_at": _now(), "source_id": source, "pipeline": pipeline,
               "lane": lane_full or lane, "run_id": run_id, "action": choice.action,
               "probability": choice.probability, "threshold": choice.threshold, "policy_version": version,
               "reasons": list(choice.reasons), "fallback": choice.fallback, "rule": choice.rule,
               "inputs": inputs, "cost_s": up.cost_s if up is not None else None}
        future = self._ledger.submit(row)   # the caller answers once it is committed
        if choice.model_prune:
            self._recent_prunes.append(float(choice.probability))
        if self.metrics.decision:
            self.metrics.decision(choice.action, kind)
        answer = {"decision_id": decision_id, "action": choice.action, "probability": choice.probability,
                  "threshold": choice.threshold, "reasons": list(choice.reasons), "fallback": choice.fallback,
                  "policy_version": version, "pipeline": pipeline, "source": source,
                  "lane": (lane_full.rsplit("/", 1)[-1] if lane_full else lane), "run_id": run_id,
                  "inputs": inputs}
        if explain:
            answer["features"] = up.features(learned.columns) if up is not None and learned is not None else {}
            answer["upcoming_at"] = up.at.isoformat() + "Z" if up is not None else None
        return answer, future

    def _fresh(self, pipeline: str, source: str | None, lane: str | None, inputs: list[int]):
        """Read the source's newest records, then describe the upcoming training from ``inputs``."""
        if not inputs:
            raise BadRequest("\"inputs\" is empty: give the MLMD artifact ids of this run's upstream, or leave it out")
        warm = self.warm
        candidates = None
        if source is not None:
            if source not in self.sources:
                raise NotFound(f"unknown source {source!r}; this service reads: {', '.join(self.sources)}")
            candidates = [source]
        elif warm is not None:
            candidates = list(warm.known.get(pipeline, ())) or None   # lanes' sources included
        self.ingest_sources(candidates)
        if warm is None or pipeline not in warm.known:
            # a pipeline seen for the first time: analyse what was just read so it is known
            with self.write_lock:
                cur = self.con.cursor()
                try:
                    analyze(cur)
                finally:
                    cur.close()
            learned = warm.learned if warm is not None else self._learned_restored
            self.warm = warm = self._describe(learned, self._signature()) if learned is not None else warm
            if warm is None:
                raise NotReady("not ready yet: the policy is being learned; retry shortly")
        source = self._resolve(warm, pipeline, source)
        cur = self.con.cursor()
        try:
            have = {int(r[0]) for r in cur.execute(
                f"SELECT artifact_id FROM artifacts WHERE source_id = ? AND artifact_id IN "
                f"({', '.join('?' * len(inputs))})", [source, *[int(a) for a in inputs]]).fetchall()}
            missing = [a for a in inputs if int(a) not in have]
            if missing:
                raise BadRequest(f"artifacts {missing} are not in source {source!r} (read just now); pass ids of "
                                 "artifacts this run recorded in that MLMD store")
            lane_full = self._lane(warm, pipeline, source, lane)
            if lane_full is None:
                return warm, None, source, None
            ups = live.describe_upcoming(cur, warm.learned, pipeline=pipeline, lanes=[lane_full],
                                         inputs=[int(a) for a in inputs], sources=[source])
        finally:
            cur.close()
        return warm, ups.get(lane_full), source, lane_full

    # --------------------------------------------------------------------------------------- rules
    def put_rule(self, pipeline: str, action: str, reason: str, expires_at: dt.datetime | None,
                 source: str | None) -> ledger.Rule:
        if action not in ("run", "prune"):
            raise BadRequest(f"action must be \"run\" or \"prune\", not {action!r}")
        if not reason or not reason.strip():
            raise BadRequest("a rule needs a reason (who pinned it and why), e.g. \"data incident 4711\"")
        if expires_at is not None:
            if expires_at.tzinfo is not None:
                expires_at = expires_at.astimezone(dt.timezone.utc).replace(tzinfo=None)
            if expires_at <= _now():
                raise BadRequest(f"expires_at {expires_at.isoformat()}Z is in the past")
        rule = ledger.Rule(pipeline, action, reason.strip(), _now(), expires_at, source)
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

    # -------------------------------------------------------------------------------------- status
    def readiness(self) -> dict:
        warm = self.warm
        return {"ready": warm is not None, "pending": sorted(self.pending),
                "policy_version": warm.learned.version if warm is not None and warm.learned is not None else None,
                "fallback": (warm.learned.policy.fallback if warm is not None and warm.learned is not None
                             else None),
                "sources": {s: st.status for s, st in self.sources.items()},
                "upcoming_trainings": len(warm.upcoming) if warm is not None else 0}


class LedgerWriter:
    """Group commit for the ledger: decisions that arrive together are committed in one transaction.

    ``write`` returns once its row is committed (or raises what the commit raised), so nothing
    is answered before it is durable; under load one commit serves many requests.
    """

    def __init__(self, con, lock: threading.Lock, observe=None):
        self._cur = con.cursor()
        self._lock = lock
        self._observe = observe
        self._queue: list[tuple[dict, concurrent.futures.Future]] = []
        self._cv = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="frugal-ledger", daemon=True)
        self._thread.start()

    def submit(self, row: dict) -> concurrent.futures.Future:
        """Queue ``row``; the future completes once it is committed (or fails with the commit's error)."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._cv:
            if self._closed:
                raise ServiceError("the service is shutting down; retry against the restarted service")
            self._queue.append((row, future))
            self._cv.notify()
        return future

    def write(self, row: dict) -> None:
        self.submit(row).result()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if not self._queue and self._closed:
                    return
                batch, self._queue = self._queue, []
            t0 = time.perf_counter()
            try:
                with self._lock:   # one statement, committed on its own: one call into DuckDB a batch
                    ledger.record_decisions(self._cur, [row for row, _ in batch])
            except Exception as exc:  # every waiter of the batch hears it
                for _, future in batch:
                    future.set_exception(exc)
                continue
            if self._observe is not None:
                self._observe(time.perf_counter() - t0)
            for _, future in batch:
                future.set_result(None)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join(10)
        self._cur.close()


def _settle_heap() -> None:
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
