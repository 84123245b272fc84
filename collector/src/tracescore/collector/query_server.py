"""A ClickHouse-compatible HTTP interface over the embedded chDB store.

chDB locks its data directory to one process. While ``tracescore collector serve``
owns the store, other tracescore processes reach it through this interface, with
the same client (clickhouse-connect, :class:`ClickhouseStore`) that talks to a real
ClickHouse server.

It implements the part of https://clickhouse.com/docs/interfaces/http that
clickhouse-connect uses: ``GET|POST /`` with the SQL in the ``query`` parameter
and/or the body (an INSERT's data follows its ``FORMAT`` clause or ``VALUES``),
multipart form fields, ``database``, ``default_format``, ``query_id``,
``param_<name>`` values for ``{name:Type}`` placeholders, any other parameter as a
query setting, gzip/deflate/lz4/zstd request bodies, the ``X-ClickHouse-*``
response headers, ClickHouse-style errors and ``/ping``. Responses are never
compressed (identity is always acceptable to a client). Sessions are not kept:
every request runs on a fresh chDB connection, so ``SET``/``USE``/temporary tables
last for one request.

Security. Anyone who can reach the port can read; the server binds 127.0.0.1 by
default. Without the collector's auth token, a request may not write to or
restructure the span tables (``otel_traces*``, ``otel_logs*``), may not run
statements outside a small set of table reads/writes (no ``SYSTEM``, ``ATTACH``,
dictionaries, database-level DDL, ...), and may not reach outside the database
(``file()``, ``url()``, ``INTO OUTFILE``, engines other than the local ones, or a
database that maps table names to files, such as chDB's ``default``). Without a
``database`` parameter, names resolve in the store's database.
Statements are classified on the engine's own rendering of the SQL
(``formatQuerySingleLine``, which also refuses multi-statements), so comments,
quoting and escapes cannot hide a table name, and INSERT data is handed to the
engine as data, never as SQL.
"""

import base64
import binascii
import email.parser
import email.policy
import hmac
import importlib
import json
import logging
import re
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tracescore.collector.server_thread import ServerThread
from tracescore.collector.store.chdb_store import ChdbStore, escape_param
from tracescore.schemas.errors import TracescoreError

log = logging.getLogger(__name__)

DEFAULT_QUERY_PORT = 8124
DEFAULT_MAX_BODY_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_CONCURRENT_QUERIES = 8
SERVER_DISPLAY_NAME = "tracescore"

# Name prefixes rather than the four names, so the cluster layout's
# ``otel_traces_local`` & co. are covered too.
SPAN_TABLE_PREFIXES = ("otel_traces", "otel_logs")

# The statement part of an INSERT is looked for in this much of the request.
_MAX_STATEMENT_BYTES = 1024 * 1024
_INSERT_CHUNK_BYTES = 8 * 1024 * 1024
_MAX_ERROR_CHARS = 16 * 1024

# Request parameters that belong to the HTTP layer, never passed on as settings.
_TRANSPORT_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "enable_http_compression",
        "http_zlib_compression_level",
        "client_protocol_version",
        "role",
        "quota_key",
        "user",
        "password",
        "add_http_cors_header",
        "cancel_http_readonly_queries_on_client_close",
        "http_wait_end_of_query",
        "http_response_buffer_size",
        "http_write_exception_in_output_format",
    }
)
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FORMAT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# chDB's Python layer turns these into Python objects instead of bytes.
_CHDB_ONLY_FORMATS = frozenset({"arrowtable", "dataframe", "datastore"})

