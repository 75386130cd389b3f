"""`frugal demo`: the main job end to end on embedded data.

Simulates a small production corpus, adds the real TFX stores shipped in
``pipelines/examples/data/tfx`` (package data, found through importlib.resources), ingests everything into one warehouse, analyzes it and writes the
batch report. Prints where everything is.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import typer

from pipelines.errors import PipelineError

MARKER = ".frugal-demo"


def tfx_example_stores() -> list[Path]:
    """The real TFX stores shipped with frugal as package data (``pipelines.examples``).

    Found through importlib.resources, so they are there in any install, editable or not; a
    broken install without them is an error, never a demo that silently has none.
    """
    from importlib.resources import files

    folder = Path(str(files("pipelines.examples") / "data" / "tfx"))
    stores = sorted(folder.glob("*.sqlite"))
    if not stores:
        raise PipelineError(
            f"no TFX example stores in {folder}: the frugal install lacks its package data; "
            "reinstall frugal (pip install --force-reinstall frugal)")
    return stores


def run_demo(out: Path, *, pipelines: int, days: int, seed: int, quiet: bool = False) -> dict:
    """Run the demo into ``out`` (replaced) and return what it produced."""
    from analysis import analyze
    from analysis.report import write_report
    from pipelines.simulator import simulate
    from provenance.ingest import ingest

    if out.exists():
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise PipelineError(
                f"{out} exists and was not written by `frugal demo`; pass an empty or new folder with --out.")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("written by frugal demo; replaced by the next demo run\n")
    started = time.perf_counter()
    say = (lambda *_: None) if quiet else typer.echo

    say(f"1/4 simulating {pipelines} pipelines over {days} days (seed {seed}) ...")
    sim = simulate(out / "stores", pipelines=pipelines, days=days, seed=seed, style="current",
                   mode="mixed", stores=1, progress=not quiet)
    stores = [*map(str, sim.store_paths), *map(str, tfx_example_stores())]

    warehouse = out / "warehouse.duckdb"
    say(f"2/4 ingesting {len(stores)} MLMD stores into {warehouse} ...")
    ingest(stores, warehouse, progress=not quiet)

    say("3/4 building graphlets, waste and run history ...")
    summary = analyze(warehouse)

    say("4/4 replaying the pruning policy and writing the report ...")
    from frugal.commands.report import pruning_report_section

    section = pruning_report_section(warehouse, 0.02, sim.ground_truth_paths)
    index = write_report(warehouse, out / "report", sections=[section])
    seconds = time.perf_counter() - started
    return {"warehouse": warehouse, "report": index, "summary": summary, "seconds": seconds}


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        out: Path = typer.Option(Path("demo-out"), help="Folder for the stores, warehouse and report (replaced)."),
        pipelines: int = typer.Option(40, help="Simulated pipelines."),
        days: int = typer.Option(60, help="Simulated days of history."),
        seed: int = typer.Option(7, help="Simulator seed."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    ) -> None:
        """Simulate a small corpus, ingest it with the real TFX stores, analyze, write the report."""
        result = run_demo(out, pipelines=pipelines, days=days, seed=seed, quiet=quiet)
        from frugal.commands.analyze import summary_lines

        typer.echo("")
        for line in summary_lines(result["summary"]):
            typer.echo(line)
        typer.echo(f"warehouse: {result['warehouse']}")
        typer.echo(f"report:    {result['report']}  (open it in a browser)")
        typer.echo(f"try:       frugal sql --warehouse {result['warehouse']} \"SELECT * FROM graphlets LIMIT 5\"")
        typer.echo(f"done in {result['seconds']:.1f} s")
