"""`frugal run`: run a pipeline file with planned reuse and record it into MLMD."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path

import typer

from pipelines.errors import PipelineError

__all__ = ["RUN_DIR_ENV", "output_folders", "parse_bytes", "register"]

# set by `frugal run` while it loads and runs a pipeline file: the folder where the file may keep
# its own files (input data it generates, ...): the MLMD store's folder. Never the working directory.
RUN_DIR_ENV = "FRUGAL_RUN_DIR"

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_bytes(text: str) -> int:
    """``"500000"``, ``"200MB"``, ``"1.5GiB"`` -> bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text or "")
    if not m or m.group(2).lower() not in _UNITS:
        raise PipelineError(f"budget {text!r} is not a size: give bytes, e.g. 500000000 or 500MB or 2GiB")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _short(value: object, limit: int = 160) -> str:
    try:
        text = json.dumps(value, sort_keys=True, default=lambda v: f"<{type(v).__name__}>")
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def output_folders(store: Path | None, artifacts: Path | None, reuse: bool) -> tuple[Path | None, Path | None]:
    """Where a run writes: (artifact folder or None, run folder or None).

    The artifact folder is ``--artifacts``, else ``STEM-artifacts`` beside ``--store``
    (``runs.sqlite`` -> ``runs-artifacts/``); none with ``--no-reuse``. The run folder (given to
    the pipeline file as ``$FRUGAL_RUN_DIR``) is the MLMD store's folder: ``--store``'s, or the
    artifact folder, which holds the default store ``mlmd.sqlite``. A run given neither
    ``--store`` nor ``--artifacts`` is refused rather than written into the working directory.
    """
    if not reuse:
        artifacts = None
    elif artifacts is None:
        if store is None:
            raise PipelineError(
                "give --store FILE (the MLMD store; outputs go beside it, into STEM-artifacts/) or "
                "--artifacts DIR: frugal run writes nothing into the working directory unasked")
        artifacts = store.with_name(f"{store.stem}-artifacts")
    if store is not None:
        return artifacts, store.parent
    return artifacts, artifacts


@contextlib.contextmanager
def _run_dir(folder: Path | None):
    """``$FRUGAL_RUN_DIR`` set to ``folder`` (a temporary folder, removed afterwards, when None)."""
    previous = os.environ.get(RUN_DIR_ENV)
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="frugal-run-")))
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[RUN_DIR_ENV] = str(folder.resolve())
        try:
            yield folder
        finally:
            if previous is None:
                os.environ.pop(RUN_DIR_ENV, None)
            else:
                os.environ[RUN_DIR_ENV] = previous


def _gate(url: str, token_file: Path | None, timeout_s: float):
    """A pipelines.gate.Gate asking the frugal service at ``url`` (frugal_client; fails open)."""
    try:
        from frugal_client import Client
    except ImportError as exc:
        raise PipelineError("--hook needs frugal-client: pip install -e clients/python") from exc
    token = None
    if token_file is not None:
        if not token_file.is_file():
            raise PipelineError(f"--hook-token-file {token_file} does not exist: give the file holding the token")
        token = (token_file.read_text().splitlines() or [""])[0].strip() or None
    try:
        client = Client(url, token=token, timeout_s=timeout_s)
    except ValueError as exc:
        raise PipelineError(f"--hook: {exc}") from exc
    return lambda pipeline, run_id: client.decide(pipeline, run_id=run_id)


def _decision_dict(decision) -> dict | None:
    if decision is None:
        return None
    return {"action": decision.action, "decision_id": decision.decision_id, "probability": decision.probability,
            "reasons": list(decision.reasons), "fallback": decision.fallback}


def _decision_line(decision, skipped) -> str:
    said = f"frugal decision {decision.decision_id}" if decision.decision_id else \
        f"no frugal decision ({decision.fallback}): failing open"
    why = "; ".join(decision.reasons)
    if decision.action == "prune":
        return f"{said}: prune ({why}); skipped {', '.join(skipped)}: no training this run"
    return f"{said}: run ({why})"


