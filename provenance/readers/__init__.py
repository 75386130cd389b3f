"""Readers of MLMD stores: each returns a staging :class:`~provenance.readers.staging.Batch`.

``sqlite_reader`` reads the MLMD SQLite tables directly (Arrow-native, fast);
``api_reader`` goes through the ml_metadata API and works for every backend.
"""

from __future__ import annotations

from provenance.readers.staging import STAGING_SCHEMAS, Batch

__all__ = ["Batch", "STAGING_SCHEMAS"]
