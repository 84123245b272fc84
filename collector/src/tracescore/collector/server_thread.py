"""Run an ASGI app with uvicorn on a background thread, on a socket bound up front.

Binding first means port 0 yields a real port before the server starts, and a
port already in use fails in the caller's thread with a clear error.
"""

import socket
import ssl
import threading
import time
from typing import Any, Self

import uvicorn

from tracescore.schemas.errors import ConfigError, TracescoreError


class ServerThread:
    def __init__(
        self,
        app: Any,
        *,
        host: str,
        port: int,
        name: str,
        tls_cert: str | None = None,
        tls_key: str | None = None,
    ) -> None:
        self.name = name
        self.tls = tls_cert is not None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this: without it, a response written in two
        # parts (headers, body) can wait out the client's delayed ACK, ~40 ms each.
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self._socket.bind((host, port))
        except OSError as exc:
            self._socket.close()
            raise ConfigError(f"{name}: cannot listen on {host}:{port}: {exc.strerror}") from exc
        self.host, self.port = self._socket.getsockname()[:2]
        if tls_cert is not None:
            # Load now so a bad certificate fails at start-up, not on the first connection.
            try:
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                    tls_cert, tls_key
                )
            except (OSError, ssl.SSLError) as exc:
                self._socket.close()
                raise ConfigError(f"{name}: cannot load TLS certificate {tls_cert}: {exc}") from exc
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            ssl_certfile=tls_cert,
            ssl_keyfile=tls_key,
            timeout_graceful_shutdown=10,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True, name=name
        )

    @property
    def endpoint(self) -> str:
        """The base URL (as OTEL_EXPORTER_OTLP_ENDPOINT expects it for HTTP)."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.client_host}:{self.port}"

    @property
    def client_host(self) -> str:
        """How a local client reaches the server: a wildcard bind over loopback."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"[{host}]" if ":" in host else str(host)

    def start(self, timeout_s: float = 10.0) -> Self:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise TracescoreError(f"the {self.name} did not start on {self.endpoint}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop accepting connections and finish requests in flight."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        self._socket.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
