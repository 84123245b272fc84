"""Loading stored traces for scoring: spans and log records fetched in batches, each trace
rebuilt and priced."""

import gc
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from tracescore.collector.store import Store
from tracescore.schemas.trace import Trace
from tracescore.scoring.pricing import PriceTable
from tracescore.scoring.reconstruct import reconstruct

# Ids per query. Larger batches amortize the per-query cost (planning, the lookup-table
# read), but the time bound of a batch spans all its traces and the Arrow result is held
# in memory at once; 500 agent traces of ~10 spans is a few MB.
DEFAULT_BATCH = 500


def batched(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load_traces(
    store: Store,
    trace_ids: Sequence[str],
    prices: PriceTable | None = None,
    *,
    batch_size: int = DEFAULT_BATCH,
) -> dict[str, Trace]:
    """Each trace in ``trace_ids`` rebuilt from its spans and logs, priced with ``prices``
    (the built-in table when None). An id with no stored spans gives an empty trace,
    which evaluators report as missing its fields rather than the id vanishing."""
    table = prices if prices is not None else PriceTable.with_overrides()
    loaded: dict[str, Trace] = {}
    for ids in batched(list(dict.fromkeys(trace_ids)), batch_size):
        loaded.update(load_batch(store, ids, table))
    return loaded


def load_batch(store: Store, trace_ids: Sequence[str], prices: PriceTable) -> dict[str, Trace]:
    """One batch: one span query and one log query, then rebuilding in Python."""
    spans = store.fetch_traces(trace_ids)
    logs = store.fetch_logs(trace_ids)
    with paused_gc():
        return {tid: reconstruct(tid, spans[tid], logs.get(tid, ()), prices) for tid in trace_ids}


_gc_lock = threading.Lock()
_gc_holders = 0
_gc_was_enabled = False


@contextmanager
def paused_gc() -> Iterator[None]:
    """No automatic cycle collection while a batch of traces is built.

    Rebuilding allocates many small objects (parsed messages, models), so gen-2
    collections keep traversing every model built so far: measured, they took a third
    of the time of reconstructing 500 traces. What a batch builds is acyclic and freed
    by reference counting, so nothing piles up meanwhile. Re-entrant across threads:
    collection resumes when the last holder leaves, and only if it was on before.
    """
    global _gc_holders, _gc_was_enabled
    with _gc_lock:
        if _gc_holders == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_holders += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0 and _gc_was_enabled:
                gc.enable()


class SharedLoader:
    """``load_traces`` for many threads at once, one query for all who are waiting.

    A store serializes its queries, and a query's fixed cost dwarfs the rows of one
    trace: threads that each fetch their own trace queue up behind each other. Here
    the first waiting thread becomes the leader and fetches every id requested so far
    in one batch; the others wait for its result. Whoever arrives during that fetch is
    served by the next leader, so batches grow with the load and add no delay when
    there is none.
    """

    def __init__(self, store: Store, prices: PriceTable) -> None:
        self.store = store
        self.prices = prices
        self._lock = threading.Condition()
        self._wanted: list[str] = []
        self._results: dict[str, Trace | BaseException] = {}
        self._fetching = False

    def load(self, trace_id: str) -> Trace:
        with self._lock:
            self._wanted.append(trace_id)
            while trace_id not in self._results:
                if self._fetching:
                    self._lock.wait()
                    continue
                batch, self._wanted = self._wanted, []
                self._fetching = True
                self._lock.release()
                try:
                    outcome: dict[str, Trace | BaseException] = dict(
                        load_traces(self.store, batch, self.prices)
                    )
                except BaseException as exc:  # every waiter must hear of it, then re-raise
                    outcome = dict.fromkeys(batch, exc)
                finally:
                    self._lock.acquire()
                    self._fetching = False
                self._results.update(outcome)
                self._lock.notify_all()
            result = self._results.pop(trace_id)
        if isinstance(result, BaseException):
            raise result
        return result
