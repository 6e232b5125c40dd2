"""Detached local daemons (the moto server, the TLS front): spawn, find, stop.

Spawned with posix_spawn in a session of their own, with no Popen object, so they
outlive the command that started them; a pid file says which process is ours,
and a pid is trusted only while that process's command line still names the
daemon (pids get reused).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def spawn(module_args: list[str], log: Path, pid_file: Path, env: dict[str, str] | None = None) -> int:
    pid = os.posix_spawn(
        sys.executable,
        [sys.executable, "-m", *module_args],
        dict(os.environ if env is None else env),
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )
    pid_file.write_text(str(pid))
    return pid


def exited(pid: int) -> int | None:
    """The wait status if `pid` is our child and has exited, else None."""
    try:
        finished, code = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return code if finished else None


def running(pid_file: Path, marker: bytes) -> int | None:
    """The pid in pid_file, if that process is alive and its command line contains `marker`."""
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return None
    if not _alive(pid):
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = f.read().split(b"\0")
    except OSError:
        return None
    return pid if marker in command else None


def stop(pid_file: Path, marker: bytes) -> None:
    pid = running(pid_file, marker)
    if pid is not None:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
        exited(pid)  # reap it if it is our own child
    pid_file.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