_ERROR_NAMES = {
    6: "CANNOT_PARSE_TEXT",
    48: "NOT_IMPLEMENTED",
    62: "SYNTAX_ERROR",
    73: "UNKNOWN_FORMAT",
    81: "UNKNOWN_DATABASE",
    89: "UNKNOWN_COMPRESSION_METHOD",
    115: "UNKNOWN_SETTING",
    164: "READONLY",
    229: "QUERY_IS_TOO_LARGE",
    271: "CANNOT_DECOMPRESS",
    497: "ACCESS_DENIED",
    516: "AUTHENTICATION_FAILED",
    1002: "UNKNOWN_EXCEPTION",
}
# The statuses ClickHouse's HTTP handler answers for these codes; everything else is 500.
_BAD_REQUEST = (6, 25, 26, 27, 33, 36, 41, 42, 43, 53, 62, 69, 89, 117, 271, 456, 457)
_NOT_FOUND = (46, 47, 50, 56, 60, 63, 73, 78, 81, 115)
_FORBIDDEN = (164, 497, 516)
_HTTP_STATUS = {
    **dict.fromkeys(_BAD_REQUEST, 400),
    **dict.fromkeys(_NOT_FOUND, 404),
    **dict.fromkeys(_FORBIDDEN, 403),
    229: 413,
    48: 501,
}
_ENGINE_CODE = re.compile(r"Code: (\d+)\.")
_ENGINE_NAME = re.compile(r"\(([A-Z][A-Z0-9_]*)\)(?:\s*\(version [^)]*\))?\s*$")
_VERSION_TRAILER = re.compile(r"\s*\(version [^)]*\)\s*$")
_FORMAT_QUERY_SCOPE = ": In scope SELECT formatQuerySingleLine("


