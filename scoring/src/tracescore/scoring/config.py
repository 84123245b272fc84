"""Loading ``eval.yaml`` and its cases, with errors that name the file, line and field.

Suites can also be built in code with :func:`suite_from`, which validates the same way.
"""

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ValidationError

from tracescore.schemas.errors import ConfigError
from tracescore.schemas.suite import Case, EvaluatorSpec, SuiteConfig, SystemConfig
from tracescore.scoring.evaluators import Evaluator, build_evaluator

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

#: ``Suite.path`` of a suite built by :func:`suite_from`: there is no file to name.
CODE_SUITE_NAME = "<python>"


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


# --- ${ENV} expansion -------------------------------------------------------------------------

# `$${...}` first, so an escaped reference is never read as a variable.
_REFERENCE = re.compile(r"\$(\$?)\{([^{}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _ExpansionError(Exception):
    """Raised inside the walk; the caller turns it into a ConfigError with file and line."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def _expand_text(text: str, environ: Mapping[str, str], loc: Loc) -> str:
    def replace(match: re.Match[str]) -> str:
        escaped, body = match.group(1), match.group(2)
        if escaped:
            return "${" + body + "}"
        name, has_default, default = body.partition(":-")
        if not _NAME.fullmatch(name):
            raise _ExpansionError(
                loc,
                f"invalid reference ${{{body}}}: write ${{NAME}} or ${{NAME:-default}}, "
                "or $${...} for a literal",
            )
        value = environ.get(name)
        # As in the shell, `:-` also replaces a variable that is set but empty.
        if has_default and not value:
            return default
        if value is None:
            raise _ExpansionError(
                loc,
                f"environment variable {name} is not set "
                f"(give a default with ${{{name}:-default}})",
            )
        return value

    return _REFERENCE.sub(replace, text)


def _expand(value: Any, environ: Mapping[str, str], loc: Loc = ()) -> Any:
    """Expand ``${NAME}`` in string values; keys stay as written since they name fields."""
    if isinstance(value, str):
        return _expand_text(value, environ, loc) if "${" in value else value
    if isinstance(value, dict):
        return {k: _expand(v, environ, (*loc, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, environ, (*loc, i)) for i, v in enumerate(value)]
    return value


# --- documents --------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None


class YamlDocument:
    """A parsed YAML file that remembers where each value was written."""

    def __init__(self, path: Path, environ: Mapping[str, str]) -> None:
        self.path = path
        text = _read_text(path)
        try:
            self.node = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"{where}: invalid YAML: {problem}") from None
        # After parsing, so a variable's value can never change the YAML structure.
        try:
            self.data = _expand(data, environ)
        except _ExpansionError as exc:
            raise self.error(exc.loc, exc.message) from None

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
        return located_error(self.path, self.line_of(loc), loc, message)

    def validate(self, model: type[M], data: Any, base: Loc = ()) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            loc, message = first_error(exc)
            raise self.error(base + loc, message) from None


def located_error(path: Path | None, line: int | None, loc: Loc, message: str) -> ConfigError:
    where = "" if path is None else f"{path}:{line}" if line else str(path)
    parts = [part for part in (where, _format_loc(loc), message) if part]
    return ConfigError(": ".join(parts))


def first_error(exc: ValidationError) -> tuple[Loc, str]:
    # A misspelt key usually explains a "missing" one too: report the typo first.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return _without_union_tag(tuple(first["loc"])), _message(first) + more


_SYSTEM_TYPES = frozenset(
    get_args(member.model_fields["type"].annotation)[0] for member in get_args(SystemConfig)
)


def _without_union_tag(loc: Loc) -> Loc:
    # pydantic puts the chosen member of the `system` union into the location
    # (system.http.url); the file has no such level, so the error must not either.
    if len(loc) > 1 and loc[0] == "system" and loc[1] in _SYSTEM_TYPES:
        return (loc[0], *loc[2:])
    return loc


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


def digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# --- building a suite -------------------------------------------------------------------------


def build_evaluators(specs: Sequence[EvaluatorSpec], doc: YamlDocument | None) -> list[Evaluator]:
    """The evaluators of a config's ``evaluators:`` list; an error names the entry's
    file, line and field (``evaluators[1].params.x``), or only the field without ``doc``."""
    evaluators: list[Evaluator] = []
    for index, spec in enumerate(specs):
        try:
            evaluators.append(build_evaluator(spec))
        except ConfigError as exc:
            detail = str(exc)
            loc: Loc = ("evaluators", index, "type")
            if detail.startswith("params."):
                field, _, detail = detail.partition(": ")
                loc = ("evaluators", index, *field.split("."))
            raise (
                doc.error(loc, detail)
                if doc is not None
                else located_error(None, None, loc, detail)
            ) from None
    return evaluators


def _check_unique_ids(cases: list[Case], error: Callable[[int, str, int], ConfigError]) -> None:
    """``error(index, id, first_index)`` words the message for its source."""
    first: dict[str, int] = {}
    for i, case in enumerate(cases):
        if case.id in first:
            raise error(i, case.id, first[case.id])
        first[case.id] = i


def _make_suite(
    path: Path, config: SuiteConfig, cases: list[Case], evaluators: list[Evaluator]
) -> Suite:
    # The hash is of the expanded config: it names what actually ran, so changing
    # ${MODEL} starts a new series. It is a one-way digest, so secrets do not leak.
    return Suite(
        path=path,
        config=config,
        cases=cases,
        evaluators=evaluators,
        config_hash=digest(config.model_dump(mode="json")),
        dataset_hash=digest([c.model_dump(mode="json") for c in cases]),
    )


def load_suite(path: str | Path, *, environ: Mapping[str, str] | None = None) -> Suite:
    """Load and validate ``eval.yaml`` and its cases file (YAML, or JSON Lines for ``.jsonl``).

    ``${NAME}`` and ``${NAME:-default}`` in string values are read from ``environ``
    (default: ``os.environ``).
    """
    env = os.environ if environ is None else environ
    suite_path = Path(path)
    doc = YamlDocument(suite_path, env)
    if not isinstance(doc.data, dict):
        raise doc.error((), "expected a mapping of suite settings at the top level")
    config = doc.validate(SuiteConfig, doc.data)
    evaluators = build_evaluators(config.evaluators, doc)

    cases_path = suite_path.parent / config.cases
    replay_without_cases = config.system.type == "replay" and "cases" not in doc.data
    if replay_without_cases and not cases_path.is_file():
        # A replay suite may choose its traces by query: each becomes a case at run time.
        cases: list[Case] = []
    elif not cases_path.is_file():
        raise doc.error(("cases",), f"cases file not found: {cases_path}")
    elif cases_path.suffix.lower() == ".jsonl":
        cases = _load_jsonl_cases(cases_path, env)
    else:
        cases = _load_yaml_cases(cases_path, env)
    return _make_suite(suite_path, config, cases, evaluators)


def _load_yaml_cases(path: Path, environ: Mapping[str, str]) -> list[Case]:
    doc = YamlDocument(path, environ)
    raw = doc.data
    base: Loc = ()
    if isinstance(raw, dict) and "cases" in raw:
        raw, base = raw["cases"], ("cases",)
    if not isinstance(raw, list) or not raw:
        raise doc.error(base, "expected a non-empty list of cases")
    cases = [doc.validate(Case, item, (*base, i)) for i, item in enumerate(raw)]

    def duplicate(index: int, case_id: str, _: int) -> ConfigError:
        return doc.error((*base, index, "id"), f"case id {case_id!r} is used twice")

    _check_unique_ids(cases, duplicate)
    return cases


def _load_jsonl_cases(path: Path, environ: Mapping[str, str]) -> list[Case]:
    cases: list[Case] = []
    lines: list[int] = []
    for number, text in enumerate(_read_text(path).splitlines(), start=1):
        if not text.strip():
            continue
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{path}:{number}: invalid JSON: {exc.msg} (column {exc.colno})"
            ) from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}:{number}: expected a JSON object (one case per line)")
        try:
            raw = _expand(raw, environ)
            cases.append(Case.model_validate(raw))
        except _ExpansionError as exc:
            raise located_error(path, number, exc.loc, exc.message) from None
        except ValidationError as exc:
            loc, message = first_error(exc)
            raise located_error(path, number, loc, message) from None
        lines.append(number)
    if not cases:
        raise ConfigError(f"{path}: expected a non-empty list of cases (one JSON object per line)")

    def duplicate(index: int, case_id: str, first: int) -> ConfigError:
        return located_error(
            path,
            lines[index],
            ("id",),
            f"case id {case_id!r} is used twice (first on line {lines[first]})",
        )

    _check_unique_ids(cases, duplicate)
    return cases


def suite_from(
    config: SuiteConfig | Mapping[str, Any],
    cases: Sequence[Case | Mapping[str, Any]],
    folder: str | Path = ".",
) -> Suite:
    """Build a suite in code, validated as :func:`load_suite` validates files.

    Errors are the same minus the file and line: ``system.command: required field is
    missing``, ``cases[2].input: ...``. ``config.cases`` is ignored (the cases are given);
    ``folder`` is what relative paths (``system.cwd``, the command) are resolved against.
    No ``${NAME}`` expansion: in code, read ``os.environ`` yourself.
    """
    # Revalidate models too: a SuiteConfig or Case may have been changed after creation.
    data = config.model_dump() if isinstance(config, SuiteConfig) else config
    if not isinstance(data, Mapping):
        raise ConfigError("expected a mapping of suite settings (or a SuiteConfig)")
    try:
        suite_config = SuiteConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise located_error(None, None, *first_error(exc)) from None
    evaluators = build_evaluators(suite_config.evaluators, None)

    if isinstance(cases, str | bytes | Mapping) or (
        not cases and suite_config.system.type != "replay"
    ):
        raise ConfigError("cases: expected a non-empty list of cases")
    built: list[Case] = []
    for i, item in enumerate(cases):
        try:
            built.append(Case.model_validate(item.model_dump() if isinstance(item, Case) else item))
        except ValidationError as exc:
            loc, message = first_error(exc)
            raise located_error(None, None, ("cases", i, *loc), message) from None

    def duplicate(index: int, case_id: str, _: int) -> ConfigError:
        return located_error(
            None, None, ("cases", index, "id"), f"case id {case_id!r} is used twice"
        )

    _check_unique_ids(built, duplicate)
    return _make_suite(Path(folder) / CODE_SUITE_NAME, suite_config, built, evaluators)
