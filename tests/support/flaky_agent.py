"""A noisy in-process agent for the CI gate's end-to-end test (``python`` system).

Each call answers correctly or not at random, at a fixed failure rate, like an LLM
agent sampled at a non-zero temperature. The draws come from a seeded stream per
(seed, case), so a run is reproducible whatever order its cells run in:

- ``agent_a`` and ``agent_b``: the same agent with different seeds (run-to-run noise);
- ``agent_a_regressed``: ``agent_a`` with the same draws, except that the cases in
  ``BROKEN`` now always fail (a test picks them so the regression has the size it wants).
"""

import hashlib
import threading
from collections import Counter

from opentelemetry import trace

from tracescore.schemas.suite import Case

FAILURE_RATE = 0.3
BROKEN: set[str] = set()

_tracer = trace.get_tracer("flaky_agent")
_lock = threading.Lock()
_calls: Counter[tuple[str, str]] = Counter()


def _draw(seed: str, case_id: str, reader: str) -> float:
    """The next number in [0, 1) of the (seed, case) stream, as ``reader`` reads it
    (each reader has its own position, so two agents can read the same stream)."""
    with _lock:
        index = _calls[(reader, case_id)]
        _calls[(reader, case_id)] += 1
    digest = hashlib.sha256(f"{seed}:{case_id}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _answer(case: Case, correct: bool) -> str:
    with _tracer.start_as_current_span("invoke_agent flaky") as span:
        span.set_attribute("gen_ai.operation.name", "invoke_agent")
        answer = str(case.expected["answer"]) if correct else "I am not sure."
        span.set_attribute("gen_ai.output.messages", _messages(answer))
        return answer


def _messages(text: str) -> str:
    return f'[{{"role": "assistant", "parts": [{{"type": "text", "content": "{text}"}}]}}]'


def agent_a(case: Case) -> str:
    return _answer(case, _draw("a", case.id, "agent_a") >= FAILURE_RATE)


def agent_b(case: Case) -> str:
    return _answer(case, _draw("b", case.id, "agent_b") >= FAILURE_RATE)


def agent_a_regressed(case: Case) -> str:
    # agent_a's stream, so this run sees exactly the draws agent_a saw.
    correct = _draw("a", case.id, "agent_a_regressed") >= FAILURE_RATE
    return _answer(case, correct and case.id not in BROKEN)
