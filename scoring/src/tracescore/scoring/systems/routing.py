"""A global TracerProvider that sends each span to the provider of the variant running it.

In-process SUTs (``python`` systems) and the instrumentation libraries they use get their
tracers from the global OTel API, often once at import time. The global provider can be
set only once per process, yet every variant needs its spans under its own resource (the
variant attribute, its ``service.name``). So tracescore installs one
:class:`RoutingTracerProvider` globally; its tracers pick the real provider from a
context variable when a span starts, and :func:`use_provider` sets that variable around
a case. Context variables follow threads' own contexts and asyncio tasks, so concurrent
cases of different variants do not mix.
"""

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.util._decorator import _agnosticcontextmanager
from opentelemetry.util.types import Attributes

from tracescore.schemas.errors import ConfigError

_current: ContextVar[trace.TracerProvider | None] = ContextVar(
    "tracescore_routing_provider", default=None
)
_NOOP = trace.NoOpTracer()
_install_lock = threading.Lock()

_TracerKey = tuple[str, str | None, str | None, tuple[tuple[str, str], ...]]
_Tracers = dict[_TracerKey, trace.Tracer]


class RoutingTracerProvider(trace.TracerProvider):
    """Tracers that delegate, span by span, to the provider :func:`use_provider` set.

    Outside any ``use_provider`` block spans are non-recording, as they are in a process
    with no SDK configured.
    """

    def __init__(self) -> None:
        # Weak keys: a variant's provider is dropped after its run; its tracers go with it.
        self._tracers: weakref.WeakKeyDictionary[trace.TracerProvider, _Tracers] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> trace.Tracer:
        key: _TracerKey = (
            instrumenting_module_name,
            instrumenting_library_version,
            schema_url,
            # repr: attribute values may be lists, which cannot be hashed.
            tuple(sorted((k, repr(v)) for k, v in (attributes or {}).items())),
        )
        return _RoutingTracer(self, key, attributes)

    def tracer_for(
        self, provider: trace.TracerProvider, key: _TracerKey, attributes: Attributes
    ) -> trace.Tracer:
        with self._lock:
            tracers = self._tracers.setdefault(provider, {})
            tracer = tracers.get(key)
            if tracer is None:
                name, version, schema_url, _ = key
                tracer = provider.get_tracer(name, version, schema_url, attributes)
                tracers[key] = tracer
            return tracer


class _RoutingTracer(trace.Tracer):
    def __init__(self, router: RoutingTracerProvider, key: _TracerKey, attributes: Attributes):
        self._router = router
        self._key = key
        self._attributes = attributes

    def _delegate(self) -> trace.Tracer:
        provider = _current.get()
        if provider is None:
            return _NOOP
        return self._router.tracer_for(provider, self._key, self._attributes)

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._delegate().start_span(*args, **kwargs)

    # Resolved on entry, not when the context manager is made: a function decorated
    # with ``@tracer.start_as_current_span(...)`` at import time must still route per call.
    @_agnosticcontextmanager
    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Iterator[trace.Span]:
        with self._delegate().start_as_current_span(*args, **kwargs) as span:
            yield span


def install_routing() -> RoutingTracerProvider:
    """The global routing provider, installed on first use.

    Raises ConfigError when something else already set the global provider: the OTel API
    allows setting it only once, so spans of in-process SUTs could not be routed.
    """
    with _install_lock:
        current = trace.get_tracer_provider()
        if isinstance(current, RoutingTracerProvider):
            return current
        if isinstance(current, trace.ProxyTracerProvider):
            routing = RoutingTracerProvider()
            trace.set_tracer_provider(routing)
            current = trace.get_tracer_provider()
            if current is routing:
                return routing
        raise ConfigError(
            "a global OpenTelemetry TracerProvider "
            f"({type(current).__module__}.{type(current).__qualname__}) was set in this "
            "process before tracescore started an in-process SUT; tracescore needs to "
            "install its own global provider to send the SUT's spans to each variant. "
            "Do not call trace.set_tracer_provider (or tracescore.instrumentation."
            "configure) in code that runs before the suite, or unset OTEL_PYTHON_TRACER_PROVIDER"
        )


def current_provider() -> trace.TracerProvider | None:
    """The provider spans started here are routed to (None: non-recording)."""
    return _current.get()


@contextmanager
def use_provider(provider: trace.TracerProvider) -> Iterator[None]:
    """Route spans started in this context (thread, task) to ``provider`` for the block."""
    token = _current.set(provider)
    try:
        yield
    finally:
        _current.reset(token)
