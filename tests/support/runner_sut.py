"""A command SUT for the runner's own tests: one chat span with token usage, and
failure modes switched on by environment variables.

    python runner_sut.py CASE_ID INPUT

- ``SUT_STATE``: a folder where the SUT counts its attempts per case;
- ``SUT_HANG_FIRST=N``: the first N attempts of each case hang (the runner's timeout
  makes them transient failures);
- ``SUT_MODEL``: the model named on the chat span (priced by the suite's ``prices``).
"""

import json
import os
import sys
import time
from pathlib import Path

from opentelemetry.trace import SpanKind

from tracescore.instrumentation import attached, configure, context_from_env


def _attempt(case_id: str) -> int:
    """One more mark in the case's file; the marks so far. Appends of one byte are
    atomic, so variants and repeats of a case running at once count correctly."""
    state = Path(os.environ["SUT_STATE"]) / f"{case_id}.attempts"
    with state.open("a") as marks:
        marks.write("x")
    return state.stat().st_size


def main() -> int:
    case_id, text = sys.argv[1], sys.argv[2]
    if "SUT_STATE" in os.environ and _attempt(case_id) <= int(os.environ.get("SUT_HANG_FIRST", 0)):
        time.sleep(60)
    provider = configure("runner-sut", batch=False)
    tracer = provider.get_tracer("runner-sut")
    model = os.environ.get("SUT_MODEL", "sut-model")
    answer = f"echo: {text}"
    with (
        attached(context_from_env()),
        tracer.start_as_current_span(f"chat {model}", kind=SpanKind.CLIENT) as span,
    ):
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "scripted",
                "gen_ai.request.model": model,
                "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.output_tokens": 500,
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": answer}]}]
                ),
            }
        )
    provider.shutdown()
    print(answer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
