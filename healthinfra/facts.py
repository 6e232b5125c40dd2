"""A run's facts: what was read from the servers, memoised until something changes.

Facts are gathered in batches (one catalog query, one list call per family of
resources) and kept for the run; any applied change forgets them all, so nothing is
ever decided on a stale read. Concurrent readers of one key load it once. Downloads
(a model file that serves every host) are kept for the whole run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_MISSING = object()


class Facts:
    def __init__(self) -> None:
        self._facts: dict[str, Any] = {}
        self._downloads: dict[str, Any] = {}
        self._loading: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock_for(self, key: str) -> threading.Lock:
        with self._guard:
            return self._loading.setdefault(key, threading.Lock())

    def get(self, key: str, loader: Callable[[], T]) -> T:
        """Memoised until the next `forget_all`; concurrent callers of one key load it once."""
        value = self._facts.get(key, _MISSING)  # one lookup: another thread may forget all at any time
        if value is not _MISSING:
            return value
        with self._lock_for(key):
            value = self._facts.get(key, _MISSING)
            if value is _MISSING:
                value = self._facts[key] = loader()
            return value

    def download_once(self, key: str, loader: Callable[[], T]) -> T:
        """Like `get`, but kept for the whole run: a download serves every host."""
        with self._lock_for(f"download:{key}"):
            if key not in self._downloads:
                self._downloads[key] = loader()
            return self._downloads[key]

    def forget_all(self) -> None:
        self._facts.clear()
