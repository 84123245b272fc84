"""Built-in evaluators: regex, rouge_l, token_f1, json_valid and schema_match."""

from typing import Any

import pytest

from tracescore.schemas.errors import ConfigError
from tracescore.schemas.scores import Score
from tracescore.schemas.suite import Case, EvaluatorSpec
from tracescore.schemas.trace import Trace
from tracescore.scoring.evaluators import Evaluator, build_evaluator
from tracescore.scoring.evaluators.text import lcs_length, rouge_l, token_f1


def make_trace(output: str | None = None) -> Trace:
    return Trace(trace_id="t" * 32, spans=[], roots=[], final_output=output)


def make_case(**expected: Any) -> Case:
    return Case(id="c1", input="question?", expected=expected)


def evaluator(type_: str, **params: Any) -> Evaluator:
    return build_evaluator(EvaluatorSpec(type=type_, params=params))


def assert_passed(score: Score, value: float = 1.0) -> None:
    assert score.error is None, score.error
    assert score.passed is True, score.explanation
    assert score.value == pytest.approx(value)
    assert score.label == "pass"
    assert not score.skipped


def assert_failed(score: Score, value: float = 0.0) -> None:
    assert score.error is None, score.error
    assert score.passed is False, score.explanation
    assert score.value == pytest.approx(value)
    assert score.label == "fail"
    assert not score.skipped


def assert_skipped(score: Score, case_key: str) -> None:
    assert score.skipped is True
    assert score.passed is None
    assert score.error is None
    assert f"expected.{case_key}" in score.explanation


def assert_missing_output(score: Score) -> None:
    assert score.passed is None
    assert not score.skipped
    assert score.error is not None
    assert "final output" in score.error
    assert score.label == "error"


def config_error(type_: str, **params: Any) -> str:
    with pytest.raises(ConfigError) as info:
        evaluator(type_, **params)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- regex ------------------------------------------------------------------------------------


def test_regex_passes_when_the_output_matches() -> None:
    score = evaluator("regex").score(make_trace("Total: 391 apples"), make_case(regex=r"\b391\b"))
    assert_passed(score)
    assert r"'\\b391\\b'" in score.explanation


def test_regex_fails_and_names_the_pattern() -> None:
    score = evaluator("regex").score(make_trace("Total: 390"), make_case(regex=r"\b391\b"))
    assert_failed(score)
    assert r"'\\b391\\b'" in score.explanation
    assert "'Total: 390'" in score.explanation


def test_regex_skips_without_a_pattern() -> None:
    assert_skipped(evaluator("regex").score(make_trace("x"), make_case(output="x")), "regex")


def test_regex_errors_without_a_final_output() -> None:
    assert_missing_output(evaluator("regex", pattern="x").score(make_trace(None), make_case()))


def test_regex_param_overrides_the_case_value() -> None:
    ev = evaluator("regex", pattern="^Tokyo")
    assert_passed(ev.score(make_trace("Tokyo it is"), make_case(regex="Paris")))
    assert_failed(ev.score(make_trace("Paris it is"), make_case(regex="Paris")))


def test_regex_all_and_any_modes() -> None:
    case = make_case(regex=["sunny", r"\d+ C"])
    assert_passed(evaluator("regex").score(make_trace("sunny, 24 C"), case))
    score = evaluator("regex").score(make_trace("sunny"), case)
    assert_failed(score)
    assert "'sunny'" not in score.explanation.split(";")[0]
    assert_passed(evaluator("regex", mode="any").score(make_trace("sunny"), case))
    assert_failed(evaluator("regex", mode="any").score(make_trace("rain"), case))


def test_regex_flags() -> None:
    text = "Answer:\nPARIS"
    case = make_case(regex="^paris$")
    assert_failed(evaluator("regex").score(make_trace(text), case))
    assert_failed(evaluator("regex", ignore_case=True).score(make_trace(text), case))
    ev = evaluator("regex", ignore_case=True, multiline=True)
    assert_passed(ev.score(make_trace(text), case))
    dot = make_case(regex="Answer:.PARIS")
    assert_failed(evaluator("regex").score(make_trace(text), dot))
    assert_passed(evaluator("regex", dotall=True).score(make_trace(text), dot))


def test_regex_full_match() -> None:
    case = make_case(regex=r"\d+")
    assert_passed(evaluator("regex").score(make_trace("about 42 things"), case))
    score = evaluator("regex", full_match=True).score(make_trace("about 42 things"), case)
    assert_failed(score)
    assert "fully match" in score.explanation
    assert_passed(evaluator("regex", full_match=True).score(make_trace("42"), case))


@pytest.mark.parametrize(
    ("pattern", "shown"),
    [("total: (\\d+", "'total: (\\\\d+'"), (["ok", "[a-"], "item 1: '[a-'")],
)
def test_regex_bad_pattern_is_a_config_error(pattern: str | list[str], shown: str) -> None:
    message = config_error("regex", pattern=pattern)
    assert message.startswith("params.pattern: "), message
    assert shown in message
    assert "not a valid regex" in message


