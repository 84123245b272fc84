"""Your own evaluators: ``@scorer`` functions and ``tracescore.evaluators`` entry points."""

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracescore.schemas.errors import ConfigError
from tracescore.schemas.scores import Score
from tracescore.schemas.suite import Case, EvaluatorSpec
from tracescore.schemas.trace import Trace
from tracescore.scoring.cli import main
from tracescore.scoring.evaluators import (
    BUILT_IN,
    Evaluator,
    build_evaluator,
    evaluator_source,
    isolated_registry,
    plugin_failures,
    registered,
    reset_plugins,
    scorer,
)


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    # Every registration here is undone, so other test files see only the built-ins.
    with isolated_registry():
        yield


def make_trace(output: str | None) -> Trace:
    return Trace(trace_id="t" * 32, spans=[], roots=[], final_output=output)


CASE = Case(id="c1", input="capital of France?")


def score(type_: str, output: str | None, **params: object) -> Score:
    evaluator = build_evaluator(EvaluatorSpec(type=type_, params=params))
    return evaluator.safe_score(make_trace(output), CASE)


# --- @scorer ----------------------------------------------------------------------------------


def test_sync_bool_scorer_passes_and_fails() -> None:
    @scorer(name="mentions_paris", summary="output mentions Paris")
    def mentions_paris(trace: Trace, case: Case) -> bool:
        return "paris" in (trace.final_output or "").lower()

    passed = score("mentions_paris", "It is Paris.")
    assert (passed.passed, passed.value, passed.label) == (True, 1.0, "pass")
    assert passed.evaluator == "mentions_paris"
    failed = score("mentions_paris", "It is Lyon.")
    assert (failed.passed, failed.value, failed.label) == (False, 0.0, "fail")
    assert registered()["mentions_paris"].summary == "output mentions Paris"
    # The decorator returns the function itself, still callable in unit tests.
    assert mentions_paris(make_trace("Paris"), CASE) is True


def test_async_float_scorer_uses_the_threshold_param() -> None:
    @scorer()
    async def length_ratio(trace: Trace, case: Case) -> float:
        """Output length over 10 characters."""
        return len(trace.final_output or "") / 10

    result = score("length_ratio", "12345678")
    assert result.value == pytest.approx(0.8)
    assert result.passed is True
    assert "threshold 0.5" in result.explanation
    strict = score("length_ratio", "12345678", threshold=0.9)
    assert strict.passed is False
    assert registered()["length_ratio"].summary == "Output length over 10 characters."


def test_tuple_result_carries_the_explanation_and_params_are_passed() -> None:
    @scorer(name="has_word")
    def has_word(
        trace: Trace, case: Case, word: str, ignore_case: bool = False
    ) -> tuple[bool, str]:
        output = trace.final_output or ""
        if ignore_case:
            output, word = output.lower(), word.lower()
        return word in output, f"looked for {word!r}"

    result = score("has_word", "PARIS", word="paris", ignore_case=True)
    assert result.passed is True
    assert result.explanation == "looked for 'paris'"


def test_score_result_is_kept_under_the_configured_name() -> None:
    @scorer(name="custom")
    def custom(trace: Trace, case: Case) -> Score:
        return Score(evaluator="whatever", value=0.3, passed=False, label="meh")

    evaluator = build_evaluator(EvaluatorSpec(type="custom", name="my_custom"))
    result = evaluator.safe_score(make_trace("x"), CASE)
    assert (result.evaluator, result.value, result.label) == ("my_custom", 0.3, "meh")


def test_an_exception_becomes_an_error_score() -> None:
    @scorer(name="crashes")
    async def crashes(trace: Trace, case: Case) -> bool:
        raise RuntimeError("boom")

    result = score("crashes", "x")
    assert result.passed is None
    assert result.error is not None and "RuntimeError: boom" in result.error


def test_a_wrong_result_type_becomes_an_error_score() -> None:
    @scorer(name="says_what")
    def says_what(trace: Trace, case: Case) -> object:
        return "yes"

    result = score("says_what", "x")
    assert result.error is not None and "not str" in result.error


