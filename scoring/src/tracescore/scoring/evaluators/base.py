"""The evaluator interface and the registry that turns config entries into evaluators."""

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from functools import cached_property
from typing import Any, ClassVar, Literal

from opentelemetry.trace import TracerProvider
from pydantic import BaseModel, ConfigDict, ValidationError

from tracescore.schemas.errors import ConfigError
from tracescore.schemas.scores import Score
from tracescore.schemas.suite import Case, EvaluatorSpec
from tracescore.schemas.trace import Trace
from tracescore.schemas.trusted import trusted

TraceField = Literal["final_output", "input", "spans", "duration", "llm_calls", "token_usage"]

# What each field a trace may lack means, and where reconstruction looked for it.
_FIELDS: dict[TraceField, tuple[str, Callable[[Trace], bool], str]] = {
    "final_output": (
        "final output",
        lambda t: t.final_output is not None,
        "looked for the outermost agent's output (gen_ai.output.messages, output.value, "
        "traceloop.entity.output), then the last model reply, then the SUT's own output "
        "on the harness span",
    ),
    "input": (
        "input",
        lambda t: t.input is not None,
        "no case input on the harness span, no agent input and no user message",
    ),
    "spans": ("spans", lambda t: bool(t.spans), "the trace has no spans"),
    "duration": (
        "duration",
        lambda t: t.duration_ns > 0,
        "no harness span and no timed spans to measure the run by",
    ),
    "llm_calls": (
        "LLM calls",
        lambda t: bool(t.llm_calls),
        "no LLM call spans (GenAI chat/text_completion/generate_content, OpenInference LLM, "
        "OpenLLMetry llm.request.type)",
    ),
    "token_usage": (
        "token usage",
        lambda t: t.has_token_usage,
        "no LLM call reported gen_ai.usage.* or llm.token_count.*",
    ),
}


class EvaluatorParams(BaseModel):
    """Base for each evaluator's ``params:`` block; unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")


class Evaluator(ABC):
    """Scores one trace of one case. Subclasses set ``type_name`` and ``Params``."""

    type_name: ClassVar[str]
    Params: ClassVar[type[EvaluatorParams]] = EvaluatorParams
    summary: ClassVar[str] = ""
    requires: ClassVar[tuple[TraceField, ...]] = ()
    """Trace fields the evaluator cannot score without; ``require`` checks them."""

    def __init__(self, name: str, params: EvaluatorParams) -> None:
        self.name = name
        self.params = params

    @cached_property
    def config_hash(self) -> str:
        """Identity of (type, params): a re-score with the same config replaces the score.

        Computed once: every score row written carries it, and params do not change
        after the evaluator is built."""
        payload = json.dumps(
            {"type": self.type_name, "params": self.params.model_dump(mode="json")},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @abstractmethod
    def score(self, trace: Trace, case: Case) -> Score: ...

    def use_tracer_provider(self, provider: TracerProvider) -> None:
        """Where the evaluator's own spans go (an LLM judge traces its calls). The runner
        hands it a provider exporting to the run's collector; others ignore it."""
        return None

    def safe_score(self, trace: Trace, case: Case) -> Score:
        """``score``, with a crash turned into a Score that carries the error."""
        try:
            return self.score(trace, case)
        except Exception as exc:
            return Score.failure(self.name, f"evaluator crashed: {type(exc).__name__}: {exc}")

    # helpers for subclasses
    def verdict(self, passed: bool, explanation: str, value: float | None = None) -> Score:
        """Pass or fail; ``value`` is the measured quantity when there is one, else 1/0."""
        # Built without validation: every evaluator returns several per trace, and the
        # field values here are of the right types by construction.
        return trusted(
            Score,
            {
                "evaluator": self.name,
                "value": (1.0 if passed else 0.0) if value is None else float(value),
                "passed": bool(passed),
                "label": "pass" if passed else "fail",
                "explanation": str(explanation),
                "error": None,
                "skipped": False,
            },
        )

    def expected_values(self, explicit: Any, case: Case, case_key: str) -> list[str]:
        """What to check: the ``params`` value, else the case's ``expected.<case_key>``."""
        value = explicit if explicit is not None else case.expected.get(case_key)
        return [str(v) for v in as_list(value)]

    def nothing_to_check(self, case_key: str) -> Score:
        return Score.skip(self.name, f"case has no expected.{case_key}")

    def required_fields(self) -> tuple[TraceField, ...]:
        """The fields this instance needs (user-written evaluators declare them in params)."""
        return self.requires

    def require(self, trace: Trace) -> Score | None:
        """An error Score naming the first declared field the trace lacks, else None."""
        for name in self.required_fields():
            label, present, detail = _FIELDS[name]
            if not present(trace):
                return self.missing(label, detail)
        return None

    def final_output(self, trace: Trace) -> str | Score:
        """The trace's final output, or the error Score saying it has none."""
        if trace.final_output is None:
            label, _, detail = _FIELDS["final_output"]
            return self.missing(label, detail)
        return trace.final_output

    def missing(self, field: str, detail: str = "") -> Score:
        message = f"trace has no {field}"
        return Score.failure(self.name, f"{message}: {detail}" if detail else message)


