"""System-under-test adapters: how the runner calls one case of one variant."""

from pathlib import Path

from tracescore.collector.store import Store
from tracescore.schemas.suite import (
    CommandSystem,
    HttpSystem,
    LlmSystem,
    PythonSystem,
    ReplaySystem,
    SystemConfig,
)
from tracescore.scoring.systems.base import (
    CallContext,
    Invocation,
    SystemAdapter,
    SystemStartError,
    VariantContext,
)


def adapter_for(system: SystemConfig, folder: Path, store: Store) -> SystemAdapter:
    """A fresh adapter for one variant's (already merged) system settings.

    Imported on use: the ``llm`` adapter pulls in the anthropic SDK, which a suite of
    subprocess SUTs should not pay for.
    """
    if isinstance(system, CommandSystem):
        from tracescore.scoring.systems.command import CommandAdapter

        return CommandAdapter(system, folder)
    if isinstance(system, HttpSystem):
        from tracescore.scoring.systems.http import HttpAdapter

        return HttpAdapter(system, folder)
    if isinstance(system, PythonSystem):
        from tracescore.scoring.systems.python_function import PythonAdapter

        return PythonAdapter(system, folder)
    if isinstance(system, LlmSystem):
        from tracescore.scoring.systems.llm import LlmAdapter

        return LlmAdapter(system)
    if isinstance(system, ReplaySystem):
        from tracescore.scoring.systems.replay import ReplayAdapter

        return ReplayAdapter(system, store)
    raise AssertionError(f"no adapter for {type(system).__name__}")


__all__ = [
    "CallContext",
    "Invocation",
    "SystemAdapter",
    "SystemStartError",
    "VariantContext",
    "adapter_for",
]
