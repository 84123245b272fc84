"""Your own evaluators: the ``@scorer`` decorator and ``tracescore.evaluators`` entry points."""

import asyncio
import concurrent.futures
import inspect
import math
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, ClassVar, TypeVar

from pydantic import ConfigDict, model_validator

from tracescore.schemas.scores import Score
from tracescore.schemas.suite import Case
from tracescore.schemas.trace import Trace
from tracescore.scoring.evaluators.base import (
    Evaluator,
    EvaluatorParams,
    TraceField,
    register,
    registered_now,
    restore_registry,
    set_evaluator_source,
    snapshot_registry,
    unregister,
)

ENTRY_POINT_GROUP = "tracescore.evaluators"

ScorerResult = bool | float | Score | tuple[bool | float, str]
F = TypeVar("F", bound=Callable[..., Any])


# --- @scorer ----------------------------------------------------------------------------------


class ScorerParams(EvaluatorParams):
    """Params of a ``@scorer``: ``threshold`` plus whatever keywords the function takes."""

    # A plain function declares its params in its signature, not in a model, so extra
    # keys are allowed here and checked against that signature instead.
    model_config = ConfigDict(extra="allow")

    threshold: float = 0.5
    """A float result passes when it is ≥ threshold."""

    accepted: ClassVar[frozenset[str] | None] = None
    """Keyword params the function takes; None when it takes ``**kwargs``."""
    required: ClassVar[frozenset[str]] = frozenset()
    """Keyword params without a default: a config that omits one is an error."""

    @model_validator(mode="after")
    def _function_takes_them(self) -> "ScorerParams":
        # An unknown param should stop the run at load time, not crash every case.
        missing = sorted(self.required - set(self.model_extra or {}))
        if missing:
            raise ValueError(f"missing params {', '.join(missing)} (the scorer requires them)")
        if self.accepted is not None:
            unknown = sorted(set(self.model_extra or {}) - self.accepted)
            if unknown:
                takes = ", ".join(sorted(self.accepted)) or "no params"
                raise ValueError(f"unknown params {', '.join(unknown)} (the scorer takes {takes})")
        return self


