"""A long-lived SUT process (``server:``), started once per variant and stopped after it."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import httpx2

from tracescore.schemas.errors import ConfigError
from tracescore.schemas.suite import ServerSpec
from tracescore.scoring.systems.base import SystemStartError, VariantContext
from tracescore.scoring.systems.command import sut_environment

# ``{name}`` but not ``{{name}}`` (the case placeholders of an ``http`` system).
_PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_]\w*)\}(?!\})")
_POLL_INTERVAL_S = 0.05
_STDERR_TAIL_LINES = 20
_STDERR_TAIL_BYTES = 8192


def uses_port(*texts: str) -> bool:
    return any("port" in (m.group(1) for m in _PLACEHOLDER.finditer(t)) for t in texts)


def fill(text: str, values: Mapping[str, str], where: str) -> str:
    """``{port}``/``{python}`` replaced; other braces (JSON, ``{{input}}``) left alone."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            known = ", ".join(f"{{{k}}}" for k in values)
            raise ConfigError(f"{where}: unknown placeholder {{{name}}} (use {known})")
        return values[name]

    return _PLACEHOLDER.sub(replace, text)


def free_port() -> int:
    # The port is free when we look; a race with another process binding it before
    # the server does is possible but rare, and shows up as a start error.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """One running server: ``start`` returns once it is ready, ``stop`` ends its whole
    process group."""

    def __init__(self, spec: ServerSpec, folder: Path, values: Mapping[str, str]) -> None:
        self.spec = spec
        self.values = dict(values)
        self.cwd = (folder / spec.cwd) if spec.cwd else folder
        if not self.cwd.is_dir():
            raise ConfigError(f"system.server.cwd: {self.cwd} is not a directory")
        self.argv = [fill(part, self.values, "system.server.command") for part in spec.command]
        self.env = {k: fill(v, self.values, f"system.server.env.{k}") for k, v in spec.env.items()}
        self.ready_url = (
            fill(spec.ready_url, self.values, "system.server.ready_url") if spec.ready_url else None
        )
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, context: VariantContext, ready_address: tuple[str, int]) -> None:
        """Start the server and wait until ``ready_url`` answers (or, without one, until
        ``ready_address`` accepts connections)."""
        env = sut_environment(
            context.otlp_endpoint, context.resource_attributes, self.env, context.variant.env
        )
        # An unnamed file, not a pipe: a pipe nobody reads fills up and blocks the server.
        # Lives as long as the server; stop() closes it.
        self._log = tempfile.TemporaryFile(prefix="tracescore-server-")  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                # Its own process group, so stop() reaches the children it spawns.
                start_new_session=True,
            )
        except OSError as exc:
            self.stop()
            raise SystemStartError(
                f"cannot start server {self.argv[0]!r}: {exc.strerror or exc}"
            ) from None
        try:
            self._wait_ready(ready_address)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, address: tuple[str, int]) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.spec.ready_timeout_s
        what = self.ready_url or f"{address[0]}:{address[1]}"
        with httpx2.Client(timeout=1.0, trust_env=False) as client:
            while True:
                code = self.process.poll()
                if code is not None:
                    raise SystemStartError(
                        f"server {' '.join(self.argv)!r} exited with code {code} before it "
                        f"was ready at {what}{self._tail()}"
                    )
                if self._ready(client, address):
                    return
                if time.monotonic() >= deadline:
                    raise SystemStartError(
                        f"server {' '.join(self.argv)!r} was not ready at {what} within "
                        f"{self.spec.ready_timeout_s:g}s{self._tail()}"
                    )
                time.sleep(_POLL_INTERVAL_S)

    def _ready(self, client: httpx2.Client, address: tuple[str, int]) -> bool:
        if self.ready_url:
            try:
                return client.get(self.ready_url).status_code < 500
            except httpx2.TransportError:
                return False
        try:
            with socket.create_connection(address, timeout=1.0):
                return True
        except OSError:
            return False

    def _tail(self) -> str:
        """The last lines the server wrote, read without moving the shared file offset."""
        if self._log is None:
            return ""
        fd = self._log.fileno()
        size = os.fstat(fd).st_size
        start = max(0, size - _STDERR_TAIL_BYTES)
        text = os.pread(fd, size - start, start).decode("utf-8", "replace")
        lines = text.strip().splitlines()[-_STDERR_TAIL_LINES:]
        if not lines:
            return " (it wrote nothing to stderr or stdout)"
        return "; its stderr and stdout end with:\n" + "\n".join(lines)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            _terminate_group(process, self.spec.stop_timeout_s)
        log, self._log = self._log, None
        if log is not None:
            log.close()


def _terminate_group(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    # With start_new_session the group id is the leader's pid.
    group = process.pid
    _signal_group(group, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout_s)
    # Also after a clean exit: children that ignored SIGTERM must not outlive the run.
    _signal_group(group, signal.SIGKILL)
    process.wait()


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)


def server_values(port: int | None) -> dict[str, str]:
    values = {"python": sys.executable}
    if port is not None:
        values["port"] = str(port)
    return values


def address_of(url: str) -> tuple[str, int]:
    """Host and port a URL connects to (for the default readiness check)."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ConfigError(f"system.url: {url!r} has no host")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"system.url: {url!r} has a bad port") from None
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)