def test_regex_bad_pattern_from_the_case_is_an_error_score() -> None:
    score = evaluator("regex").score(make_trace("x"), make_case(regex="(unclosed"))
    assert score.passed is None
    assert score.error is not None
    assert "expected.regex" in score.error
    assert "not a valid regex" in score.error


# --- rouge_l ----------------------------------------------------------------------------------


def test_lcs_length() -> None:
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4
    assert lcs_length([], ["a"]) == 0
    assert lcs_length(["a", "b"], ["a", "b"]) == 2


@pytest.mark.parametrize(
    ("candidate", "reference", "expected"),
    [
        # LCS "the cat on the mat" = 5 of 6 tokens each way: P = R = F = 5/6.
        ("the cat sat on the mat", "the cat lay on the mat", 5 / 6),
        # Case and punctuation are ignored.
        ("The cat, sat on the mat!", "the cat sat on the mat", 1.0),
        # LCS "cat mat" = 2: P = 2/3, R = 2/6, F = 2PR/(P+R) = 4/9.
        ("cat dog mat", "the cat sat on the mat", 4 / 9),
        # Order matters: LCS of reversed 3 tokens is 1, so P = R = F = 1/3.
        ("c b a", "a b c", 1 / 3),
        ("completely different", "nothing shared", 0.0),
        ("", "", 1.0),
        ("", "something", 0.0),
    ],
)
def test_rouge_l_values(candidate: str, reference: str, expected: float) -> None:
    assert rouge_l(candidate, reference) == pytest.approx(expected)


def test_rouge_l_passes_above_the_threshold_with_the_value() -> None:
    score = evaluator("rouge_l").score(
        make_trace("the cat sat on the mat"), make_case(output="the cat lay on the mat")
    )
    assert_passed(score, 5 / 6)
    assert "0.833" in score.explanation


def test_rouge_l_fails_below_the_threshold_with_the_value() -> None:
    score = evaluator("rouge_l", threshold=0.9).score(
        make_trace("the cat sat on the mat"), make_case(output="the cat lay on the mat")
    )
    assert_failed(score, 5 / 6)
    assert "0.9" in score.explanation


def test_rouge_l_takes_the_best_reference() -> None:
    score = evaluator("rouge_l", reference=["dogs bark", "the cat lay on the mat"]).score(
        make_trace("the cat sat on the mat"), make_case()
    )
    assert_passed(score, 5 / 6)
    assert "the cat lay on the mat" in score.explanation


def test_rouge_l_skips_without_a_reference() -> None:
    assert_skipped(evaluator("rouge_l").score(make_trace("x"), make_case(contains="x")), "output")


def test_rouge_l_errors_without_a_final_output() -> None:
    assert_missing_output(evaluator("rouge_l").score(make_trace(None), make_case(output="x")))


def test_rouge_l_threshold_out_of_range_is_a_config_error() -> None:
    assert config_error("rouge_l", threshold=1.5).startswith("params.threshold: ")


# --- token_f1 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "reference", "expected"),
    [
        # Articles and punctuation drop out: both become "cat sat on mat".
        ("The cat sat on the mat.", "A cat sat on a mat", 1.0),
        # "cat sat on mat" vs "cat lay on mat": 3 shared of 4 each way.
        ("the cat sat on the mat", "the cat lay on the mat", 3 / 4),
        # 2 shared: P = 2/3, R = 2/4, F = 2PR/(P+R) = 4/7.
        ("cat sat mat", "cat lay on mat", 4 / 7),
        # Multiset overlap: "paris" counts once in the reference, so P = 1/2, R = 1, F = 2/3.
        ("Paris Paris", "Paris", 2 / 3),
        ("Don't!", "dont", 1.0),
        ("the", "a", 1.0),  # both normalize to nothing
        ("the", "Paris", 0.0),
    ],
)
def test_token_f1_values(candidate: str, reference: str, expected: float) -> None:
    assert token_f1(candidate, reference) == pytest.approx(expected)


def test_token_f1_passes_above_the_threshold_with_the_value() -> None:
    score = evaluator("token_f1").score(
        make_trace("cat sat mat"), make_case(output="the cat lay on the mat")
    )
    assert_passed(score, 4 / 7)


def test_token_f1_fails_below_the_threshold_with_the_value() -> None:
    score = evaluator("token_f1", threshold=0.75).score(
        make_trace("cat sat mat"), make_case(output="the cat lay on the mat")
    )
    assert_failed(score, 4 / 7)
    assert "0.571" in score.explanation


def test_token_f1_takes_the_best_reference_from_the_case() -> None:
    score = evaluator("token_f1").score(
        make_trace("It is Paris."), make_case(output=["London", "Paris"])
    )
    # "it is paris" vs "paris": P = 1/3, R = 1, F = 1/2.
    assert_passed(score, 1 / 2)
    assert "'Paris'" in score.explanation