_REGISTRY: dict[str, type[Evaluator]] = {}
# Where each type came from, for ``tracescore evaluators``: BUILT_IN, a plugin's
# distribution name, or the module of an evaluator registered by user code.
_SOURCES: dict[str, str] = {}

BUILT_IN = "built-in"


def register(cls: type[Evaluator]) -> type[Evaluator]:
    if cls.type_name in _REGISTRY:
        raise ValueError(f"evaluator type {cls.type_name!r} is registered twice")
    _REGISTRY[cls.type_name] = cls
    _SOURCES[cls.type_name] = (
        BUILT_IN if cls.__module__.startswith("tracescore.") else cls.__module__
    )
    return cls


def unregister(type_name: str) -> None:
    """Forget an evaluator type (tests, or a plugin whose import failed half way)."""
    _REGISTRY.pop(type_name, None)
    _SOURCES.pop(type_name, None)


def registered() -> dict[str, type[Evaluator]]:
    _ensure_plugins()
    return dict(_REGISTRY)


def evaluator_source(type_name: str) -> str:
    """``built-in``, the distribution of the plugin that provided it, or its module."""
    _ensure_plugins()
    return _SOURCES.get(type_name, BUILT_IN)


def set_evaluator_source(type_name: str, source: str) -> None:
    if type_name in _REGISTRY:
        _SOURCES[type_name] = source


def registered_now() -> set[str]:
    """The registered type names, without loading plugins (the plugin loader uses it)."""
    return set(_REGISTRY)


RegistrySnapshot = tuple[dict[str, type[Evaluator]], dict[str, str]]


def snapshot_registry() -> RegistrySnapshot:
    return dict(_REGISTRY), dict(_SOURCES)


def restore_registry(snapshot: RegistrySnapshot) -> None:
    registry, sources = snapshot
    _REGISTRY.clear()
    _REGISTRY.update(registry)
    _SOURCES.clear()
    _SOURCES.update(sources)


def _ensure_plugins() -> None:
    # Imported here, not at the top: plugins.py imports this module. Loading on first
    # read (not on import) keeps `import tracescore` cheap and lets plugins import us.
    from tracescore.scoring.evaluators.plugins import load_plugins

    load_plugins()


def _plugin_hint(type_name: str) -> str:
    from tracescore.scoring.evaluators.plugins import plugin_failures

    for failure in plugin_failures():
        if failure.name == type_name:
            return f"; plugin {failure.name!r} ({failure.value}) failed to load: {failure.error}"
    return ""


def build_evaluator(spec: EvaluatorSpec) -> Evaluator:
    """An evaluator from its config entry; ConfigError names what is wrong."""
    _ensure_plugins()
    cls = _REGISTRY.get(spec.type)
    if cls is None:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(
            f"unknown evaluator type {spec.type!r} (known: {known}){_plugin_hint(spec.type)}"
        )
    try:
        params = cls.Params.model_validate(spec.params)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{_param_path(first['loc'])}: {first['msg']}") from exc
    return cls(spec.display_name, params)


def _param_path(loc: tuple[int | str, ...]) -> str:
    """``params.text[0]`` from pydantic's location, without its union-member tags.

    For ``text: str | list[str]`` pydantic reports ``("text", "list[str]", 0)``; the
    tag is not a key the user wrote. Only the top level is a plain field, so deeper
    string parts are kept only when they are dict keys of a mapping param.
    """
    if not loc:
        # A model-level validator (e.g. "give min, max or both") has no field.
        return "params"
    path = f"params.{loc[0]}"
    for part in loc[1:]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not _is_union_tag(part):
            path += f".{part}"
    return path


def _is_union_tag(part: str) -> bool:
    return part in {"str", "int", "float", "bool", "dict", "list", "none"} or "[" in part


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]
