"""Read MLMD SQLite stores of older schema versions through an upgraded temporary copy.

ml-metadata 1.17 reads schema version 10 only; it can migrate older stores in place, which
would change the user's file (and make it unreadable for the older ml-metadata that wrote
it). Here the migration runs on a copy in a temporary folder; the original is only read.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from provenance.connections import SUPPORTED_SCHEMA_VERSIONS, sqlite_schema_version
from provenance.errors import ProvenanceError

__all__ = ["upgraded_copy", "UPGRADABLE_SCHEMA_VERSIONS"]

# Versions ml-metadata 1.17 migrates from (and was tested here: stores downgraded with its own
# downgrade_schema, then upgraded by this module).
UPGRADABLE_SCHEMA_VERSIONS = tuple(range(1, SUPPORTED_SCHEMA_VERSIONS[0]))


def upgraded_copy(path: Path, workdir: Path) -> Path:
    """Copy the SQLite store at ``path`` into ``workdir`` and migrate the copy to version 10."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    version = sqlite_schema_version(path)
    if version in SUPPORTED_SCHEMA_VERSIONS:
        return path
    if version not in UPGRADABLE_SCHEMA_VERSIONS:
        raise ProvenanceError(
            f"{path} has MLMD schema version {version}, which ml-metadata 1.17 cannot upgrade "
            f"(it upgrades versions {UPGRADABLE_SCHEMA_VERSIONS[0]}-{UPGRADABLE_SCHEMA_VERSIONS[-1]}); "
            "read it with the ml-metadata release that wrote it."
        )
    copy = Path(workdir) / path.name
    shutil.copyfile(path, copy)
    copy.chmod(0o600)
    cfg = pb.ConnectionConfig()
    cfg.sqlite.filename_uri = str(copy)
    cfg.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE
    try:
        store = metadata_store.MetadataStore(cfg, enable_upgrade_migration=True)
        del store
    except Exception as exc:  # ml_metadata reports migration failures as RuntimeError / StatusError
        raise ProvenanceError(f"upgrading a copy of {path} from schema version {version} failed: {exc}") from exc
    after = sqlite_schema_version(copy)
    if after not in SUPPORTED_SCHEMA_VERSIONS:
        raise ProvenanceError(f"upgrading a copy of {path} left schema version {after}, not 10.")
    return copy
