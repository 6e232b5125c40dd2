"""One lock per environment, so two runs never change it at once.

The lock is an `flock` on `state/<inventory>/lock`: the kernel releases it when its
holder dies, however it dies, so a dead holder never keeps it and taking it over
needs no guesswork about stale pids. The holder writes who it is (pid, host, user,
command, start time) into the file; a refused run names them.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from .errors import LockHeld
from .journal import now_iso, run_identity


class EnvironmentLock:
    def __init__(self, state_dir: Path, inventory: str, command: str):
        self.path = state_dir / "lock"
        self.inventory = inventory
        self.command = command
        self._fd: int | None = None

    def acquire(self) -> EnvironmentLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LockHeld(
                f"{self.path}: environment `{self.inventory}` is locked by pid {holder.get('pid', '?')}"
                f" on {holder.get('host', '?')} (user {holder.get('user', '?')}, `{holder.get('command', '?')}`,"
                f" since {holder.get('since', '?')}); wait for it to finish, nothing was changed"
            ) from None
        holder = {**run_identity(), "command": self.command, "since": now_iso()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> EnvironmentLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
