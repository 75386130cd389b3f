"""Warm pipeline slices for decisions from a run's inputs (optimizer.pruning.pipeline_slice).

A decision with ``inputs`` describes its training on the pipeline's slice, not on the whole
warehouse. Slices are cut on a pipeline's first such decision and kept (the most recently
used ``capacity``); a slice is stale once its pipeline gained a training (its lanes' last
starts in the warm state moved), and the refresher cuts the stale ones again after each
refresh (``rewarm``), off the request path, so that a gate's decision finds its slice warm.
A started service cuts, at its first refresh, the slices of the pipelines that decided from
inputs last (the ledger says which), so a restart keeps the gates' slices warm too. A slice
cut off the request path is also prepared there for the policy (its lanes' state for
decisions from inputs: optimizer.pruning.online), and so are the kept ones after a new
policy; a slice cut for a decision answers it with the feature SQL and is prepared in the
background after it (``prepare_soon``), so that no decision waits for a preparation.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import time

from optimizer.pruning.pipeline_slice import PipelineSlice, cut_slice

from frugal.service.shared import Warm

__all__ = ["Slices"]

log = logging.getLogger(__name__)


def slice_key(warm: Warm | None, pipeline: str, source: str) -> tuple:
    """What a slice of ``pipeline`` in ``source`` was cut from: each lane's last training start."""
    if warm is None:
        return ()
    lanes = warm.pipelines.get(pipeline, {}).get(source, ())
    return tuple((lane, getattr(warm.upcoming.get(lane), "previous_start", None)) for lane in lanes)


class Slices:
    """The most recently used pipeline slices, cut from the service's warehouse connection."""

    def __init__(self, con, capacity: int = 128):
        self.con = con
        self.capacity = max(1, int(capacity))
        self._slices: collections.OrderedDict[tuple[str, str], PipelineSlice] = collections.OrderedDict()
        self._lock = threading.Lock()          # the dictionary
        self._cutting = threading.Lock()       # one cut at a time: each scans the warehouse's big tables
        self.cuts = 0
        self.cut_seconds = 0.0
        self._wanted: list[tuple[str, str]] = []   # (source, pipeline) to cut at the next rewarm
        # a slice's lanes prepared for a policy after the decision that found it unprepared
        self._preparing = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="slice-prepare")
        self._pending: set[tuple[int, str]] = set()

    def get(self, warm: Warm | None, source: str, pipeline: str) -> PipelineSlice:
        """The slice of ``pipeline`` in ``source``, cut now if it is missing or stale."""
        key = slice_key(warm, pipeline, source)
        with self._lock:
            sl = self._slices.get((source, pipeline))
            if sl is not None and sl.key == key:
                self._slices.move_to_end((source, pipeline))
                return sl
        return self._cut(source, pipeline, key)

    def _cut(self, source: str, pipeline: str, key: tuple) -> PipelineSlice:
        with self._cutting:
            with self._lock:    # another request may have cut it meanwhile
                sl = self._slices.get((source, pipeline))
                if sl is not None and sl.key == key:
                    return sl
            t0 = time.perf_counter()
            sl = cut_slice(self.con, source, pipeline, key=key)
            self.cuts += 1
            self.cut_seconds += time.perf_counter() - t0
        with self._lock:   # a replaced or evicted slice closes once no request holds it any more
            self._slices.pop((source, pipeline), None)
            self._slices[(source, pipeline)] = sl
            while len(self._slices) > self.capacity:
                self._slices.popitem(last=False)
        return sl

    def prepare_soon(self, sl: PipelineSlice, learned) -> None:
        """Prepare ``sl``'s lanes for ``learned`` in the background, unless it is or will be: a
        decision that found them unprepared has answered with the feature SQL, the next ones
        read the lanes' state (optimizer.pruning.online)."""
        key = (id(sl), learned.version)
        with self._lock:
            if sl.lanes_for == learned.version or key in self._pending:
                return
            self._pending.add(key)

        def prepare() -> None:
            try:
                sl.prepare(learned)
            except Exception as exc:   # the feature SQL describes until it is
                log.warning("slice of %s in %s not prepared: %s", sl.pipeline, sl.source_id, exc)
            finally:
                with self._lock:
                    self._pending.discard(key)

        self._preparing.submit(prepare)

    def want_recent_gates(self) -> int:
        """Cut, at the next rewarm, the slices of the pipelines that decided from inputs last
        (from the ledger): after a restart a gate's decision finds its slice warm. Returns how many."""
        rows = self.con.execute(
            "SELECT source_id, pipeline FROM decisions WHERE inputs IS NOT NULL AND source_id IS NOT NULL "
            "GROUP BY 1, 2 ORDER BY max(decided_at) DESC LIMIT ?", [self.capacity]).fetchall()
        with self._lock:
            self._wanted = [(str(s), str(p)) for s, p in reversed(rows)]   # the newest cut last: kept longest
        return len(rows)

    def rewarm(self, warm: Warm | None) -> int:
        """Cut again every kept slice whose pipeline gained a training, and the wanted ones; return how many."""
        with self._lock:
            stale = [(s, p) for (s, p), sl in self._slices.items() if sl.key != slice_key(warm, p, s)]
            known = warm.known if warm is not None else {}
            stale += [(s, p) for s, p in self._wanted if (s, p) not in self._slices and s in known.get(p, ())]
            self._wanted = []
        learned = getattr(warm, "learned", None)
        for source, pipeline in stale:
            try:
                sl = self._cut(source, pipeline, slice_key(warm, pipeline, source))
                if learned is not None:    # the lanes' state for the policy, off the request path too
                    sl.prepare(learned)
            except Exception as exc:   # the next decision cuts it on demand
                log.warning("slice of %s in %s not cut again: %s", pipeline, source, exc)
        if learned is not None:    # a new policy: the kept slices' lanes prepared for it
            with self._lock:
                kept = [sl for sl in self._slices.values() if sl.lanes_for != learned.version]
            for sl in kept:
                try:
                    sl.prepare(learned)
                except Exception as exc:   # the next decision prepares it
                    log.warning("slice of %s in %s not prepared: %s", sl.pipeline, sl.source_id, exc)
        return len(stale)

    def stats(self) -> dict:
        with self._lock:
            return {"kept": len(self._slices), "capacity": self.capacity, "cuts": self.cuts,
                    "cut_seconds": round(self.cut_seconds, 3),
                    "prepared": sum(1 for sl in self._slices.values() if sl.lanes_for is not None)}
