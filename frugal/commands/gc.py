"""`frugal gc`: keep a pipeline root (TFX's pipeline_root) under a byte budget.

Reads the MLMD store, measures the LIVE artifacts under the root, plans what to keep
(``optimizer.reuse.collect_garbage``) and prints it; ``--apply`` deletes (``pipelines.pipeline_root``).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

__all__ = ["register"]


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n}"


def register(app: typer.Typer) -> None:
    @app.command("gc")
    def gc_command(
        store: str = typer.Argument(..., help="The MLMD store of the pipelines: a SQLite file or mysql:// / postgresql://"),
        pipeline_root: Path = typer.Option(..., "--pipeline-root", help="The pipelines' pipeline_root folder."),
        budget: str = typer.Option(..., "--budget", help="Bytes the root may hold: 50000000, 50MB, 2GiB."),
        apply: bool = typer.Option(False, "--apply", help="Delete (default: a dry run that only prints the plan)."),
        keep: list[int] = typer.Option([], "--keep", help="An artifact id never to delete (repeatable)."),
        roles: Path = typer.Option(None, "--roles", help="A roles TOML file (types of models, blessings, pushes)."),
        as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
    ) -> None:
        """Choose which artifacts of a pipeline root to keep under --budget (dry run), or delete (--apply).

        Pinned, never deleted: the newest pushed and blessed models and their blessings, what the
        latest execution of each node read, anything of a RUNNING execution, --keep ids. Each
        deletion marks the artifact DELETED in MLMD first, then removes its files.
        """
        from analysis.roles import resolve_roles
        from frugal.commands.run import parse_bytes
        from optimizer.reuse.collect_garbage import plan_collection
        from pipelines.pipeline_root import apply_collection, measure_root
        from provenance.run_history import read_run_history

        limit = parse_bytes(budget)
        history = read_run_history(store)
        sizes, absent = measure_root(history, pipeline_root)
        plan = plan_collection(history, sizes, limit, keep=keep, absent=absent, roles=resolve_roles(roles))
        marked: list[int] = []
        if apply:
            marked = apply_collection(store, plan, pipeline_root)
        if as_json:
            typer.echo(json.dumps({**plan.to_dict(), "applied": apply, "marked_deleted": marked}, sort_keys=True))
            return
        verb = "deleted" if apply else "would delete"
        typer.echo(f"pipeline root {pipeline_root}: {_human(plan.bytes_before)} in {len(plan.verdicts)} artifacts, "
                   f"budget {_human(limit)}")
        for p in plan.pipelines:
            typer.echo(f"  {p.pipeline}: {verb} {p.deleted} of {p.artifacts} artifacts, frees "
                       f"{_human(p.bytes_before - p.bytes_after)}, recompute risked {p.recompute_s_risked:.1f} s")
        for v in plan.delete:
            typer.echo(f"  {verb} {v.artifact_id:>6} {v.type_name:<18} {_human(v.size_bytes):>9}  {v.uri}  ({v.reason})")
        if plan.stale:
            typer.echo(f"  {'marked' if apply else 'would mark'} DELETED (LIVE in MLMD, files gone): "
                       f"{', '.join(map(str, plan.stale))}")
        typer.echo(f"after: {_human(plan.bytes_after)} (freed {_human(plan.bytes_before - plan.bytes_after)}, "
                   f"recompute risked {plan.recompute_s_risked:.1f} s)"
                   + ("; the pinned artifacts alone exceed the budget" if plan.over_budget else "")
                   + ("" if apply else "; dry run: pass --apply to delete"))
