"""Loading ``eval.yaml`` and its cases, with errors that name the file, line and field."""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from tracescore.schemas.errors import ConfigError
from tracescore.schemas.suite import Case, SuiteConfig
from tracescore.scoring.evaluators import Evaluator, build_evaluator

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Suite:
    """A validated suite, ready to run."""

    path: Path
    config: SuiteConfig
    cases: list[Case]
    evaluators: list[Evaluator]
    config_hash: str
    dataset_hash: str

    @property
    def folder(self) -> Path:
        return self.path.parent


class _Document:
    """A parsed YAML file that remembers where each value was written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: file not found") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
        try:
            self.node = yaml.compose(text, Loader=yaml.SafeLoader)
            self.data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"{where}: invalid YAML: {problem}") from None

    def line_of(self, loc: Loc) -> int | None:
        node = self.node
        line = node.start_mark.line + 1 if node is not None else None
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                match = next(((k, v) for k, v in node.value if k.value == part), None)
                if match is None:
                    break
                line = match[0].start_mark.line + 1
                node = match[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(node.value):
                    break
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                break
        return line

    def error(self, loc: Loc, message: str) -> ConfigError:
        line = self.line_of(loc)
        where = f"{self.path}:{line}" if line else str(self.path)
        field = _format_loc(loc)
        return ConfigError(f"{where}: {field}: {message}" if field else f"{where}: {message}")

    def validate(self, model: type[M], data: Any, base: Loc = ()) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            # A misspelt key usually explains a "missing" one too: report the typo first.
            errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
            first = errors[0]
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            loc = base + tuple(first["loc"])
            raise self.error(loc, _message(first) + more) from None


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "required field is missing"
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    return str(error["msg"])


def _format_loc(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def load_suite(path: str | Path) -> Suite:
    suite_path = Path(path)
    doc = _Document(suite_path)
    if not isinstance(doc.data, dict):
        raise doc.error((), "expected a mapping of suite settings at the top level")
    config = doc.validate(SuiteConfig, doc.data)

    evaluators: list[Evaluator] = []
    for index, spec in enumerate(config.evaluators):
        try:
            evaluators.append(build_evaluator(spec))
        except ConfigError as exc:
            detail = str(exc)
            loc: Loc = ("evaluators", index, "type")
            if detail.startswith("params."):
                field, _, detail = detail.partition(": ")
                loc = ("evaluators", index, *field.split("."))
            raise doc.error(loc, detail) from None

    cases_path = suite_path.parent / config.cases
    if not cases_path.is_file():
        raise doc.error(("cases",), f"cases file not found: {cases_path}")
    cases = _load_cases(cases_path)
    return Suite(
        path=suite_path,
        config=config,
        cases=cases,
        evaluators=evaluators,
        config_hash=_digest(config.model_dump(mode="json")),
        dataset_hash=_digest([c.model_dump(mode="json") for c in cases]),
    )


def _load_cases(path: Path) -> list[Case]:
    doc = _Document(path)
    raw = doc.data
    base: Loc = ()
    if isinstance(raw, dict) and "cases" in raw:
        raw, base = raw["cases"], ("cases",)
    if not isinstance(raw, list) or not raw:
        raise doc.error(base, "expected a non-empty list of cases")
    cases = [doc.validate(Case, item, (*base, i)) for i, item in enumerate(raw)]
    seen: set[str] = set()
    for i, case in enumerate(cases):
        if case.id in seen:
            raise doc.error((*base, i, "id"), f"case id {case.id!r} is used twice")
        seen.add(case.id)
    return cases
