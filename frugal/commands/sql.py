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
        warehouse: Path = typer.Option(None, "--warehouse", "-w", help="DuckDB warehouse file."),
        url: str = typer.Option(None, "--url", help="Ask a running `frugal serve` instead (it holds the "
                                                    "warehouse), e.g. http://127.0.0.1:8470."),
        token_file: Path = typer.Option(None, "--token-file", help="Bearer token for --url (first line)."),
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
        if (warehouse is None) == (url is None):
            from provenance.errors import ProvenanceError

            raise ProvenanceError("give either --warehouse FILE or --url of a running `frugal serve`")
        if url is not None:
            from frugal.commands.remote import call

            body = call(url, "POST", "/api/v1/sql", token_file=token_file,
                        json={"query": query, **({"max_rows": limit} if limit else {})})
            columns, rows = body["columns"], [tuple(r) for r in body["rows"]]
        else:
            columns, rows = run_query(warehouse, query, max_rows=limit or None)
        typer.echo(format_result(columns, rows, format), nl=False)
