"""The moto server daemon: AWS APIs (S3, KMS, IAM, CloudWatch, Logs, SNS) on 127.0.0.1.

Started detached so it outlives the command that started it; its pid and log live
under state/<inventory>/. moto keeps its state in memory: stopping it forgets
every AWS resource, which the next deploy re-creates.
"""

from __future__ import annotations

import os
import time
import urllib.request
from typing import Any

from ..errors import LocalServiceError
from ..inventory import Inventory
from . import daemon
from .ports import require_free_port

MARKER = b"moto.server"


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
    pid = daemon.spawn(["moto.server", "-H", "127.0.0.1", "-p", str(port)], log, _pid_file(inventory), env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        code = daemon.exited(pid)
        if code is not None:
            raise LocalServiceError(f"moto server exited at start (wait status {code}); see {log}")
        if _answers(port):
            return status(inventory)
        time.sleep(0.1)
    raise LocalServiceError(f"moto server did not answer on 127.0.0.1:{port} within 30 s")


def stop(inventory: Inventory) -> dict[str, Any]:
    daemon.stop(_pid_file(inventory), MARKER)
    return status(inventory)


def status(inventory: Inventory) -> dict[str, Any]:
    pid = daemon.running(_pid_file(inventory), MARKER)
    port = inventory.aws["port"]
    return {
        "running": pid is not None and _answers(port),
        "pid": pid,
        "endpoint_url": inventory.aws_endpoint_url,
        "region": inventory.aws["region"],
    }


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False
