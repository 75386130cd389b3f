"""Run the whole analysis over a warehouse: roles, lineage, graphlets, waste, run history.

Incremental: a source is rebuilt when its ingested data (row counts, last ingest time) or the
roles changed since the last analysis; sources that left the warehouse lose their rows. All
writes happen in one transaction, so a failed analysis leaves the previous one intact.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from analysis.config import AnalysisConfig
from analysis.errors import AnalysisError
from analysis.graphlets import build_graphlets
from analysis.graphlets import create_tables as create_graphlet_tables
from analysis.lineage import build_lineage, persist_lineage
from analysis.lineage import create_tables as create_lineage_tables
from analysis.roles import Roles, resolve_roles, write_type_roles
from analysis.runs import build_component_runs
from analysis.views import create_views
from analysis.waste import build_waste

__all__ = ["AnalysisSummary", "analyze", "open_warehouse"]

log = logging.getLogger(__name__)

_REQUIRED = ("executions", "artifacts", "events", "contexts", "associations", "properties")


@dataclass(frozen=True)
class AnalysisSummary:
    """What one analysis run did and found (whole warehouse figures)."""

    sources_analyzed: tuple[str, ...]
    sources_total: int
    graphlets: int
    pushed_graphlets: int
    executions: int
    compute_s: float
    wasted_compute_s: float
    undetermined_compute_s: float
    redundant_runs: int
    redundant_compute_s: float
    seconds: float


def open_warehouse(con_or_path, read_only: bool = False):
    """Return (connection, owned) for a DuckDB connection or a warehouse path."""
    if isinstance(con_or_path, duckdb.DuckDBPyConnection):
        return con_or_path, False
    path = Path(con_or_path)
    if not path.exists():
        raise AnalysisError(
            f"warehouse {path} does not exist; create it with `frugal ingest STORE --warehouse {path}`"
        )
    try:
        return duckdb.connect(str(path), read_only=read_only), True
    except duckdb.Error as exc:
        raise AnalysisError(f"cannot open warehouse {path} ({exc}); is it a DuckDB file not in use?") from exc


def _check_tables(con) -> None:
    have = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    missing = [t for t in _REQUIRED if t not in have]
    if missing:
        raise AnalysisError(
            f"the warehouse lacks table(s) {', '.join(missing)}; it is not a frugal warehouse — "
            "create it with `frugal ingest`"
        )


def _source_signatures(con) -> dict[str, str]:
    has_sources = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'sources'"
    ).fetchone()[0]
    ingested = "SELECT source_id, CAST(last_ingested_at AS VARCHAR) AS t FROM sources" if has_sources else \
        "SELECT NULL::VARCHAR AS source_id, NULL::VARCHAR AS t WHERE false"
    rows = con.execute(
        f"""
        WITH c AS (
            SELECT source_id, 'x' AS k, count(*) AS n, max(execution_id) AS m FROM executions GROUP BY ALL
            UNION ALL SELECT source_id, 'a', count(*), max(artifact_id) FROM artifacts GROUP BY ALL
            UNION ALL SELECT source_id, 'e', count(*), max(artifact_id) FROM events GROUP BY ALL
            UNION ALL SELECT source_id, 'p', count(*), sum(entity_id) FROM properties GROUP BY ALL
            UNION ALL SELECT source_id, 'c', count(*), max(context_id) FROM associations GROUP BY ALL
        ),
        i AS ({ingested})
        SELECT coalesce(c.source_id, i.source_id) AS source_id,
               coalesce(max(i.t), '') || '|' ||
               coalesce(string_agg(c.k || c.n || ':' || c.m, ',' ORDER BY c.k), '') AS sig
        FROM c FULL JOIN i ON c.source_id = i.source_id
        GROUP BY ALL
        """
    ).fetchall()
    return {sid: sig for sid, sig in rows if sid is not None}


def analyze(
    con_or_path,
    roles: Roles | str | Path | None = None,
    config: AnalysisConfig | None = None,
    sources: list[str] | None = None,
    full: bool = False,
) -> AnalysisSummary:
    """(Re)build graphlets, members, waste and run history in the warehouse.

    ``roles``: a :class:`Roles`, a preset name or a TOML file (None: the default presets).
    ``sources``: rebuild exactly these; otherwise every source whose data or roles changed
    (``full`` rebuilds all). Returns whole-warehouse figures.
    """
    started = time.perf_counter()
    config = config or AnalysisConfig()
    roles = resolve_roles(roles)
    con, owned = open_warehouse(con_or_path)
    try:
        _check_tables(con)
        con.execute("BEGIN TRANSACTION")
        try:
            analyzed = _run(con, roles, config, sources, full)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        summary = _summary(con, analyzed, time.perf_counter() - started)
    finally:
        if owned:
            con.close()
    log.info("analysis: %s", summary)
    return summary


def _run(con, roles: Roles, config: AnalysisConfig, sources: list[str] | None, full: bool) -> tuple[str, ...]:
    write_type_roles(con, roles)
    create_lineage_tables(con)
    create_graphlet_tables(con)
    con.execute(
        "CREATE TABLE IF NOT EXISTS analysis_state (source_id VARCHAR PRIMARY KEY, signature VARCHAR,"
        " roles VARCHAR, analyzed_at TIMESTAMP)"
    )
    signatures = _source_signatures(con)
    previous = {sid: (sig, fp) for sid, sig, fp in con.execute(
        "SELECT source_id, signature, roles FROM analysis_state").fetchall()}
    if sources is not None:
        unknown = sorted(set(sources) - set(signatures))
        if unknown:
            raise AnalysisError(
                f"source(s) {', '.join(unknown)} are not in the warehouse; "
                f"known: {', '.join(sorted(signatures)) or 'none'}"
            )
        todo = sorted(set(sources))
    elif full:
        todo = sorted(signatures)
    else:
        todo = sorted(sid for sid, sig in signatures.items() if previous.get(sid) != (sig, roles.fingerprint))
    gone = sorted(set(previous) - set(signatures))
    con.execute("CREATE OR REPLACE TEMP TABLE _scope (source_id VARCHAR PRIMARY KEY)")
    if todo or gone:
        con.executemany("INSERT INTO _scope VALUES (?)", [(s,) for s in todo + gone])
        log.info("analysing %d source(s): %s", len(todo), ", ".join(todo))
        build_lineage(con, config.fingerprint_properties, config.baseline_keys)
        build_graphlets(con, config.max_steps)
        build_waste(con, config.max_steps)
        build_component_runs(con, config.volatile_properties)
        persist_lineage(con)
        con.execute("DELETE FROM analysis_state WHERE source_id IN (SELECT source_id FROM _scope)")
        con.executemany(
            "INSERT INTO analysis_state VALUES (?, ?, ?, now()::TIMESTAMP)",
            [(s, signatures[s], roles.fingerprint) for s in todo],
        )
    create_views(con)
    con.execute("DROP TABLE IF EXISTS _scope")
    return tuple(todo)


def _summary(con, analyzed: tuple[str, ...], seconds: float) -> AnalysisSummary:
    g = con.execute("SELECT count(*), count(*) FILTER (WHERE pushed) FROM graphlets").fetchone()
    w = con.execute(
        """SELECT count(*), coalesce(sum(duration_s), 0),
                  coalesce(sum(duration_s) FILTER (WHERE wasted), 0),
                  coalesce(sum(duration_s) FILTER (WHERE undetermined), 0)
           FROM execution_waste"""
    ).fetchone()
    r = con.execute(
        "SELECT count(*), coalesce(sum(duration_s), 0) FROM component_runs WHERE redundant"
    ).fetchone()
    n_sources = con.execute("SELECT count(*) FROM analysis_state").fetchone()[0]
    return AnalysisSummary(
        sources_analyzed=analyzed, sources_total=n_sources, graphlets=g[0], pushed_graphlets=g[1],
        executions=w[0], compute_s=float(w[1]), wasted_compute_s=float(w[2]),
        undetermined_compute_s=float(w[3]), redundant_runs=r[0], redundant_compute_s=float(r[1]),
        seconds=round(seconds, 3),
    )
