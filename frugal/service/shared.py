"""Small values the service's parts share: the warm decision state and its holder, a source's
status, the metric callbacks, the clock.

The refresher writes the ``Warm`` that the decider reads, through one ``WarmHolder`` that the
``Service`` owns; both sides import these from here rather than from each other.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from optimizer.pruning import live

__all__ = ["Warm", "WarmHolder", "SourceStatus", "Metrics", "now"]


def now() -> dt.datetime:
    """The time in UTC, naive (as the warehouse stores it)."""
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


class WarmHolder:
    """The current ``Warm`` (None until the first is built or restored), replaced in one assignment
    so a request never sees half an update; what the service still waits for before it is ready;
    the policy restored from an earlier run when its upcoming trainings were not."""

    __slots__ = ("warm", "pending", "restored")

    def __init__(self) -> None:
        self.warm: Warm | None = None
        self.pending: set[str] = {"ingest", "analysis", "policy", "report"}
        self.restored: live.LearnedPolicy | None = None


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
