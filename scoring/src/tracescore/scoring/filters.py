"""The filter language of ``--where`` and ``when:``, compiled to parameterized SQL.

    service = checkout and (span.status = Error or duration_ms > 2000)
    resource.deployment.environment in (prod, staging) and not attr.user.id exists
    name ~ '^chat ' and span.attributes.gen_ai.request.model != "gpt-4o"

The result is a boolean condition over one row of an ``otel_traces``-shaped table.
Every value the user wrote, map keys included, becomes a ``{name:Type}`` query
parameter; the SQL text only ever contains column names and operators chosen here,
so no input can change the query's structure.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tracescore.schemas.errors import ConfigError

__all__ = ["KNOWN_FIELDS", "KNOWN_OPERATORS", "SpanFilter", "compile_filter"]


@dataclass(frozen=True)
class SpanFilter:
    sql: str
    """A boolean SQL condition over one span row (no table alias), ``{name:Type}``
    placeholders only."""
    params: dict[str, Any]
    """Values for the placeholders; names are unique per filter (``<prefix>_<n>``)."""


# -- fields ------------------------------------------------------------------------------------

FieldKind = Literal["string", "number", "status", "kind", "map"]


@dataclass(frozen=True)
class _Field:
    column: str
    kind: FieldKind
    key: str | None = None
    """The map key, for resource and span attributes."""


_COLUMNS: dict[str, tuple[str, FieldKind]] = {
    "service": ("ServiceName", "string"),
    "name": ("SpanName", "string"),
    "span.name": ("SpanName", "string"),
    "kind": ("SpanKind", "kind"),
    "span.kind": ("SpanKind", "kind"),
    "status": ("StatusCode", "status"),
    "span.status": ("StatusCode", "status"),
    "duration_ms": ("Duration", "number"),
    "trace_id": ("TraceId", "string"),
    "scope.name": ("ScopeName", "string"),
    "scope.version": ("ScopeVersion", "string"),
}
_MAP_PREFIXES = {
    "resource.": "ResourceAttributes",
    "span.attributes.": "SpanAttributes",
    "attr.": "SpanAttributes",
}
KNOWN_FIELDS = (*_COLUMNS, *(f"{p}<key>" for p in _MAP_PREFIXES))

# The exporter writes `Error`; versions before 0.9x wrote `STATUS_CODE_ERROR`. A filter
# on the status must match both, whichever the user typed.
_STATUS = {"unset": "Unset", "ok": "Ok", "error": "Error"}
_KIND = {
    "unspecified": "Unspecified",
    "internal": "Internal",
    "server": "Server",
    "client": "Client",
    "producer": "Producer",
    "consumer": "Consumer",
}


def _enum_forms(value: str, names: dict[str, str], prefix: str, what: str) -> list[str]:
    key = value.lower()
    if key.startswith(prefix.lower()):
        key = key[len(prefix) :]
    if key not in names:
        raise ConfigError(f"unknown span {what} {value!r} (known: {', '.join(names.values())})")
    current = names[key]
    return [current, f"{prefix}{key.upper()}"]


# -- tokens ------------------------------------------------------------------------------------

TokenType = Literal["word", "number", "string", "op", "(", ")", ",", "end"]


@dataclass(frozen=True)
class _Token:
    type: TokenType
    text: str
    position: int
    """1-based column, for messages."""
    value: str = ""


_OPERATOR_CHARS = "=!<>~"
KNOWN_OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "~", "!~", "in", "not in", "exists",
                   "not exists")  # fmt: skip
_SYMBOL_OPERATORS = {"=", "==", "!=", "<", "<=", ">", ">=", "~", "!~"}
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# A bare word runs to the next space, parenthesis, comma, quote or operator character.
_WORD = re.compile(r"[^\s()\[\],'\"=!<>~]+")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", "'": "'", '"': '"'}


def _tokens(text: str) -> list[_Token]:
    found: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char in "(),":
            found.append(_Token(char, char, i + 1))  # type: ignore[arg-type]
            i += 1
        elif char in "'\"":
            value, end = _quoted(text, i)
            found.append(_Token("string", text[i:end], i + 1, value))
            i = end
        elif char in _OPERATOR_CHARS:
            end = i
            while end < n and text[end] in _OPERATOR_CHARS:
                end += 1
            found.append(_Token("op", text[i:end], i + 1))
            i = end
        else:
            match = _WORD.match(text, i)
            if match is None:
                raise ConfigError(f"position {i + 1}: unexpected character {char!r}")
            word = match.group(0)
            kind: TokenType = "number" if _NUMBER.fullmatch(word) else "word"
            found.append(_Token(kind, word, i + 1, word))
            i = match.end()
    found.append(_Token("end", "end of input", n + 1))
    return found


def _quoted(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            following = text[i + 1]
            out.append(_ESCAPES.get(following, following))
            i += 2
        elif char == quote:
            return "".join(out), i + 1
        else:
            out.append(char)
            i += 1
    raise ConfigError(f"position {start + 1}: unterminated {quote} string")


# -- parsing and compiling ---------------------------------------------------------------------


@dataclass
class _Compiler:
    tokens: list[_Token]
    prefix: str
    params: dict[str, Any] = field(default_factory=dict)
    at: int = 0

    # token helpers
    @property
    def current(self) -> _Token:
        return self.tokens[self.at]

    def sees(self, kind: TokenType) -> bool:
        # A method, not `self.current.type == ...`: mypy would narrow the property.
        return self.tokens[self.at].type == kind

    def keyword(self, *words: str) -> bool:
        token = self.current
        return token.type == "word" and token.text.lower() in words

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def expected(self, what: str, token: _Token | None = None) -> ConfigError:
        token = token or self.current
        got = "end of input" if token.type == "end" else repr(token.text)
        return ConfigError(f"position {token.position}: expected {what}, got {got}")

    def param(self, value: Any, type_name: str) -> str:
        name = f"{self.prefix}_{len(self.params)}"
        self.params[name] = value
        return f"{{{name}:{type_name}}}"

    # grammar: or > and > not > comparison
    def expression(self) -> str:
        parts = [self.conjunction()]
        while self.keyword("or"):
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def conjunction(self) -> str:
        parts = [self.negation()]
        while self.keyword("and"):
            self.take()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def negation(self) -> str:
        if self.keyword("not"):
            self.take()
            return f"(NOT {self.negation()})"
        if self.sees("("):
            self.take()
            inner = self.expression()
            if not self.sees(")"):
                raise self.expected("')' or and/or")
            self.take()
            return inner
        return self.comparison()

    def comparison(self) -> str:
        token = self.current
        if token.type != "word" or token.text.lower() in ("and", "or"):
            raise self.expected("a field (" + ", ".join(KNOWN_FIELDS) + ") or '('")
        self.take()
        target = self.field(token)
        op = self.current
        if op.type == "op":
            self.take()
            if op.text not in _SYMBOL_OPERATORS:
                raise _unknown_operator(op)
            return self.compare(target, "=" if op.text == "==" else op.text, self.value())
        if self.keyword("in"):
            self.take()
            return self.membership(target, negated=False)
        if self.keyword("exists"):
            self.take()
            return self.exists(target, token)
        if self.keyword("not"):
            self.take()
            if self.keyword("in"):
                self.take()
                return self.membership(target, negated=True)
            if self.keyword("exists"):
                self.take()
                return f"(NOT {self.exists(target, token)})"
            raise self.expected("'in' or 'exists' after 'not'")
        if op.type == "word":
            raise _unknown_operator(op)
        raise self.expected(f"an operator ({', '.join(KNOWN_OPERATORS)}) after {token.text!r}")

    def field(self, token: _Token) -> _Field:
        name = token.text
        lowered = name.lower()
        if lowered in _COLUMNS:
            column, kind = _COLUMNS[lowered]
            return _Field(column, kind)
        for prefix, column in _MAP_PREFIXES.items():
            if lowered.startswith(prefix) and len(name) > len(prefix):
                return _Field(column, "map", name[len(prefix) :])
            # `attr."key with spaces"`: the key as a quoted string right after the dot.
            if lowered == prefix and self.sees("string"):
                return _Field(column, "map", self.take().value)
        raise ConfigError(
            f"position {token.position}: unknown field {name!r} (known: {', '.join(KNOWN_FIELDS)})"
        )

    def value(self) -> _Token:
        token = self.current
        if token.type not in ("string", "number", "word"):
            raise self.expected("a value (a quoted string, a number or a word)")
        return self.take()

    def values(self) -> list[_Token]:
        if not self.sees("("):
            raise self.expected("'(' starting a list of values")
        self.take()
        found = [self.value()]
        while self.sees(","):
            self.take()
            found.append(self.value())
        if not self.sees(")"):
            raise self.expected("',' or ')' in the list of values")
        self.take()
        return found

    def column_sql(self, target: _Field) -> str:
        if target.key is None:
            return target.column
        return f"{target.column}[{self.param(target.key, 'String')}]"

    def compare(self, target: _Field, op: str, value: _Token) -> str:
        if op in ("~", "!~"):
            if target.kind == "number":
                raise ConfigError(
                    f"position {value.position}: {op} matches text; duration_ms is a number"
                )
            sql = f"match({self.column_sql(target)}, {self.param(value.value, 'String')})"
            return sql if op == "~" else f"(NOT {sql})"
        if target.kind in ("status", "kind"):
            if op not in ("=", "!="):
                raise ConfigError(
                    f"position {value.position}: span {target.kind} takes =, !=, ~, !~, in"
                )
            return self.membership_sql(target, [value], negated=op == "!=")
        number = _number(value, target)
        if number is not None:
            return f"{self.numeric_sql(target)} {op} {self.param(number, 'Float64')}"
        return f"{self.column_sql(target)} {op} {self.param(value.value, 'String')}"

    def numeric_sql(self, target: _Field) -> str:
        if target.kind == "number":
            # Stored in nanoseconds; compared in milliseconds as written.
            return "(Duration / 1000000)"
        return f"toFloat64OrNull({self.column_sql(target)})"

    def membership(self, target: _Field, *, negated: bool) -> str:
        return self.membership_sql(target, self.values(), negated=negated)

    def membership_sql(self, target: _Field, values: list[_Token], *, negated: bool) -> str:
        keyword = "NOT IN" if negated else "IN"
        forms: Callable[[str], list[str]] | None = None
        if target.kind == "status":
            forms = lambda v: _enum_forms(v, _STATUS, "STATUS_CODE_", "status")  # noqa: E731
        elif target.kind == "kind":
            forms = lambda v: _enum_forms(v, _KIND, "SPAN_KIND_", "kind")  # noqa: E731
        if forms is not None:
            texts: list[str] = []
            for token in values:
                try:
                    texts += forms(token.value)
                except ConfigError as exc:
                    raise ConfigError(f"position {token.position}: {exc}") from None
            return f"{target.column} {keyword} {self.param(texts, 'Array(String)')}"
        numbers = [_number(token, target) for token in values]
        if all(n is not None for n in numbers):
            return f"{self.numeric_sql(target)} {keyword} {self.param(numbers, 'Array(Float64)')}"
        strings = [token.value for token in values]
        return f"{self.column_sql(target)} {keyword} {self.param(strings, 'Array(String)')}"

    def exists(self, target: _Field, token: _Token) -> str:
        if target.key is None:
            raise ConfigError(
                f"position {token.position}: 'exists' applies to attribute keys "
                "(resource.<key>, span.attributes.<key>, attr.<key>), "
                f"not to {token.text!r}"
            )
        return f"mapContains({target.column}, {self.param(target.key, 'String')})"


def _number(token: _Token, target: _Field) -> float | None:
    """The value as a number when it is one and the field compares numerically."""
    if target.kind == "number":
        if token.type != "number":
            raise ConfigError(
                f"position {token.position}: duration_ms compares with a number, got {token.text!r}"
            )
        return float(token.value)
    if target.kind == "map" and token.type == "number":
        return float(token.value)
    return None


def _unknown_operator(token: _Token) -> ConfigError:
    return ConfigError(
        f"position {token.position}: unknown operator {token.text!r} "
        f"(known: {', '.join(KNOWN_OPERATORS)})"
    )


def compile_filter(text: str, *, prefix: str = "f") -> SpanFilter:
    """``text`` in the filter language as SQL over one span row, its values as parameters.

    ConfigError (naming the 1-based position and what was expected) on bad input.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
        raise ValueError(f"invalid parameter prefix {prefix!r}")
    try:
        tokens = _tokens(text)
        if tokens[0].type == "end":
            raise ConfigError("empty filter")
        compiler = _Compiler(tokens, prefix)
        sql = compiler.expression()
        if compiler.current.type != "end":
            raise compiler.expected("'and', 'or' or the end of the filter")
    except ConfigError as exc:
        raise ConfigError(f"filter {text!r}: {exc}") from None
    return SpanFilter(sql=sql, params=compiler.params)
