"""The moto server daemon: AWS APIs (S3, KMS, IAM, CloudWatch, Logs, SNS) on 127.0.0.1.

Started detached (its own session) so it outlives the command that started it;
its pid and log live under state/<inventory>/. moto keeps its state in memory:
stopping it forgets every AWS resource, which the next deploy re-creates.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import urllib.request
from typing import Any

from ..errors import LocalServiceError
from ..inventory import Inventory
from .ports import require_free_port


def _pid_file(inventory: Inventory):
    return inventory.state_dir / "moto.pid"


def start(inventory: Inventory) -> dict[str, Any]:
    current = status(inventory)
    if current["running"]:
        return current
    port = inventory.aws["port"]
    require_free_port(port, "aws.port", inventory)
    inventory.state_dir.mkdir(parents=True, exist_ok=True)
    log = inventory.state_dir / "moto.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # spawned detached (own session, no Popen object): a daemon that outlives this command
    pid = os.posix_spawn(
        sys.executable, [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env,
        file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                      (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
                      (os.POSIX_SPAWN_DUP2, 1, 2)],
        setsid=True,
    )
    _pid_file(inventory).write_text(str(pid))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        finished, code = os.waitpid(pid, os.WNOHANG)
        if finished:
            raise LocalServiceError(
                f"moto server exited at start (wait status {code}); see {log}"
            )
        if _answers(port):
            return status(inventory)
        time.sleep(0.1)
    raise LocalServiceError(f"moto server did not answer on 127.0.0.1:{port} within 30 s")


def stop(inventory: Inventory) -> dict[str, Any]:
    pid = _pid(inventory)
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
        try:  # reap it if it is our own child (started by this process)
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    _pid_file(inventory).unlink(missing_ok=True)
    return status(inventory)


def status(inventory: Inventory) -> dict[str, Any]:
    pid = _pid(inventory)
    port = inventory.aws["port"]
    return {
        "running": pid is not None and _answers(port),
        "pid": pid,
        "endpoint_url": inventory.aws_endpoint_url,
        "region": inventory.aws["region"],
    }


def _pid(inventory: Inventory) -> int | None:
    """The pid in moto.pid, if that process is alive and is a moto server (pids get reused)."""
    try:
        pid = int(_pid_file(inventory).read_text())
    except (OSError, ValueError):
        return None
    if not _alive(pid):
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = f.read().split(b"\0")
    except OSError:
        return None
    return pid if b"moto.server" in command else None


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


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False

