"""The ``command`` system: one subprocess per case, joined to the case's trace via env vars."""

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from tracescore.schemas.errors import ConfigError
from tracescore.schemas.suite import Case, CommandSystem, Variant
from tracescore.scoring.systems.base import CallContext, Invocation, SystemAdapter
from tracescore.scoring.workspaces import WORKSPACE_ENV

# A short export delay so the SUT's batch processor does not sit on spans.
_SPAN_EXPORT_DELAY_MS = "50"


def encode_resource_attributes(attributes: dict[str, str]) -> str:
    """``OTEL_RESOURCE_ATTRIBUTES`` text: key=value pairs, values percent-encoded (W3C baggage)."""
    return ",".join(f"{k}={quote(v, safe='')}" for k, v in attributes.items())


def sut_environment(
    otlp_endpoint: str, resource_attributes: dict[str, str], *layers: Mapping[str, str]
) -> dict[str, str]:
    """The environment of a SUT process tracescore starts: ours, then ``layers`` (later
    wins), then the OTel settings that send its spans to the run's receiver."""
    env = dict(os.environ)
    for layer in layers:
        env.update(layer)
    existing = env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    ours = encode_resource_attributes(resource_attributes)
    env.update(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_TRACES_EXPORTER": "otlp",
            # Later entries win in the SDK's parser, so the variant overrides inherited values.
            "OTEL_RESOURCE_ATTRIBUTES": f"{existing},{ours}" if existing else ours,
            "OTEL_BSP_SCHEDULE_DELAY": _SPAN_EXPORT_DELAY_MS,
        }
    )
    return env


class CommandAdapter(SystemAdapter):
    def __init__(self, system: CommandSystem, base_dir: Path) -> None:
        self.system = system
        self.cwd = (base_dir / system.cwd) if system.cwd else base_dir
        if not self.cwd.is_dir():
            raise ConfigError(f"system.cwd: {self.cwd} is not a directory")

    def argv(self, case: Case, workspace: Path | None = None) -> list[str]:
        values = {"input": case.input, "case_id": case.id, "python": sys.executable}
        if workspace is not None:
            values["workspace"] = str(workspace)
        try:
            return [part.format_map(values) for part in self.system.command]
        except KeyError as exc:
            if exc.args == ("workspace",):
                raise ConfigError(
                    "system.command: {workspace} needs a `workspace:` section in the suite"
                ) from None
            raise ConfigError(
                f"system.command: bad placeholder {exc} "
                "(use {input}, {case_id}, {workspace}, {python})"
            ) from None
        except ValueError as exc:
            raise ConfigError(
                f"system.command: bad placeholder {exc} "
                "(use {input}, {case_id}, {workspace}, {python})"
            ) from None

    def environment(self, variant: Variant, call: CallContext) -> dict[str, str]:
        env = sut_environment(
            call.otlp_endpoint, call.resource_attributes, self.system.env, variant.env
        )
        if call.workspace is not None:
            env[WORKSPACE_ENV] = str(call.workspace)
        env.update(call.trace_env)
        return env

    def invoke(self, case: Case, variant: Variant, call: CallContext) -> Invocation:
        argv = self.argv(case, call.workspace)
        try:
            done = subprocess.run(
                argv,
                cwd=call.workspace or self.cwd,
                env=self.environment(variant, call),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.system.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Invocation(
                output="", error=f"SUT timed out after {self.system.timeout_s:g}s", transient=True
            )
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