def test_token_f1_skips_without_a_reference() -> None:
    assert_skipped(evaluator("token_f1").score(make_trace("x"), make_case()), "output")


def test_token_f1_errors_without_a_final_output() -> None:
    assert_missing_output(evaluator("token_f1").score(make_trace(None), make_case(output="x")))


# --- json_valid -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output",
    [
        '{"city": "Lisbon", "temp": 24}',
        "  [1, 2, 3]\n",
        '```json\n{"a": 1}\n```',
        '```JSON\n{"a": 1}```',
        "```\nnull\n```",
    ],
)
def test_json_valid_passes_on_json(output: str) -> None:
    assert_passed(evaluator("json_valid").score(make_trace(output), make_case()))


def test_json_valid_fails_and_names_the_error_position() -> None:
    score = evaluator("json_valid").score(make_trace('{"a": 1,}'), make_case())
    assert_failed(score)
    assert "line 1, column 9" in score.explanation


def test_json_valid_reports_positions_inside_the_fence() -> None:
    score = evaluator("json_valid").score(make_trace("```json\n[1, 2,]\n```"), make_case())
    assert_failed(score)
    assert "column 7" in score.explanation
    assert "fence" in score.explanation


@pytest.mark.parametrize(
    "output",
    ["", "Sure! Here it is: {}", '```json\n{"a": 1}\n```\nHope this helps', "[1, NaN]"],
)
def test_json_valid_fails_on_non_json(output: str) -> None:
    assert_failed(evaluator("json_valid").score(make_trace(output), make_case()))


def test_json_valid_without_allow_fence_rejects_fenced_output() -> None:
    ev = evaluator("json_valid", allow_fence=False)
    assert_failed(ev.score(make_trace('```json\n{"a": 1}\n```'), make_case()))


def test_json_valid_errors_without_a_final_output() -> None:
    assert_missing_output(evaluator("json_valid").score(make_trace(None), make_case()))


# --- schema_match -----------------------------------------------------------------------------

WEATHER = {
    "type": "object",
    "required": ["city", "temp"],
    "properties": {
        "city": {"type": "string"},
        "temp": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}


def test_schema_match_passes_on_a_matching_output() -> None:
    score = evaluator("schema_match", schema=WEATHER).score(
        make_trace('```json\n{"city": "Lisbon", "temp": 24}\n```'), make_case()
    )
    assert_passed(score)


def test_schema_match_fails_and_lists_up_to_three_errors_with_paths() -> None:
    output = '{"temp": "hot", "tags": [1, "ok", 2]}'
    score = evaluator("schema_match", schema=WEATHER).score(make_trace(output), make_case())
    assert_failed(score)
    assert "4 errors" in score.explanation
    assert "$: 'city' is a required property" in score.explanation
    assert "$.tags[0]: 1 is not of type 'string'" in score.explanation
    assert "$.tags[2]" in score.explanation
    assert "$.temp" not in score.explanation  # the fourth, summarized
    assert "(and 1 more)" in score.explanation


def test_schema_match_fails_on_output_that_is_not_json() -> None:
    score = evaluator("schema_match", schema=WEATHER).score(make_trace("Lisbon, 24"), make_case())
    assert_failed(score)
    assert "not valid JSON" in score.explanation


def test_schema_match_reads_the_schema_from_the_case() -> None:
    ev = evaluator("schema_match")
    assert_passed(ev.score(make_trace('{"city": "x", "temp": 1}'), make_case(schema=WEATHER)))
    assert_failed(ev.score(make_trace('{"city": "x"}'), make_case(schema=WEATHER)))


def test_schema_match_skips_without_a_schema() -> None:
    score = evaluator("schema_match").score(make_trace("{}"), make_case(output="{}"))
    assert_skipped(score, "schema")


def test_schema_match_errors_without_a_final_output() -> None:
    score = evaluator("schema_match", schema=WEATHER).score(make_trace(None), make_case())
    assert_missing_output(score)


@pytest.mark.parametrize(
    ("schema", "shown"),
    [
        ({"type": "strin"}, "$.type"),
        ({"properties": {"a": {"minLength": "x"}}}, "$.properties.a.minLength"),
    ],
)
def test_schema_match_bad_schema_is_a_config_error(schema: dict[str, Any], shown: str) -> None:
    message = config_error("schema_match", schema=schema)
    assert message.startswith("params.schema: "), message
    assert "not a valid JSON Schema" in message
    assert shown in message


def test_schema_match_bad_schema_from_the_case_is_an_error_score() -> None:
    score = evaluator("schema_match").score(make_trace("{}"), make_case(schema={"type": 5}))
    assert score.passed is None
    assert score.error is not None
    assert "expected.schema" in score.error


def test_schema_match_config_hash_depends_on_the_schema() -> None:
    first = evaluator("schema_match", schema=WEATHER).config_hash
    assert evaluator("schema_match", schema=WEATHER).config_hash == first
    assert evaluator("schema_match", schema={"type": "object"}).config_hash != first