def test_unknown_or_missing_params_are_config_errors() -> None:
    @scorer(name="needs_word")
    def needs_word(trace: Trace, case: Case, word: str) -> bool:
        return word in (trace.final_output or "")

    with pytest.raises(ConfigError, match="missing params word"):
        build_evaluator(EvaluatorSpec(type="needs_word"))
    with pytest.raises(ConfigError, match="unknown params colour"):
        build_evaluator(EvaluatorSpec(type="needs_word", params={"word": "a", "colour": 1}))


def test_registrations_do_not_leak_between_tests() -> None:
    assert "mentions_paris" not in registered()


# --- entry points -----------------------------------------------------------------------------

PLUGIN_MODULE = """
from tracescore.schemas.scores import Score
from tracescore.scoring.evaluators import Evaluator, scorer


class ShortOutput(Evaluator):
    type_name = "short_output"
    summary = "final output has at most 10 characters"

    def score(self, trace, case):
        return self.verdict(len(trace.final_output or "") <= 10, "length checked")


@scorer(name="says_hello", summary="final output greets")
def says_hello(trace, case):
    return "hello" in (trace.final_output or "").lower(), "looked for hello"
"""

BROKEN_MODULE = """
raise ImportError("needs a library that is not installed")
"""


@pytest.fixture
def plugin_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real distribution on sys.path declaring three ``tracescore.evaluators`` entry points."""
    (tmp_path / "ts_demo_plugin.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    (tmp_path / "ts_demo_broken.py").write_text(BROKEN_MODULE)
    dist_info = tmp_path / "ts_demo_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ts-demo-plugin\nVersion: 0.1\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[tracescore.evaluators]\n"
        "short_output = ts_demo_plugin:ShortOutput\n"
        "says_hello = ts_demo_plugin:says_hello\n"
        "broken = ts_demo_broken:Broken\n"
    )
    monkeypatch.syspath_prepend(tmp_path)
    importlib.invalidate_caches()
    reset_plugins()
    yield tmp_path
    # The modules registered types on import; a later import must run them again.
    for module in ("ts_demo_plugin", "ts_demo_broken"):
        sys.modules.pop(module, None)


@pytest.mark.usefixtures("plugin_dist")
def test_entry_point_evaluators_build_and_score() -> None:
    short = build_evaluator(EvaluatorSpec(type="short_output"))
    assert isinstance(short, Evaluator)
    assert short.safe_score(make_trace("hi"), CASE).passed is True
    assert short.safe_score(make_trace("a long answer"), CASE).passed is False

    hello = build_evaluator(EvaluatorSpec(type="says_hello"))
    result = hello.safe_score(make_trace("Hello there"), CASE)
    assert (result.passed, result.explanation) == (True, "looked for hello")

    assert evaluator_source("short_output") == "ts-demo-plugin"
    assert evaluator_source("says_hello") == "ts-demo-plugin"
    assert evaluator_source("exact_match") == BUILT_IN


@pytest.mark.usefixtures("plugin_dist")
def test_a_broken_plugin_is_reported_not_fatal() -> None:
    [failure] = plugin_failures()
    assert failure.name == "broken"
    assert failure.value == "ts_demo_broken:Broken"
    assert failure.distribution == "ts-demo-plugin"
    assert "ImportError: needs a library" in failure.error
    with pytest.raises(ConfigError, match=r"plugin 'broken'.*failed to load"):
        build_evaluator(EvaluatorSpec(type="broken"))


def test_an_entry_point_of_the_wrong_type_is_reported(
    plugin_dist: Path,
) -> None:
    (plugin_dist / "ts_demo_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[tracescore.evaluators]\nnot_an_evaluator = textwrap:dedent\n"
    )
    [failure] = plugin_failures()
    assert "neither an Evaluator subclass nor a @scorer function" in failure.error


@pytest.mark.usefixtures("plugin_dist")
@pytest.mark.parametrize("argv", [["evaluators"], ["evaluators", "list"]])
def test_cli_lists_plugins_and_warns_about_failures(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 0
    out, err = capsys.readouterr()
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "ts-demo-plugin" in lines["short_output"]
    assert "final output greets" in lines["says_hello"]
    assert "built-in" in lines["exact_match"]
    assert "broken" not in lines
    assert "warning: evaluator plugin 'broken' (ts_demo_broken:Broken)" in err
    assert "ImportError" in err
