"""The ``replay`` system: scores traces already in the store instead of calling a SUT.

Which traces: the suite's cases that name one in ``metadata.trace_id``; when none do
(or the suite has no cases), the system's ``trace_ids``, else the newest traces that
match its query fields. Each chosen trace becomes a case whose id is the trace id.
"""

import re
import time
from typing import Any

from tracescore.collector.store import Store
from tracescore.schemas.attributes import (
    CASE_INPUT,
    EVALUATOR_SERVICE_NAME,
    HARNESS_SERVICE_NAME,
)
from tracescore.schemas.ddl import TRACES_TABLE
from tracescore.schemas.errors import ConfigError
from tracescore.schemas.suite import Case, ReplaySystem, Variant
from tracescore.scoring.systems.base import CallContext, Invocation, SystemAdapter

TRACE_ID_KEY = "trace_id"
"""The case metadata field naming the stored trace a case replays."""

_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# tracescore's own spans: a trace made only of them (an evaluator's judge call) is
# nothing to replay.
_OWN_SERVICES = [HARNESS_SERVICE_NAME, EVALUATOR_SERVICE_NAME]
# Root-span attributes that carry the input as text, cheapest first to read: the
# harness's own (a suite run's trace), OpenInference's, OpenLLMetry's. Richer forms
# (GenAI messages) need the whole trace rebuilt, which is not worth it for a label.
_INPUT_ATTRIBUTES = [CASE_INPUT, "input.value", "traceloop.entity.input"]


def since_cutoff_ns(since: str, now_ns: int | None = None) -> int:
    """The start of the window ``since`` (e.g. ``24h``, ``30m``, ``7d``) names, in ns."""
    match = re.fullmatch(r"(\d+)([smhd])", since)
    if match is None:
        raise ConfigError(f"replay: since {since!r}: expected a number and s, m, h or d")
    seconds = int(match.group(1)) * _UNITS_S[match.group(2)]
    return (time.time_ns() if now_ns is None else now_ns) - seconds * 1_000_000_000


def _checked_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _TRACE_ID.match(value):
        raise ConfigError(f"{where}: {value!r} is not a trace id (32 hex digits)")
    # The store writes ids as lowercase hex, as the OTel Collector does.
    return value.lower()


class ReplayAdapter(SystemAdapter):
    replays = True

    def __init__(self, system: ReplaySystem, store: Store) -> None:
        self.system = system
        self.store = store
        for i, trace_id in enumerate(system.trace_ids):
            _checked_id(trace_id, f"system.trace_ids[{i}]")

    def replay_cases(self, variant: Variant, cases: list[Case], variant_key: str) -> list[Case]:
        named = [c for c in cases if TRACE_ID_KEY in c.metadata]
        if named:
            # Explicit ids are scored whatever variant wrote them: the suite chose them.
            return [
                c.model_copy(
                    update={
                        "metadata": {
                            **c.metadata,
                            TRACE_ID_KEY: _checked_id(
                                c.metadata[TRACE_ID_KEY], f"case {c.id!r}: metadata.trace_id"
                            ),
                        }
                    }
                )
                for c in named
            ]
        if self.system.trace_ids:
            ids = list(dict.fromkeys(t.lower() for t in self.system.trace_ids))
        else:
            ids = self._query(variant, variant_key)
        inputs = self._inputs(ids)
        return [
            Case(id=tid, input=inputs.get(tid, ""), metadata={TRACE_ID_KEY: tid}) for tid in ids
        ]

    def invoke(self, case: Case, variant: Variant, call: CallContext) -> Invocation:
        trace_id = str(case.metadata.get(TRACE_ID_KEY) or case.id).lower()
        if self.store.count_spans(trace_id) == 0:
            return Invocation(
                output="",
                error=f"trace {trace_id} is not in {self.store.location}",
                trace_id=trace_id,
            )
        return Invocation(output="", trace_id=trace_id)

    # -- choosing traces --------------------------------------------------------------

    def _query(self, variant: Variant, variant_key: str) -> list[str]:
        system = self.system
        # Every condition applies to one span: "a span of this service, of this
        # variant, in the window" — the spans one SUT process exported together.
        conditions = ["ServiceName NOT IN {own:Array(String)}"]
        params: dict[str, Any] = {"own": _OWN_SERVICES, "limit": system.limit}
        filters: list[str] = []
        if system.service is not None:
            conditions.append("ServiceName = {service:String}")
            params["service"] = system.service
            filters.append(f"service {system.service!r}")
        if system.since is not None:
            conditions.append("Timestamp >= fromUnixTimestamp64Nano({cutoff:Int64})")
            params["cutoff"] = since_cutoff_ns(system.since)
            filters.append(f"started within {system.since}")
        if system.match_variant:
            conditions.append("ResourceAttributes[{vkey:String}] = {variant:String}")
            params["vkey"] = variant_key
            params["variant"] = variant.name
            filters.append(f"{variant_key}={variant.name}")
        rows = self.store.query(
            f"""
            SELECT TraceId, min(Timestamp) AS Start
            FROM {self.store.db}.{TRACES_TABLE}
            WHERE {" AND ".join(conditions)}
            GROUP BY TraceId
            ORDER BY Start DESC, TraceId
            LIMIT {{limit:UInt32}}
            """,
            params,
        )
        if not rows:
            what = ", ".join(filters) if filters else "any service"
            raise ConfigError(
                f"replay (variant {variant.name}): no stored traces match {what} "
                f"in {self.store.location}"
            )
        return [str(row["TraceId"]) for row in rows]

    def _inputs(self, trace_ids: list[str]) -> dict[str, str]:
        """Each trace's input text, where its root span carries one as an attribute."""
        if not trace_ids:
            return {}
        rows = self.store.query(
            f"""
            SELECT TraceId, anyIf(Text, Text != '') AS Input
            FROM (
                SELECT TraceId,
                       arrayFirst(v -> v != '',
                                  arrayMap(k -> SpanAttributes[k], {{keys:Array(String)}}))
                           AS Text
                FROM {self.store.db}.{TRACES_TABLE}
                WHERE TraceId IN {{tids:Array(String)}} AND ParentSpanId = ''
            )
            GROUP BY TraceId
            """,
            {"tids": trace_ids, "keys": _INPUT_ATTRIBUTES},
        )
        return {str(row["TraceId"]): str(row["Input"] or "") for row in rows}
