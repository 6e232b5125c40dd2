"""PostgreSQL connections for a run: admin connections per database, opened lazily, once.

Where the admin and the service roles connect is the database provider's
(`database.py`: the embedded server's socket and TLS front, or a Neon branch);
always with TLS over TCP. psycopg is imported here, inside functions, so
`invoke --list` never pays for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..secret_store import Secret

if TYPE_CHECKING:
    from ..inventory import Inventory


def admin_conninfo(inventory: Inventory, dbname: str = "postgres", client: Any = None) -> dict[str, Any]:
    """Keyword arguments for psycopg.connect as the admin: no secret inside for the embedded
    server; on Neon the owner role's password is inside (from Neon's API, never stored).
    On Neon, raises NotProvisioned while the branch or database does not exist."""
    return inventory.provider("database").admin_conninfo(inventory, dbname, client)


def admin_dsn(inventory: Inventory, dbname: str = "postgres") -> str:
    """The admin DSN to show (embedded: no secret in it; on Neon, the password masked)."""
    from psycopg.conninfo import make_conninfo

    info = admin_conninfo(inventory, dbname)
    if "password" in info:
        info["password"] = "***"
    return make_conninfo(**info)


def service_conninfo(
    inventory: Inventory, role: str, password: Secret | None, dbname: str | None = None, client: Any = None
) -> dict[str, Any]:
    """Keyword arguments for psycopg.connect as a login role, over TCP and TLS."""
    return inventory.provider("database").role_conninfo(inventory, role, password, dbname, client)


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
            timeout = self.inventory.provider("database").connect_timeout
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
