"""``{{input}}``-style placeholders in request templates, filled from a case."""

import json
import re
from typing import Any

from tracescore.schemas.errors import ConfigError
from tracescore.schemas.suite import Case

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.-]*)\s*\}\}")
_MISSING = object()


def _lookup(name: str, case: Case) -> Any:
    if name == "input":
        return case.input
    if name == "case_id":
        return case.id
    head, _, rest = name.partition(".")
    if head not in ("expected", "metadata") or not rest:
        raise ConfigError(
            f"unknown placeholder {{{{{name}}}}} (use input, case_id, expected.NAME, metadata.NAME)"
        )
    value: Any = case.expected if head == "expected" else case.metadata
    for part in rest.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def render_text(template: str, case: Case) -> str:
    """Every placeholder replaced by its value as text (JSON for non-strings)."""

    def replace(match: re.Match[str]) -> str:
        value = _lookup(match.group(1), case)
        if value is _MISSING:
            raise ConfigError(f"case {case.id!r} has no {match.group(1)} for {match.group(0)}")
        return _text(value)

    return _PLACEHOLDER.sub(replace, template)


def render_value(template: Any, case: Case) -> Any:
    """A JSON template rendered: a string that is exactly one placeholder becomes the
    value itself; other strings are rendered as text; lists and dicts recursively."""
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template.strip())
        if whole:
            value = _lookup(whole.group(1), case)
            if value is _MISSING:
                raise ConfigError(f"case {case.id!r} has no {whole.group(1)} for {template}")
            return value
        return render_text(template, case)
    if isinstance(template, list):
        return [render_value(item, case) for item in template]
    if isinstance(template, dict):
        return {render_text(str(k), case): render_value(v, case) for k, v in template.items()}
    return template
