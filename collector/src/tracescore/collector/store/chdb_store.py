"""The embedded backend: the ClickHouse engine in-process through chDB.

chDB serves one data path per process at a time and its sessions are not
documented as thread-safe, so sessions are shared per path and every call is
serialized with a lock; the receiver thread and the runner share one store.
"""

import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
from chdb import session as chdb_session

from tracescore.collector.store.base import QueryParams, Store
from tracescore.schemas.ddl import quote_identifier
from tracescore.schemas.errors import StoreError


class _SharedSession:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.users = 0
        try:
            self.session: Any = chdb_session.Session(str(path))
        except Exception as exc:
            raise StoreError(f"cannot open the chDB store at {path}: {exc}") from exc


_sessions: dict[Path, _SharedSession] = {}
_sessions_lock = threading.Lock()


def _acquire(path: Path) -> _SharedSession:
    with _sessions_lock:
        shared = _sessions.get(path)
        if shared is None:
            open_paths = [str(p) for p in _sessions]
            if open_paths:
                raise StoreError(
                    f"chDB serves one data path per process; {open_paths[0]} is open, "
                    f"so {path} cannot be opened too (use another database in the same path)"
                )
            path.mkdir(parents=True, exist_ok=True)
            shared = _SharedSession(path)
            _sessions[path] = shared
        shared.users += 1
        return shared


def _release(shared: _SharedSession) -> None:
    with _sessions_lock:
        shared.users -= 1
        if shared.users == 0:
            _sessions.pop(shared.path, None)
            with shared.lock:
                shared.session.close()


def escape_param(value: str) -> str:
    """chDB reads query parameter values in the TSV escaped format: escape them."""
    return (
        value.replace("\\", "\\\\")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\0", "\\0")
    )


def _literal(value: Any) -> Any:
    if isinstance(value, str):
        return escape_param(value)
    if isinstance(value, list | tuple):
        # An Array parameter goes as its ClickHouse literal, in the same escaped format.
        quoted = ",".join(
            "'" + escape_param(v).replace("'", "\\'") + "'" if isinstance(v, str) else str(v)
            for v in value
        )
        return f"[{quoted}]"
    return value


def escape_params(params: QueryParams | None) -> dict[str, Any] | None:
    if not params:
        return None
    return {k: _literal(v) for k, v in params.items()}


class ChdbStore(Store):
    reads_local_files = True

    def __init__(self, path: str | Path, database: str = "otel") -> None:
        super().__init__(database)
        self.path = Path(path).resolve()
        self._shared: _SharedSession | None = _acquire(self.path)

    @property
    def location(self) -> str:
        return f"chdb:{self.path} (database {self.database})"

    def _session(self) -> _SharedSession:
        if self._shared is None:
            raise StoreError(f"the store at {self.path} is closed")
        return self._shared

    def command(self, sql: str, params: QueryParams | None = None) -> None:
        self._run(sql, "Null", params)

    def query_arrow(self, sql: str, params: QueryParams | None = None) -> pa.Table:
        result = self._run(sql, "ArrowTable", params)
        if not isinstance(result, pa.Table):
            raise StoreError(f"chDB returned {type(result).__name__} instead of an Arrow table")
        return result

    def insert_arrow(self, table: str, data: pa.Table) -> None:
        columns = ", ".join(f"`{name}`" for name in data.column_names)
        target = f"{self.db}.{quote_identifier(table)}"
        shared = self._session()
        # chDB's Python() table function finds the Arrow table by its local name.
        batch = data
        with shared.lock:
            try:
                shared.session.query(
                    f"INSERT INTO {target} ({columns}) SELECT {columns} FROM Python(batch)", "Null"
                )
            except Exception as exc:
                raise StoreError(f"insert into {target} failed: {exc}") from exc
        del batch

    def _run(self, sql: str, fmt: str, params: QueryParams | None) -> Any:
        shared = self._session()
        with shared.lock:
            try:
                return shared.session.query(sql, fmt, params=escape_params(params))
            except Exception as exc:
                raise StoreError(f"query failed on {self.location}: {exc}") from exc

    def close(self) -> None:
        if self._shared is not None:
            _release(self._shared)
            self._shared = None

    def connect(self) -> Any:
        """A new chDB connection to this store's engine, with session state of its own.

        ``USE`` and ``SET`` on it do not leak into the shared session, so a caller
        (the query server) can give each request its own database and settings and
        run requests in parallel. The caller closes it; close it before the store.
        """
        self._session()
        import chdb

        try:
            return chdb.connect(str(self.path))
        except Exception as exc:
            raise StoreError(
                f"cannot open a connection to the chDB store at {self.path}: {exc}"
            ) from exc
