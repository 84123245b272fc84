"""The ``command`` system: one subprocess per case, joined to the case's trace via env vars."""

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from tracescore.schemas.errors import ConfigError
from tracescore.schemas.suite import Case, CommandSystem, Variant
from tracescore.scoring.systems.base import CallContext, Invocation, SystemAdapter

# A short export delay so the SUT's batch processor does not sit on spans.
_SPAN_EXPORT_DELAY_MS = "50"


def encode_resource_attributes(attributes: dict[str, str]) -> str:
    """``OTEL_RESOURCE_ATTRIBUTES`` text: key=value pairs, values percent-encoded (W3C baggage)."""
    return ",".join(f"{k}={quote(v, safe='')}" for k, v in attributes.items())


class CommandAdapter(SystemAdapter):
    def __init__(self, system: CommandSystem, base_dir: Path) -> None:
        self.system = system
        self.cwd = (base_dir / system.cwd) if system.cwd else base_dir
        if not self.cwd.is_dir():
            raise ConfigError(f"system.cwd: {self.cwd} is not a directory")

    def argv(self, case: Case) -> list[str]:
        values = {"input": case.input, "case_id": case.id, "python": sys.executable}
        try:
            return [part.format_map(values) for part in self.system.command]
        except (KeyError, ValueError) as exc:
            raise ConfigError(
                f"system.command: bad placeholder {exc} (use {{input}}, {{case_id}}, {{python}})"
            ) from None

    def environment(self, variant: Variant, call: CallContext) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.system.env)
        env.update(variant.env)
        existing = env.get("OTEL_RESOURCE_ATTRIBUTES", "")
        ours = encode_resource_attributes(call.resource_attributes)
        env.update(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": call.otlp_endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_TRACES_EXPORTER": "otlp",
                # Later entries win in the SDK's parser, so the variant overrides inherited values.
                "OTEL_RESOURCE_ATTRIBUTES": f"{existing},{ours}" if existing else ours,
                "OTEL_BSP_SCHEDULE_DELAY": _SPAN_EXPORT_DELAY_MS,
            }
        )
        env.update(call.trace_env)
        return env

    def invoke(self, case: Case, variant: Variant, call: CallContext) -> Invocation:
        argv = self.argv(case)
        try:
            done = subprocess.run(
                argv,
                cwd=self.cwd,
                env=self.environment(variant, call),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.system.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Invocation(output="", error=f"SUT timed out after {self.system.timeout_s:g}s")
        except OSError as exc:
            return Invocation(output="", error=f"cannot start SUT {argv[0]!r}: {exc.strerror}")
        output = done.stdout.strip()
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no stderr)"])[-1]
            return Invocation(
                output=output,
                error=f"SUT exited with code {done.returncode}: {last}",
                exit_code=done.returncode,
            )
        return Invocation(output=output, exit_code=0)
