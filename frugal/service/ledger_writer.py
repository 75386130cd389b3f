"""Group commit of decisions to the ledger, in a thread of its own.

A decision is answered only once its ledger row is durable; committing each row alone would
make every request wait for a commit of its own. One writer thread takes whatever rows queued
while the previous commit ran and commits them in one transaction.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time

from optimizer.pruning import ledger

from frugal.service.errors import ServiceError

__all__ = ["LedgerWriter"]


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
