"""What the test processes of one machine share (its users, its processes), one holder at a time."""

from __future__ import annotations

import contextlib
import fcntl
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """Held by one process of this machine at a time (pytest-xdist workers, or two checkouts'
    test runs); waits for the holder. The kernel releases it if the holder dies."""
    path = Path(tempfile.gettempdir()) / f"hc-tests-{name}.lock"
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
