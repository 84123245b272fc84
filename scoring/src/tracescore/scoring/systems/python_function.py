"""The ``python`` system: calls ``module:function`` in this process, once per case."""

import asyncio
import contextvars
import dataclasses
import importlib
import inspect
import json
import sys
import threading
import traceback
import typing
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.trace import TracerProvider
from pydantic import BaseModel

from tracescore.instrumentation import attached, context_from_env
from tracescore.schemas.errors import ConfigError
from tracescore.schemas.suite import Case, PythonSystem, Variant
from tracescore.scoring.systems.base import CallContext, Invocation, SystemAdapter, VariantContext
from tracescore.scoring.systems.routing import install_routing, use_provider

# sys.path entries are shared by every adapter in the process; each is removed when the
# last adapter that added it stops.
_path_users: Counter[str] = Counter()
_path_lock = threading.Lock()


class PythonAdapter(SystemAdapter):
    """Calls the function with the case input (or the ``Case``, when its first parameter
    is annotated ``Case``); async functions run in their own event loop.

    The adapter creates no span of its own: the function's spans, made through the global
    OTel API (``trace.get_tracer(...)``, as instrumentation libraries do), go to the
    variant's TracerProvider as children of the case's harness span. A function that
    emits no span gets the runner's "no spans" error.

    The module is imported at ``start`` and, as any import, once per process: variants
    naming functions of one module share it, and a module already imported from
    elsewhere under the same name is reused. ``Variant.env`` is not applied (the
    process environment is shared by variants running at once).
    """

    in_process = True

    def __init__(self, system: PythonSystem, folder: Path) -> None:
        self.system = system
        self.folders = [(folder / p).resolve() for p in system.path] or [folder.resolve()]
        self._added: list[str] = []
        self._function: Callable[..., Any] | None = None
        self._takes_case = False
        self._provider: TracerProvider | None = None

    def start(self, context: VariantContext) -> None:
        # Installed before the import so a module that sets its own global provider at
        # import time cannot take the variant's spans away (its set is ignored).
        install_routing()
        self._provider = context.tracer_provider
        self._add_paths()
        self._function = self._load()
        self._takes_case = _takes_case(self._function)

    def stop(self) -> None:
        with _path_lock:
            for entry in self._added:
                _path_users[entry] -= 1
                if _path_users[entry] <= 0:
                    del _path_users[entry]
                    if entry in sys.path:
                        sys.path.remove(entry)
        self._added = []

    def _add_paths(self) -> None:
        with _path_lock:
            for folder in self.folders:
                if not folder.is_dir():
                    raise ConfigError(f"system.path: {folder} is not a directory")
                entry = str(folder)
                if entry in self._added:
                    continue
                if _path_users[entry] == 0 and entry not in sys.path:
                    sys.path.insert(0, entry)
                    _path_users[entry] += 1
                    self._added.append(entry)
                elif _path_users[entry] > 0:
                    _path_users[entry] += 1
                    self._added.append(entry)

    def _load(self) -> Callable[..., Any]:
        spec = self.system.function
        module_name, _, attr_path = spec.partition(":")
        # Files written since the last import (a fresh suite folder) must be found.
        importlib.invalidate_caches()
        try:
            target: Any = importlib.import_module(module_name)
        except Exception as exc:
            raise ConfigError(
                f"system.function {spec!r}: cannot import {module_name!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        for part in attr_path.split("."):
            try:
                target = getattr(target, part)
            except AttributeError:
                raise ConfigError(
                    f"system.function {spec!r}: {module_name!r} has no attribute {attr_path!r}"
                ) from None
        if not callable(target):
            raise ConfigError(
                f"system.function {spec!r}: {type(target).__name__} object is not callable"
            )
        return typing.cast(Callable[..., Any], target)

    def invoke(self, case: Case, variant: Variant, call: CallContext) -> Invocation:
        function, provider = self._function, self._provider
        if function is None or provider is None:
            raise RuntimeError("PythonAdapter.invoke before start()")
        argument: Any = case if self._takes_case else case.input
        parent = context_from_env(call.trace_env)
        outcome: list[Invocation] = []

        def run() -> None:
            with use_provider(provider), attached(parent):
                outcome.append(_call(function, argument))

        # A copy of the caller's context, so anything the runner set there reaches the
        # function too; a new thread would otherwise start from an empty one.
        context = contextvars.copy_context()
        worker = threading.Thread(
            target=context.run, args=(run,), name=f"tracescore-sut-{case.id}", daemon=True
        )
        worker.start()
        worker.join(self.system.timeout_s)
        if worker.is_alive():
            # Python cannot kill a thread: the call runs on in the background (daemon, so
            # it does not hold up exit), and spans it still makes reach the variant.
            return Invocation(
                output="",
                error=f"SUT timed out after {self.system.timeout_s:g}s",
                transient=True,
            )
        if not outcome:
            return Invocation(output="", error="SUT call ended without a result")
        return outcome[0]


def _call(function: Callable[..., Any], argument: Any) -> Invocation:
    try:
        if inspect.iscoroutinefunction(function):
            result = asyncio.run(function(argument))
        else:
            result = function(argument)
            if inspect.isawaitable(result):
                result = asyncio.run(_awaited(result))
    # BaseException too: a SystemExit (sys.exit in the SUT) would otherwise end the worker
    # thread silently and leave the case without an outcome.
    except BaseException as exc:
        return Invocation(output="", error=_describe(exc))
    try:
        return Invocation(output=_as_text(result))
    except (TypeError, ValueError) as exc:
        return Invocation(output="", error=f"SUT output is not JSON-serializable: {exc}")


async def _awaited(awaitable: typing.Awaitable[Any]) -> Any:
    return await awaitable


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return f"{type(exc).__name__}: {exc}"
    last = frames[-1]
    return f"{type(exc).__name__}: {exc} (at {last.filename}:{last.lineno} in {last.name})"


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.dumps(value, ensure_ascii=False)


def _takes_case(function: Callable[..., Any]) -> bool:
    """Whether the function's first parameter is annotated ``Case``."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False
    if not parameters:
        return False
    first = parameters[0]
    annotation: object = first.annotation
    if isinstance(annotation, str):
        written = annotation
        # ``from __future__ import annotations``: resolve in the function's own globals.
        try:
            annotation = typing.get_type_hints(function).get(first.name, written)
        except Exception:
            return written.rsplit(".", 1)[-1] == "Case"
    return annotation is Case
