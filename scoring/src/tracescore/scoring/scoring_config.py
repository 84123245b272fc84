"""Loading ``scoring.yaml`` (``tracescore rescore`` and ``watch``), with errors that name the
file, line and field, as ``eval.yaml`` errors do."""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from tracescore.schemas.errors import ConfigError
from tracescore.schemas.scoring_config import ScoringConfig
from tracescore.scoring.config import (
    Loc,
    YamlDocument,
    build_evaluators,
    digest,
    first_error,
    located_error,
)
from tracescore.scoring.evaluators import Evaluator
from tracescore.scoring.filters import SpanFilter, compile_filter

__all__ = ["LoadedScoringConfig", "load_scoring_config", "scoring_config_from"]


@dataclass(frozen=True)
class LoadedScoringConfig:
    path: Path | None
    """None for a config built in code."""
    config: ScoringConfig
    evaluators: list[Evaluator]
    """Built from ``config.evaluators``, in the same order."""
    when: list[SpanFilter | None]
    """Each evaluator's compiled ``when:`` filter (prefix ``w<index>``), in the same order."""
    where: SpanFilter | None
    """The config's ``where:`` compiled with prefix ``cw``."""
    config_hash: str

    @property
    def run_id_rescore(self) -> str:
        return f"rescore:{self.config.name}"


def load_scoring_config(
    path: str | Path, *, environ: Mapping[str, str] | None = None
) -> LoadedScoringConfig:
    """Read and validate ``scoring.yaml``: the model, each evaluator's type and params, and
    every filter expression. ``${NAME}`` expansion as in ``eval.yaml``."""
    doc = YamlDocument(Path(path), os.environ if environ is None else environ)
    if not isinstance(doc.data, dict):
        raise doc.error((), "expected a mapping of scoring settings at the top level")
    config = doc.validate(ScoringConfig, doc.data)
    return _build(config, doc)


def scoring_config_from(config: ScoringConfig | Mapping[str, object]) -> LoadedScoringConfig:
    """The same checks for a config built in code; errors name the field, not a line."""
    data = config.model_dump() if isinstance(config, ScoringConfig) else dict(config)
    try:
        validated = ScoringConfig.model_validate(data)
    except ValidationError as exc:
        raise located_error(None, None, *first_error(exc)) from None
    return _build(validated, None)


def _build(config: ScoringConfig, doc: YamlDocument | None) -> LoadedScoringConfig:
    def error(loc: Loc, message: str) -> ConfigError:
        if doc is None:
            return located_error(None, None, loc, message)
        return doc.error(loc, message)

    evaluators = build_evaluators(config.evaluators, doc)
    when: list[SpanFilter | None] = []
    for index, spec in enumerate(config.evaluators):
        try:
            when.append(compile_filter(spec.when, prefix=f"w{index}") if spec.when else None)
        except ConfigError as exc:
            raise error(("evaluators", index, "when"), str(exc)) from None
    try:
        where = compile_filter(config.where, prefix="cw") if config.where else None
    except ConfigError as exc:
        raise error(("where",), str(exc)) from None
    return LoadedScoringConfig(
        path=doc.path if doc is not None else None,
        config=config,
        evaluators=evaluators,
        when=when,
        where=where,
        config_hash=digest(config.model_dump(mode="json")),
    )
