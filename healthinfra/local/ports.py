"""Ports on 127.0.0.1 for the local services."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from ..errors import LocalServiceError

if TYPE_CHECKING:
    from ..inventory import Inventory


def require_free_port(port: int, key: str, inventory: Inventory) -> None:
    """Refuse, naming the inventory key to change, if another program holds the port."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise LocalServiceError(
                f"{inventory.path.name}: port {port} (`{key}`) is in use by another program;"
                f" stop it or choose a free port there"
            ) from None
