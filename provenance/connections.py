"""Parse MLMD store specifications and open them, with errors that say how to fix them.

A store is named by a SQLite file path, ``mysql://user:pass@host:port/db`` or
``postgresql://user:pass@host:port/db``. Every spec becomes a frozen :class:`StoreSpec`
with a stable default source id (file stem; ``host/db`` for servers) and turns into an
ml_metadata ``ConnectionConfig`` here, the only place that builds one. Stores whose default
ids collide (``a/metadata.sqlite`` and ``b/metadata.sqlite``) get longer ones from
:func:`resolve_source_ids` (``a/metadata``, ``b/metadata``), the one place that chooses them.
"""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from provenance.errors import ProvenanceError

__all__ = [
    "StoreSpec",
    "SUPPORTED_SCHEMA_VERSIONS",
    "parse_store",
    "resolve_source_ids",
    "connection_config",
    "open_metadata_store",
    "sqlite_schema_version",
    "readonly_uri",
    "check_supported",
    "check_server_reachable",
]

# MLMD schema versions whose table layout the fast SQLite reader knows (ml-metadata 1.14-1.17).
SUPPORTED_SCHEMA_VERSIONS = (10,)

_DEFAULT_PORTS = {"mysql": 3306, "postgresql": 5432}
_SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class StoreSpec:
    """Where one MLMD store lives. ``uri`` never contains a password."""

    kind: str  # sqlite | mysql | postgresql
    uri: str
    source_id: str
    path: Path | None = None
    host: str | None = None
    port: int | None = None
    database: str | None = None
    user: str | None = None
    password: str | None = None


def parse_store(spec: str | Path, source_id: str | None = None) -> StoreSpec:
    """Parse a store spec into a :class:`StoreSpec`; ``source_id`` overrides the default name."""
    text = str(spec)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("mysql", "mariadb", "postgresql", "postgres"):
        kind = "mysql" if scheme in ("mysql", "mariadb") else "postgresql"
        parts = urlsplit(text)
        database = parts.path.lstrip("/")
        if not parts.hostname or not database:
            raise ProvenanceError(
                f"cannot read store '{_redact(text)}': a server store needs a host and a database, "
                f"e.g. {kind}://user:password@127.0.0.1:{_DEFAULT_PORTS[kind]}/mlmd"
            )
        try:
            port = parts.port or _DEFAULT_PORTS[kind]
        except ValueError as exc:
            raise ProvenanceError(f"cannot read store '{_redact(text)}': bad port ({exc})") from exc
        host = parts.hostname
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        uri = f"{kind}://{user + '@' if user else ''}{host}:{port}/{database}"
        return StoreSpec(
            kind=kind, uri=uri, source_id=source_id or f"{host}/{database}", host=host,
            port=port, database=database, user=user, password=password,
        )
    if scheme and scheme not in ("sqlite", "file"):
        raise ProvenanceError(
            f"unknown store scheme '{scheme}://' in '{_redact(text)}': pass a SQLite file path, "
            "mysql://user:pass@host:port/db or postgresql://user@host:port/db"
        )
    if scheme:
        text = text.split("://", 1)[1]
    path = Path(text).expanduser().resolve()
    return StoreSpec(kind="sqlite", uri=str(path), source_id=source_id or path.stem, path=path)


def _id_candidates(spec: StoreSpec, depth: int) -> list[str]:
    """A store's default ids at every length, shortest first, ``depth`` folders at most: the
    file stem, ``folder/stem``, ``folder/folder/stem`` ..., then the same with the file's suffix
    (for two stores in one folder that differ only in it); for a server ``host/db``,
    ``host:port/db``, then its URI. Stores with fewer folders repeat their longest id."""
    if spec.kind != "sqlite" or spec.path is None:
        return [f"{spec.host}/{spec.database}", f"{spec.host}:{spec.port}/{spec.database}", spec.uri]
    folders = spec.path.parts[1:-1]  # without the root
    return ["/".join([*folders[len(folders) - min(k, len(folders)):], name])
            for name in (spec.path.stem, spec.path.name) for k in range(depth + 1)]


