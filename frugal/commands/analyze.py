"""`frugal analyze`: build graphlets, waste and run history in the warehouse and summarise."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register", "summary_lines"]


def summary_lines(summary) -> list[str]:
    """Human summary of an :class:`analysis.AnalysisSummary`."""
    share = lambda part: f"{100 * part / summary.compute_s:.1f}%" if summary.compute_s else "n/a"  # noqa: E731
    analyzed = ", ".join(summary.sources_analyzed) or "none (nothing changed)"
    return [
        f"analysed: {analyzed} ({summary.seconds:.2f} s)",
        f"graphlets: {summary.graphlets:,} ({summary.pushed_graphlets:,} pushed) "
        f"across {summary.sources_total} source(s)",
        f"compute: {summary.compute_s:,.0f} s over {summary.executions:,} executions; "
        f"wasted {summary.wasted_compute_s:,.0f} s ({share(summary.wasted_compute_s)}), "
        f"undetermined {summary.undetermined_compute_s:,.0f} s ({share(summary.undetermined_compute_s)})",
        f"redundant re-runs: {summary.redundant_runs:,} ({summary.redundant_compute_s:,.0f} s)",
        "query: graphlets, graphlet_members, execution_waste, component_runs (frugal sql)",
    ]


def register(app: typer.Typer) -> None:
    """Attach `frugal analyze` to the application."""

    @app.command("analyze")
    def analyze_command(
        warehouse: Path = typer.Option(..., "--warehouse", "-w", help="DuckDB warehouse written by `frugal ingest`."),
        roles: Path = typer.Option(
            None, "--roles",
            help="TOML file mapping your type names to roles (on top of the TFX presets); see docs/roles.md.",
        ),
        full: bool = typer.Option(False, "--full", help="Rebuild every source, not only those that changed."),
        source: list[str] = typer.Option(None, "--source", help="Rebuild only this source id (repeatable)."),
    ) -> None:
        """Build model graphlets, waste and component run history inside the warehouse.

        Only sources whose data or roles changed since the last analysis are rebuilt.
        """
        import analysis

        summary = analysis.analyze(warehouse, roles=roles, sources=source or None, full=full)
        for line in summary_lines(summary):
            typer.echo(line)
