"""Pydantic models of a suite: ``eval.yaml`` and its cases."""

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tracescore.schemas.attributes import DEFAULT_VARIANT_KEY


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CommandSystem(_Strict):
    """Runs the SUT as a subprocess per case.

    ``command`` items may use ``{input}``, ``{case_id}`` and ``{python}`` (the
    interpreter running tracescore). The subprocess gets ``TRACEPARENT``,
    ``BAGGAGE``, ``OTEL_EXPORTER_OTLP_ENDPOINT`` and ``OTEL_RESOURCE_ATTRIBUTES``.
    """

    type: Literal["command"]
    command: list[str] = Field(min_length=1)
    cwd: str | None = Field(default=None, description="Relative to the eval.yaml folder.")
    env: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=60.0, gt=0)


class Variant(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    description: str = ""
    env: dict[str, str] = Field(default_factory=dict)


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
    system: CommandSystem
    variants: list[Variant] = Field(min_length=1)
    evaluators: list[EvaluatorSpec] = Field(min_length=1)
    concurrency: int = Field(default=4, ge=1, le=256, description="Cases in flight at once.")
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

    @field_validator("evaluators")
    @classmethod
    def _unique_evaluators(cls, evaluators: list[EvaluatorSpec]) -> list[EvaluatorSpec]:
        names = [e.display_name for e in evaluators]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"evaluator names must be unique (set `name:`), repeated: {', '.join(duplicates)}"
            )
        return evaluators


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