class QueryError(Exception):
    """An error answered the way ClickHouse answers it: code, symbolic name, HTTP status."""

    def __init__(self, code: int, message: str, *, name: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.name = name or _ERROR_NAMES.get(code, "UNKNOWN_EXCEPTION")
        self.message = message
        self.status = _HTTP_STATUS.get(code, 500)


def _engine_error(exc: BaseException) -> QueryError:
    """A chDB exception as ClickHouse would have reported it over HTTP."""
    text = str(exc)
    start = text.find("Code: ")
    if start < 0:
        return QueryError(1002, text.strip() or type(exc).__name__)
    text = text[start:].strip()
    match = _ENGINE_CODE.match(text)
    name_match = _ENGINE_NAME.search(text)
    name = name_match.group(1) if name_match else None
    # Syntax errors are found while classifying; drop the wrapper query from the message.
    scope = text.find(_FORMAT_QUERY_SCOPE)
    if scope >= 0:
        text = text[:scope].rstrip(" .") + (f". ({name})" if name else "")
    code = int(match.group(1)) if match else 1002
    message = text[match.end() :].strip() if match else text
    message = message.removeprefix("DB::Exception:").strip()
    message = _VERSION_TRAILER.sub("", message)
    if name and message.endswith(f"({name})"):
        message = message[: -len(f"({name})")].rstrip(" .")
    return QueryError(code, message, name=name)


# -- lexing -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # word, quoted (identifier), string, punct, error
    text: str
    start: int
    end: int


_WHITESPACE = " \t\n\r\f\v"
_WORD = re.compile(r"[A-Za-z0-9_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")
_QUOTED = {
    "'": re.compile(r"'(?:[^'\\]|\\.|'')*'", re.S),
    "`": re.compile(r"`(?:[^`\\]|\\.|``)*`", re.S),
    '"': re.compile(r'"(?:[^"\\]|\\.|"")*"', re.S),
}
_HEREDOC = re.compile(r"\$([A-Za-z0-9_]*)\$")


def _tokens(text: str) -> Iterator[_Token]:
    """ClickHouse's lexer, enough of it to find statement structure; skips whitespace/comments."""
    pos, end = 0, len(text)
    while pos < end:
        char = text[pos]
        if char in _WHITESPACE:
            pos += 1
        elif text.startswith("--", pos) or (char == "#" and text[pos + 1 : pos + 2] in (" ", "!")):
            newline = text.find("\n", pos)
            pos = end if newline < 0 else newline + 1
        elif text.startswith("/*", pos):
            pos = _skip_block_comment(text, pos)
            if pos < 0:
                yield _Token("error", "/*", end, end)
                return
        elif char in _QUOTED:
            match = _QUOTED[char].match(text, pos)
            if match is None:
                yield _Token("error", char, pos, pos + 1)
                return
            yield _Token("string" if char == "'" else "quoted", match.group(), pos, match.end())
            pos = match.end()
        elif char == "$" and (heredoc := _HEREDOC.match(text, pos)) is not None:
            close = text.find(heredoc.group(), heredoc.end())
            if close < 0:
                yield _Token("error", "$", pos, pos + 1)
                return
            stop = close + len(heredoc.group())
            yield _Token("string", text[pos:stop], pos, stop)
            pos = stop
        elif (word := _WORD.match(text, pos)) is not None:
            yield _Token("word", word.group(), pos, word.end())
            pos = word.end()
        else:
            yield _Token("punct", char, pos, pos + 1)
            pos += 1


def _skip_block_comment(text: str, pos: int) -> int:
    # ClickHouse nests /* */ comments.
    depth, pos = 1, pos + 2
    while depth:
        opening, closing = text.find("/*", pos), text.find("*/", pos)
        if closing < 0:
            return -1
        if 0 <= opening < closing:
            depth, pos = depth + 1, opening + 2
        else:
            depth, pos = depth - 1, closing + 2
    return pos


@dataclass(frozen=True)
class _InsertSplit:
    statement_end: int  # the statement is text[:statement_end]
    data_start: int
    input_format: str


def _split_insert(text: str) -> _InsertSplit | None:
    """Where ``INSERT ... FORMAT f`` / ``INSERT ... VALUES`` ends and its data begins."""
    tokens = _tokens(text)
    first = next(tokens, None)
    if first is None or first.kind != "word" or first.text.upper() != "INSERT":
        return None
    depth = 0
    target_seen = False
    for token in tokens:
        if token.kind == "error":
            return None
        if token.kind == "punct":
            if token.text in "([":
                depth += 1
            elif token.text in ")]":
                depth -= 1
            elif token.text == ";" and depth == 0:
                return None
            continue
        if depth or token.kind not in ("word", "quoted"):
            continue
        keyword = token.text.upper() if token.kind == "word" else ""
        if not target_seen:
            target_seen = keyword not in ("INTO", "TABLE", "FUNCTION")
            continue
        if keyword == "VALUES":
            return _InsertSplit(token.end, token.end, "Values")
        if keyword == "FORMAT":
            name = next(tokens, None)
            if name is None or name.kind != "word":
                return None
            # As ClickHouse does: the data starts after the first newline, if any.
            data = name.end
            while data < len(text) and text[data] in " \t\f":
                data += 1
            if text.startswith("\r", data):
                data += 1
            if text.startswith("\n", data):
                data += 1
            return _InsertSplit(name.end, data, name.text)
        if keyword in ("SELECT", "WITH", "FROM"):
            return None
    return None


# -- classification -----------------------------------------------------------------

_READ_STATEMENTS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN"})
# First keyword -> the object kinds it may name without the token (after OR REPLACE
# and TEMPORARY); None: any.
_PLAIN_WRITES: dict[str, frozenset[str] | None] = {
    "INSERT": frozenset({"INTO"}),
    "CREATE": frozenset({"TABLE", "VIEW", "MATERIALIZED", "DATABASE"}),
    "ALTER": frozenset({"TABLE"}),
    "DROP": frozenset({"TABLE", "VIEW"}),
    "TRUNCATE": frozenset({"TABLE"}),
    "RENAME": frozenset({"TABLE"}),
    "EXCHANGE": frozenset({"TABLES"}),
    "OPTIMIZE": frozenset({"TABLE"}),
    "DELETE": frozenset({"FROM"}),
    "UPDATE": None,
    "SET": None,
    "USE": None,
}
_LOCAL_ENGINES = frozenset(
    {"Memory", "Log", "TinyLog", "StripeLog", "Null", "Set", "Join", "Atomic", "Ordinary"}
)
# Table functions, engines and functions that read or write files, other servers,
# processes or the server's Python objects.
_EXTERNAL_PREFIXES = (
    "file",
    "url",
    "s3",
    "gcs",
    "oss",
    "cosn",
    "azure",
    "hdfs",
    "hive",
    "iceberg",
    "deltalake",
    "hudi",
    "paimon",
    "remote",
    "cluster",
    "mysql",
    "postgres",
    "sqlite",
    "mongo",
    "redis",
    "jdbc",
    "odbc",
    "executable",
    "python",
    "arrowflight",
    "ytsaurus",
    "kafka",
    "rabbitmq",
    "nats",
    "meilisearch",
    "prometheus",
    "distributed",
    "disk",
)
# Database engines that only hold tables. Others map names to files or other
# servers: chDB's "default" database is an Overlay that reads any file path
# named as a table (SELECT * FROM default.`/etc/passwd`).
_PLAIN_DATABASE_ENGINES = frozenset({"Atomic", "Ordinary", "Memory", "Replicated", "Lazy"})
_IDENTIFIER_PARAM = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*Identifier\s*\}")


