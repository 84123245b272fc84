"""semantic_similarity: the real bundled model (the `semantic` extra is installed for the tests)."""

import socket
import threading
import time
from typing import Any

import pytest

from tracescore.schemas.errors import ConfigError
from tracescore.schemas.suite import Case, EvaluatorSpec
from tracescore.schemas.trace import Trace
from tracescore.scoring.evaluators import Evaluator, build_evaluator, evaluator_source, semantic
from tracescore.scoring.evaluators.base import BUILT_IN

PARIS = "The capital of France is Paris."
PARIS_PARAPHRASE = "Paris is the capital city of France."
UNRELATED = "I usually eat two bananas for breakfast."


def make_trace(output: str | None = None) -> Trace:
    return Trace(trace_id="t" * 32, spans=[], roots=[], final_output=output)


def make_case(**expected: Any) -> Case:
    return Case(id="c1", input="question?", expected=expected)


def evaluator(**params: Any) -> Evaluator:
    return build_evaluator(EvaluatorSpec(type="semantic_similarity", params=params))


def test_it_is_a_built_in_and_the_extra_is_installed() -> None:
    assert evaluator_source("semantic_similarity") == BUILT_IN
    assert semantic.missing_extra() == []


def test_a_paraphrase_passes_with_the_similarity_as_value() -> None:
    score = evaluator().score(make_trace(PARIS_PARAPHRASE), make_case(output=PARIS))
    assert score.error is None, score.error
    assert score.passed is True, score.explanation
    assert score.label == "pass"
    assert score.value is not None
    assert 0.7 <= score.value <= 1.0
    assert score.explanation.startswith(f"{score.value:.3f} ≥ threshold 0.7; cosine similarity")
    assert repr(PARIS_PARAPHRASE) in score.explanation
    assert repr(PARIS) in score.explanation


def test_unrelated_text_fails_below_the_threshold() -> None:
    score = evaluator(reference=PARIS).score(make_trace(UNRELATED), make_case())
    assert score.error is None, score.error
    assert score.passed is False, score.explanation
    assert score.label == "fail"
    assert score.value is not None
    assert score.value < 0.3
    assert "< threshold 0.7" in score.explanation


def test_the_threshold_is_a_param() -> None:
    strict = evaluator(reference=PARIS, threshold=1.0).score(
        make_trace(PARIS_PARAPHRASE), make_case()
    )
    assert strict.passed is False
    assert "< threshold 1" in strict.explanation
    lax = evaluator(reference=PARIS, threshold=0.1).score(make_trace("Paris, France"), make_case())
    assert lax.passed is True, lax.explanation


def test_the_best_reference_counts_and_all_are_embedded_in_one_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = semantic.embedding_model()
    calls: list[list[str]] = []

    class Spy:
        def encode(self, texts: list[str], **kwargs: Any) -> Any:
            calls.append(list(texts))
            return real.encode(texts, **kwargs)

    monkeypatch.setattr(semantic, "embedding_model", Spy)
    score = evaluator().score(
        make_trace(PARIS_PARAPHRASE), make_case(output=[UNRELATED, PARIS, "Dogs bark at night."])
    )
    assert calls == [[PARIS_PARAPHRASE, UNRELATED, PARIS, "Dogs bark at night."]]
    assert score.passed is True, score.explanation
    assert score.explanation.endswith(f"vs {PARIS!r}")


def test_an_identical_text_scores_one() -> None:
    score = evaluator(reference=PARIS).score(make_trace(PARIS), make_case())
    assert score.value == pytest.approx(1.0, abs=1e-5)
    assert score.value is not None and score.value <= 1.0


def test_the_real_model_ranks_a_paraphrase_above_an_unrelated_text() -> None:
    embeddings = semantic.embedding_model().encode(["a sentence"], normalize_embeddings=True)
    assert embeddings.shape == (1, 384)  # all-MiniLM-L6-v2's width
    paraphrase, unrelated = semantic.similarities(
        "A man is playing a guitar on stage.",
        ["Someone performs music with a guitar at a concert.", "The stock market fell today."],
    )
    assert paraphrase > 0.5
    assert unrelated < 0.2
    assert paraphrase - unrelated > 0.4


def test_the_model_is_loaded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    assert semantic.embedding_model() is semantic.embedding_model()
    # A first use from several threads at once still loads it once.
    loads: list[int] = []

    def slow_load() -> object:
        loads.append(1)
        time.sleep(0.05)
        return object()

    monkeypatch.setattr(semantic, "_model", None)
    monkeypatch.setattr(semantic, "_load_model", slow_load)
    got: list[object] = []
    threads = [
        threading.Thread(target=lambda: got.append(semantic.embedding_model())) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1
    assert len(got) == 8
    assert all(model is got[0] for model in got)


def test_loading_the_model_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"network access while loading the model: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(semantic, "_model", None)  # restored after the test
    model = semantic.embedding_model()
    assert model.encode(["offline"], normalize_embeddings=True).shape == (1, 384)


def test_no_reference_is_skipped() -> None:
    score = evaluator().score(make_trace("x"), make_case(contains="x"))
    assert score.skipped is True
    assert score.passed is None
    assert score.error is None
    assert "expected.output" in score.explanation


def test_a_trace_without_final_output_is_an_error() -> None:
    score = evaluator().score(make_trace(None), make_case(output=PARIS))
    assert score.passed is None
    assert not score.skipped
    assert score.label == "error"
    assert score.error is not None
    assert "final output" in score.error


def test_threshold_out_of_range_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^params\.threshold: "):
        evaluator(threshold=1.5)


def test_without_the_extra_building_it_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        semantic, "_EXTRA_MODULES", {"tracescore_test_absent_module": "sentence-transformers"}
    )
    with pytest.raises(ConfigError) as info:
        evaluator(reference=PARIS)
    assert str(info.value) == (
        "semantic_similarity needs the optional extra: pip install 'tracescore[semantic]' "
        "(not installed: sentence-transformers)"
    )
