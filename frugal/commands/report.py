"""`frugal report`: write the batch report (HTML, figures, summary.json) of a warehouse."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Attach `frugal report` to the application."""

    @app.command("report")
    def report_command(
        warehouse: Path = typer.Option(..., "--warehouse", "-w", help="DuckDB warehouse written by `frugal ingest`."),
        out: Path = typer.Option(..., "--out", "-o", help="Folder to write (replaced atomically if it exists)."),
        roles: Path = typer.Option(None, "--roles", help="TOML roles file (see docs/roles.md)."),
    ) -> None:
        """Write DIR/index.html with its figures and DIR/summary.json.

        Brings the analysis up to date first (only changed sources are rebuilt). The folder is
        self-contained: open index.html in a browser, or copy the folder anywhere.
        """
        import json

        from analysis.report import write_report

        index = write_report(warehouse, out, roles=roles)
        overview = json.loads((index.parent / "summary.json").read_text())["overview"]
        share = overview.get("wasted_share")
        typer.echo(
            f"{overview['trainings']:,} trainings, {overview['pushed_trainings']:,} pushed; "
            f"wasted {100 * share:.1f}% of compute" if share is not None else
            f"{overview['trainings']:,} trainings, {overview['pushed_trainings']:,} pushed"
        )
        typer.echo(f"report: {index}")
