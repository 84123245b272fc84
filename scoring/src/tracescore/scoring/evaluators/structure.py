"""Structure evaluators on the trace's final output: JSON validity and JSON Schema."""

import json
import re
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import Field, field_validator

from tracescore.schemas.scores import Score
from tracescore.schemas.suite import Case
from tracescore.schemas.trace import Trace
from tracescore.scoring.evaluators.base import (
    Evaluator,
    EvaluatorParams,
    register,
)
from tracescore.scoring.evaluators.text import _shorten

# The whole output is one fenced block, as chat models like to answer: ```json … ```.
_FENCE = re.compile(r"\A```[ \t]*(?:json)?[ \t]*\r?\n(.*?)\r?\n?```\Z", re.DOTALL | re.IGNORECASE)

_SHOWN_ERRORS = 3


class _NotJsonError(ValueError):
    """The output does not parse; the message says where."""


def _reject_constant(name: str) -> Any:
    # json.loads accepts NaN and ±Infinity, which are not JSON and break strict consumers.
    raise _NotJsonError(f"{name} is not valid JSON")


def parse_json_output(output: str, allow_fence: bool) -> Any:
    """The parsed output, with an optional ```json fence removed; ``_NotJsonError`` if it fails."""
    text, where = output.strip(), ""
    if allow_fence and (fenced := _FENCE.match(text)):
        # Positions are reported inside the fence, so say so.
        text, where = fenced.group(1), " inside the ``` fence"
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise _NotJsonError(
            f"{exc.msg} at line {exc.lineno}, column {exc.colno} (char {exc.pos}){where}"
        ) from exc


def _schema_problem(schema: Any) -> str | None:
    if not isinstance(schema, dict):
        return f"a JSON Schema must be an object, got {type(schema).__name__}"
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return f"not a valid JSON Schema: {exc.message} at {exc.json_path}"
    return None


class JsonValidParams(EvaluatorParams):
    allow_fence: bool = True
    """Also accept an output that is one fenced block (```json or bare ```): the fence is
    stripped before parsing. Text outside the fence still makes the output invalid."""


@register
class JsonValid(Evaluator):
    type_name = "json_valid"
    summary = "final output parses as JSON"
    Params = JsonValidParams
    requires = ("final_output",)

    def score(self, trace: Trace, case: Case) -> Score:
        p = self.params
        assert isinstance(p, JsonValidParams)
        output = self.final_output(trace)
        if isinstance(output, Score):
            return output
        try:
            value = parse_json_output(output, p.allow_fence)
        except _NotJsonError as exc:
            return self.verdict(False, f"output is not valid JSON: {exc}; got {_shorten(output)!r}")
        return self.verdict(True, f"output is valid JSON ({_json_type(value)})")


class SchemaMatchParams(EvaluatorParams):
    # `schema` would shadow a BaseModel attribute, so the field is renamed but the
    # config key stays `schema`.
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    """JSON Schema (Draft 2020-12); when absent, the case's ``expected.<case_key>``."""
    case_key: str = "schema"
    allow_fence: bool = True
    """As for ``json_valid``: an output that is one ```json fenced block is unwrapped."""

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        # A broken schema would otherwise fail (or pass) every case for the wrong reason.
        problem = _schema_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value


@register
class SchemaMatch(Evaluator):
    type_name = "schema_match"
    summary = "final output is JSON that validates against a JSON Schema"
    Params = SchemaMatchParams
    requires = ("final_output",)

    def score(self, trace: Trace, case: Case) -> Score:
        p = self.params
        assert isinstance(p, SchemaMatchParams)
        # Not expected_values: a schema is a mapping, not a list of strings.
        schema = p.json_schema if p.json_schema is not None else case.expected.get(p.case_key)
        if schema is None:
            return self.nothing_to_check(p.case_key)
        if p.json_schema is None and (problem := _schema_problem(schema)):
            # A case's schema was not checked at load time.
            return Score.failure(self.name, f"expected.{p.case_key}: {problem}")
        output = self.final_output(trace)
        if isinstance(output, Score):
            return output
        try:
            value = parse_json_output(output, p.allow_fence)
        except _NotJsonError as exc:
            return self.verdict(False, f"output is not valid JSON: {exc}; got {_shorten(output)!r}")
        errors = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: e.json_path)
        if not errors:
            return self.verdict(True, f"output matches the schema ({_json_type(value)})")
        shown = "; ".join(f"{e.json_path}: {_shorten(e.message)}" for e in errors[:_SHOWN_ERRORS])
        more = len(errors) - _SHOWN_ERRORS
        tail = f" (and {more} more)" if more > 0 else ""
        plural = "s" if len(errors) > 1 else ""
        return self.verdict(
            False, f"output violates the schema ({len(errors)} error{plural}): {shown}{tail}"
        )


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"
