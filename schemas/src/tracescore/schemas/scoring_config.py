"""Pydantic models of ``scoring.yaml``: scoring stored traces (``tracescore rescore``)
and new ones as they land (``tracescore watch``)."""

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tracescore.schemas.attributes import DEFAULT_VARIANT_KEY
from tracescore.schemas.suite import EvaluatorSpec, ModelPrice, unique_evaluator_names


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TraceSource(_Strict):
    """Where the spans are: any table with the OTel Collector clickhouseexporter's
    ``otel_traces`` shape (its own, or ours)."""

    database: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Default: the store's database.",
    )
    table: str = Field(default="otel_traces", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class ScoringEvaluator(EvaluatorSpec):
    """An evaluator entry, optionally limited to the traces a filter matches."""

    when: str | None = Field(
        default=None,
        description="Filter expression (same language as --where): score only traces "
        "with a span matching it, e.g. \"span.status = 'Error'\".",
    )
    sample: float | None = Field(
        default=None, gt=0, le=1, description="Score this share of the traces (by trace id)."
    )


class WatchSettings(_Strict):
    quiet_period_s: float = Field(
        default=30.0, gt=0, description="A trace is sealed after this long without new spans."
    )
    poll_interval_s: float = Field(default=5.0, gt=0)
    late_span_window_s: float = Field(
        default=3600.0,
        ge=0,
        description="Spans arriving this long after a trace was scored trigger one re-score.",
    )
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Serve Prometheus metrics (lag) here."
    )


class ScoringConfig(_Strict):
    name: str = Field(
        min_length=1,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Names the scores' source (RunId 'rescore:<name>' / 'watch:<name>') and "
        "the watch checkpoint.",
    )
    description: str = ""
    source: TraceSource = Field(default_factory=TraceSource)
    variant_key: str = Field(
        default=DEFAULT_VARIANT_KEY, description="Resource attribute that tells variants apart."
    )
    service: str | None = Field(default=None, description="Only traces with a span of it.")
    where: str | None = Field(default=None, description="Filter expression, as --where.")
    sample: float | None = Field(default=None, gt=0, le=1)
    evaluators: list[ScoringEvaluator] = Field(min_length=1)
    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    batch_size: int = Field(
        default=1000,
        ge=1,
        le=10_000,
        description="Traces fetched per query. Each query scans the granules the batch's "
        "traces fall in, so larger batches cost less per trace and hold more rows in memory.",
    )
    workers: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Scoring processes, started once and kept (1: in the calling process). "
        "With 2 vCPUs of its own, two score as fast as a collector ingests on 2 vCPUs.",
    )
    watch: WatchSettings = Field(default_factory=WatchSettings)

    @field_validator("evaluators")
    @classmethod
    def _unique_evaluators(cls, evaluators: list[ScoringEvaluator]) -> list[ScoringEvaluator]:
        return unique_evaluator_names(evaluators)
