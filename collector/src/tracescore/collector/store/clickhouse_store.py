"""The server backend: a ClickHouse server (or the collector's query server) over HTTP.

URL: ``clickhouse://[user[:password]@]host[:port][/database][?option=value&...]``;
``clickhouses://`` is the same over TLS. Defaults: user ``default``, port 8123
(8443 with TLS), database ``otel``. Options:

- ``secure=1``: TLS (as ``clickhouses://``); ``verify=0`` skips certificate checks;
  ``ca_cert=PATH`` trusts another CA.
- ``async_insert=1``: let the server batch small inserts (ClickHouse's
  ``async_insert``); ``wait_for_async_insert=0`` also stops waiting for the flush,
  so an acknowledged insert may still be lost.
- ``compress=lz4|zstd|gzip|0`` (default: lz4 for inserts, any for results).
- ``connect_timeout`` and ``send_receive_timeout``, in seconds.

Parameters are always bound on the server (``{name:Type}`` placeholders and
``param_<name>`` request parameters); values are never formatted into SQL.
"""

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pyarrow as pa
from clickhouse_connect import get_client
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from tracescore.collector.store.base import QueryParams, Store
from tracescore.schemas.ddl import quote_identifier
from tracescore.schemas.errors import ConfigError, StoreError

DEFAULT_DATABASE = "otel"
_SCHEMES = {"clickhouse": False, "clickhouses": True}
_BOOLEANS = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}
_COMPRESSIONS = ("lz4", "zstd", "gzip")
_PLACEHOLDER = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:[^{}]+\}")


@dataclass(frozen=True)
class ClickhouseOptions:
    """Where and how to connect, as parsed from a ``clickhouse://`` URL."""

    host: str = "localhost"
    port: int = 8123
    username: str = "default"
    password: str = field(default="", repr=False)
    database: str = DEFAULT_DATABASE
    secure: bool = False
    verify: bool = True
    ca_cert: str | None = None
    compress: bool | str = True
    async_insert: bool = False
    wait_for_async_insert: bool = True
    connect_timeout: float = 10.0
    send_receive_timeout: float = 300.0

    @property
    def url(self) -> str:
        """The URL without the password, for messages."""
        scheme = "clickhouses" if self.secure else "clickhouse"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{self.username}@{host}:{self.port}/{self.database}"

    @property
    def settings(self) -> dict[str, Any]:
        """ClickHouse settings sent with every request."""
        if not self.async_insert:
            return {}
        return {"async_insert": 1, "wait_for_async_insert": int(self.wait_for_async_insert)}


def parse_clickhouse_url(url: str) -> ClickhouseOptions:
    """Parse a ``clickhouse://`` / ``clickhouses://`` store URL; ConfigError says what is wrong."""
    shown = _redact(url)
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ConfigError(f"store {shown!r}: expected a clickhouse:// or clickhouses:// URL")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"store {shown!r}: the port is not a number from 0 to 65535") from None
    options = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    database = unquote(parts.path.strip("/")) or options.pop("database", DEFAULT_DATABASE)
    if "database" in options:
        raise ConfigError(f"store {shown!r} names the database both in its path and ?database=")
    quote_identifier(database)
    secure = _SCHEMES[parts.scheme]
    if "secure" in options:
        secure = secure or _flag(shown, "secure", options.pop("secure"))
    verify = _flag(shown, "verify", options.pop("verify", "1"))
    ca_cert = options.pop("ca_cert", None) or None
    compress = _compression(shown, options.pop("compress", "1"))
    async_insert = _flag(shown, "async_insert", options.pop("async_insert", "0"))
    wait = _flag(shown, "wait_for_async_insert", options.pop("wait_for_async_insert", "1"))
    connect_timeout = _seconds(shown, "connect_timeout", options.pop("connect_timeout", "10"))
    send_receive_timeout = _seconds(
        shown, "send_receive_timeout", options.pop("send_receive_timeout", "300")
    )
    if options:
        known = "async_insert, ca_cert, compress, connect_timeout, database, secure, "
        known += "send_receive_timeout, verify, wait_for_async_insert"
        raise ConfigError(
            f"unknown store option(s) in {shown!r}: {', '.join(sorted(options))} (known: {known})"
        )
    return ClickhouseOptions(
        host=parts.hostname or "localhost",
        port=port or (8443 if secure else 8123),
        username=unquote(parts.username or "") or "default",
        password=unquote(parts.password or ""),
        database=database,
        secure=secure,
        verify=verify,
        ca_cert=ca_cert,
        compress=compress,
        async_insert=async_insert,
        wait_for_async_insert=wait,
        connect_timeout=connect_timeout,
        send_receive_timeout=send_receive_timeout,
    )


