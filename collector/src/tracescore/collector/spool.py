"""A durable, bounded spool of accepted OTLP requests, one directory per signal.

The receiver appends each validated request here and acknowledges it once the
bytes are on disk (fsync'd unless configured otherwise); a loader thread moves
sealed segments into the store in large batches. So a collector killed after an
acknowledgement still has the request, and replays it on the next start.

A segment holds requests in ClickHouse's ``Protobuf`` format (each message
prefixed by its varint length), so the engine can read a segment as it is.
Segments are named ``<seq>.open`` while written and ``<seq>.ready`` once sealed;
a torn tail left by a crash mid-write is cut off when the spool reopens.
"""

import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tracescore.schemas.errors import StoreError

log = logging.getLogger(__name__)

_OPEN, _READY = ".open", ".ready"


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def frames(data: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each complete length-prefixed message; stops at a torn tail."""
    pos, size = 0, len(data)
    while pos < size:
        length, shift, cursor = 0, 0, pos
        while True:
            if cursor >= size or shift > 63:
                return
            byte = data[cursor]
            cursor += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
        if cursor + length > size:
            return
        yield cursor, cursor + length
        pos = cursor + length


@dataclass
class Segment:
    """A sealed segment waiting to be loaded."""

    seq: int
    path: Path
    size: int
    items: int  # spans or log records, as counted by the receiver
    # Sealed before a restart: the crash may have come mid-load, after some rows were
    # written, so loading it again must skip what the store already has.
    recovered: bool = False


class _Active:
    def __init__(self, path: Path, seq: int, fsync: bool) -> None:
        self.path = path
        self.seq = seq
        self.file = path.open("ab", buffering=0)
        self.size = 0
        self.items = 0
        self._fsync = fsync
        self._synced = 0
        self._sync_lock = threading.Lock()

    def sync_to(self, end: int) -> None:
        """fsync up to byte ``end``; concurrent callers share one fsync (group commit)."""
        if not self._fsync or self._synced >= end:
            return
        with self._sync_lock:
            if self._synced >= end:
                return
            target = self.size
            os.fsync(self.file.fileno())
            self._synced = target

    def close(self) -> None:
        self.sync_to(self.size)
        self.file.close()


class Spool:
    """Bounded by ``max_bytes`` on disk; ``append`` refuses once the backlog is full."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        fsync: bool = True,
        max_segment_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        # Segments are loaded whole, so their size bounds the store's memory per load:
        # the active one is sealed once it reaches this size, whether or not the loader
        # has caught up.
        self.max_segment_bytes = max_segment_bytes
        self._fsync = fsync
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        self._ready: list[Segment] = []
        self._recover()
        next_seq = max((s.seq for s in self._ready), default=0) + 1
        self._active = self._open(next_seq)
        self._backlog = sum(s.size for s in self._ready)

    # -- recovery ----------------------------------------------------------------------
    def _recover(self) -> None:
        for path in sorted(self.directory.iterdir()):
            if path.suffix not in (_OPEN, _READY) or not path.stem.isdigit():
                continue
            data = path.read_bytes()
            end = 0
            count = 0
            for _, frame_end in frames(data):
                end = frame_end
                count += 1
            if end < len(data):
                log.warning(
                    "spool segment %s: cut %d bytes of a request torn by a crash mid-write "
                    "(it was never acknowledged)",
                    path,
                    len(data) - end,
                )
                with path.open("r+b") as fh:
                    fh.truncate(end)
            if end == 0:
                path.unlink()
                continue
            ready = path.with_suffix(_READY)
            # Item counts aren't stored; a recovered segment is counted by its requests,
            # which only steers the choice of load path.
            was_sealed = path.suffix == _READY
            if not was_sealed:
                path.rename(ready)
            self._ready.append(Segment(int(path.stem), ready, end, count, recovered=was_sealed))
            log.info("spool segment %s recovered: %d requests to load", ready, count)

    def _open(self, seq: int) -> _Active:
        return _Active(self.directory / f"{seq:012d}{_OPEN}", seq, self._fsync)

    # -- writing -----------------------------------------------------------------------
    def append(self, payload: bytes, items: int) -> bool:
        """Durably append one request; False (nothing written) when the backlog is full."""
        frame = varint(len(payload)) + payload
        with self._lock:
            if self._backlog + len(frame) > self.max_bytes:
                return False
            active = self._active
            try:
                active.file.write(frame)
            except OSError as exc:
                raise StoreError(f"cannot write the spool at {self.directory}: {exc}") from exc
            active.size += len(frame)
            active.items += items
            self._backlog += len(frame)
            end = active.size
            if active.size >= self.max_segment_bytes:
                self._seal_active()
        try:
            active.sync_to(end)
        except OSError as exc:
            raise StoreError(f"cannot fsync the spool at {self.directory}: {exc}") from exc
        return True

    # -- loading -----------------------------------------------------------------------
    def seal(self) -> None:
        """Close the active segment (if it has data) so the loader can take it."""
        with self._lock:
            if self._active.size:
                self._seal_active()

    def _seal_active(self) -> None:
        active = self._active
        active.close()
        ready = active.path.with_suffix(_READY)
        active.path.rename(ready)
        self._ready.append(Segment(active.seq, ready, active.size, active.items))
        self._active = self._open(active.seq + 1)

    def ready(self) -> list[Segment]:
        with self._lock:
            return list(self._ready)

    def done(self, segment: Segment) -> None:
        """The segment is in the store: forget it."""
        segment.path.unlink(missing_ok=True)
        with self._lock:
            self._ready.remove(segment)
            self._backlog -= segment.size

    def quarantine(self, segment: Segment, reason: str) -> Path:
        """Set a segment the store keeps refusing aside, kept on disk, so later ones load."""
        failed = self.directory / "failed"
        failed.mkdir(exist_ok=True)
        target = failed / segment.path.name
        segment.path.rename(target)
        with self._lock:
            self._ready.remove(segment)
            self._backlog -= segment.size
        log.error(
            "spool segment quarantined path=%s reason=%s (move it back into %s to retry)",
            target,
            reason,
            self.directory,
        )
        return target

    @property
    def backlog_bytes(self) -> int:
        return self._backlog

    @property
    def pending_items(self) -> int:
        with self._lock:
            return self._active.items + sum(s.items for s in self._ready)

    @property
    def ready_count(self) -> int:
        """Sealed segments waiting for the loader."""
        return len(self._ready)

    def close(self) -> None:
        with self._lock:
            self._active.close()
            if self._active.size == 0:
                self._active.path.unlink(missing_ok=True)
