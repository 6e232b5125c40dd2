"""PostgreSQL connections for a run: admin connections per database, opened lazily, once.

For the embedded server the admin connects over its unix socket (peer-only,
trusted) and service roles over TCP on 127.0.0.1 with their passwords. On Neon the
admin is the branch's owner role, on the URI Neon's API returns for it
(getConnectionURI), and service roles connect to the same host; always with
sslmode=require. psycopg is imported here, inside functions, so `invoke --list`
never pays for it.
"""

from __future__ import annotations

from typing import Any

from ..errors import InventoryError
from ..inventory import Inventory
from ..secret_store import Secret


def admin_conninfo(inventory: Inventory, dbname: str = "postgres") -> dict[str, Any]:
    """Keyword arguments for psycopg.connect as the admin: no secret inside for the embedded
    server; on Neon the owner role's password is inside (from Neon's API, never stored).
    On Neon, raises NotProvisioned while the branch or database does not exist."""
    if inventory.providers["database"] == "embedded":
        from ..local.postgres import socket_dir

        return {
            "host": str(socket_dir(inventory)),
            "port": inventory.database["port"],
            "user": "postgres",
            "dbname": dbname,
            "sslmode": "require",
        }  # a unix socket needs no TLS; the DSN says it anyway
    if inventory.providers["database"] == "neon":
        from . import neon

        client = neon.NeonClient(inventory)
        try:
            return neon.conninfo(neon.owner_uri(client, inventory, neon.target(client, inventory), dbname))
        finally:
            client.close()
    raise InventoryError(
        f"{inventory.path.name}: `providers.database` is `{inventory.providers['database']}`, which this version"
        " cannot drive; use `embedded` or `neon`"
    )


def admin_dsn(inventory: Inventory, dbname: str = "postgres") -> str:
    """The admin DSN to show (embedded: no secret in it; on Neon, the password masked)."""
    from psycopg.conninfo import make_conninfo

    info = admin_conninfo(inventory, dbname)
    if "password" in info:
        info["password"] = "***"
    return make_conninfo(**info)


def service_conninfo(
    inventory: Inventory, role: str, password: Secret | None, dbname: str | None = None
) -> dict[str, Any]:
    if inventory.providers["database"] == "neon":
        from ..secret_store import Secret as _Secret
        from .neon import conninfo, role_connection_uri

        uri = role_connection_uri(inventory, role, password if password is not None else _Secret(""), dbname)
        info = conninfo(uri)
        if password is None:
            info.pop("password", None)
        return info
    info = {
        "host": "127.0.0.1",
        "port": inventory.database["port"],
        "user": role,
        "dbname": dbname or inventory.database["name"],
        "sslmode": "require",
    }
    if password is not None:
        info["password"] = password.reveal()
    return info


class Connections:
    """Admin connections (autocommit) cached per database for one run.

    `resolve(dbname)` gives the admin's connection keywords; by default `admin_conninfo`.
    A run on Neon passes one that reads the branch through the run's memoised facts."""

    def __init__(self, inventory: Inventory, resolve=None):
        self.inventory = inventory
        self._resolve = resolve or (lambda dbname: admin_conninfo(inventory, dbname))
        self._open: dict[str, Any] = {}

    def admin(self, dbname: str = "postgres"):
        import psycopg

        conn = self._open.get(dbname)
        if conn is None or conn.closed or conn.broken:
            timeout = 5 if self.inventory.embedded else 15  # a Neon compute may be waking up from suspend
            conn = psycopg.connect(**self._resolve(dbname), autocommit=True, connect_timeout=timeout)
            self._open[dbname] = conn
        return conn

    def admin_if_provisioned(self, dbname: str = "postgres"):
        """The admin connection, or None while the server (a Neon branch) or database is not there yet."""
        from .neon import NotProvisioned

        try:
            return self.admin(dbname)
        except NotProvisioned:
            return None

    def close(self, dbname: str | None = None) -> None:
        names = [dbname] if dbname else list(self._open)
        for name in names:
            conn = self._open.pop(name, None)
            if conn is not None and not conn.closed:
                conn.close()