def _redact(url: str) -> str:
    # user:password@host -> user:***@host, without parsing (the URL may be malformed).
    return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)


def _flag(url: str, name: str, value: str) -> bool:
    try:
        return _BOOLEANS[value.strip().lower()]
    except KeyError:
        raise ConfigError(f"store {url!r}: {name}={value!r} is not 1/0/true/false") from None


def _compression(url: str, value: str) -> bool | str:
    lowered = value.strip().lower()
    if lowered in _COMPRESSIONS:
        return lowered
    if lowered in _BOOLEANS:
        return _BOOLEANS[lowered]
    raise ConfigError(f"store {url!r}: compress={value!r} is not one of lz4, zstd, gzip, 1, 0")


def _seconds(url: str, name: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ConfigError(f"store {url!r}: {name}={value!r} is not a positive number of seconds")
    return seconds


class ClickhouseStore(Store):
    """A ClickHouse database reached over HTTP with clickhouse-connect.

    The client keeps no session (requests may run from several threads at once)
    and no default database: every table this store touches is qualified.
    """

    def __init__(self, options: ClickhouseOptions) -> None:
        super().__init__(options.database)
        self.options = options
        try:
            self._client: Client | None = get_client(
                host=options.host,
                port=options.port,
                username=options.username,
                password=options.password,
                secure=options.secure,
                verify=options.verify,
                ca_cert=options.ca_cert,
                compress=options.compress,
                connect_timeout=options.connect_timeout,
                send_receive_timeout=options.send_receive_timeout,
                settings=options.settings,
                autogenerate_session_id=False,
                dedicated_pool=True,
                client_name="tracescore",
            )
        except ClickHouseError as exc:
            raise StoreError(
                f"cannot connect to ClickHouse at {options.url}: {self._scrub(exc)}"
            ) from exc

    @classmethod
    def from_url(cls, url: str) -> "ClickhouseStore":
        return cls(parse_clickhouse_url(url))

    @property
    def location(self) -> str:
        return self.options.url

    def _connected(self) -> Client:
        if self._client is None:
            raise StoreError(f"the store at {self.location} is closed")
        return self._client

    def command(self, sql: str, params: QueryParams | None = None) -> None:
        bound = _server_params(sql, params)
        try:
            self._connected().command(sql, parameters=bound)
        except ClickHouseError as exc:
            raise StoreError(f"query failed on {self.location}: {self._scrub(exc)}") from exc

    def query_arrow(self, sql: str, params: QueryParams | None = None) -> pa.Table:
        bound = _server_params(sql, params)
        try:
            result = self._connected().query_arrow(sql, parameters=bound)
        except ClickHouseError as exc:
            raise StoreError(f"query failed on {self.location}: {self._scrub(exc)}") from exc
        if not isinstance(result, pa.Table):
            raise StoreError(f"{self.location} returned {type(result).__name__}, not Arrow")
        return result

    def insert_arrow(self, table: str, data: pa.Table) -> None:
        quote_identifier(table)
        try:
            self._connected().insert_arrow(table, data, database=self.database)
        except ClickHouseError as exc:
            raise StoreError(
                f"insert into {self.db}.{table} failed on {self.location}: {self._scrub(exc)}"
            ) from exc

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _scrub(self, exc: BaseException) -> str:
        text = str(exc)
        if self.options.password:
            text = text.replace(self.options.password, "***")
        return text


def _server_params(sql: str, params: QueryParams | None) -> dict[str, Any] | None:
    """Parameters for server-side binding only.

    clickhouse-connect formats values into the SQL client-side when the query has
    no ``{name:Type}`` placeholder for them; refusing that keeps values out of SQL.
    """
    if not params:
        return None
    placeholders = set(_PLACEHOLDER.findall(sql))
    unbound = sorted(name for name in params if name not in placeholders)
    if unbound:
        raise StoreError(
            f"query parameter(s) {', '.join(unbound)} have no {{name:Type}} placeholder in the "
            "SQL (parameters are bound on the server only)"
        )
    binary = sorted(
        name for name, v in params.items() if isinstance(v, bytes | bytearray | memoryview)
    )
    if binary:
        raise StoreError(f"query parameter(s) {', '.join(binary)}: binary values are not bound")
    return dict(params)
