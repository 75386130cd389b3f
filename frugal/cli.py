"""The `frugal` command line: parse, call the four packages, print.

Each command lives in ``frugal/commands/<name>.py`` and exposes ``register(app)``.
Errors raised for bad input (the packages' ``*Error`` classes) are printed as one clear
message with exit status 2, never as a traceback.
"""

from __future__ import annotations

import logging
import sys

import typer

from analysis.errors import AnalysisError
from optimizer.errors import OptimizerError
from pipelines.errors import PipelineError
from provenance.errors import ProvenanceError

from frugal import __version__
from frugal.commands import COMMAND_MODULES

USER_ERRORS = (ProvenanceError, AnalysisError, OptimizerError, PipelineError)

app = typer.Typer(
    name="frugal",
    help=(
        "frugal turns ML Metadata (MLMD) provenance into compute savings: ingest stores into a "
        "DuckDB warehouse, model graphlets and waste, prune runs that will not be deployed, and "
        "plan reuse for Beam pipelines."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"frugal {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details to stderr."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


for _module in COMMAND_MODULES:
    _module.register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    try:
        app(args=argv, standalone_mode=False)
    except USER_ERRORS as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
