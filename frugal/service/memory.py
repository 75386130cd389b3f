"""The service's memory bound: one ``memory_limit`` shared out between its parts.

``memory_limit`` (ServiceConfig, ``frugal serve --memory-limit``, TOML ``memory_limit``; default
a third of the machine's physical memory) bounds what the service and its refit child may use
together. It is shared out so that neither the kernel's OOM killer nor an exhausted machine
decides what happens at scale:

- the service process's DuckDB (ingest, analysis, describing the lanes, the operators' SQL):
  ``SERVICE_DUCKDB`` of it, spilling beyond that to ``temp_directory`` beside the warehouse;
- the refit child's DuckDB (the feature SQL over the whole history): ``CHILD_DUCKDB``, spilling
  likewise; its pandas part: the bounded training set (``optimizer.pruning.training_set``)
  sized to ``CHILD_LEARNING`` of it;
- the rest: the interpreters, the warm state, the model, the requests.

The child also runs under an address-space limit (``RLIMIT_AS``) of the limit x
``CHILD_ADDRESS_FACTOR``: a child that still outgrows it fails with MemoryError (a clear error;
the service keeps its last policy) instead of drawing the OOM killer onto the service.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["parse_size", "default_limit", "physical_memory", "format_size", "apply_duckdb_limits",
           "SERVICE_DUCKDB", "CHILD_DUCKDB", "CHILD_LEARNING", "CHILD_ADDRESS_FACTOR", "temp_directory"]

SERVICE_DUCKDB = 0.25
CHILD_DUCKDB = 0.25
CHILD_LEARNING = 0.30
# address space is not memory: Python, numpy, LightGBM and DuckDB reserve far more than they touch
CHILD_ADDRESS_FACTOR = 4.0
CHILD_ADDRESS_FLOOR = 4 << 30

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000 ** 2, "mb": 1000 ** 2, "g": 1000 ** 3, "gb": 1000 ** 3,
          "t": 1000 ** 4, "tb": 1000 ** 4, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def parse_size(value) -> int:
    """Bytes from ``value``: an integer (bytes) or a string such as "6GB", "512MiB", "1.5 g"."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError(f"a size must be > 0, got {value!r}")
        return int(value)
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {value!r} (write it as 6GB, 512MB, 2GiB or a number of bytes)")
    n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if n <= 0:
        raise ValueError(f"a size must be > 0, got {value!r}")
    return n


def physical_memory() -> int | None:
    """The machine's physical memory in bytes (None: unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def default_limit() -> int:
    """A third of physical memory: room for everything else on the machine (4 GB when unknown)."""
    phys = physical_memory()
    return phys // 3 if phys else 4 * 1000 ** 3


def format_size(n: int) -> str:
    for unit, size in (("GB", 1000 ** 3), ("MB", 1000 ** 2), ("KB", 1000)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n}B"


def temp_directory(warehouse: Path) -> Path:
    """Where DuckDB spills beyond its memory limit: beside the warehouse."""
    return warehouse.with_name(warehouse.name + ".tmp")


def apply_duckdb_limits(con, limit_bytes: int, temp_dir: Path | str) -> None:
    """``SET memory_limit`` and ``temp_directory`` (created) on a DuckDB connection's database."""
    Path(temp_dir).mkdir(parents=True, exist_ok=True)
    con.execute(f"SET memory_limit = '{max(int(limit_bytes) // (1 << 20), 64)}MiB'")
    con.execute(f"SET temp_directory = '{str(temp_dir)}'")
