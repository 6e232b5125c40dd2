"""PostgreSQL connections for a run: admin connections per database, opened lazily, once.

Where the admin and the service roles connect is the database provider's
(`database.py`: the embedded server's socket and TLS front, or a Neon branch);
always with TLS over TCP. psycopg is imported here, inside functions, so
`invoke --list` never pays for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..lock_waits import DEFAULT_LOCK_RETRY_SECONDS, DEFAULT_LOCK_TIMEOUT, DEFAULT_STATEMENT_TIMEOUT
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
    A run on Neon passes one that reads the branch through the run's memoised facts.

    Every admin session waits at most `database.lock_timeout` for a lock (set when it
    connects; the deletion guard sets its own, longer, inside its transaction), and its
    statements are watched (`pg_watch.py`) so that one that hits the bound names who held
    the lock: PostgreSQL's LockNotAvailable carries `blocked` and `retry_for` to the
    runner's retry (`faults.py`)."""

    def __init__(self, inventory: Inventory, resolve=None):
        from .pg_watch import BlockerWatch

        self.inventory = inventory
        self._resolve = resolve or (lambda dbname: admin_conninfo(inventory, dbname))
        self._open: dict[str, Any] = {}
        self.watch = BlockerWatch(self._connect)

    @property
    def lock_timeout(self) -> str:
        return self.inventory.database.get("lock_timeout") or DEFAULT_LOCK_TIMEOUT

    @property
    def statement_timeout(self) -> str:
        return self.inventory.database.get("statement_timeout") or DEFAULT_STATEMENT_TIMEOUT

    @property
    def lock_retry_seconds(self) -> float:
        value = self.inventory.database.get("lock_retry_seconds")
        return float(DEFAULT_LOCK_RETRY_SECONDS if value is None else value)

    def _connect(self, dbname: str, cursor_factory: Any = None):
        import psycopg

        timeout = self.inventory.provider("database").connect_timeout
        extra = {"cursor_factory": cursor_factory} if cursor_factory is not None else {}
        return psycopg.connect(**self._resolve(dbname), autocommit=True, connect_timeout=timeout, **extra)

    def admin(self, dbname: str = "postgres"):
        conn = self._open.get(dbname)
        if conn is None or conn.closed or conn.broken:
            conn = self._connect(dbname, watched_cursor(self))
            try:
                conn.execute("select set_config('lock_timeout', %s, false)", (self.lock_timeout,))
            except BaseException:
                conn.close()  # never an admin session without its bound, nor a leaked one
                raise
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
        if dbname is None:
            self.watch.close()


def watched_cursor(connections: Connections):
    """A psycopg cursor class whose statements are watched, and whose lock timeouts say who
    held the lock and how long the runner retries."""
    import psycopg

    class WatchedCursor(psycopg.Cursor):
        def execute(self, query, params=None, **kwargs):
            pid = self.connection.info.backend_pid
            with connections.watch.statement(pid, self.connection.info.dbname):
                try:
                    return super().execute(query, params, **kwargs)
                except psycopg.errors.LockNotAvailable as exc:
                    exc.blocked = connections.watch.blocked(pid)
                    exc.lock_timeout = f"{connections.lock_timeout} (database.lock_timeout)"
                    exc.retry_for = connections.lock_retry_seconds
                    raise

    return WatchedCursor
