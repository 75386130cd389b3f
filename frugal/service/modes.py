"""Each pipeline's mode: ``enforce`` (the answer is the policy's), ``shadow`` (every training runs,
the ledger records what the policy would have done) or ``off`` (every training runs).

The first time the service loads its stores (the first refresh of a warehouse that has no
baseline yet) every pipeline found gets ``ServiceConfig.mode`` and the baseline is set
(``service_meta`` key ``modes_baseline_at``). A pipeline first seen after that, by a later
ingest or by a decision, is new to frugal: it gets ``new_pipeline_mode``. Both are written to
``pipeline_modes(pipeline, source_id, mode, since)``, so a restart keeps them. An operator rule
with a ``mode`` wins over the recorded one.

Decisions only read the in-memory copy (no query, no write on the request path): a pipeline
a decision meets before the refresher recorded it is held here as pending and written by the
refresher's next cycle (or by the fresh path, which writes anyway), with the same mode.
"""

from __future__ import annotations

import datetime as dt
import threading

from frugal.service.shared import now

__all__ = ["Modes"]

BASELINE_KEY = "modes_baseline_at"


class Modes:
    """The recorded modes of the pipelines, the baseline, and what is still to be written."""

    def __init__(self, con, default: str, new_default: str):
        self.default = default
        self.new_default = new_default
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], tuple[str, dt.datetime]] = {}
        self.modes: dict[tuple[str, str], tuple[str, dt.datetime]] = {
            (r[0], r[1]): (r[2], r[3])
            for r in con.execute("SELECT pipeline, source_id, mode, since FROM pipeline_modes").fetchall()}
        self.baseline = con.execute("SELECT value FROM service_meta WHERE key = ?",
                                    [BASELINE_KEY]).fetchone() is not None

    def recorded(self, pipeline: str, source: str | None) -> str:
        """The mode recorded for ``pipeline`` in ``source`` (recording a new one as pending)."""
        key = (pipeline, source or "")
        found = self.modes.get(key)
        if found is not None:
            return found[0]
        if not self.baseline:      # the first load is not done: the pipeline was in the stores at start
            return self.default
        with self._lock:
            found = self.modes.get(key)
            if found is None:
                found = (self.new_default, now())
                self.modes = {**self.modes, key: found}
                self._pending[key] = found
        return found[0]

    def has_pending(self) -> bool:
        return bool(self._pending)

    def persist(self, con, known: dict[str, tuple[str, ...]]) -> int:
        """Write the pending modes and those of the pipelines in ``known`` (pipeline -> sources) not
        recorded yet; the first time, set the baseline. The caller holds the write lock. Returns
        how many rows were written."""
        with self._lock:
            rows = dict(self._pending)
            mode = self.new_default if self.baseline else self.default
            at = now()
            for pipeline, sources in known.items():
                for source in sources:
                    key = (pipeline, source)
                    if key not in self.modes and key not in rows:
                        rows[key] = (mode, at)
        if rows:
            con.execute("INSERT OR IGNORE INTO pipeline_modes (pipeline, source_id, mode, since) VALUES "
                        + ", ".join(["(?, ?, ?, ?)"] * len(rows)),
                        [v for (p, s), (m, t) in rows.items() for v in (p, s, m, t)])
        if not self.baseline:
            con.execute("INSERT OR IGNORE INTO service_meta VALUES (?, ?)", [BASELINE_KEY, at.isoformat()])
        with self._lock:
            self.modes = {**self.modes, **rows}
            for key in rows:
                self._pending.pop(key, None)
            self.baseline = True
        return len(rows)

    def to_list(self) -> list[dict]:
        return [{"pipeline": p, "source": s, "mode": m, "since": t.isoformat() + "Z"}
                for (p, s), (m, t) in sorted(self.modes.items())]
