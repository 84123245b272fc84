"""The ``http`` system: one request per case to a SUT that is already running, or to a
server tracescore starts per variant (``server:``)."""

import json
import threading
from pathlib import Path
from typing import Any

import httpx2
import jsonpath

from tracescore.schemas.errors import ConfigError
from tracescore.schemas.suite import Case, HttpSystem, Variant
from tracescore.scoring.systems.base import CallContext, Invocation, SystemAdapter, VariantContext
from tracescore.scoring.systems.server import (
    ServerProcess,
    address_of,
    fill,
    free_port,
    server_values,
    uses_port,
)
from tracescore.scoring.systems.templates import render_text, render_value

# Enough connections for the suite's highest concurrency, so no case waits on the pool.
_LIMITS = httpx2.Limits(max_connections=256, max_keepalive_connections=64)
_EXCERPT_CHARS = 200
_TRACE_HEADERS = {"TRACEPARENT": "traceparent", "TRACESTATE": "tracestate", "BAGGAGE": "baggage"}


def excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _EXCERPT_CHARS else flat[:_EXCERPT_CHARS] + "…"


class HttpAdapter(SystemAdapter):
    def __init__(self, system: HttpSystem, folder: Path) -> None:
        self.system = system
        self.folder = folder
        self.url = system.url
        self._path: jsonpath.JSONPath | jsonpath.CompoundJSONPath | None = None
        if system.output is not None:
            try:
                self._path = jsonpath.compile(system.output)
            except jsonpath.JSONPathError as exc:
                first = str(exc).splitlines()[0]
                raise ConfigError(
                    f"system.output: bad JSONPath {system.output!r}: {first}"
                ) from None
        spec = system.server
        if spec is None:
            if uses_port(system.url):
                raise ConfigError("system.url: {port} needs a `server:` section")
        else:
            # Built and dropped: a bad cwd or placeholder fails before anything runs.
            ServerProcess(spec, folder, server_values(0))
            address_of(fill(system.url, server_values(0), "system.url"))
        self.server: ServerProcess | None = None
        self._client: httpx2.Client | None = None
        self._lock = threading.Lock()

    def start(self, context: VariantContext) -> None:
        spec = self.system.server
        if spec is None:
            return
        texts = (self.system.url, *spec.command, *spec.env.values(), spec.ready_url or "")
        values = server_values(free_port() if uses_port(*texts) else None)
        self.url = fill(self.system.url, values, "system.url")
        self.server = ServerProcess(spec, self.folder, values)
        self.server.start(context, address_of(self.url))

    def stop(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
        server, self.server = self.server, None
        if server is not None:
            server.stop()

    def client(self) -> httpx2.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx2.Client(
                    timeout=self.system.timeout_s,
                    limits=_LIMITS,
                    follow_redirects=True,
                    # A server tracescore started is local: a proxy from the environment
                    # must not stand between them.
                    trust_env=self.system.server is None,
                )
            return self._client

    def request(self, case: Case, call: CallContext) -> tuple[str, dict[str, str], Any]:
        """URL, headers and JSON body for a case (ConfigError for a missing placeholder)."""
        url = render_text(self.url, case)
        headers = {
            render_text(k, case): render_text(v, case) for k, v in self.system.headers.items()
        }
        lowered = {k.lower(): k for k in headers}
        for env_key, header in _TRACE_HEADERS.items():
            if env_key in call.trace_env:
                # The case's own context replaces any configured header of the same name.
                headers.pop(lowered.get(header, header), None)
                headers[header] = call.trace_env[env_key]
        body = None if self.system.method == "GET" else render_value(self.system.body, case)
        return url, headers, body

    def invoke(self, case: Case, variant: Variant, call: CallContext) -> Invocation:
        if self.system.server is not None and self.server is None:
            return Invocation(output="", error="the SUT server is not running (start() not called)")
        try:
            url, headers, body = self.request(case, call)
        except ConfigError as exc:
            return Invocation(output="", error=f"system: {exc}")
        try:
            response = self.client().request(
                self.system.method,
                url,
                headers=headers,
                **({} if body is None else {"json": body}),
            )
        except httpx2.UnsupportedProtocol as exc:
            return Invocation(output="", error=f"cannot call {url}: {exc}")
        except httpx2.TimeoutException:
            return Invocation(
                output="",
                error=f"no response from {url} within {self.system.timeout_s:g}s",
                transient=True,
            )
        except httpx2.ConnectError as exc:
            return Invocation(output="", error=f"cannot connect to {url}: {exc}", transient=True)
        except httpx2.TransportError as exc:
            return Invocation(
                output="",
                error=f"request to {url} failed: {type(exc).__name__}: {exc}",
                transient=True,
            )
        except httpx2.InvalidURL as exc:
            return Invocation(output="", error=f"bad URL {url!r}: {exc}")
        except httpx2.HTTPError as exc:
            # A response that arrived but cannot be read (e.g. a broken encoding).
            return Invocation(output="", error=f"bad response from {url}: {exc}")
        return self.read(url, response)

    def read(self, url: str, response: httpx2.Response) -> Invocation:
        status = response.status_code
        text = response.text
        if not 200 <= status < 300:
            return Invocation(
                output="",
                error=f"HTTP {status} from {url}: {excerpt(text) or '(empty body)'}",
                transient=status in self.system.retry_statuses,
            )
        if self._path is None:
            return Invocation(output=text)
        try:
            document = json.loads(text)
        except ValueError:
            return Invocation(
                output=text,
                error=f"response from {url} is not JSON (needed for output {self.system.output}): "
                f"{excerpt(text) or '(empty body)'}",
            )
        try:
            matches = self._path.findall(document)
        except jsonpath.JSONPathError as exc:
            return Invocation(output=text, error=f"output {self.system.output}: {exc}")
        if not matches:
            return Invocation(
                output=text,
                error=f"output {self.system.output} matched nothing in the response from "
                f"{url}: {excerpt(text)}",
            )
        value = matches[0] if len(matches) == 1 else matches
        return Invocation(
            output=value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        )
