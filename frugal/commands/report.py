"""`frugal report`: write the batch report (HTML, figures, summary.json) of a warehouse."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def pruning_report_section(warehouse: Path, max_lost_pushes: float, ground_truth=()):
    """Replay the pruning policy over an analyzed warehouse, as a report section."""
    import duckdb

    from optimizer.pruning.report_section import pruning_section

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return pruning_section(con, max_lost_pushes=max_lost_pushes, ground_truth=ground_truth)
    finally:
        con.close()


def _pipeline_pages(warehouse: Path, out: Path, roles, pipeline: str, source, runs: int) -> None:
    """`frugal report --pipeline`: the pipeline's pages as static files."""
    import duckdb

    from analysis import analyze
    from analysis.errors import AnalysisError
    from frugal.pages.static import write_pipeline_pages

    analyze(warehouse, roles=roles)
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error as exc:
        raise AnalysisError(f"cannot open warehouse {warehouse} ({exc}); is `frugal serve` using it?") from exc
    try:
        index = write_pipeline_pages(con, pipeline, out, source=source, max_runs=runs)
    finally:
        con.close()
    pages = len(list(index.parent.glob("*.html")))
    typer.echo(f"{pipeline}: {pages} pages")
    typer.echo(f"report: {index}")


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
        pipeline: str = typer.Option(
            None, "--pipeline", help="Write this pipeline's pages instead (DAG, history, compare pages)."),
        source: str = typer.Option(None, "--source", help="With --pipeline: the source that holds it, "
                                   "when several do."),
        runs: int = typer.Option(50, "--runs", help="With --pipeline: a page for each of the newest N runs."),
    ) -> None:
        """Write DIR/index.html with its figures and DIR/summary.json.

        Brings the analysis up to date first (only changed sources are rebuilt). The folder is
        self-contained: open index.html in a browser, or copy the folder anywhere. With
        --pipeline NAME it holds that pipeline's pages as `frugal serve` shows them.
        """
        import json

        if pipeline is not None:
            _pipeline_pages(warehouse, out, roles, pipeline, source, runs)
            return

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
