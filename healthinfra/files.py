"""Files that may hold a secret: written atomically, private (0600) from the first byte.

One function for every such file (secrets, env files, saved plans, run records, keys):
the bytes go to a temporary file of a unique name in the same directory (two writers
never share one), opened 0600, written whole (a short write is continued, never
dropped), fsynced, then renamed over the target, so a reader sees the old file or the
new one and never a torn or world-readable one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def write_private(path: Path | str, content: str | bytes) -> None:
    """Replace `path` with `content`, atomically and 0600."""
    path = Path(path)
    data = content.encode("utf-8") if isinstance(content, str) else content
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # 0600 by definition
    try:
        try:
            os.fchmod(fd, PRIVATE_FILE)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
