"""In-process SUTs through the runner: a ``python`` function whose spans go to each
variant's provider, and ``llm`` suites whose model calls tracescore traces itself."""

from pathlib import Path
from typing import Any

import pytest

from tests.support.standin_llm import StandinLLM, anthropic_text, openai_completion
from tracescore.collector.store import Store
from tracescore.schemas.attributes import HARNESS_SERVICE_NAME
from tracescore.scoring.config import suite_from
from tracescore.scoring.runner import SuiteRunner

SUPPORT = Path(__file__).resolve().parents[1] / "support"
KEY = "placeholder-for-tests"


def test_python_function_variants_with_repeats(store: Store, tmp_path: Path) -> None:
    config = {
        "suite": "python-e2e",
        "system": {
            "type": "python",
            "function": "python_sut:answer",
            "path": [str(SUPPORT)],
            "service_name": "py-agent",
        },
        "variants": [
            {"name": "echo"},
            # Answers with the input reversed: never contains the expected text.
            {"name": "reverse", "system": {"function": "python_sut:Agent.run"}},
        ],
        "evaluators": [{"type": "contains_text"}],
        "repeats": 2,
        "concurrency": 4,
        "seal_timeout_s": 10,
    }
    cases: list[dict[str, Any]] = [
        {"id": "greet", "input": "hello there", "expected": {"contains": "hello"}},
        {"id": "ask", "input": "what time is it", "expected": {"contains": "time"}},
    ]
    run = SuiteRunner(suite_from(config, cases, tmp_path), store).run()

    assert sorted((c.case_id, c.variant, c.repeat) for c in run.cases) == sorted(
        (case, variant, repeat)
        for case in ("greet", "ask")
        for variant in ("echo", "reverse")
        for repeat in (0, 1)
    )
    assert len({c.trace_id for c in run.cases}) == 8
    for case in run.cases:
        assert case.error is None, case.error
        source = next(c["input"] for c in cases if c["id"] == case.case_id)
        if case.variant == "echo":
            assert case.output == f"echo: {source}"
            assert case.status == "passed"
        else:
            assert case.output == source[::-1]
            assert case.status == "failed"
        spans = store.fetch_trace(case.trace_id)
        harness = [s for s in spans if s.service_name == HARNESS_SERVICE_NAME]
        sut = [s for s in spans if s.service_name == "py-agent"]
        assert len(harness) == 1 and len(sut) + 1 == len(spans)
        names = sorted(s.name for s in sut)
        assert names == (
            ["Agent.run"] if case.variant == "reverse" else ["invoke_agent echo", "lookup"]
        )
        assert {s.resource_attributes["tracescore.variant"] for s in spans} == {case.variant}
        top = next(s for s in sut if s.name in ("Agent.run", "invoke_agent echo"))
        # A direct child of the case's harness span, not a root of its own.
        assert top.parent_span_id == harness[0].span_id
        assert case.orphan_spans == 0


def _anthropic_reply(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    # The "opus" variant's prompt asks for the Latin name; Paris is not in it.
    latin = "Latin" in body["messages"][0]["content"]
    return 200, anthropic_text(
        "Lutetia." if latin else "The capital is Paris.",
        model=body["model"],
        input_tokens=30,
        output_tokens=8,
    )


def _openai_reply(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    terse = body["messages"][0]["role"] == "system"
    return 200, openai_completion(
        {"content": "Paris" if terse else "I believe it might be Lyon."},
        model=body["model"],
        prompt_tokens=25,
        completion_tokens=4,
        finish_reason="stop",
    )


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_llm_variants_against_the_standin(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    reply = _anthropic_reply if provider == "anthropic" else _openai_reply
    with StandinLLM(reply) as llm:
        if provider == "anthropic":
            system: dict[str, Any] = {"model": "claude-haiku-4-5", "base_url": llm.base_url}
            variants: list[dict[str, Any]] = [
                {"name": "haiku"},
                {
                    "name": "opus",
                    "system": {
                        "model": "claude-opus-4-5",
                        "prompt": "Answer with the Latin name: {{input}}",
                    },
                },
            ]
            expected = {"haiku": "The capital is Paris.", "opus": "Lutetia."}
            models = {"haiku": "claude-haiku-4-5", "opus": "claude-opus-4-5"}
        else:
            system = {"model": "gpt-4o-mini", "base_url": llm.base_url + "/v1"}
            variants = [
                {"name": "plain"},
                {"name": "terse", "system": {"system_prompt": "Answer with one word."}},
            ]
            expected = {"plain": "I believe it might be Lyon.", "terse": "Paris"}
            models = {"plain": "gpt-4o-mini", "terse": "gpt-4o-mini"}
        config = {
            "suite": f"llm-{provider}",
            "system": {"type": "llm", "provider": provider, "max_tokens": 50, **system},
            "variants": variants,
            "evaluators": [{"type": "contains_text"}],
            "repeats": 2,
            "seal_timeout_s": 10,
        }
        cases = [
            {"id": "capital", "input": "Capital of France?", "expected": {"contains": "Paris"}}
        ]
        run = SuiteRunner(suite_from(config, cases, tmp_path), store).run()

    assert len(llm.requests) == 4
    assert len(run.cases) == 4
    tokens = (30, 8) if provider == "anthropic" else (25, 4)
    for case in run.cases:
        assert case.error is None, case.error
        assert case.output == expected[case.variant]
        assert (case.input_tokens, case.output_tokens) == tokens
        # Both models are in the built-in price table.
        assert case.cost_usd is not None and case.cost_usd > 0
        spans = store.fetch_trace(case.trace_id)
        [harness] = [s for s in spans if s.service_name == HARNESS_SERVICE_NAME]
        [chat] = [s for s in spans if s.service_name == "tracescore-llm"]
        assert chat.name == f"chat {models[case.variant]}"
        assert chat.parent_span_id == harness.span_id
        assert chat.resource_attributes["tracescore.variant"] == case.variant
        assert chat.attributes["gen_ai.provider.name"] == provider
    passing = {"haiku", "terse"}
    assert sorted((c.variant, c.status) for c in run.cases) == sorted(
        (c.variant, "passed" if c.variant in passing else "failed") for c in run.cases
    )
    assert {c.status for c in run.cases} == {"passed", "failed"}


def test_python_function_without_spans_is_a_case_error(store: Store, tmp_path: Path) -> None:
    config = {
        "suite": "python-no-spans",
        "system": {"type": "python", "function": "python_sut:no_spans", "path": [str(SUPPORT)]},
        "variants": [{"name": "only"}],
        "evaluators": [{"type": "contains_text"}],
        "retries": {"attempts": 1},
        # The runner waits this long for a first SUT span before saying there was none.
        "seal_timeout_s": 2,
    }
    cases = [{"id": "c", "input": "x", "expected": {"contains": "x"}}]
    run = SuiteRunner(suite_from(config, cases, tmp_path), store).run()
    [case] = run.cases
    assert case.status == "error"
    assert case.error is not None and "no spans within 2s" in case.error
    assert "opentelemetry.trace.get_tracer" in case.error
