"""Configuration of `frugal serve`: command-line options, optionally a TOML file beneath them."""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

__all__ = ["ServiceConfig", "ConfigError", "load_toml", "is_loopback", "MODES"]

MODES = ("enforce", "shadow", "off")   # what a pipeline's decisions do (docs/service.md, "Modes")


class ConfigError(ValueError):
    """The service configuration is invalid; the message says which setting and how to fix it."""


@dataclass(frozen=True)
class ServiceConfig:
    """Everything `frugal serve` needs (see docs/service.md for each setting)."""

    stores: tuple[str, ...]
    warehouse: Path
    source_ids: tuple[str, ...] | None = None
    host: str = "127.0.0.1"
    port: int = 8470
    token_file: Path | None = None
    ingest_every_s: float = 60.0
    refit_after: int = 200            # refit when this many new trainings arrived since the last fit
    refit_every_s: float = 86400.0    # and at least this often
    objective: str = "freshness"      # what the budget bounds: freshness (added age) or pushes (lost)
    max_added_age: float = 0.05       # freshness: the deployed models at most this much older on average
    max_model_age_h: float | None = None  # model-age SLO (hours); None: 2x each lane's longest interval
    max_lost_pushes: float = 0.02
    max_body_bytes: int = 1_000_000
    sql_timeout_s: float = 10.0
    sql_max_rows: int = 10_000
    report: bool = True               # rebuild the HTML report after ingests that changed data
    report_every_s: float = 600.0     # ... at most this often (drawing figures takes seconds of CPU)
    retry_every_s: float = 10.0       # retry a failing source this often (at most every ingest_every_s)
    background_nice: int = 10         # the refresher thread's niceness (Linux): requests get the CPU first
    refit_process: bool = True        # learn in a child process on a snapshot: the requests keep the interpreter
    refit_timeout_s: float = 7200.0   # a child refit that takes longer is stopped (the service learns in-process)
    mode: str = "enforce"             # pipelines present when the service first loaded the stores: enforce|shadow|off
    new_pipeline_mode: str = "shadow"  # pipelines first seen later (by an ingest or a decision)
    explore: float = 0.05             # enforce: a model prune runs anyway with this probability (0: never)
    explore_seed: int = 0             # seed of the exploration draws
    memory_limit: int | str | None = None  # bytes (or "6GB") the service and its refit may use; None: 1/3 of RAM
    learn_max_rows: int | None = None  # trainings a refit learns from at most; None: derived from memory_limit

    def __post_init__(self) -> None:
        if not self.stores:
            raise ConfigError("no store given: pass at least one MLMD store (SQLite path or mysql:// URL) "
                              "or list them under `stores` in the config file")
        if self.source_ids is not None and len(self.source_ids) != len(self.stores):
            raise ConfigError(f"{len(self.source_ids)} source ids for {len(self.stores)} stores: give one per store")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port {self.port} is not a TCP port (1-65535)")
        if self.ingest_every_s <= 0 or self.refit_every_s <= 0 or self.refit_after < 1:
            raise ConfigError("ingest_every, refit_every must be > 0 seconds and refit_after >= 1")
        if self.objective not in ("freshness", "pushes"):
            raise ConfigError(f"objective must be \"freshness\" or \"pushes\", got {self.objective!r}")
        if not 0 <= self.max_added_age < 10:
            raise ConfigError(f"max_added_age must be a share >= 0 (0.05 = 5% older), got {self.max_added_age}")
        if self.max_model_age_h is not None and not self.max_model_age_h > 0:
            raise ConfigError(f"max_model_age_h must be > 0 hours, got {self.max_model_age_h}")
        if not 0 <= self.max_lost_pushes < 1:
            raise ConfigError(f"max_lost_pushes must be a share in [0, 1), got {self.max_lost_pushes}")
        if self.max_body_bytes < 1024 or self.sql_timeout_s <= 0 or self.sql_max_rows < 1:
            raise ConfigError("max_body_bytes >= 1024, sql_timeout_s > 0 and sql_max_rows >= 1 are required")
        if self.refit_timeout_s <= 0:
            raise ConfigError(f"refit_timeout_s must be > 0 seconds, got {self.refit_timeout_s}")
        if not 0 <= self.background_nice <= 19:
            raise ConfigError(f"background_nice must be a niceness from 0 to 19, got {self.background_nice}")
        for key in ("mode", "new_pipeline_mode"):
            if getattr(self, key) not in MODES:
                raise ConfigError(f"{key} must be one of {', '.join(MODES)}, got {getattr(self, key)!r}")
        if isinstance(self.explore, bool) or not isinstance(self.explore, (int, float)) or not 0 <= self.explore < 1:
            raise ConfigError(f"explore must be a probability in [0, 1) (0.05 = 5% of model prunes run anyway), "
                              f"got {self.explore!r}")
        if isinstance(self.explore_seed, bool) or not isinstance(self.explore_seed, int):
            raise ConfigError(f"explore_seed must be an integer, got {self.explore_seed!r}")
        from frugal.service.memory import default_limit, parse_size
        try:
            object.__setattr__(self, "memory_limit", default_limit() if self.memory_limit is None
                               else parse_size(self.memory_limit))
        except ValueError as exc:
            raise ConfigError(f"memory_limit: {exc}") from exc
        if self.memory_limit < 256 * 1000 ** 2:
            raise ConfigError(f"memory_limit must be at least 256MB, got {self.memory_limit} bytes")
        if self.learn_max_rows is not None and (isinstance(self.learn_max_rows, bool)
                                                or not isinstance(self.learn_max_rows, int)
                                                or self.learn_max_rows < 200):
            raise ConfigError(f"learn_max_rows must be an integer >= 200 (trainings), got {self.learn_max_rows!r}")
        if self.token_file is None and not is_loopback(self.host):
            raise ConfigError(f"refusing to listen on {self.host} without a token: anyone who can reach it could "
                              "query the warehouse and steer pipelines. Pass --token-file FILE (a file holding one "
                              "secret line) or bind to 127.0.0.1")

    @property
    def policy_path(self) -> Path:
        return self.warehouse.with_name(self.warehouse.name + ".policy")

    @property
    def snapshot_path(self) -> Path:
        return self.warehouse.with_name(self.warehouse.name + ".upcoming")

    @property
    def report_dir(self) -> Path:
        return self.warehouse.with_name(self.warehouse.name + ".report")

    def read_token(self) -> str | None:
        """The bearer token from ``token_file`` (first line, stripped), or None."""
        if self.token_file is None:
            return None
        try:
            token = Path(self.token_file).read_text(encoding="utf-8").strip().splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read the token file {self.token_file}: {exc}") from exc
        if not token or len(token[0].strip()) < 16:
            raise ConfigError(f"the token file {self.token_file} must hold a secret of at least 16 characters "
                              "on its first line (e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe())'`)")
        return token[0].strip()


