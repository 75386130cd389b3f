"""`frugal report`: write the batch report (HTML, figures, summary.json) of a warehouse."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def pruning_report_section(warehouse: Path, max_lost_pushes: float, ground_truth=()):
    """Replay the pruning policy over an analyzed warehouse, as a report section."""
    import duckdb

    from optimizer.report_section import pruning_section

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return pruning_section(con, max_lost_pushes=max_lost_pushes, ground_truth=ground_truth)
    finally:
        con.close()


def register(app: typer.Typer) -> None:
    """Attach `frugal report` to the application."""

    @app.command("report")
    def report_command(
        warehouse: Path = typer.Option(..., "--warehouse", "-w", help="DuckDB warehouse written by `frugal ingest`."),
        out: Path = typer.Option(..., "--out", "-o", help="Folder to write (replaced atomically if it exists)."),
        roles: Path = typer.Option(None, "--roles", help="TOML roles file (see docs/roles.md)."),
        pruning: bool = typer.Option(
            True, "--pruning/--no-pruning", help="Add the replay of the pruning policy (trade-off curve, cadence)."),
        max_lost_pushes: float = typer.Option(
            0.02, "--max-lost-pushes", help="Budget of lost pushes for the replayed policy (share)."),
        ground_truth: list[Path] = typer.Option(
            None, "--ground-truth", help="Simulator ground-truth JSON: draws the oracle beside the policy."),
    ) -> None:
        """Write DIR/index.html with its figures and DIR/summary.json.

        Brings the analysis up to date first (only changed sources are rebuilt). The folder is
        self-contained: open index.html in a browser, or copy the folder anywhere.
        """
        import json

        from analysis.report import write_report

        sections = []
        if pruning:
            from analysis import analyze

            analyze(warehouse, roles=roles)  # the replay reads graphlets; write_report's own pass is then a no-op
            sections.append(pruning_report_section(warehouse, max_lost_pushes, ground_truth or ()))
        index = write_report(warehouse, out, roles=roles, sections=sections)
        overview = json.loads((index.parent / "summary.json").read_text())["overview"]
        share = overview.get("wasted_share")
        typer.echo(
            f"{overview['trainings']:,} trainings, {overview['pushed_trainings']:,} pushed; "
            f"wasted {100 * share:.1f}% of compute" if share is not None else
            f"{overview['trainings']:,} trainings, {overview['pushed_trainings']:,} pushed"
        )
        typer.echo(f"report: {index}")
