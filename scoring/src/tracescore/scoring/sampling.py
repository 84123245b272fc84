"""Deterministic sampling of traces, shared by ``rescore`` and ``watch`` so both pick the
same traces for the same share, on every run, process and machine."""

import hashlib

BUCKETS = 10_000


def sample_condition(share: float) -> tuple[str, dict[str, int]]:
    """SQL keeping ``share`` of the traces, by a hash of the trace id, and its params."""
    return f"cityHash64(TraceId) % {BUCKETS} < {{share:UInt32}}", {"share": round(share * BUCKETS)}


def sampled(evaluator: str, trace_id: str, share: float | None) -> bool:
    """Whether an evaluator with ``sample: share`` scores ``trace_id``. Salted by the
    evaluator, so its sample is independent of the selection's (``sample_condition``, on
    the bare trace id) and of other evaluators'."""
    if share is None:
        return True
    digest = hashlib.blake2b(f"{evaluator}\0{trace_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS < round(share * BUCKETS)
