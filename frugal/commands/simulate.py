"""`frugal simulate`: write a production-like corpus of TFX MLMD stores with ground truth."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register", "summary_line"]


def summary_line(counts: dict, out: Path) -> str:
    """One line that says what was written."""
    frac = counts.get("not_pushed_fraction")
    return (
        f"simulated {counts['pipelines']} pipelines into {counts['stores']} store(s) at {out}: "
        f"{counts['trainer_executions']} trainer executions ({counts['trainers_complete']} complete, "
        f"{counts['trainers_failed']} failed, {counts['trainers_cached']} cached), "
        f"{'n/a' if frac is None else f'{frac:.1%}'} of completed trainings not pushed; "
        f"{counts['executions']} executions ({counts.get('redundant_executions', 0)} redundant re-runs), "
        f"{counts['artifacts']} artifacts, {counts['events']} events, "
        f"{counts['rows']} rows in {counts['seconds']:.1f} s ({counts['rows_per_s'] or 0} rows/s)"
    )


def register(app: typer.Typer) -> None:
    """Attach `simulate` to the application."""

    @app.command("simulate")
    def simulate_command(
        out: Path = typer.Option(..., "--out", help="Folder for the stores (mlmd.sqlite or mlmd-NN.sqlite) "
                                                     "and their ground-truth JSON."),
        pipelines: int = typer.Option(..., "--pipelines", help="Number of pipelines."),
        days: int = typer.Option(..., "--days", help="Days of history to simulate."),
        seed: int = typer.Option(..., "--seed", help="Random seed; the corpus is a function of it."),
        style: str = typer.Option("current", "--style", help="current (TFX 1.x names) or legacy (pre-2020)."),
        mode: str = typer.Option("sync", "--mode", help="sync, async (no pipeline_run contexts) or mixed."),
        stores: int = typer.Option(1, "--stores", help="Split the pipelines over K stores (written in parallel)."),
        outcome_model: str = typer.Option(
            "default", "--outcome-model",
            help="default (the fixed model of docs/simulator.md) or random (one drawn per seed from the "
                 "documented family: which drivers matter and how much, noise, heterogeneity)."),
    ) -> None:
        """Simulate production TFX pipelines over time into MLMD stores, with ground truth."""
        from pipelines.simulator import simulate

        result = simulate(out, pipelines=pipelines, days=days, seed=seed, style=style, mode=mode, stores=stores,
                          outcome_model=outcome_model)
        typer.echo(summary_line(result.counts, out))
