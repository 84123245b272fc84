"""Pydantic models of a suite: ``eval.yaml`` and its cases."""

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tracescore.schemas.attributes import DEFAULT_VARIANT_KEY


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CommandSystem(_Strict):
    """Runs the SUT as a subprocess per case.

    ``command`` items may use ``{input}``, ``{case_id}``, ``{workspace}`` and ``{python}``
    (the interpreter running tracescore). The subprocess gets ``TRACEPARENT``,
    ``BAGGAGE``, ``OTEL_EXPORTER_OTLP_ENDPOINT`` and ``OTEL_RESOURCE_ATTRIBUTES``.
    """

    type: Literal["command"]
    command: list[str] = Field(min_length=1)
    cwd: str | None = Field(default=None, description="Relative to the eval.yaml folder.")
    env: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=60.0, gt=0, description="Per case.")


class ServerSpec(_Strict):
    """A long-lived SUT process, started once per variant before its first case and
    stopped after its last. It gets the same OTEL_* environment as a ``command`` SUT.
    ``{port}`` in ``command``, ``env`` values and the system's ``url`` is a free TCP
    port tracescore picks per variant; ``{python}`` is tracescore's interpreter."""

    command: list[str] = Field(min_length=1)
    cwd: str | None = Field(default=None, description="Relative to the eval.yaml folder.")
    env: dict[str, str] = Field(default_factory=dict)
    ready_url: str | None = Field(
        default=None,
        description="Polled with GET until it answers below 500; default: wait until the "
        "port accepts connections.",
    )
    ready_timeout_s: float = Field(default=30.0, gt=0)
    stop_timeout_s: float = Field(default=10.0, gt=0)


class HttpSystem(_Strict):
    """Calls the SUT over HTTP, one request per case, with ``traceparent``,
    ``tracestate`` and ``baggage`` headers joining the case's trace.

    Strings in ``url``, ``headers`` and ``body`` may use ``{{input}}``, ``{{case_id}}``,
    ``{{expected.NAME}}`` and ``{{metadata.NAME}}``; a string that is only one such
    placeholder is replaced by the value itself (so it can be a number or an object).
    """

    type: Literal["http"]
    url: str = Field(min_length=1)
    method: Literal["GET", "POST", "PUT", "PATCH"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = Field(
        default_factory=lambda: {"input": "{{input}}"},
        description="JSON request body template (not sent with GET).",
    )
    output: str | None = Field(
        default=None,
        description="RFC 9535 JSONPath selecting the output from a JSON response "
        "(e.g. $.output); default: the whole response body as text.",
    )
    timeout_s: float = Field(default=60.0, gt=0, description="Per request.")
    retry_statuses: list[int] = Field(
        default_factory=lambda: [429, 502, 503, 504],
        description="Responses treated as transient: the case is retried with backoff.",
    )
    server: ServerSpec | None = None


class PythonSystem(_Strict):
    """Calls ``module:function`` in-process. The function takes the case input (or the
    ``Case``, if its one parameter is annotated ``Case``) and returns the output; it may
    be async. Spans it creates through the global OTel API go to the variant's own
    TracerProvider, whose resource carries ``service.name`` and the variant attribute."""

    type: Literal["python"]
    function: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
    path: list[str] = Field(
        default_factory=list,
        description="Folders added to sys.path, relative to the eval.yaml folder "
        "(default: that folder).",
    )
    service_name: str = Field(default="sut", min_length=1)
    timeout_s: float = Field(default=60.0, gt=0, description="Per case.")


class ReplaySystem(_Strict):
    """Scores traces already in the store as if they were fresh runs. Cases whose
    ``metadata.trace_id`` is set score that trace; with no cases file, the traces are
    chosen by ``trace_ids`` or by the query fields (newest first), one case per trace."""

    type: Literal["replay"]
    trace_ids: list[str] = Field(default_factory=list)
    service: str | None = Field(
        default=None, description="Only traces with a span of this service."
    )
    since: str | None = Field(
        default=None, pattern=r"^\d+[smhd]$", description="Only traces started within, e.g. 24h."
    )
    limit: int = Field(default=1000, ge=1)
    match_variant: bool = Field(
        default=True,
        description="Only traces whose variant attribute equals the variant's name.",
    )


class LlmSystem(_Strict):
    """Calls a model directly, one request per case; tracescore emits the GenAI client
    span. ``prompt`` and ``system_prompt`` use the ``http`` placeholders."""

    type: Literal["llm"]
    provider: Literal["anthropic", "openai"]
    model: str = Field(min_length=1)
    prompt: str = "{{input}}"
    system_prompt: str | None = None
    base_url: str | None = Field(
        default=None, description="Default: the provider's API (or $ANTHROPIC_BASE_URL)."
    )
    api_key_env: str | None = Field(
        default=None, description="Default: ANTHROPIC_API_KEY or OPENAI_API_KEY."
    )
    max_tokens: int = Field(default=1024, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    timeout_s: float = Field(default=60.0, gt=0)
    service_name: str = Field(default="tracescore-llm", min_length=1)


SystemConfig = CommandSystem | HttpSystem | PythonSystem | ReplaySystem | LlmSystem
System = Annotated[SystemConfig, Field(discriminator="type")]


class RetryPolicy(_Strict):
    """Retries of a case whose SUT call failed transiently (timeouts, connection
    errors, retryable HTTP statuses), with exponential backoff."""

    attempts: int = Field(default=3, ge=1, le=20, description="Total tries, the first included.")
    backoff_s: float = Field(default=0.5, ge=0)
    max_backoff_s: float = Field(default=10.0, ge=0)


class WorkspaceSpec(_Strict):
    """A fresh copy of a fixture folder (or a git worktree of it) per case × variant ×
    repeat, for SUTs that modify files; removed after the case is scored."""

    fixture: str = Field(min_length=1, description="Relative to the eval.yaml folder.")
    mode: Literal["copy", "worktree"] = "copy"
    keep: bool = Field(default=False, description="Keep workspaces after scoring (debugging).")


class Variant(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    description: str = ""
    env: dict[str, str] = Field(default_factory=dict)
    system: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides of the suite's system settings for this variant "
        "(e.g. model, prompt, url, function).",
    )


class EvaluatorSpec(_Strict):
    type: str = Field(min_length=1)
    name: str | None = Field(default=None, description="Defaults to the type.")
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def display_name(self) -> str:
        return self.name or self.type


class Case(_Strict):
    id: str = Field(min_length=1)
    input: str
    expected: dict[str, Any] = Field(default_factory=dict)
    description: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


E = TypeVar("E", bound=EvaluatorSpec)


def unique_evaluator_names(evaluators: list[E]) -> list[E]:
    """``evaluators`` unchanged, or ValueError naming the names used twice (scores are
    stored per evaluator name, so two with one name would overwrite each other)."""
    names = [e.display_name for e in evaluators]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            f"evaluator names must be unique (set `name:`), repeated: {', '.join(duplicates)}"
        )
    return evaluators


class ModelPrice(_Strict):
    """USD per million tokens. ``cached_input`` bills prompt-cache reads; when absent
    they are billed at the ``input`` rate."""

    input: float = Field(ge=0, allow_inf_nan=False)
    output: float = Field(ge=0, allow_inf_nan=False)
    cached_input: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class ScoreEvents(_Strict):
    """Each score also sent as an OTel ``gen_ai.evaluation.result`` event (a log record)."""

    enabled: bool = False
    endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP base URL (``/v1/logs`` is appended) or full logs URL; "
        "default: the run's own receiver, so events land in otel_logs beside the spans.",
    )
    headers: dict[str, str] = Field(default_factory=dict)


