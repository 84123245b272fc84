"""A disk cache of LLM-judge replies, one JSON file per request."""

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

# Bumped when the stored entry's shape changes, so old entries miss instead of misparse.
CACHE_FORMAT = 1


def request_key(request: dict[str, Any]) -> str:
    """sha256 of everything sent that can change the reply (model, prompt, tools, sampling)."""
    payload = json.dumps(
        {"format": CACHE_FORMAT, "request": request},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class JudgeCache:
    """``<root>/<key[:2]>/<key>.json``; the two-character fan-out keeps folders small."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored entry, or None when it is absent or unreadable.

        A corrupt entry (a crash mid-write on a filesystem without atomic rename, a
        hand edit) counts as a miss: the caller refetches and overwrites it.
        """
        try:
            entry = json.loads(self.path(key).read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT:
            return None
        return entry

    def put(self, key: str, entry: dict[str, Any]) -> None:
        """Write atomically: concurrent readers see the old entry or the new one, never half."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({**entry, "format": CACHE_FORMAT}, ensure_ascii=False, default=str)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{key[:8]}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
            Path(tmp).replace(target)
        except BaseException:
            with contextlib.suppress(OSError):
                Path(tmp).unlink()
            raise