def register(app: typer.Typer) -> None:
    """Attach `frugal run` to the application."""

    @app.command(
        "run",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def run_command(
        ctx: typer.Context,
        pipeline_file: Path = typer.Argument(..., metavar="PIPELINE_FILE",
                                             help="Python file defining `pipeline` (a pipelines.api.Pipeline)."),
        store: Path = typer.Option(None, "--store", help="MLMD SQLite store to record the run into; the "
                                                         "run's outputs go beside it. Default: mlmd.sqlite in "
                                                         "--artifacts (one of the two is needed unless --no-reuse)."),
        artifacts: Path = typer.Option(None, "--artifacts",
                                       help="Folder of materialized outputs (content-addressed). Default: "
                                            "STEM-artifacts beside --store (runs.sqlite -> runs-artifacts/)."),
        budget: str = typer.Option(None, "--budget", help="Byte budget of the artifact folder (e.g. 500MB)."),
        no_reuse: bool = typer.Option(False, "--no-reuse", help="Compute everything; load and store nothing."),
        policy: str = typer.Option("frugal", "--policy",
                                   help="Materialization policy: frugal, helix, experiment_graph, all, none."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
        hook: str = typer.Option(None, "--hook", metavar="URL",
                                 help="Ask this frugal service (frugal serve) before training; a prune skips the "
                                      "training and everything that needs it. Fails open: no answer means run."),
        hook_token_file: Path = typer.Option(None, "--hook-token-file",
                                             help="File whose first line is the service's bearer token."),
        hook_timeout: float = typer.Option(2.0, "--hook-timeout", help="Seconds to wait for the decision."),
    ) -> None:
        """Run PIPELINE_FILE once: plan compute/load/prune per component, build one Beam pipeline
        from the plan, store what pays off, and record the run into MLMD.

        Nothing is written into the working directory: the outputs go beside --store (or into
        --artifacts), and the pipeline file finds that folder in $FRUGAL_RUN_DIR.

        Arguments after `--` go to Beam, e.g. `-- --runner=FlinkRunner --flink_master=host:8081`
        (the artifact folder must then be on storage that the workers share).
        """
        from pipelines.api import load_pipeline
        from pipelines.runner import MLMD_FILE, RunOptions, run_pipeline

        beam_args = tuple(ctx.args)
        budget_bytes = parse_bytes(budget) if budget else None   # a bad value is named before anything else
        artifacts, run_dir = output_folders(store, artifacts, not no_reuse)
        gate = _gate(hook, hook_token_file, hook_timeout) if hook else None
        with _run_dir(run_dir):
            pipeline = load_pipeline(pipeline_file)
            opts = RunOptions(
                artifacts=artifacts,
                mlmd_store=store,
                budget_bytes=budget_bytes,
                reuse=not no_reuse,
                policy=policy,
                beam_args=beam_args,
                gate=gate,
            )
            result = run_pipeline(pipeline, opts)
        mlmd = store if store is not None else (artifacts / MLMD_FILE if artifacts is not None else None)
        if as_json:
            typer.echo(json.dumps({
                "run_id": result.run_id,
                "wall_s": round(result.wall_s, 3),
                "beam_used": result.beam_used,
                "store_bytes": result.store_bytes,
                "evicted": list(result.evicted),
                "nodes": {n: {"action": r.action, "seconds": r.seconds, "stored": r.materialized,
                              "fingerprint": r.fingerprint} for n, r in result.nodes.items()},
                "outputs": {k: json.loads(_short(v, 10**9)) for k, v in result.outputs.items()},
                "decision": _decision_dict(result.decision),
                "skipped": list(result.skipped),
                "artifacts": str(artifacts) if artifacts is not None else None,
                "mlmd_store": str(mlmd) if mlmd is not None else None,
            }, sort_keys=True))
            return
        if result.decision is not None:
            typer.echo(_decision_line(result.decision, result.skipped))
        typer.echo(f"run {result.run_id} of {pipeline.name}: {result.wall_s:.2f} s"
                   f"{'' if result.beam_used else ' (nothing to compute: no Beam pipeline started)'}")
        typer.echo(f"{'component':20s} {'action':8s} {'seconds':>8s} {'stored':>6s}  fingerprint")
        for n, r in result.nodes.items():
            typer.echo(f"{n:20s} {r.action:8s} {r.seconds:8.2f} {'yes' if r.materialized else '':>6s}  {r.fingerprint[:12]}")
        for k, v in result.outputs.items():
            typer.echo(f"output {k}: {_short(v)}")
        if not no_reuse:
            typer.echo(f"artifacts: {result.store_bytes:,} bytes in {artifacts}"
                       + (f" ({len(result.evicted)} evicted)" if result.evicted else ""))
        if mlmd is not None:
            typer.echo(f"recorded into MLMD store {mlmd}")