def is_loopback(host: str) -> bool:
    """Whether ``host`` names a loopback address only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_KEYS = {f.name for f in fields(ServiceConfig)} | {"ingest_every", "refit_every", "token"}


def load_toml(path: Path) -> dict:
    """Settings from a TOML file (top level or a ``[serve]`` table), with names as in ServiceConfig."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    data = data.get("serve", data)
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ConfigError(f"unknown setting(s) in {path}: {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}")
    if "ingest_every" in data:
        data["ingest_every_s"] = data.pop("ingest_every")
    if "refit_every" in data:
        data["refit_every_s"] = data.pop("refit_every")
    for key in ("stores", "source_ids"):
        if key in data:
            data[key] = tuple(str(s) for s in data[key])
    for key in ("warehouse", "token_file"):
        if key in data and data[key] is not None:
            data[key] = (Path(path).parent / data[key]) if not Path(data[key]).is_absolute() else Path(data[key])
    return data


def merged(base: dict, overrides: dict) -> ServiceConfig:
    """A ServiceConfig from file settings with command-line values (not None) on top."""
    values = {**base, **{k: v for k, v in overrides.items() if v is not None}}
    if "warehouse" not in values:
        raise ConfigError("no warehouse given: pass --warehouse FILE or set `warehouse` in the config file")
    values["warehouse"] = Path(values["warehouse"])
    return ServiceConfig(**values)

