"""`frugal analyze`: not yet available."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the command to the application (nothing yet)."""
