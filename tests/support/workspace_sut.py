"""A stand-in coding agent for workspace tests: it "fixes" ``calc.py`` in its working
folder (the case's workspace) and reports one ``invoke_agent`` span.

``WS_SUT_SKILL=good`` makes the right edit; ``bad`` edits the check script instead of
the code. ``WS_SUT_LOG`` (a folder) gets one file per run naming the folder it ran in.
"""

import os
import sys
import uuid
from pathlib import Path

from opentelemetry import trace

from tracescore.instrumentation import attached, configure, context_from_env


def edit(folder: Path, skill: str) -> str:
    if skill == "good":
        calc = folder / "calc.py"
        calc.write_text(calc.read_text().replace("return a - b", "return a + b"))
        (folder / "NOTES.md").write_text("fixed add()\n")  # an untracked new file
        return "Fixed add() in calc.py."
    check = folder / "check_calc.py"
    check.write_text(check.read_text().replace("== 5", "== -1"))
    return "Changed the check to match the code."


def main(argv: list[str]) -> int:
    folder = Path.cwd()
    if log := os.environ.get("WS_SUT_LOG"):
        (Path(log) / uuid.uuid4().hex).write_text(str(folder))
    provider = configure(service_name="workspace-agent")
    try:
        with attached(context_from_env()):
            tracer = trace.get_tracer("workspace-sut")
            with tracer.start_as_current_span("invoke_agent workspace-agent") as span:
                span.set_attribute("gen_ai.operation.name", "invoke_agent")
                span.set_attribute("gen_ai.agent.name", "workspace-agent")
                output = edit(folder, os.environ.get("WS_SUT_SKILL", "good"))
                span.set_attribute("output.value", output)
        print(output)
    finally:
        provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
