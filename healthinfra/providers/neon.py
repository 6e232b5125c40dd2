"""The Neon API v2 client: one httpx client per run, errors that say what Neon said.

- The API key comes from the environment variable the inventory names
  (`database.api_key_env`); it is sent as a bearer token and never printed.
- The base URL is `$NEON_API_URL`, else `https://console.neon.tech/api/v2`
  (tests point it at the stand-in in tests/support/fakes/neon_server.py).
- Every request carries an `X-Request-ID`; Neon echoes it as `request_id` in its
  errors, and `NeonError` keeps it with Neon's `code`, `message` and HTTP status.
- A mutating call returns `operations`; the client waits for each to finish
  before it returns, so the next call never races an operation in progress.
- Retries, within faults.py's bound and honouring `Retry-After`: 429, 423 and 503
  for any method (Neon says the request was not carried out), and any error of a
  GET. A POST, PATCH or DELETE that failed otherwise (500, a dropped connection) is
  not repeated here: it may have been carried out, so the error goes up as a
  transient fault and the runner re-reads and re-diffs before it tries again.

Lookups (`find_project`, `target`…) take names, as the inventory has them, and
return Neon's objects or None. httpx is imported inside functions only.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from ..errors import InventoryError, ProviderError, TransientProviderError
from ..secret_store import Secret
from .http import Repeatable, fault_for_status, fault_for_transport, send

if TYPE_CHECKING:
    from ..inventory import Inventory

API_URL_ENV = "NEON_API_URL"
DEFAULT_API_URL = "https://console.neon.tech/api/v2"
RETRYABLE_STATUSES = (423, 429, 503)  # safe for every method: Neon did not carry the request out
OPERATION_DONE = ("finished", "skipped")
OPERATION_FAILED = ("failed", "error", "cancelled")
OPERATION_TIMEOUT_SECONDS = 300
REQUEST_TIMEOUT_SECONDS = 30


class NeonError(ProviderError):
    """Neon refused a request: its message, code, request id and the HTTP status."""

    def __init__(self, what: str, *, status: int, code: str = "", message: str = "", request_id: str = ""):
        self.status, self.code, self.message, self.request_id = status, code, message, request_id
        detail = f"Neon HTTP {status}" + (f" {code}" if code else "") + f": {message or 'no message'}"
        super().__init__(f"{what}: {detail} (request id {request_id})" if request_id else f"{what}: {detail}")


class NeonTransientError(TransientProviderError):
    """A Neon fault worth retrying; `retry_after` is the server's Retry-After, in seconds."""

    def __init__(
        self,
        text: str,
        *,
        status: int = 0,
        retry_after: float | None = None,
        request_id: str = "",
        safe_to_repeat: bool = False,
    ):
        super().__init__(text, retry_after=retry_after)
        self.status, self.request_id = status, request_id
        self.safe_to_repeat = safe_to_repeat


class _RepeatHere(NeonTransientError, Repeatable):
    """Retried inside the client: Neon said the request was not carried out, or it was a GET."""


def api_url() -> str:
    return (os.environ.get(API_URL_ENV) or DEFAULT_API_URL).rstrip("/")


def api_key(inventory: Inventory) -> Secret:
    name = inventory.database["api_key_env"]
    value = os.environ.get(name, "")
    if not value.strip():
        raise InventoryError(
            f"{inventory.path.name}: `database.api_key_env` names ${name}, which is not set; export your Neon API key"
            f" as {name} (see docs/neon-setup.md), nothing was changed"
        )
    return Secret(value.strip())


