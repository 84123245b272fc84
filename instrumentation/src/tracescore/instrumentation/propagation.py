"""W3C trace context and tracescore baggage, over HTTP headers or environment variables.

Environment carriers follow the OpenTelemetry convention of upper-cased header
names (``TRACEPARENT``, ``TRACESTATE``, ``BAGGAGE``), so a subprocess can join
the trace of the harness that started it.
"""

import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager

from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context, get_current
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tracescore.schemas.attributes import CASE_ID, RUN_ID

# Fixed rather than the global propagator: tracescore needs both formats whatever
# OTEL_PROPAGATORS says.
_PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
_ENV_CARRIER_KEYS = ("traceparent", "tracestate", "baggage")


def inject_headers(
    headers: MutableMapping[str, str] | None = None, context: Context | None = None
) -> MutableMapping[str, str]:
    """Write ``traceparent``/``tracestate``/``baggage`` for ``context`` into ``headers``."""
    carrier: MutableMapping[str, str] = {} if headers is None else headers
    _PROPAGATOR.inject(carrier, context=context)
    return carrier


def extract_headers(headers: Mapping[str, str], context: Context | None = None) -> Context:
    """The context carried by incoming headers (case-insensitive names)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    return _PROPAGATOR.extract(lowered, context=context)


def env_from_context(context: Context | None = None) -> dict[str, str]:
    """Environment variables that carry ``context`` into a subprocess."""
    headers = inject_headers({}, context)
    return {k.upper(): v for k, v in headers.items()}


def context_from_env(environ: Mapping[str, str] | None = None) -> Context:
    """The context a parent process passed in ``TRACEPARENT``/``TRACESTATE``/``BAGGAGE``."""
    source = os.environ if environ is None else environ
    carrier = {key: source[key.upper()] for key in _ENV_CARRIER_KEYS if key.upper() in source}
    return _PROPAGATOR.extract(carrier, context=Context())


def with_case_baggage(run_id: str, case_id: str, context: Context | None = None) -> Context:
    """``context`` plus the tracescore run and case ids as W3C baggage."""
    ctx = baggage.set_baggage(RUN_ID, run_id, context=context or get_current())
    return baggage.set_baggage(CASE_ID, case_id, context=ctx)


def case_baggage(context: Context | None = None) -> dict[str, str]:
    """The tracescore run and case ids found in ``context``'s baggage."""
    found: dict[str, str] = {}
    for key in (RUN_ID, CASE_ID):
        value = baggage.get_baggage(key, context=context)
        if value is not None:
            found[key] = str(value)
    return found


@contextmanager
def attached(context: Context) -> Iterator[None]:
    """Make ``context`` current for a with-block, e.g. ``with attached(context_from_env()):``."""
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)
