"""The plain PostgreSQL provider: any server reached by an admin URL (RDS, Aurora, Cloud SQL, your own).

`providers: {database: postgres}` with `database: {name: NAME, admin_url_env: VAR}`: VAR holds the
libpq URL of an admin role (CREATEROLE and CREATEDB, or an RDS master user), never a file. Every
connection verifies the server: `sslmode=verify-full`, whatever the URL says, against the URL's
`sslrootcert`, else the system's roots (`sslrootcert=system`). The service roles connect to the
same host and port, with the same verification, to the application database.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlsplit

from ..errors import InventoryError
from .database import POSTGRES_KINDS, WAIT_KEYS, DatabaseProvider

if TYPE_CHECKING:
    from ..inventory import Inventory
    from ..secret_store import Secret

TLS_KEYS = ("sslrootcert", "sslcert", "sslkey", "sslcrl")  # kept from the admin URL for every connection


class PostgresServer(DatabaseProvider):
    name = "postgres"
    schema = {"name": (str, True), "admin_url_env": (str, True), **WAIT_KEYS}
    resource_kinds = POSTGRES_KINDS
    connect_timeout = 10

    def _url(self, inventory: Inventory) -> Secret:
        from ..secret_store import Secret

        variable = self.settings["admin_url_env"]
        value = os.environ.get(variable, "").strip()
        where = f"{inventory.path.name}: `database.admin_url_env` names ${variable}"
        if not value:
            raise InventoryError(
                f"{where}, which is not set; export the admin role's URL there"
                " (postgresql://USER:PASSWORD@HOST:5432/postgres, see docs/postgres-setup.md), nothing was changed"
            )
        url = Secret(value)
        parts = urlsplit(url.reveal())
        if parts.scheme not in ("postgresql", "postgres"):
            raise InventoryError(f"{where}, which does not hold a `postgresql://` URL; nothing was changed")
        try:
            host, user = parts.hostname, parts.username
        except ValueError:
            host, user = None, None
        try:
            port = parts.port
        except ValueError:
            port = -1
        if port is not None and not 1 <= port <= 65535:
            raise InventoryError(f"{where}, whose URL's port is not a number from 1 to 65535; nothing was changed")
        if not host or host.startswith("/") or "%2f" in host.lower():
            raise InventoryError(
                f"{where}, whose URL names no TCP host (a server reached over TLS); nothing was changed"
            )
        if not user:
            raise InventoryError(f"{where}, whose URL names no user (the admin role); nothing was changed")
        return url

    def _parts(self, inventory: Inventory) -> dict[str, Any]:
        parts = urlsplit(self._url(inventory).reveal())
        query = dict(parse_qsl(parts.query))
        tls = {k: query[k] for k in TLS_KEYS if k in query}
        tls.setdefault("sslrootcert", "system")
        return {
            "host": parts.hostname,
            "port": parts.port or 5432,
            "user": parts.username,
            "password": parts.password,
            "tls": {**tls, "sslmode": "verify-full"},
        }

    def check_credentials(self, inventory):
        self._url(inventory)

    def admin_role(self, inventory):
        from urllib.parse import unquote

        return unquote(self._parts(inventory)["user"])

    def admin_conninfo(self, inventory, dbname="postgres", client=None):
        from urllib.parse import unquote

        p = self._parts(inventory)
        info = {"host": p["host"], "port": p["port"], "user": unquote(p["user"]), "dbname": dbname, **p["tls"]}
        if p["password"] is not None:
            info["password"] = unquote(p["password"])
        return info

    def role_conninfo(self, inventory, role, password, dbname=None, client=None):
        p = self._parts(inventory)
        info: dict[str, Any] = {
            "host": p["host"],
            "port": p["port"],
            "user": role,
            "dbname": dbname or inventory.database["name"],
            **p["tls"],
        }
        if password is not None:
            info["password"] = password.reveal()
        return info

    def role_url(self, inventory, role, password, client=None):
        from ..secret_store import Secret

        p = self._parts(inventory)
        query = "&".join(f"{k}={quote(str(v), safe='/')}" for k, v in sorted(p["tls"].items()))
        host = f"[{p['host']}]" if ":" in p["host"] else p["host"]  # an IPv6 address, as URLs write it
        return Secret(
            f"postgresql://{quote(role, safe='')}:{quote(password.reveal(), safe='')}@{host}:{p['port']}"
            f"/{quote(inventory.database['name'], safe='')}?{query}"
        )
