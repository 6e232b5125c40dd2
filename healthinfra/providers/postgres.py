"""PostgreSQL connections for a run: admin connections per database, opened lazily, once.

For the embedded server the admin connects over its unix socket (peer-only,
trusted) and service roles over TCP on 127.0.0.1 with their passwords. psycopg is
imported here, inside functions, so `invoke --list` never pays for it.
"""

from __future__ import annotations

from typing import Any

from ..errors import InventoryError
from ..inventory import Inventory
from ..secret_store import Secret


def admin_conninfo(inventory: Inventory, dbname: str = "postgres") -> dict[str, Any]:
    """Keyword arguments for psycopg.connect as the admin, no secret inside."""
    if inventory.providers["database"] == "embedded":
        from ..local.postgres import socket_dir

        return {"host": str(socket_dir(inventory)), "port": inventory.database["port"], "user": "postgres",
                "dbname": dbname, "sslmode": "require"}  # a unix socket needs no TLS; the DSN says it anyway
    raise InventoryError(
        f"{inventory.path.name}: `providers.database` is `{inventory.providers['database']}`, which this version"
        " cannot drive yet (the Neon provider is its own issue); use `-i local`"
    )


def admin_dsn(inventory: Inventory, dbname: str = "postgres") -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(**admin_conninfo(inventory, dbname))


def service_conninfo(inventory: Inventory, role: str, password: Secret | None, dbname: str | None = None) -> dict[str, Any]:
    info = {"host": "127.0.0.1", "port": inventory.database["port"], "user": role,
            "dbname": dbname or inventory.database["name"], "sslmode": "require"}
    if password is not None:
        info["password"] = password.reveal()
    return info


class Connections:
    """Admin connections (autocommit) cached per database for one run."""

    def __init__(self, inventory: Inventory):
        self.inventory = inventory
        self._open: dict[str, Any] = {}

    def admin(self, dbname: str = "postgres"):
        import psycopg

        conn = self._open.get(dbname)
        if conn is None or conn.closed or conn.broken:
            conn = psycopg.connect(**admin_conninfo(self.inventory, dbname), autocommit=True, connect_timeout=5)
            self._open[dbname] = conn
        return conn

    def close(self, dbname: str | None = None) -> None:
        names = [dbname] if dbname else list(self._open)
        for name in names:
            conn = self._open.pop(name, None)
            if conn is not None and not conn.closed:
                conn.close()