class SuiteConfig(_Strict):
    suite: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    cases: str = Field(default="cases.yaml", description="Relative to the eval.yaml folder.")
    variant_key: str = DEFAULT_VARIANT_KEY
    system: System
    variants: list[Variant] = Field(min_length=1)
    evaluators: list[EvaluatorSpec] = Field(min_length=1)
    concurrency: int = Field(default=4, ge=1, le=256, description="Cases in flight at once.")
    repeats: int = Field(
        default=1, ge=1, le=1000, description="Runs of every case × variant (pass@k, pass^k)."
    )
    retries: RetryPolicy = Field(default_factory=RetryPolicy)
    max_cost_usd: float | None = Field(
        default=None,
        gt=0,
        description="Stop starting cases once the run's priced model cost reaches this.",
    )
    workspace: WorkspaceSpec | None = None
    quiet_period_s: float = Field(
        default=0.3, ge=0, description="A trace is sealed after this long without new spans."
    )
    seal_timeout_s: float = Field(default=10.0, gt=0)
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description="Model name (or provider/model) → price; adds to or overrides the "
        "built-in table.",
    )
    score_events: ScoreEvents = Field(default_factory=ScoreEvents)

    @field_validator("variants")
    @classmethod
    def _unique_variants(cls, variants: list[Variant]) -> list[Variant]:
        names = [v.name for v in variants]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"variant names must be unique, repeated: {', '.join(duplicates)}")
        return variants

    @model_validator(mode="after")
    def _variant_systems_valid(self) -> "SuiteConfig":
        for variant in self.variants:
            if variant.system:
                try:
                    system_for(self, variant)
                except ValidationError as exc:
                    first = exc.errors()[0]
                    where = ".".join(str(p) for p in first["loc"])
                    raise ValueError(
                        f"variant {variant.name!r}: system.{where}: {first['msg']}"
                    ) from None
        return self

    @field_validator("evaluators")
    @classmethod
    def _unique_evaluators(cls, evaluators: list[EvaluatorSpec]) -> list[EvaluatorSpec]:
        return unique_evaluator_names(evaluators)


def system_for(config: SuiteConfig, variant: Variant) -> SystemConfig:
    """The suite's system with the variant's overrides applied (validated)."""
    if not variant.system:
        return config.system
    merged = {**config.system.model_dump(), **variant.system, "type": config.system.type}
    return type(config.system).model_validate(merged)


JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def eval_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``eval.yaml``, for editors (``tracescore schema`` prints it)."""
    schema = SuiteConfig.model_json_schema()
    del schema["title"]
    # First in the file, so a reader sees at once what the schema is for.
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "tracescore eval.yaml",
        "description": "A tracescore suite: the system under test, its variants and "
        "evaluators. String values may use ${NAME} and ${NAME:-default}.",
        **schema,
    }


def eval_json_schema_text() -> str:
    """:func:`eval_json_schema` as written to ``eval.schema.json`` (stable key order)."""
    return json.dumps(eval_json_schema(), indent=2, ensure_ascii=False) + "\n"