class NeonClient:
    """One run's way to the Neon API. `on_retry(exc, attempt)` hears of every retry made here."""

    def __init__(self, inventory: Inventory, on_retry: Callable[[BaseException, int], None] | None = None):
        self.inventory = inventory
        self.on_retry = on_retry
        self._http = None
        self._lock = threading.Lock()  # preflight reads share this client from several threads
        self.retries = 0
        self._answers: dict[tuple, Any] = {}  # GET lookups of this run, until anything changes
        self._generation = 0  # bumped by every forget: an answer asked for before it is not kept

    def _client(self):
        import httpx

        with self._lock:
            if self._http is None:
                self._http = self._new_client(httpx)
            return self._http

    def _new_client(self, httpx):
        key = api_key(self.inventory)
        return httpx.Client(
            base_url=api_url(),
            timeout=REQUEST_TIMEOUT_SECONDS,
            headers={
                "Authorization": f"Bearer {key.reveal()}",
                "Accept": "application/json",
                "User-Agent": "healthcare-infra",
            },
        )

    def forget(self) -> None:
        """Drop the memoised lookups (after a change, or a fault): the next ones ask Neon again."""
        with self._lock:
            self._answers.clear()
            self._generation += 1

    def close(self) -> None:
        self.forget()
        if self._http is not None:
            self._http.close()
            self._http = None

    # --- one request -----------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json: dict | None = None,
        params: dict | None = None,
        absent_ok: bool = False,
    ) -> Any:
        """Send one API request, retrying what is safe to retry, then wait for its operations.
        Returns the JSON body; None for 204, or for 404 when `absent_ok`."""
        memo = method == "GET" and "/operations/" not in path
        key = (path, tuple(sorted((params or {}).items())), absent_ok)
        if memo:
            with self._lock:
                if key in self._answers:
                    return self._answers[key]
                asked_at = self._generation
        else:
            self.forget()  # a change: what was looked up before may no longer hold

        def retried(exc, attempt):
            with self._lock:
                self.retries += 1
            if self.on_retry is not None:
                self.on_retry(exc, attempt)

        body = send(lambda: self._send(method, path, what, json, params, absent_ok), retried)
        if body and body.get("operations"):
            self.wait_for(body["operations"], what)
        if memo:
            with self._lock:
                if self._generation == asked_at:  # nothing changed while it was on its way
                    self._answers[key] = body
        else:
            self.forget()  # and again once its operations are done
        return body

    def _send(self, method, path, what, json, params, absent_ok):
        import httpx

        request_id = str(uuid.uuid4())
        safe = method == "GET"
        try:
            response = self._client().request(
                method, path, json=json, params=params, headers={"X-Request-ID": request_id}
            )
        except httpx.TransportError as exc:
            raise fault_for_transport(
                f"{what}: Neon unreachable: {type(exc).__name__}: {exc}",
                reads_only=safe,
                kind=NeonTransientError,
                repeatable=_RepeatHere,
            ) from None
        if response.status_code == 204:
            return None
        if response.status_code < 400:
            return response.json() if response.content else None
        if response.status_code == 404 and absent_ok:
            return None
        try:
            error = response.json()
        except ValueError:
            error = {}
        if not isinstance(error, dict):
            error = {}
        code, message = str(error.get("code") or ""), str(error.get("message") or response.reason_phrase)
        rid = str(error.get("request_id") or response.headers.get("x-request-id") or request_id)
        status = response.status_code
        error = NeonError(what, status=status, code=code, message=message, request_id=rid)
        fault = fault_for_status(
            str(error),
            status,
            response.headers,
            reads_only=safe,
            not_carried_out=RETRYABLE_STATUSES,
            kind=NeonTransientError,
            repeatable=_RepeatHere,
        )
        if fault is None:
            raise error
        fault.status, fault.request_id = status, rid
        raise fault

    def wait_for(self, operations: list[dict], what: str) -> None:
        """Poll each operation until it is finished; a failed one is an error."""
        deadline = time.monotonic() + OPERATION_TIMEOUT_SECONDS
        pause = 0.05
        for operation in operations:
            while operation["status"] not in OPERATION_DONE:
                if operation["status"] in OPERATION_FAILED:
                    raise ProviderError(
                        f"{what}: Neon operation {operation['action']} ({operation['id']})"
                        f" {operation['status']}: {operation.get('error') or 'no detail'}"
                    )
                if time.monotonic() > deadline:
                    raise TransientProviderError(
                        f"{what}: Neon operation {operation['action']} ({operation['id']}) still"
                        f" {operation['status']} after {OPERATION_TIMEOUT_SECONDS} s"
                    )
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
                operation = self.request(
                    "GET",
                    f"/projects/{operation['project_id']}/operations/{operation['id']}",
                    what=f"{what}: wait for operation {operation['action']}",
                )["operation"]

    # --- lookups by name -------------------------------------------------------
    def find_project(self, name: str) -> dict | None:
        found = self.request(
            "GET", "/projects", what=f"find Neon project `{name}`", params={"search": name, "limit": 400}
        )["projects"]
        exact = [p for p in found if p["name"] == name]
        if len(exact) > 1:
            raise ProviderError(
                f"find Neon project `{name}`: {len(exact)} projects have that name"
                f" ({', '.join(p['id'] for p in exact)}); rename all but one in the Neon console"
            )
        return exact[0] if exact else None

    def branches(self, project_id: str) -> dict[str, dict]:
        body = self.request("GET", f"/projects/{project_id}/branches", what="list Neon branches")
        return {b["name"]: b for b in body["branches"]}

    def endpoints(self, project_id: str, branch_id: str) -> list[dict]:
        body = self.request(
            "GET", f"/projects/{project_id}/branches/{branch_id}/endpoints", what="list Neon compute endpoints"
        )
        return body["endpoints"]

    def roles(self, project_id: str, branch_id: str) -> dict[str, dict]:
        body = self.request("GET", f"/projects/{project_id}/branches/{branch_id}/roles", what="list Neon roles")
        return {r["name"]: r for r in body["roles"]}

    def databases(self, project_id: str, branch_id: str) -> dict[str, dict]:
        body = self.request("GET", f"/projects/{project_id}/branches/{branch_id}/databases", what="list Neon databases")
        return {d["name"]: d for d in body["databases"]}

    def connection_uri(self, target: Target, database: str, role: str) -> Secret:
        body = self.request(
            "GET",
            f"/projects/{target.project_id}/connection_uri",
            what=f"connection URI of {role}",
            params={
                "branch_id": target.branch_id,
                "endpoint_id": target.endpoint_id,
                "database_name": database,
                "role_name": role,
            },
        )
        return Secret(require_tls(body["uri"], server_roots(self.inventory)))


