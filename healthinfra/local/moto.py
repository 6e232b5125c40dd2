"""The moto server daemon: AWS APIs (S3, KMS, IAM, CloudWatch, Logs, SNS) on 127.0.0.1.

Served over TLS only, with S3 bucket policies evaluated with their conditions
(see `moto_server.py`); clients verify the local certificate,
`state/<inventory>/tls/server.crt`. Started detached so it outlives the command
that started it; its pid and log live under state/<inventory>/. moto keeps its
state in memory: stopping it forgets every AWS resource, which the next deploy
re-creates.
"""

from __future__ import annotations

import os
import ssl
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LocalServiceError
from . import daemon
from .ports import require_free_port
from .tls import ensure_certificate

if TYPE_CHECKING:
    from ..inventory import Inventory

MARKER = b"healthinfra.local.moto_server"


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
    cert, key = ensure_certificate(inventory.state_dir / "tls")
    pid = daemon.spawn(
        ["healthinfra.local.moto_server", "127.0.0.1", str(port), str(cert), str(key)], log, _pid_file(inventory), env
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        code = daemon.exited(pid)
        if code is not None:
            raise LocalServiceError(f"moto server exited at start (wait status {code}); see {log}")
        if _answers(port, cert):
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
        "running": pid is not None and _answers(port, certificate(inventory)),
        "pid": pid,
        "endpoint_url": inventory.aws_endpoint_url,
        "region": inventory.aws["region"],
    }


def certificate(inventory: Inventory) -> Path:
    """The certificate the local endpoint presents, for clients to verify."""
    return inventory.state_dir / "tls" / "server.crt"


def _answers(port: int, cert: Path) -> bool:
    try:
        context = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/moto-api/", timeout=1, context=context) as response:
            return response.status == 200
    except OSError:
        return False
