"""Stores: where spans and scores live. ``open_store`` picks a backend from a URL."""

import os
from pathlib import Path
from urllib.parse import parse_qs

from tracescore.collector.store.base import QueryParams, Store
from tracescore.schemas.errors import ConfigError

STORE_ENV = "TRACESCORE_STORE"
DEFAULT_STORE = "chdb:.tracescore"
DEFAULT_DATABASE = "otel"


def store_url(explicit: str | None = None) -> str:
    return explicit or os.environ.get(STORE_ENV) or DEFAULT_STORE


def open_store(url: str | None = None) -> Store:
    """Open the store at ``url`` (default: ``$TRACESCORE_STORE``, else ``./.tracescore``).

    Forms:

    - embedded chDB: ``chdb:PATH``, ``chdb://PATH`` or a bare path, each with an
      optional ``?database=NAME`` (default ``otel``, the OpenTelemetry Collector
      exporter's);
    - a ClickHouse server, or the query server of a running ``tracescore collector
      serve``: ``clickhouse://user:password@host:8123/database?option=...``, or
      ``clickhouses://`` for TLS (database default ``otel``; options in
      :mod:`tracescore.collector.store.clickhouse_store`).
    """
    resolved = store_url(url)
    if resolved.startswith(("clickhouse://", "clickhouses://")):
        from tracescore.collector.store.clickhouse_store import ClickhouseStore

        return ClickhouseStore.from_url(resolved)
    location, _, query = resolved.partition("?")
    options = {k: v[-1] for k, v in parse_qs(query).items()}
    database = options.pop("database", DEFAULT_DATABASE)
    if options:
        raise ConfigError(f"unknown store option(s) in {resolved!r}: {', '.join(sorted(options))}")
    if location.startswith(("http://", "https://")):
        raise ConfigError(
            f"store {resolved!r}: name a ClickHouse server as clickhouse://host:port/database "
            "(or clickhouses:// for TLS)"
        )
    for prefix in ("chdb://", "chdb:"):
        if location.startswith(prefix):
            location = location[len(prefix) :]
            break
    if not location:
        raise ConfigError(f"store {resolved!r} names no path")
    from tracescore.collector.store.chdb_store import ChdbStore

    return ChdbStore(Path(location), database=database)


__all__ = ["DEFAULT_STORE", "STORE_ENV", "QueryParams", "Store", "open_store", "store_url"]
