"""In-process SUTs for the ``python`` system's tests.

The tracer is taken from the global OTel API once, at import time, as instrumentation
libraries do: the routing provider must still send each span to the running variant.
"""

import asyncio
import threading

from opentelemetry import baggage, trace

from tracescore.schemas.attributes import CASE_ID
from tracescore.schemas.suite import Case

_tracer = trace.get_tracer("python_sut")

# Set by a test to let ``hangs`` return after its timeout was reported.
RELEASE = threading.Event()

not_callable = 42


def answer(text: str) -> str:
    with _tracer.start_as_current_span("invoke_agent echo") as span:
        span.set_attribute("gen_ai.operation.name", "invoke_agent")
        span.set_attribute("gen_ai.agent.name", "echo")
        with _tracer.start_as_current_span("lookup"):
            pass
        return f"echo: {text}"


def answer_case(case: Case) -> dict[str, object]:
    with _tracer.start_as_current_span("case"):
        return {"id": case.id, "input": case.input, "expected": case.expected}


async def answer_async(text: str) -> str:
    with _tracer.start_as_current_span("async work"):
        await asyncio.sleep(0)
        return text.upper()


@_tracer.start_as_current_span("decorated")
def decorated(text: str) -> list[str]:
    return text.split()


def case_id_from_baggage(text: str) -> str:
    with _tracer.start_as_current_span("read baggage"):
        return str(baggage.get_baggage(CASE_ID))


def fails(text: str) -> str:
    with _tracer.start_as_current_span("failing"):
        raise ValueError(f"cannot answer {text!r}")


def hangs(text: str) -> str:
    with _tracer.start_as_current_span("hanging"):
        RELEASE.wait(30)
        return text


def no_spans(text: str) -> str:
    return text


class Agent:
    @staticmethod
    def run(text: str) -> str:
        with _tracer.start_as_current_span("Agent.run"):
            return text[::-1]


def exits(text: str) -> str:
    raise SystemExit(3)