class ScorerEvaluator(Evaluator):
    """The Evaluator ``@scorer`` builds around a function."""

    Params = ScorerParams
    function: ClassVar[Callable[..., Any]]
    passes_threshold: ClassVar[bool] = False
    """Whether the function itself takes ``threshold`` (by name or ``**kwargs``)."""

    def score(self, trace: Trace, case: Case) -> Score:
        p = self.params
        assert isinstance(p, ScorerParams)
        if (missing := self.require(trace)) is not None:
            return missing
        kwargs = dict(p.model_extra or {})
        if self.passes_threshold:
            kwargs["threshold"] = p.threshold
        result = type(self).function(trace, case, **kwargs)
        if inspect.isawaitable(result):
            result = _run_coroutine(_awaited(result))
        return to_score(self.name, result, p.threshold)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _run_coroutine(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run an async scorer to completion from synchronous ``score``."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Inside a running loop asyncio.run would fail, and blocking on that loop would
    # deadlock: give the coroutine a loop of its own in a worker thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def to_score(name: str, result: Any, threshold: float = 0.5) -> Score:
    """A scorer's result as a Score (see ``scorer`` for the mapping)."""
    explanation = ""
    if isinstance(result, tuple):
        if len(result) != 2 or not isinstance(result[1], str):
            raise TypeError("a scorer's tuple result must be (bool | float, explanation: str)")
        result, explanation = result
    if isinstance(result, Score):
        return result.model_copy(update={"evaluator": name})
    # bool first: it is also an int.
    if isinstance(result, bool):
        return Score(
            evaluator=name,
            value=1.0 if result else 0.0,
            passed=result,
            label="pass" if result else "fail",
            explanation=explanation,
        )
    if isinstance(result, int | float):
        value = float(result)
        if math.isnan(value):
            return Score.failure(name, "scorer returned NaN")
        passed = value >= threshold
        verdict = f"{value:g} {'≥' if passed else '<'} threshold {threshold:g}"
        return Score(
            evaluator=name,
            value=value,
            passed=passed,
            label="pass" if passed else "fail",
            explanation=f"{verdict}; {explanation}" if explanation else verdict,
        )
    raise TypeError(
        f"a scorer must return bool, float, Score or (value, explanation), "
        f"not {type(result).__name__}"
    )


# Function → the Evaluator built for it: how an entry point that names a decorated
# function is told apart from an arbitrary callable.
_SCORERS: dict[Callable[..., Any], type[ScorerEvaluator]] = {}


def scorer(
    name: str | None = None,
    *,
    summary: str | None = None,
    requires: Sequence[TraceField] = (),
) -> Callable[[F], F]:
    """Register a function ``(trace, case, **params) -> result`` as an evaluator type.

    ``name`` (default: the function's name) is the ``type:`` in eval.yaml; ``summary``
    (default: the docstring's first line) is shown by ``tracescore evaluators``.
    ``requires`` names trace fields (``final_output``, ``input``, ``spans``, ``duration``,
    ``llm_calls``, ``token_usage``) without which the function is not called: the Score is
    an error naming the missing field. The function may be ``async def``. Results map to
    Scores as follows:

    * ``bool`` → pass/fail with value 1.0/0.0;
    * ``float`` (or int) → that value, passing when ≥ ``params.threshold`` (default 0.5);
    * ``Score`` → kept, with ``evaluator`` set to the configured name;
    * ``(bool | float, str)`` → as above, with the string as the explanation.

    An exception (or any other result) becomes an error Score, never a pass or fail.
    Every ``params`` key other than ``threshold`` is passed as a keyword argument;
    ``threshold`` is passed too when the function names it or takes ``**kwargs``.
    The function is returned unchanged, so it can still be called directly.
    """

    def decorate(function: F) -> F:
        type_name = name or function.__name__
        signature = inspect.signature(function)
        positional = [
            p
            for p in signature.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if len(positional) < 2:
            raise TypeError(f"scorer {type_name!r} must take (trace, case) as its first params")
        takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        keywords = frozenset(
            p.name
            for p in signature.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p not in positional[:2]
        )
        doc_line = (inspect.getdoc(function) or "").strip().split("\n")[0]
        class_name = "".join(part.title() for part in type_name.split("_")) or "Scorer"

        params_cls = type(
            f"{class_name}Params",
            (ScorerParams,),
            {
                "accepted": None if takes_any else keywords - {"threshold"},
                "required": frozenset(
                    p.name
                    for p in signature.parameters.values()
                    if p.name in keywords and p.name != "threshold" and p.default is p.empty
                ),
            },
        )
        evaluator_cls = type(
            class_name,
            (ScorerEvaluator,),
            {
                "type_name": type_name,
                "summary": summary if summary is not None else doc_line,
                "Params": params_cls,
                "function": staticmethod(function),
                "passes_threshold": takes_any or "threshold" in keywords,
                "requires": tuple(requires),
                # So the registry credits the scorer's module, not this one.
                "__module__": function.__module__,
            },
        )
        register(evaluator_cls)
        _SCORERS[function] = evaluator_cls
        return function

    return decorate


def scorer_evaluator(function: Callable[..., Any]) -> type[ScorerEvaluator] | None:
    """The Evaluator class ``@scorer`` registered for ``function``, if any."""
    try:
        return _SCORERS.get(function)
    except TypeError:  # an unhashable object is certainly not a scorer
        return None


# --- entry points -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PluginFailure:
    """An entry point that could not be loaded; reported, never fatal."""

    name: str
    value: str
    distribution: str
    error: str


_loaded = False
_failures: list[PluginFailure] = []


def load_plugins() -> None:
    """Load every ``tracescore.evaluators`` entry point, once.

    An entry point names an Evaluator subclass (registered under its ``type_name``) or
    a ``@scorer`` function (registered when its module is imported).
    """
    global _loaded
    if _loaded:
        return
    # Set first: a plugin that reads the registry while importing must not recurse.
    _loaded = True
    for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        _load(entry_point)


def _load(entry_point: EntryPoint) -> None:
    distribution = entry_point.dist.name if entry_point.dist is not None else "unknown"
    before = registered_now()
    try:
        loaded = entry_point.load()
        if isinstance(loaded, type) and issubclass(loaded, Evaluator):
            type_name = getattr(loaded, "type_name", None)
            if not isinstance(type_name, str) or not type_name:
                raise TypeError(f"{loaded.__name__} has no type_name")
            if inspect.isabstract(loaded):
                raise TypeError(f"{loaded.__name__} does not implement score()")
            # Already there when its module used @register; a clash raises in register().
            if snapshot_registry()[0].get(type_name) is not loaded:
                register(loaded)
        elif scorer_evaluator(loaded) is None:
            raise TypeError(
                f"{type(loaded).__name__} {getattr(loaded, '__name__', loaded)!r} is neither "
                "an Evaluator subclass nor a @scorer function"
            )
    except Exception as exc:
        # A half-imported plugin could leave some of its types registered: drop them
        # so a suite never uses part of a broken plugin.
        for type_name in registered_now() - before:
            unregister(type_name)
        _failures.append(
            PluginFailure(
                entry_point.name,
                entry_point.value,
                distribution,
                f"{type(exc).__name__}: {exc}",
            )
        )
        return
    for type_name in registered_now() - before:
        set_evaluator_source(type_name, distribution)


def plugin_failures() -> list[PluginFailure]:
    """Entry points that failed to load (loading them first if not done yet)."""
    load_plugins()
    return list(_failures)


def reset_plugins() -> None:
    """Load entry points again on the next registry read (after changing ``sys.path``)."""
    global _loaded
    _loaded = False
    _failures.clear()


@contextmanager
def isolated_registry() -> Iterator[None]:
    """Undo every registration and plugin load made inside the block (for tests)."""
    global _loaded
    snapshot = snapshot_registry()
    loaded, failures, scorers = _loaded, list(_failures), dict(_SCORERS)
    try:
        yield
    finally:
        restore_registry(snapshot)
        _loaded = loaded
        _failures[:] = failures
        _SCORERS.clear()
        _SCORERS.update(scorers)
