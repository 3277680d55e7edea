"""Typed settings. Precedence: flag > environment > darkroom.toml > defaults (CONTRACT §1)."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Callable, Mapping

import msgspec

from .retention import parse_age, parse_size


class ConfigError(Exception):
    """A setting that cannot be used; the message names the key."""


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class NatsTlsConfig(_Section):
    ca: str | None = None  # the CA that signed the servers' certificates
    cert: str | None = None  # a client certificate, where the servers ask for one
    key: str | None = None


class NatsConfig(_Section):
    url: str | None = None
    sync_interval: str = "always"
    replicas: int = 1
    duplicate_window_s: float = 300.0
    creds: str | None = None  # a credentials file (user JWT and nkey seed)
    nkey: str | None = None  # a file holding a user nkey seed
    tls: NatsTlsConfig = msgspec.field(default_factory=NatsTlsConfig)
    max_bytes: int | str = 0  # e.g. "50GB"; 0: no limit
    max_age: float | str = 0  # e.g. "365d"; 0: no limit


class PipelineConfig(_Section):
    # Job slots are coroutines that mostly wait on NATS and the disk, so slots are cheap: image work
    # passes the worker's one image gate (processing.workers + 1 calls in flight), whatever the slots.
    max_parallel_jobs: int = 64
    priority_lane_slots: int | None = None  # None: all slots but one (at least one takes normal work first)
    priority_threshold: int = 90
    max_attempts: int = 3
    job_timeout_s: float = 600.0
    ack_wait_s: float = 30.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    plugins: list[str] = []

    @property
    def priority_only_slots(self) -> int:
        """The slots that take only priority work."""
        if self.priority_lane_slots is None:
            return max(0, self.max_parallel_jobs - 1)
        return self.priority_lane_slots


class DerivativeConfig(_Section):
    max_dim: int
    quality: int


class ProcessingConfig(_Section):
    thumbnail: DerivativeConfig = msgspec.field(default_factory=lambda: DerivativeConfig(max_dim=800, quality=70))
    preview: DerivativeConfig = msgspec.field(default_factory=lambda: DerivativeConfig(max_dim=2048, quality=80))
    workers: int = msgspec.field(default_factory=lambda: os.cpu_count() or 1)
    max_megapixels: float = 250.0


class MaintenanceConfig(_Section):
    interval_s: float = 3600.0
    trash_ttl_s: float = 86400.0


class UiConfig(_Section):
    include_maintenance_jobs: bool = False


class ApiConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    max_upload_mb: float = 200.0


class TasksConfig(_Section):
    definitions: str | None = None


class HealthConfig(_Section):
    port: int | None = None  # /healthz, /readyz, /metrics of a worker, orchestrator or projector; 0: any free port
    host: str = "127.0.0.1"


class UpConfig(_Section):
    # `darkroom up`'s Python processes: 2 runs the worker in a second one (both cores busy), 1 all in one.
    processes: int = msgspec.field(default_factory=lambda: min(2, os.cpu_count() or 1))


class Config(_Section):
    nats: NatsConfig = msgspec.field(default_factory=NatsConfig)
    pipeline: PipelineConfig = msgspec.field(default_factory=PipelineConfig)
    processing: ProcessingConfig = msgspec.field(default_factory=ProcessingConfig)
    maintenance: MaintenanceConfig = msgspec.field(default_factory=MaintenanceConfig)
    ui: UiConfig = msgspec.field(default_factory=UiConfig)
    api: ApiConfig = msgspec.field(default_factory=ApiConfig)
    tasks: TasksConfig = msgspec.field(default_factory=TasksConfig)
    health: HealthConfig = msgspec.field(default_factory=HealthConfig)
    up: UpConfig = msgspec.field(default_factory=UpConfig)


ENV_PREFIX = "DARKROOM_"
_DURATION = re.compile(r"^(always|\d+(ms|s|m|h))$")


def load_config(
    data_dir: Path,
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Merge every layer into one tree, then check it once so errors name the key."""
    tree: dict[str, Any] = msgspec.to_builtins(Config())
    path = config_path or data_dir / "darkroom.toml"
    if config_path is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    if path.is_file():
        try:
            _merge(tree, tomllib.loads(path.read_text()))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    for key, value in (environ if environ is not None else os.environ).items():
        if key.startswith(ENV_PREFIX):
            _set(tree, _env_key(key), value)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set(tree, dotted.split("."), value)
    try:
        config = msgspec.convert(tree, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_name_key(str(exc))) from None
    _check(config)
    return config


def _env_key(name: str) -> list[str]:
    return [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]


def _set(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(path)}: {part} is not a section")
        node = child
    if isinstance(value, str) and path[-1] == "plugins":
        value = [item for item in value.split(",") if item]
    node[path[-1]] = value


def _merge(into: dict[str, Any], layer: Mapping[str, Any]) -> None:
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


def _name_key(message: str) -> str:
    """msgspec says `... - at `$.pipeline.x``; say it as the dotted key an operator writes."""
    match = re.search(r"unknown field `([^`]+)`(?: - at `\$\.?([^`]*)`)?", message)
    if match:
        where = f"{match.group(2)}." if match.group(2) else ""
        return f"unknown configuration key {where}{match.group(1)}"
    match = re.search(r"^(.*) - at `\$\.([^`]+)`", message)
    if match:
        return f"configuration key {match.group(2)}: {match.group(1)}"
    return f"configuration: {message}"


def _check(config: Config) -> None:
    p = config.pipeline
    n = config.nats
    rules = [
        (p.max_parallel_jobs >= 1, "pipeline.max_parallel_jobs must be at least 1"),
        (
            0 <= p.priority_only_slots <= p.max_parallel_jobs,
            "pipeline.priority_lane_slots must be between 0 and pipeline.max_parallel_jobs",
        ),
        (p.max_attempts >= 1, "pipeline.max_attempts must be at least 1"),
        (p.job_timeout_s > 0, "pipeline.job_timeout_s must be positive"),
        (p.ack_wait_s >= 1, "pipeline.ack_wait_s must be at least 1"),
        (
            bool(_DURATION.match(config.nats.sync_interval)),
            "nats.sync_interval must be `always` or a duration like `2m`",
        ),
        (config.nats.replicas in (1, 3, 5), "nats.replicas must be 1, 3 or 5"),
        (not (n.creds and n.nkey), "nats.creds and nats.nkey are two ways to sign in: give one"),
        ((n.tls.cert is None) == (n.tls.key is None), "nats.tls.cert and nats.tls.key go together"),
        (_parses(parse_size, n.max_bytes), "nats.max_bytes must be a size like 50GB, or 0 for no limit"),
        (_parses(parse_age, n.max_age), "nats.max_age must be a duration like 365d, or 0 for no limit"),
        (config.processing.workers >= 1, "processing.workers must be at least 1"),
        (1 <= config.api.port <= 65535 or config.api.port == 0, "api.port must be a TCP port"),
        (config.health.port is None or 0 <= config.health.port <= 65535, "health.port must be a TCP port"),
        (config.maintenance.interval_s >= 0, "maintenance.interval_s must not be negative"),
        (config.up.processes in (1, 2), "up.processes must be 1 or 2"),
    ]
    for ok, message in rules:
        if not ok:
            raise ConfigError(message)


def _parses(parse: Callable[[Any], object], value: object) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True