@dataclass(frozen=True)
class Target:
    """Where the inventory's database lives on Neon: project, branch, read-write endpoint,
    and the databases on that branch."""

    project_id: str
    branch_id: str
    endpoint_id: str
    databases: tuple[str, ...]


def read_write_endpoint(endpoints: list[dict]) -> dict | None:
    return next((e for e in endpoints if e["type"] == "read_write"), None)


def target(client: NeonClient, inventory: Inventory) -> Target | None:
    """The project, branch and endpoint of the inventory, or None while any is missing."""
    project = client.find_project(inventory.database["project"])
    if project is None:
        return None
    branch = client.branches(project["id"]).get(inventory.database["branch"])
    if branch is None:
        return None
    endpoint = read_write_endpoint(client.endpoints(project["id"], branch["id"]))
    if endpoint is None:
        return None
    return Target(project["id"], branch["id"], endpoint["id"], tuple(client.databases(project["id"], branch["id"])))


class NotProvisioned(ProviderError):
    """The Neon project, branch, endpoint or database is not there (yet): nothing to connect to."""


def admin_database(inventory: Inventory, found: Target, dbname: str) -> str:
    """The database an admin connection for `dbname` goes to. Neon has no `postgres` database
    to offer through its API: the catalog-wide queries use the application database, or any
    database of the branch before that one exists."""
    if dbname != "postgres":
        return dbname
    if inventory.database["name"] in found.databases:
        return inventory.database["name"]
    if found.databases:
        return sorted(found.databases)[0]
    raise NotProvisioned(f"Neon branch `{inventory.database['branch']}` has no database yet")


def owner_uri(client: NeonClient, inventory: Inventory, found: Target | None, dbname: str) -> Secret:
    """The owner role's URI for a database on the inventory's branch (password inside: a Secret)."""
    if found is None:
        raise NotProvisioned(
            f"Neon project `{inventory.database['project']}` branch `{inventory.database['branch']}`"
            " or its compute endpoint does not exist yet"
        )
    database = admin_database(inventory, found, dbname)
    if database not in found.databases:
        raise NotProvisioned(f"database `{database}` does not exist on Neon branch `{inventory.database['branch']}`")
    return client.connection_uri(found, database, inventory.database["owner_role"])


def server_roots(inventory: Inventory) -> str:
    """What Neon's certificate must chain to: `database.sslrootcert`, else the system's roots (libpq 16+)."""
    return inventory.database.get("sslrootcert") or "system"


def require_tls(uri: str, roots: str = "system") -> str:
    """Neon's URI verifying the server: sslmode=verify-full against `roots` (whatever the URI said)."""
    parts = urlsplit(uri)
    query = [q for q in parts.query.split("&") if q and not q.startswith(("sslmode=", "sslrootcert="))]
    query += ["sslmode=verify-full", f"sslrootcert={quote(roots, safe='/')}"]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(query), parts.fragment))


def with_credentials(uri: Secret, role: str, password: Secret | None, dbname: str | None = None) -> Secret:
    """The same server (host, port, TLS) as `uri`, as another role and, optionally, database."""
    parts = urlsplit(uri.reveal())
    host = parts.netloc.rsplit("@", 1)[-1]
    login = quote(role, safe="") + (":" + quote(password.reveal(), safe="") if password is not None else "")
    path = "/" + quote(dbname, safe="") if dbname else parts.path
    return Secret(urlunsplit((parts.scheme, f"{login}@{host}", path, parts.query, parts.fragment)))


def role_connection_uri(
    inventory: Inventory, role: str, password: Secret, dbname: str | None = None, client: NeonClient | None = None
) -> Secret:
    """A service's DATABASE_URL on Neon: `postgresql://ROLE:PASSWORD@HOST/DB?sslmode=verify-full&sslrootcert=system`,
    on the host of the branch's read-write endpoint as Neon gives it, for the application
    database (or `dbname`). The password is the one kept in the run's secrets file.
    `client` is the run's (its lookups memoised); without one, a client for this call only.
    Raises NotProvisioned while the branch or database does not exist."""
    own = client is None
    neon = client or NeonClient(inventory)
    try:
        found = target(neon, inventory)
        uri = owner_uri(neon, inventory, found, dbname or inventory.database["name"])
    finally:
        if own:
            neon.close()
    return with_credentials(uri, role, password, dbname or inventory.database["name"])


def conninfo(uri: Secret) -> dict[str, Any]:
    """psycopg keyword arguments from a URI (the password among them)."""
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(uri.reveal())
    info["sslmode"] = "verify-full"  # the URI's roots (require_tls put them there), else the system's
    info.setdefault("sslrootcert", "system")
    return info
