"""Remembers when spans of each trace last arrived, so callers can wait for a trace to seal."""

import threading
import time
from collections.abc import Iterable


class ArrivalTracker:
    """Last-arrival times per trace id, with waiting.

    A trace is sealed when it has had spans and none arrived for a quiet period.
    Entries are dropped with ``forget`` once a caller is done with a trace, so the
    map stays as small as the number of traces in flight.
    """

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._changed = threading.Condition()

    def observe(self, trace_ids: Iterable[str]) -> None:
        now = time.monotonic()
        with self._changed:
            for trace_id in trace_ids:
                self._last[trace_id] = now
            self._changed.notify_all()

    def wait_sealed(self, trace_id: str, quiet_s: float, timeout_s: float) -> bool:
        """Block until ``trace_id`` has been quiet for ``quiet_s``; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                now = time.monotonic()
                last = self._last.get(trace_id)
                if last is not None and now - last >= quiet_s:
                    return True
                if now >= deadline:
                    return False
                wake = deadline if last is None else min(deadline, last + quiet_s)
                self._changed.wait(max(wake - now, 0.001))

    def __len__(self) -> int:
        """Traces remembered (in flight, or never forgotten)."""
        with self._changed:
            return len(self._last)

    def forget(self, trace_id: str) -> None:
        with self._changed:
            self._last.pop(trace_id, None)
