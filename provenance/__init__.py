"""MLMD -> DuckDB provenance warehouse: the only package that imports ml_metadata.

``ingest`` reads MLMD stores (SQLite, MySQL, PostgreSQL) into a DuckDB warehouse whose
tables are defined in :mod:`provenance.schema`; :func:`provenance.warehouse.connect` opens it.
"""

from __future__ import annotations

from provenance.errors import ProvenanceError
from provenance.ingest import IngestReport, SourceReport, ingest

__all__ = ["ingest", "IngestReport", "SourceReport", "ProvenanceError"]