@dataclass(frozen=True)
class _Statement:
    canonical: str
    keyword: str
    is_read: bool
    # Why the statement needs the auth token; None when anyone may run it.
    restricted: str | None
    output_format: str | None
    insert_format: str | None = None
    insert_sql: str | None = None


def _touches_span_table(token: _Token) -> str | None:
    if token.kind == "word":
        names = [token.text.lower()]
    elif token.kind == "quoted":
        names = [token.text[1:-1].replace("\\", "").lower()]
    elif token.kind == "string":
        # A table name can be spelled as a string (engine and table function
        # arguments); any mention counts.
        names = [token.text.lower()]
    else:
        return None
    for name in names:
        for prefix in SPAN_TABLE_PREFIXES:
            hit = name.startswith(prefix) if token.kind == "word" else prefix in name
            if hit:
                return name.strip("'`\"")
    return None


def _classify(canonical: str, params: Mapping[str, str]) -> _Statement:
    tokens = [t for t in _tokens(canonical) if t.kind != "error"]
    words = [t.text.upper() if t.kind == "word" else "" for t in tokens]
    keyword = words[0] if words else ""

    depth = 0
    depths: list[int] = []
    for token in tokens:
        if token.kind == "punct" and token.text in ")]":
            depth -= 1
        depths.append(depth)
        if token.kind == "punct" and token.text in "([":
            depth += 1

    output_format: str | None = None
    insert_format: str | None = None
    for i, word in enumerate(words[:-1]):
        if word == "FORMAT" and depths[i] == 0 and tokens[i + 1].kind == "word":
            after = words[i + 2] if i + 2 < len(words) else ""
            if i + 2 == len(tokens) or after == "SETTINGS":
                output_format = tokens[i + 1].text
                if keyword == "INSERT" and i + 2 == len(tokens):
                    insert_format = output_format
                    output_format = None
    insert_sql = None
    if insert_format is not None:
        insert_sql = canonical[: tokens[-2].start].rstrip()

    restricted: str | None = None
    functions = {
        tokens[i].text.strip('`"').lower()
        for i in range(len(tokens) - 1)
        if tokens[i].kind in ("word", "quoted") and tokens[i + 1].text == "("
    }
    external = sorted(f for f in functions if f.startswith(_EXTERNAL_PREFIXES))
    if external:
        restricted = f"{external[0]}() reaches outside the database"
    elif "INFILE" in words or "OUTFILE" in words:
        restricted = "INFILE/OUTFILE reads or writes files of the server"

    is_read = keyword in _READ_STATEMENTS
    if keyword in ("SELECT", "WITH", "EXPLAIN") and "INSERT" in words:
        is_read = False
    if not is_read and restricted is None:
        restricted = _write_restriction(canonical, tokens, words, depths, params)
    return _Statement(
        canonical, keyword, is_read, restricted, output_format, insert_format, insert_sql
    )


def _write_restriction(
    canonical: str,
    tokens: list[_Token],
    words: list[str],
    depths: list[int],
    params: Mapping[str, str],
) -> str | None:
    """Why a statement that is not a plain read needs the token, or None."""
    for token in tokens:
        table = _touches_span_table(token)
        if table is not None:
            return f"the statement touches the span table {table}"
    for name in _IDENTIFIER_PARAM.findall(canonical):
        value = params.get(name, "").lower()
        if any(prefix in value for prefix in SPAN_TABLE_PREFIXES):
            return f"the statement touches the span table {value}"
    keyword = words[0] if words else ""
    if keyword not in _PLAIN_WRITES:
        return f"{keyword or 'these'} statements are reserved to the collector's owner"
    allowed = _PLAIN_WRITES[keyword]
    kind_at = 1
    while kind_at < len(words) and words[kind_at] in ("OR", "REPLACE", "TEMPORARY"):
        kind_at += 1
    kind = words[kind_at] if kind_at < len(words) else ""
    if (
        keyword == "CREATE"
        and kind == "MATERIALIZED"
        and words[kind_at + 1 : kind_at + 2] != ["VIEW"]
    ):
        kind = "MATERIALIZED ?"
    if allowed is not None and kind not in allowed:
        return f"{keyword} {kind} statements are reserved to the collector's owner"
    if keyword == "INSERT" and "FUNCTION" in words[kind_at + 1 : kind_at + 3]:
        return "INSERT INTO FUNCTION writes outside the database"
    if keyword == "CREATE":
        return _create_restriction(tokens, words, depths)
    return None