def resolve_source_ids(
    specs: Sequence[StoreSpec], known: Mapping[str, str] | None = None
) -> tuple[list[StoreSpec], list[str]]:
    """Give the stores of one command distinct default source ids; return the specs and what was chosen.

    ``specs`` carry their default ids (:func:`parse_store` without ``source_id``), one per
    distinct store; ``known`` maps the ids already in a warehouse to their stores' URIs. A store
    the warehouse already holds keeps its id there (when it is one of its default ids), so
    existing warehouses keep their ids. A store whose default id (the file stem, ``host/db``) no
    other store of ``specs`` has keeps it. Stores whose default ids collide get the shortest
    ids that tell them apart and that the warehouse does not give another store:
    ``folder/stem`` (``a/metadata`` and ``b/metadata`` for ``a/metadata.sqlite`` and
    ``b/metadata.sqlite``), then more folders when those are equal too, then the file name with
    its suffix. The returned lines say which ids were chosen, one per collision (none when
    nothing collided or every colliding store already had its id in the warehouse).
    """
    known = dict(known or {})
    known_by_uri = {uri: sid for sid, uri in known.items()}
    depth = max((len(s.path.parts) for s in specs if s.path is not None), default=0)
    candidates = {s.uri: _id_candidates(s, depth) for s in specs}
    chosen: dict[str, str] = {}
    for s in specs:  # what the warehouse already calls a store stays its id
        sid = known_by_uri.get(s.uri)
        if sid is not None and sid in candidates[s.uri]:
            chosen[s.uri] = sid
    groups: dict[str, list[StoreSpec]] = {}
    for s in specs:
        groups.setdefault(s.source_id, []).append(s)
    for base, group in groups.items():
        if len(group) == 1 and group[0].uri not in chosen:
            chosen[group[0].uri] = base
    taken = set(known) | set(chosen.values())
    lines = []
    for base, group in groups.items():
        free = [s for s in group if s.uri not in chosen]
        if len(group) == 1 or not free:
            continue
        for level in range(1, max(len(candidates[s.uri]) for s in free)):
            ids = [candidates[s.uri][level] for s in free]
            if len(set(ids)) == len(ids) and not taken.intersection(ids):
                break
        else:  # nothing tells them apart: leave the default, the caller refuses the collision
            continue
        taken.update(ids)
        chosen.update((s.uri, sid) for s, sid in zip(free, ids))
        lines.append(f"{len(group)} stores share the default source id {base!r}: using "
                     + ", ".join(f"{chosen[s.uri]} for {s.uri}" for s in group) + " (choose others with --source-id)")
    return [replace(s, source_id=chosen.get(s.uri, s.source_id)) for s in specs], lines


def _redact(text: str) -> str:
    parts = urlsplit(text)
    if parts.password:
        return text.replace(f":{parts.password}@", ":***@")
    return text


def readonly_uri(path: Path) -> str:
    """SQLite URI that opens ``path`` read-only (any character in the path is escaped)."""
    return f"{Path(path).absolute().as_uri()}?mode=ro"


def sqlite_schema_version(path: Path) -> int:
    """Check that ``path`` is an MLMD SQLite store and return its ``MLMDEnv.schema_version``.

    Reads the file read-only and never creates or changes anything.
    """
    if not path.exists():
        raise ProvenanceError(
            f"MLMD store not found: {path}. Pass the path of an existing MLMD SQLite file "
            "(or a mysql:// / postgresql:// URL)."
        )
    if path.is_dir():
        raise ProvenanceError(f"{path} is a directory, not an MLMD SQLite file: pass the .sqlite file inside it.")
    with path.open("rb") as fh:
        head = fh.read(len(_SQLITE_MAGIC))
    if head != _SQLITE_MAGIC:
        raise ProvenanceError(
            f"{path} is not a SQLite database (no SQLite header): pass an MLMD store written by "
            "ml_metadata with a SQLite connection."
        )
    try:
        con = sqlite3.connect(readonly_uri(path), uri=True)
        try:
            names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "MLMDEnv" not in names:
                raise ProvenanceError(
                    f"{path} is a SQLite database but not an MLMD store (it has no MLMDEnv table): "
                    "pass a store written by ml_metadata."
                )
            row = con.execute("SELECT MAX(schema_version) FROM MLMDEnv").fetchone()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise ProvenanceError(f"{path} cannot be read as SQLite ({exc}): is it a damaged or non-SQLite file?") from exc
    if row is None or row[0] is None:
        raise ProvenanceError(f"{path} has an empty MLMDEnv table: the MLMD store was never initialised.")
    return int(row[0])


