"""``tracescore collector serve`` settings: YAML file, then environment, then flags."""

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tracescore.schemas.errors import ConfigError

TOKEN_ENV = "TRACESCORE_COLLECTOR_TOKEN"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Listener(_Model):
    host: str = "0.0.0.0"
    port: int = Field(default=0, ge=0, le=65535)
    enabled: bool = True


class GrpcListener(Listener):
    port: int = Field(default=4317, ge=0, le=65535)


class HttpListener(Listener):
    port: int = Field(default=4318, ge=0, le=65535)


class QueryListener(Listener):
    # Loopback unless asked otherwise: the query port reads every stored trace.
    host: str = "127.0.0.1"
    port: int = Field(default=8124, ge=0, le=65535)


class TlsConfig(_Model):
    cert_file: Path
    key_file: Path


class AuthConfig(_Model):
    """Bearer-token auth for both OTLP protocols and for span-table writes on the query port.

    The token itself never goes in the file: it comes from ``token_env`` (an
    environment variable) or ``token_file``.
    """

    token_env: str = TOKEN_ENV
    token_file: Path | None = None

    def token(self) -> str | None:
        if self.token_file is not None:
            try:
                value = self.token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"auth.token_file {self.token_file}: {exc.strerror}") from exc
            if not value:
                raise ConfigError(f"auth.token_file {self.token_file} is empty")
            return value
        return os.environ.get(self.token_env) or None


class LimitsConfig(_Model):
    max_request_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    max_decompressed_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    max_items_per_request: int = Field(default=50_000, gt=0)
    max_attribute_value_length: int = Field(default=1024 * 1024, ge=0)
    max_concurrent_requests: int = Field(default=16, gt=0)


class SpoolConfig(_Model):
    dir: Path | None = None
    max_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    fsync: bool = True
    flush_interval_s: float = Field(default=0.2, gt=0)
    batch_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    engine_min_spans: int = Field(default=5_000, ge=0)


class CollectorConfig(_Model):
    store: str | None = None
    http: HttpListener = HttpListener()
    grpc: GrpcListener = GrpcListener()
    query: QueryListener = QueryListener()
    limits: LimitsConfig = LimitsConfig()
    spool: SpoolConfig = SpoolConfig()
    auth: AuthConfig | None = None
    tls: TlsConfig | None = None
    stats_interval_s: float = Field(default=30.0, ge=0)

    @model_validator(mode="after")
    def _distinct_ports(self) -> "CollectorConfig":
        used = [
            (name, listener.port)
            for name, listener in (("http", self.http), ("grpc", self.grpc), ("query", self.query))
            if listener.enabled and listener.port
        ]
        ports = [port for _, port in used]
        if len(set(ports)) != len(ports):
            raise ValueError(f"listeners share a port: {used}")
        return self


def load_collector_config(
    path: Path | None, overrides: dict[str, Any] | None = None
) -> CollectorConfig:
    """Read ``path`` (if given) and apply dotted overrides such as ``{"http.port": 0}``."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read collector config {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        data = loaded or {}
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[leaf] = value
    try:
        return CollectorConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        source = path or "collector settings"
        raise ConfigError(f"{source}: {where}: {first['msg']}") from exc