def _create_restriction(tokens: list[_Token], words: list[str], depths: list[int]) -> str | None:
    for i, word in enumerate(words):
        if word == "ENGINE" and depths[i] == 0:
            names = [t.text.strip('`"') for t in tokens[i + 1 : i + 3] if t.kind != "punct"]
            engine = names[0] if names else ""
            if not (engine.endswith("MergeTree") or engine in _LOCAL_ENGINES):
                return f"the {engine or 'given'} engine is reserved to the collector's owner"
    for i, word in enumerate(words):
        if word == "AS" and depths[i] == 0:
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            # AS SELECT / AS (SELECT ...) fill a new table; AS <table> copies a
            # table's engine, which may write elsewhere.
            if (
                following is not None
                and following.text != "("
                and words[i + 1] not in ("SELECT", "WITH")
            ):
                return "CREATE ... AS <table> copies another table's engine"
            break
    return None


def _names_database(canonical: str, databases: set[str]) -> str | None:
    """The first of ``databases`` the statement qualifies a name with, or names as a string."""
    tokens = list(_tokens(canonical))
    for i, token in enumerate(tokens):
        if token.kind in ("word", "quoted"):
            name = token.text.strip('`"') if token.kind == "quoted" else token.text
            follows_dot = i + 1 < len(tokens) and tokens[i + 1].text == "."
            if name in databases and follows_dot:
                return name
        elif token.kind == "string" and token.text[1:-1] in databases:
            return token.text[1:-1]
    return None


# -- requests -----------------------------------------------------------------------


# lz4 and zstd come with clickhouse-connect, the client that sends them.
_CODEC_MODULES = {
    "lz4": ("LZ4FrameDecompressor", "lz4.frame"),
    "zstd": ("ZstdDecompressor", "compression.zstd", "backports.zstd"),
}


@dataclass
class _QueryRequest:
    sql: bytes
    database: str | None
    default_format: str
    query_id: str
    settings: dict[str, str]
    params: dict[str, str]
    readonly: bool
    authenticated: bool


@dataclass
class _Outcome:
    body: bytes
    output_format: str | None
    summary: dict[str, str] = field(default_factory=dict)


def _decompressor(encoding: str) -> Callable[[], Any]:
    if encoding == "gzip":
        return lambda: zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return lambda: zlib.decompressobj()
    if encoding not in _CODEC_MODULES:
        raise QueryError(
            89, f"Unsupported Content-Encoding {encoding!r}: use gzip, deflate, lz4 or zstd"
        )
    class_name, *modules = _CODEC_MODULES[encoding]
    for module_name in modules:
        try:
            module: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        decoder: Callable[[], Any] = getattr(module, class_name)
        return decoder
    raise QueryError(89, f"{encoding} request bodies need one of {', '.join(modules)}")


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    make = _decompressor(encoding)
    parts: list[bytes] = []
    size = 0
    rest = body
    try:
        # Concatenated frames/members are one body.
        while rest:
            decoder = make()
            chunk = decoder.decompress(rest, limit - size + 1)
            size += len(chunk)
            if size > limit:
                raise QueryError(229, f"decompressed request body exceeds {limit} bytes")
            parts.append(chunk)
            if not decoder.eof:
                raise QueryError(271, f"{encoding} request body is truncated")
            rest = decoder.unused_data
    except QueryError:
        raise
    except Exception as exc:
        raise QueryError(271, f"cannot decompress the {encoding} request body: {exc}") from exc
    return b"".join(parts)