def check_supported(version: int, where: str) -> None:
    """Raise when the store's schema version is not one frugal reads."""
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        supported = ", ".join(str(v) for v in SUPPORTED_SCHEMA_VERSIONS)
        raise ProvenanceError(
            f"{where} has MLMD schema version {version}; frugal reads schema version(s) {supported} "
            "(ml-metadata 1.14-1.17). For an older SQLite store pass --upgrade-copy (frugal "
            "upgrades a temporary copy and leaves the store as it is)."
        )


def check_server_reachable(spec: StoreSpec, timeout: float = 5.0) -> None:
    """Fail fast, with a clear message, when a MySQL/PostgreSQL server does not answer."""
    try:
        with socket.create_connection((spec.host, spec.port), timeout=timeout):
            return
    except OSError as exc:
        what = "MySQL/MariaDB" if spec.kind == "mysql" else "PostgreSQL"
        raise ProvenanceError(
            f"cannot reach the {what} server at {spec.host}:{spec.port} ({exc.strerror or exc}): "
            f"start the server or fix host/port in '{spec.uri}'."
        ) from exc


def connection_config(spec: StoreSpec, *, writable: bool = False):
    """Build the ml_metadata ``ConnectionConfig`` for a store (SQLite opened read-only unless
    ``writable``, then created when missing)."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    cfg = pb.ConnectionConfig()
    if spec.kind == "sqlite":
        cfg.sqlite.filename_uri = str(spec.path)
        cfg.sqlite.connection_mode = (pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE if writable
                                      else pb.SqliteMetadataSourceConfig.READONLY)
    elif spec.kind == "mysql":
        cfg.mysql.host = spec.host or ""
        cfg.mysql.port = spec.port or 3306
        cfg.mysql.database = spec.database or ""
        if spec.user:
            cfg.mysql.user = spec.user
        if spec.password:
            cfg.mysql.password = spec.password
        cfg.mysql.skip_db_creation = True
    elif spec.kind == "postgresql":
        cfg.postgresql.host = spec.host or ""
        cfg.postgresql.port = str(spec.port or 5432)
        cfg.postgresql.dbname = spec.database or ""
        if spec.user:
            cfg.postgresql.user = spec.user
        if spec.password:
            cfg.postgresql.password = spec.password
        cfg.postgresql.skip_db_creation = True
    else:  # pragma: no cover - parse_store only makes the kinds above
        raise ProvenanceError(f"unknown store kind {spec.kind!r}")
    return cfg


def open_metadata_store(spec: StoreSpec):
    """Open an ml_metadata ``MetadataStore`` on ``spec`` after checking that it can be read."""
    from ml_metadata.metadata_store import metadata_store

    if spec.kind == "sqlite":
        check_supported(sqlite_schema_version(spec.path), str(spec.path))
    else:
        check_server_reachable(spec)
    try:
        return metadata_store.MetadataStore(connection_config(spec))
    except Exception as exc:  # ml_metadata raises RuntimeError / errors.* with C++ status text
        text = str(exc)
        if "schema version" in text.lower() or "migration" in text.lower():
            supported = ", ".join(str(v) for v in SUPPORTED_SCHEMA_VERSIONS)
            raise ProvenanceError(
                f"{spec.uri}: unsupported MLMD schema ({text.strip()}); frugal reads schema "
                f"version(s) {supported}. Upgrade a copy with ml-metadata 1.17 and ingest the copy."
            ) from exc
        raise ProvenanceError(
            f"cannot open the MLMD store {spec.uri}: {text.strip()}. Check the address, database "
            "name and credentials, and that the database holds an MLMD store."
        ) from exc
