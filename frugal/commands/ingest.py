"""`frugal ingest`: read MLMD stores into the DuckDB warehouse and print a summary."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register", "summary_lines"]


def summary_lines(report) -> list[str]:
    """Human summary of an :class:`provenance.ingest.IngestReport`: rows per table, time, rate."""
    lines = list(report.notes)
    for s in report.sources:
        mode = "full" if s.full else "incremental"
        lines.append(
            f"{s.source_id} ({s.kind}, via {s.via}, {mode}): {s.store_rows:,} store rows in "
            f"{s.seconds:.2f} s ({s.rows_per_s:,.0f} rows/s)"
        )
        tables = ", ".join(f"{t} {n:,}" for t, n in s.rows.items() if t != "ingest_issues")
        lines.append(f"  written: {tables}")
        if s.issues:
            kinds = ", ".join(f"{k} {n}" for k, n in s.issue_counts.items())
            lines.append(f"  issues: {s.issues} ({kinds}); see table ingest_issues")
    lines.append(
        f"total: {report.store_rows:,} store rows from {len(report.sources)} source(s) in "
        f"{report.seconds:.2f} s ({report.rows_per_s:,.0f} rows/s) -> {report.warehouse}"
    )
    return lines


def register(app: typer.Typer) -> None:
    """Attach `frugal ingest` to the application."""

    @app.command("ingest")
    def ingest_command(
        stores: list[str] = typer.Argument(
            ..., metavar="STORE...",
            help="MLMD stores: SQLite file paths, mysql://user:pass@host:port/db or "
                 "postgresql://user:pass@host:port/db.",
        ),
        warehouse: Path = typer.Option(..., "--warehouse", "-w", help="DuckDB warehouse file (created if missing)."),
        via: str = typer.Option(
            "auto", "--via",
            help="Reader: auto (fast SQLite reader for SQLite files, ml_metadata API otherwise), api or sqlite.",
        ),
        source_id: list[str] = typer.Option(
            None, "--source-id",
            help="Source id per store, in order (default: file stem, or host/db for servers; "
                 "folder/stem for stores whose stems collide).",
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
        analyze: bool = typer.Option(
            True, "--analyze/--no-analyze",
            help="Refresh graphlets, waste and run history of the changed sources after the ingest.",
        ),
        roles: Path = typer.Option(
            None, "--roles", help="TOML file of type-name-to-role mappings for the analysis (docs/roles.md).",
        ),
        upgrade_copy: bool = typer.Option(
            False, "--upgrade-copy",
            help="Read SQLite stores of older MLMD schema versions (1-9) through a temporary upgraded copy; "
                 "the store itself is not changed.",
        ),
    ) -> None:
        """Ingest MLMD stores into a DuckDB warehouse: incremental, idempotent, atomic.

        A repeated ingest reads only what changed since the last one; an interrupted ingest leaves the warehouse as it was. Problems in the data (dangling events, unknown types, empty stores) are counted in the table ingest_issues and reported, not fatal. Afterwards the analysis (graphlets, waste, run history) is refreshed for the sources that changed, unless --no-analyze.
        """
        from provenance.ingest import ingest

        report = ingest(
            stores, warehouse, via=via, source_ids=source_id or None,
            progress=False if quiet else None, upgrade_copy=upgrade_copy,
        )
        if not quiet:
            for line in summary_lines(report):
                typer.echo(line)
        if analyze:
            from analysis import analyze as analyze_warehouse
            from frugal.commands.analyze import summary_lines as analysis_lines

            summary = analyze_warehouse(warehouse, roles=roles)
            if not quiet:
                for line in analysis_lines(summary):
                    typer.echo(line)
