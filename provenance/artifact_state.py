"""Change an artifact's state in MLMD through the ml_metadata API (one artifact, one write).

``mark_deleted`` is what a garbage collector calls *before* it removes an artifact's files:
TFX's cache and resolvers use LIVE artifacts only, so from that write on nothing reads the
files, and an interruption between the write and the removal leaves a DELETED artifact with
files (garbage), never a LIVE artifact without them.
"""

from __future__ import annotations

import os

from provenance.errors import ProvenanceError

__all__ = ["mark_deleted"]


def mark_deleted(store: str | os.PathLike, artifact_ids: list[int]) -> list[int]:
    """Mark each LIVE artifact of ``artifact_ids`` DELETED, one ``put_artifacts`` per artifact
    (each atomic); returns the ids that changed (already non-LIVE ones are left as they are)."""
    from provenance.run_recorder import open_writable

    ms, pb = open_writable(store)
    changed = []
    for aid in artifact_ids:
        found = ms.get_artifacts_by_id([int(aid)])
        if not found:
            raise ProvenanceError(f"artifact {aid} is not in the MLMD store {store}; plan against the same store")
        a = found[0]
        if a.state != pb.Artifact.LIVE:
            continue
        a.state = pb.Artifact.DELETED
        ms.put_artifacts([a])
        changed.append(int(aid))
    return changed