def _form_fields(content_type: str, body: bytes) -> dict[str, bytes]:
    """multipart/form-data fields (clickhouse-connect sends long parameters this way)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    fields: dict[str, bytes] = {}
    if not message.is_multipart():
        raise QueryError(62, "malformed multipart/form-data body")
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        if part.get_filename() is not None:
            raise QueryError(48, "external data (files in the form) is not supported by tracescore")
        payload = part.get_payload(decode=True)
        fields[name] = payload if isinstance(payload, bytes) else b""
    return fields


def _present_credential(request: Request) -> str:
    """The secret a request presents, or "" for an anonymous one."""
    key = request.headers.get("x-clickhouse-key", "")
    if key:
        return key
    authorization = request.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise QueryError(516, "malformed Basic Authorization header") from None
        return decoded.partition(":")[2]
    return ""


def _content_type(fmt: str | None) -> str:
    lowered = (fmt or "").lower()
    if lowered.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if lowered.startswith("csv"):
        return "text/csv; charset=UTF-8; header=absent"
    if lowered.startswith("json"):
        return "application/json; charset=UTF-8"
    if lowered in ("", "values", "pretty", "prettycompact", "vertical", "markdown", "rawblob"):
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"


def _quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class _Executor:
    """Runs one request on its own chDB connection (blocking; called on a worker thread)."""

    def __init__(self, store: ChdbStore, auth_token: str | None, max_concurrent: int) -> None:
        self.store = store
        self.auth_token = auth_token
        self.slots = threading.BoundedSemaphore(max_concurrent)
        self.version = "unknown"
        self.timezone = "UTC"
        self._server_info_known = False

    def server_info(self) -> None:
        if self._server_info_known:
            return
        conn = self._connect()
        try:
            result = conn.query("SELECT version(), timezone()", "TabSeparated")
            version, _, tz = result.bytes().decode().strip().partition("\t")
            self.version, self.timezone = version, tz or "UTC"
            self._server_info_known = True
        finally:
            conn.close()

    def run(self, request: _QueryRequest) -> _Outcome:
        with self.slots:
            conn = self._connect()
            try:
                return self._run(conn, request)
            except QueryError:
                raise
            except Exception as exc:
                raise _engine_error(exc) from exc
            finally:
                conn.close()

    def _connect(self) -> Any:
        try:
            return self.store.connect()
        except TracescoreError as exc:
            raise QueryError(1002, str(exc)) from exc

    def _run(self, conn: Any, request: _QueryRequest) -> _Outcome:
        head = request.sql[:_MAX_STATEMENT_BYTES].decode("latin-1")
        split = _split_insert(head)
        data = b""
        if split is not None:
            text = _utf8(request.sql[: split.statement_end])
            data = request.sql[split.data_start :]
        else:
            text = _utf8(request.sql)
        if not text.strip(" \t\n\r\f\v;"):
            raise QueryError(62, "Empty query")
        statement = _classify(self._canonical(conn, text), request.params)
        if split is not None and (
            statement.insert_format is None
            or statement.insert_format.lower() != split.input_format.lower()
        ):
            raise QueryError(62, "cannot tell the INSERT statement from its data")
        if split is None and statement.insert_format is not None:
            # Inline data must never reach the engine as SQL text.
            raise QueryError(62, "INSERT data must follow FORMAT <name> or VALUES")
        self._authorize(statement, request)
        database = self._current_database(conn, statement, request)
        if database:
            conn.query(f"USE `{database.replace('`', '``')}`", "TabSeparated")
        for name, value in request.settings.items():
            conn.query(f"SET {name} = {_quote_string(value)}", "TabSeparated")
        started = time.perf_counter_ns()
        if statement.insert_sql is not None and statement.insert_format is not None:
            return self._insert(conn, statement.insert_sql, statement.insert_format, data, started)
        result = conn.query(text, request.default_format, params=request.params or None)
        body: bytes = result.bytes() or b""
        return _Outcome(
            body,
            (statement.output_format or request.default_format) if statement.is_read else None,
            {
                "read_rows": str(result.rows_read()),
                "read_bytes": str(result.bytes_read()),
                "written_rows": str(result.rows_written()),
                "written_bytes": str(result.bytes_written()),
                "total_rows_to_read": str(result.rows_read()),
                "result_bytes": str(len(body)),
                "elapsed_ns": str(time.perf_counter_ns() - started),
            },
        )

    def _canonical(self, conn: Any, text: str) -> str:
        # The engine's own parser renders the statement: one statement only, no
        # comments, identifiers unescaped; what is checked is what the engine reads.
        result = conn.query(
            "SELECT formatQuerySingleLine({q:String})",
            "RawBLOB",
            params={"q": escape_param(text)},
        )
        return bytes(result.bytes()).decode("utf-8")

    def _current_database(
        self, conn: Any, statement: _Statement, request: _QueryRequest
    ) -> str | None:
        """The database unqualified names resolve in; refuses file-mapping ones without the token.

        Without a ``database`` parameter it is the store's database, as a server's
        default database; without the token, never one that maps names to files.
        """
        result = conn.query("SELECT name, engine FROM system.databases", "TabSeparated")
        engines = dict(
            line.split("\t", 1) for line in result.bytes().decode("utf-8").splitlines() if line
        )
        mapping = {
            name for name, engine in engines.items() if engine not in _PLAIN_DATABASE_ENGINES
        }
        fallback = self.store.database if self.store.database in engines else None
        if request.authenticated:
            return request.database or fallback
        if request.database in mapping:
            self._refuse(f"the {request.database} database maps table names to files")
        named = _names_database(statement.canonical, mapping)
        if named is not None:
            self._refuse(f"the {named} database maps table names to files")
        if request.database:
            return request.database
        return fallback if fallback not in mapping else "system"

    def _refuse(self, reason: str) -> NoReturn:
        if self.auth_token:
            hint = "send the collector's auth token (Authorization: Bearer <token>)"
        else:
            hint = "this server has no auth token, so it refuses them from everyone"
        raise QueryError(
            497, f"tracescore query server: {reason}; such statements need the auth token: {hint}"
        )

    def _authorize(self, statement: _Statement, request: _QueryRequest) -> None:
        if request.readonly and not statement.is_read and statement.keyword not in ("SET", "USE"):
            raise QueryError(
                164,
                "Cannot execute query in readonly mode. For queries over HTTP, method GET "
                "implies readonly. You should use method POST for modifying queries",
            )
        if statement.restricted is None or request.authenticated:
            return
        log.warning("refused without the auth token: %s", statement.canonical[:200])
        self._refuse(statement.restricted)

    def _insert(self, conn: Any, sql: str, fmt: str, data: bytes, started: int) -> _Outcome:
        view = memoryview(data)
        with conn.send_insert(sql, fmt) as inserter:
            for offset in range(0, len(view), _INSERT_CHUNK_BYTES):
                inserter.append(view[offset : offset + _INSERT_CHUNK_BYTES])
            result = inserter.finish()
        return _Outcome(
            b"",
            None,
            {
                "read_rows": str(result.rows_written),
                "read_bytes": str(len(data)),
                "written_rows": str(result.rows_written),
                "written_bytes": str(result.bytes_written),
                "total_rows_to_read": "0",
                "result_rows": "0",
                "result_bytes": "0",
                "elapsed_ns": str(time.perf_counter_ns() - started),
            },
        )


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise QueryError(62, f"the query is not valid UTF-8 ({exc})") from None


def create_query_app(
    store: ChdbStore,
    *,
    auth_token: str | None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_concurrent_queries: int = DEFAULT_MAX_CONCURRENT_QUERIES,
) -> Starlette:
    """The ASGI app serving ``store``'s engine over ClickHouse's HTTP protocol."""
    executor = _Executor(store, auth_token or None, max_concurrent_queries)

    def headers_for(query_id: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Server-Display-Name": SERVER_DISPLAY_NAME,
            "X-ClickHouse-Timezone": executor.timezone,
        }
        headers.update(extra or {})
        return headers

    def error_response(error: QueryError, query_id: str) -> Response:
        message = error.message.rstrip(" .")
        if len(message) > _MAX_ERROR_CHARS:
            message = message[:_MAX_ERROR_CHARS] + "..."
        body = (
            f"Code: {error.code}. DB::Exception: {message}. ({error.name}) "
            f"(version {executor.version})\n"
        )
        return PlainTextResponse(
            body,
            status_code=error.status,
            headers=headers_for(query_id, {"X-ClickHouse-Exception-Code": str(error.code)}),
        )

    def authenticate(request: Request) -> bool:
        presented = _present_credential(request)
        if not presented:
            return False
        if executor.auth_token and hmac.compare_digest(
            presented.encode("utf-8"), executor.auth_token.encode("utf-8")
        ):
            return True
        raise QueryError(
            516,
            "Authentication failed: the token or password does not match this server's "
            "auth token"
            + ("" if executor.auth_token else " (it has none; connect without credentials)"),
        )

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            raise QueryError(229, f"request body of {declared} bytes exceeds {max_body_bytes}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise QueryError(229, f"request body exceeds {max_body_bytes} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        encoding = request.headers.get("content-encoding", "").strip().lower()
        if encoding and encoding != "identity":
            body = _decompress(body, encoding, max_body_bytes)
        return body

    async def handle(request: Request) -> Response:
        params = dict(request.query_params)
        query_id = params.get("query_id") or str(uuid.uuid4())
        try:
            await run_in_threadpool(executor.server_info)
            authenticated = authenticate(request)
            body = await read_body(request)
            query_text = params.get("query", "")
            content_type = request.headers.get("content-type", "")
            if content_type.lower().startswith("multipart/form-data"):
                form = _form_fields(content_type, body)
                body = b""
                query_text = form.pop("query", b"").decode("utf-8") or query_text
                params.update(
                    {k: v.decode("utf-8") for k, v in form.items() if k.startswith("param_")}
                )
            for flag in ("compress", "decompress"):
                if params.get(flag, "0") not in ("", "0", "false"):
                    raise QueryError(48, f"{flag}=1 (ClickHouse's native block compression)")
            if query_text and body:
                sql = query_text.encode("utf-8") + b"\n" + body
            else:
                sql = query_text.encode("utf-8") or body
            if not sql.strip() and request.method == "GET":
                return PlainTextResponse("Ok.\n")
            default_format = params.get("default_format") or "TabSeparated"
            if not _FORMAT_NAME.match(default_format) or (
                default_format.lower() in _CHDB_ONLY_FORMATS
            ):
                raise QueryError(73, f"Unknown format {default_format}")
            settings: dict[str, str] = {}
            for name, value in params.items():
                if name in _TRANSPORT_PARAMS or name.startswith("param_"):
                    continue
                if not _SETTING_NAME.match(name):
                    raise QueryError(115, f"Unknown setting {name!r}")
                if name == "dialect" and value.lower() != "clickhouse":
                    # The statement is checked as ClickHouse SQL; it must run as such.
                    raise QueryError(48, "only the clickhouse dialect is served")
                settings[name] = value
            outcome = await run_in_threadpool(
                executor.run,
                _QueryRequest(
                    sql=sql,
                    database=params.get("database") or None,
                    default_format=default_format,
                    query_id=query_id,
                    settings=settings,
                    params={k[6:]: v for k, v in params.items() if k.startswith("param_")},
                    readonly=request.method == "GET",
                    authenticated=authenticated,
                ),
            )
        except QueryError as error:
            return error_response(error, query_id)
        extra = {"X-ClickHouse-Summary": json.dumps(outcome.summary, separators=(",", ":"))}
        if outcome.output_format:
            extra["X-ClickHouse-Format"] = outcome.output_format
        return Response(
            outcome.body,
            status_code=200,
            media_type=_content_type(outcome.output_format),
            headers=headers_for(query_id, extra),
        )

    async def ping(_: Request) -> Response:
        return PlainTextResponse("Ok.\n")

    return Starlette(
        routes=[
            Route("/", handle, methods=["GET", "POST"]),
            Route("/ping", ping, methods=["GET"]),
        ]
    )


class QueryServer(ServerThread):
    """Serves ``create_query_app`` on a background thread; port 0 picks a free port."""

    def __init__(
        self,
        store: ChdbStore,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_QUERY_PORT,
        auth_token: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_concurrent_queries: int = DEFAULT_MAX_CONCURRENT_QUERIES,
    ) -> None:
        app = create_query_app(
            store,
            auth_token=auth_token,
            max_body_bytes=max_body_bytes,
            max_concurrent_queries=max_concurrent_queries,
        )
        super().__init__(app, host=host, port=port, name="query server")

    @property
    def url(self) -> str:
        """The HTTP base URL, as a ClickHouse client expects it."""
        return self.endpoint

    def store_url(self, database: str) -> str:
        """A ``TRACESCORE_STORE`` URL that reaches ``database`` through this server."""
        return f"clickhouse://{self.client_host}:{self.port}/{database}"
