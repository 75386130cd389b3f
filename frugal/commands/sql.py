"""`frugal sql`: run one read-only SQL query on the warehouse and print the result."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]

FORMATS = ("table", "csv", "json")


def register(app: typer.Typer) -> None:
    """Attach `frugal sql` to the application."""

    @app.command("sql")
    def sql_command(
        query: str = typer.Argument(..., help="One SQL query (DuckDB dialect), e.g. \"SELECT * FROM sources\"."),
        warehouse: Path = typer.Option(..., "--warehouse", "-w", help="DuckDB warehouse file."),
        format: str = typer.Option("table", "--format", "-f", help="Output format: table, csv or json."),
        limit: int = typer.Option(0, "--max-rows", help="Print at most this many rows (0: all)."),
    ) -> None:
        """Query the warehouse, read-only: the query can neither change it nor touch any file.

        Tables: sources, types, type_properties, artifacts, executions, events, contexts, attributions, associations, parent_contexts, properties, ingest_issues (see docs/warehouse.md); after analysis also graphlets, graphlet_members, execution_waste, component_runs, unmapped_types (see docs/sql.md for example queries).
        """
        from provenance.query import format_result, run_query

        if format not in FORMATS:
            from provenance.errors import ProvenanceError

            raise ProvenanceError(f"unknown --format {format!r}: use one of {', '.join(FORMATS)}.")
        columns, rows = run_query(warehouse, query, max_rows=limit or None)
        typer.echo(format_result(columns, rows, format), nl=False)
