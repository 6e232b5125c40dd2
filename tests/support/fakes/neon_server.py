"""A stand-in for the Neon API v2, checked against Neon's own OpenAPI document.

Every request and every response is validated with openapi-core against
`$HEALTHINFRA_CONTRACTS/neon/openAPIDefinition.json` (see `contract_candidates`). A request the
spec rejects gets a 400 and is recorded in `violations`; a response the spec
rejects is recorded too. Tests assert `violations == []` at the end, so a request
the real API would refuse fails the test.

It keeps state like Neon: projects with a default branch, an owner role and a
database; branches (a child lists its parent's roles and databases, as Neon
copies them), read-write endpoints, roles and databases; operations that are
`running` when returned and `finished` a moment later. A mutating call while an
operation of the project is still running is answered `423 Locked`, as Neon does,
and counted in `locked`: a client that waits on its operations never sees one.

Underneath it is real: roles and databases are created in an embedded PostgreSQL
of its own (`BackingPostgres`), and the connection URIs it returns point at that
server's TLS front on 127.0.0.1 with sslmode=require, so the SQL a client runs on
them truly runs. Roles created through the API get what Neon's compute gives them
(`LOGIN CREATEROLE CREATEDB BYPASSRLS REPLICATION IN ROLE neon_superuser`;
neon_superuser holds pg_read_all_data and pg_write_all_data), and pg_stat_statements
may be created by a non-superuser, as on Neon (a trusted copy of its control
file, found through PostgreSQL 18's extension_control_path).

Limits, said plainly: one PostgreSQL serves every branch, so a branch does not get
a copy-on-write copy of its parent's data: a database or role a child inherits is
the parent's own. A second branch may not create a database whose name another
branch already holds (the stand-in answers 409 naming this limit). Role
passwords are shared by the branches that list the role.

Faults on demand: `inject(status, count, retry_after=, delay=, match=)` answers the
next `count` requests matching `match` ("METHOD /path-prefix") with that status
(and a Retry-After header) or, with status None, only slowly.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BASE_PATH = "/api/v2"
REPO = Path(__file__).resolve().parents[3]
OPERATION_SECONDS = 0.15  # how long an operation stays `running`


CONTRACTS_ENV = "HEALTHINFRA_CONTRACTS"
CONTRACT = Path("neon") / "openAPIDefinition.json"  # under the contracts directory


def contract_candidates() -> list[Path]:
    """Where Neon's OpenAPI document is looked for: `$HEALTHINFRA_CONTRACTS/neon/...` when the
    variable is set (and only there), else `../shared/contracts/neon/...` beside the checkout,
    CI's layout. Never in the repository: the document's licence is proprietary."""
    if os.environ.get(CONTRACTS_ENV):
        return [Path(os.environ[CONTRACTS_ENV]) / CONTRACT]
    return [REPO.parent / "shared" / "contracts" / CONTRACT]


def find_contract() -> Path | None:
    """Neon's OpenAPI document, or None when it is in none of the places looked at."""
    return next((path for path in contract_candidates() if path.is_file()), None)


def missing_contract() -> str:
    """One line saying the document is missing, where it was looked for, and how to point at it."""
    looked = ", ".join(map(str, contract_candidates()))
    return (
        f"Neon's OpenAPI document not found (looked for {looked}): set {CONTRACTS_ENV} to the directory"
        f" holding {CONTRACT}"
    )


def contract_path() -> Path:
    """Neon's OpenAPI document (see `contract_candidates`)."""
    path = find_contract()
    if path is None:
        raise FileNotFoundError(missing_contract())
    return path


_SPEC_LOCK = threading.Lock()
_SPEC = None


def openapi():
    """openapi-core's view of Neon's spec (loaded once: it takes about a second), served at /api/v2."""
    global _SPEC
    with _SPEC_LOCK:
        if _SPEC is None:
            from openapi_core import OpenAPI

            spec = json.loads(contract_path().read_text(encoding="utf-8"))
            spec["servers"] = [{"url": BASE_PATH}]  # the same paths, on this host instead of console.neon.tech
            _SPEC = OpenAPI.from_dict(spec)
        return _SPEC


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


WORDS = ("quiet", "river", "amber", "cold", "misty", "bold", "green", "wild", "lucky", "sparkling", "snowy", "autumn")


def neon_id(prefix: str = "") -> str:
    name = f"{random.choice(WORDS)}-{random.choice(WORDS)}-{random.randint(100000, 999999)}"
    return f"{prefix}{name}"


def neon_password() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(16))


# --- the PostgreSQL underneath ------------------------------------------------------------


class BackingPostgres:
    """An embedded PostgreSQL of the stand-in's own (not the test inventory's: service role
    names would collide), with Neon's neon_superuser and a trusted pg_stat_statements."""

    def __init__(self, base: Path, port: int):
        from healthinfra.inventory import Inventory

        self.base = base
        self.port = port
        self.inventory = Inventory(
            name="neon-standin",
            path=base / "neon-standin.yml",
            environment="standin",
            prefix="hc",
            phase=1,
            protected=False,
            providers={"database": "embedded", "aws": "moto", "hosting": "local"},
            database={"name": "postgres", "port": port},
            aws={"region": "us-east-1", "port": 1},
            hosting={},
            services=(),
            state_dir=base / "state",
        )

    def start(self) -> None:
        from healthinfra.local import postgres

        postgres.start(self.inventory)
        with self.admin() as conn:
            self._trust_pg_stat_statements(conn)
            if not conn.execute("select 1 from pg_roles where rolname = 'neon_superuser'").fetchone():
                conn.execute("create role neon_superuser nologin createdb createrole bypassrls replication")
                conn.execute("grant pg_read_all_data, pg_write_all_data to neon_superuser")

    def _trust_pg_stat_statements(self, conn) -> None:
        from ..database import trusted_pg_stat_statements

        path = trusted_pg_stat_statements(self.base / "extensions")
        conn.execute(f"alter system set extension_control_path = '{path}'")
        conn.execute("select pg_reload_conf()")

    def stop(self) -> None:
        from healthinfra.local import postgres

        postgres.stop(self.inventory)

    def admin(self, dbname: str = "postgres"):
        import psycopg

        from healthinfra.providers.postgres import admin_conninfo

        return psycopg.connect(**admin_conninfo(self.inventory, dbname), autocommit=True, connect_timeout=5)

    def uri(self, role: str, password: str, database: str) -> str:
        return f"postgresql://{role}:{password}@127.0.0.1:{self.port}/{database}?sslmode=require"

    def create_role(self, name: str, password: str) -> None:
        from psycopg import sql

        with self.admin() as conn:
            if conn.execute("select 1 from pg_roles where rolname = %s", (name,)).fetchone():
                conn.execute(
                    sql.SQL("alter role {} with password {}").format(sql.Identifier(name), sql.Literal(password))
                )
                return
            # what Neon's compute_ctl runs for a role from the API
            conn.execute(
                sql.SQL(
                    "create role {} with login password {} createrole createdb bypassrls replication"
                    " in role neon_superuser"
                ).format(sql.Identifier(name), sql.Literal(password))
            )

    def drop_role(self, name: str) -> None:
        from psycopg import sql

        with self.admin() as conn:
            for (database,) in conn.execute("select datname from pg_database where datallowconn").fetchall():
                with self.admin(database) as db:
                    db.execute(sql.SQL("drop owned by {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(name)))

    def set_password(self, name: str, password: str) -> None:
        from psycopg import sql

        with self.admin() as conn:
            conn.execute(sql.SQL("alter role {} with password {}").format(sql.Identifier(name), sql.Literal(password)))

    def database_exists(self, name: str) -> bool:
        with self.admin() as conn:
            return conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone() is not None

    def create_database(self, name: str, owner: str) -> None:
        from psycopg import sql

        with self.admin() as conn:
            conn.execute(sql.SQL("create database {} owner {}").format(sql.Identifier(name), sql.Identifier(owner)))
            conn.execute(sql.SQL("grant all on database {} to neon_superuser").format(sql.Identifier(name)))

    def drop_database(self, name: str) -> None:
        from psycopg import sql

        with self.admin() as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))

    def alter_database_owner(self, name: str, owner: str) -> None:
        from psycopg import sql

        with self.admin() as conn:
            conn.execute(sql.SQL("alter database {} owner to {}").format(sql.Identifier(name), sql.Identifier(owner)))


# --- state ------------------------------------------------------------------------------------


@dataclass
class Fault:
    status: int | None
    count: int
    retry_after: float | None = None
    delay: float = 0.0
    match: str = ""


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class ProjectState:
    project: dict
    branches: dict[str, dict] = field(default_factory=dict)  # id -> Branch
    endpoints: dict[str, dict] = field(default_factory=dict)  # id -> Endpoint
    roles: dict[str, dict[str, dict]] = field(default_factory=dict)  # branch id -> name -> Role
    databases: dict[str, dict[str, dict]] = field(default_factory=dict)  # branch id -> name -> Database
    operations: dict[str, dict] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)  # role name -> password (store_passwords)


class NeonStandIn:
    """The WSGI application and its state. `serve()` runs it on 127.0.0.1 in a thread."""

    def __init__(self, api_key: str, backing: BackingPostgres):
        self.api_key = api_key
        self.backing = backing
        self.projects: dict[str, ProjectState] = {}
        self.violations: list[str] = []
        self.requests: list[str] = []  # "METHOD /path status", in order
        self.locked = 0  # 423 answers: a client that waits on operations gets none
        self.faults: list[Fault] = []
        self.faults_served: dict[int | str, int] = {}
        self.request_ids: list[str] = []
        self._lock = threading.RLock()
        self._server = None
        self._thread = None
        self._database_ids = itertools.count(100000)
        self.url = ""

    # --- running -------------------------------------------------------------------------
    def serve(self) -> str:
        import logging

        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request is noise in test output
        openapi()
        self._server = make_server("127.0.0.1", 0, self, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}{BASE_PATH}"
        return self.url

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def inject(
        self,
        status: int | None,
        count: int = 1,
        *,
        retry_after: float | None = None,
        delay: float = 0.0,
        match: str = "",
    ) -> None:
        with self._lock:
            self.faults.append(Fault(status, count, retry_after, delay, match))

    def reset(self) -> None:
        """Forget every project (and drop what they made underneath): a fresh Neon account."""
        with self._lock:
            for state in list(self.projects.values()):
                for branch_id in list(state.branches):
                    self._drop_branch_contents(state, branch_id)
            self.projects.clear()
            self.violations.clear()
            self.requests.clear()
            self.faults.clear()
            self.faults_served.clear()
            self.locked = 0

    # --- WSGI ------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
        from werkzeug.wrappers import Request

        request = Request(environ)
        request_id = request.headers.get("X-Request-ID") or secrets.token_hex(8)
        self.request_ids.append(request_id)
        line = f"{request.method} {request.path}"
        try:
            openapi().validate_request(WerkzeugOpenAPIRequest(request))
            problem = None
        except Exception as exc:  # openapi-core's validation errors: the request breaks Neon's contract
            problem = _explain(exc)
        if problem is not None:
            self.violations.append(f"request {line}: {problem}")
            response = self._error(
                400, "invalid_request", f"the request does not match Neon's API: {problem}", request_id
            )
        else:
            response = self._answer(request, line, request_id)
        try:
            openapi().validate_response(WerkzeugOpenAPIRequest(request), WerkzeugOpenAPIResponse(response))
        except Exception as exc:
            self.violations.append(f"response {line} {response.status_code}: {_explain(exc)}")
        self.requests.append(f"{line} {response.status_code}")
        return response(environ, start_response)

    def _answer(self, request, line: str, request_id: str):
        fault = self._take_fault(line)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status is not None:
                response = self._error(fault.status, "injected", f"injected fault {fault.status}", request_id)
                if fault.retry_after is not None:
                    response.headers["Retry-After"] = str(fault.retry_after)
                return response
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(401, "unauthorized", "authentication failed: the API key is not valid", request_id)
        try:
            with self._lock:
                status, body = self._route(request)
        except ApiError as exc:
            return self._error(exc.status, exc.code, exc.message, request_id)
        return self._json(status, body)

    def _take_fault(self, line: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.count > 0 and line.startswith(fault.match or ""):
                    fault.count -= 1
                    key = fault.status if fault.status is not None else "slow"
                    self.faults_served[key] = self.faults_served.get(key, 0) + 1
                    return fault
        return None

    @staticmethod
    def _json(status: int, body: Any):
        from werkzeug.wrappers import Response

        if body is None:
            return Response(status=status)
        return Response(json.dumps(body), status=status, content_type="application/json")

    def _error(self, status: int, code: str, message: str, request_id: str):
        return self._json(status, {"code": code, "message": message, "request_id": request_id})

    # --- routing -----------------------------------------------------------------------------
    def _route(self, request):
        from werkzeug.exceptions import MethodNotAllowed, NotFound
        from werkzeug.routing import Map, Rule

        rules = Map(
            [
                Rule("/projects", endpoint="projects"),
                Rule("/projects/<project_id>", endpoint="project"),
                Rule("/projects/<project_id>/branches", endpoint="branches"),
                Rule("/projects/<project_id>/branches/<branch_id>", endpoint="branch"),
                Rule("/projects/<project_id>/branches/<branch_id>/endpoints", endpoint="branch_endpoints"),
                Rule("/projects/<project_id>/endpoints", endpoint="endpoints"),
                Rule("/projects/<project_id>/endpoints/<endpoint_id>", endpoint="endpoint"),
                Rule("/projects/<project_id>/branches/<branch_id>/roles", endpoint="roles"),
                Rule("/projects/<project_id>/branches/<branch_id>/roles/<role_name>", endpoint="role"),
                Rule("/projects/<project_id>/branches/<branch_id>/roles/<role_name>/reset_password", endpoint="reset"),
                Rule("/projects/<project_id>/branches/<branch_id>/databases", endpoint="databases"),
                Rule("/projects/<project_id>/branches/<branch_id>/databases/<database_name>", endpoint="database"),
                Rule("/projects/<project_id>/connection_uri", endpoint="connection_uri"),
                Rule("/projects/<project_id>/operations/<operation_id>", endpoint="operation"),
            ]
        ).bind("stand-in", path_info=request.path[len(BASE_PATH) :] if request.path.startswith(BASE_PATH) else "/")
        try:
            endpoint, args = rules.match(method=request.method)
        except (NotFound, MethodNotAllowed):
            raise ApiError(404, "not_found", f"the stand-in does not serve {request.method} {request.path}") from None
        handler = getattr(self, f"{request.method.lower()}_{endpoint}", None)
        if handler is None:
            raise ApiError(404, "not_found", f"the stand-in does not serve {request.method} {request.path}")
        if request.method != "GET" and "project_id" in args:
            self._refuse_while_running(args["project_id"])
        body = request.get_json(silent=True) if request.data else None
        return handler(body=body, query=request.args, **args)

    # --- helpers ------------------------------------------------------------------------------
    def _project(self, project_id: str) -> ProjectState:
        state = self.projects.get(project_id)
        if state is None:
            raise ApiError(404, "not_found", f"project {project_id} not found")
        return state

    def _branch(self, state: ProjectState, branch_id: str) -> dict:
        branch = state.branches.get(branch_id)
        if branch is None:
            raise ApiError(404, "not_found", f"branch {branch_id} not found")
        return branch

    def _refuse_while_running(self, project_id: str) -> None:
        state = self.projects.get(project_id)
        if state is None:
            return
        for operation in state.operations.values():
            self._advance(operation)
            if operation["status"] == "running":
                self.locked += 1
                raise ApiError(
                    423,
                    "locked",
                    f"project {project_id} has an operation in progress"
                    f" ({operation['action']} {operation['id']}); try again",
                )

    @staticmethod
    def _advance(operation: dict) -> None:
        if operation["status"] == "running" and time.monotonic() - operation["_started"] >= OPERATION_SECONDS:
            operation["status"] = "finished"
            operation["updated_at"] = now()
            operation["total_duration_ms"] = int(OPERATION_SECONDS * 1000)

    def _operation(
        self, state: ProjectState, action: str, branch_id: str | None = None, endpoint_id: str | None = None
    ) -> dict:
        import uuid

        operation = {
            "id": str(uuid.uuid4()),
            "project_id": state.project["id"],
            "action": action,
            "status": "running",
            "failures_count": 0,
            "created_at": now(),
            "updated_at": now(),
            "total_duration_ms": 0,
            "_started": time.monotonic(),
        }
        if branch_id:
            operation["branch_id"] = branch_id
        if endpoint_id:
            operation["endpoint_id"] = endpoint_id
        state.operations[operation["id"]] = operation
        return operation

    @staticmethod
    def _public(operation: dict) -> dict:
        return {k: v for k, v in operation.items() if not k.startswith("_")}

    def _operations(self, state, *items) -> list[dict]:
        return [self._public(self._operation(state, *item)) for item in items]

    def _new_branch(self, state: ProjectState, name: str, parent: dict | None) -> dict:
        branch = {
            "id": neon_id("br-"),
            "project_id": state.project["id"],
            "name": name,
            "current_state": "ready",
            "state_changed_at": now(),
            "creation_source": "console",
            "default": parent is None,
            "protected": False,
            "cpu_used_sec": 0,
            "compute_time_seconds": 0,
            "active_time_seconds": 0,
            "written_data_bytes": 0,
            "data_transfer_bytes": 0,
            "created_at": now(),
            "updated_at": now(),
            "primary": parent is None,
        }
        if parent is not None:
            branch["parent_id"] = parent["id"]
            branch["parent_lsn"] = "0/1F2A3B4"
        state.branches[branch["id"]] = branch
        # Neon copies the parent's roles and databases into the child
        state.roles[branch["id"]] = {
            n: {**r, "branch_id": branch["id"]}
            for n, r in (state.roles.get(parent["id"], {}) if parent else {}).items()
        }
        state.databases[branch["id"]] = {
            n: {**d, "branch_id": branch["id"], "id": next(self._database_ids)}
            for n, d in (state.databases.get(parent["id"], {}) if parent else {}).items()
        }
        return branch

    def _new_endpoint(self, state: ProjectState, branch: dict) -> dict:
        endpoint = {
            "host": "127.0.0.1",
            "id": neon_id("ep-"),
            "project_id": state.project["id"],
            "branch_id": branch["id"],
            "region_id": "aws-us-east-2",
            "autoscaling_limit_min_cu": 0.25,
            "autoscaling_limit_max_cu": 2,
            "type": "read_write",
            "current_state": "active",
            "settings": {},
            "pooler_enabled": False,
            "pooler_mode": "transaction",
            "disabled": False,
            "passwordless_access": True,
            "creation_source": "console",
            "created_at": now(),
            "updated_at": now(),
            "proxy_host": "127.0.0.1",
            "suspend_timeout_seconds": 0,
            "provisioner": "k8s-neonvm",
        }
        state.endpoints[endpoint["id"]] = endpoint
        return endpoint

    def _new_role(self, state: ProjectState, branch: dict, name: str) -> dict:
        if name in state.roles[branch["id"]]:
            raise ApiError(409, "conflict", f"role {name} already exists in branch {branch['id']}")
        password = state.passwords.get(name) or neon_password()
        self.backing.create_role(name, password)
        state.passwords[name] = password
        role = {"branch_id": branch["id"], "name": name, "protected": False, "created_at": now(), "updated_at": now()}
        state.roles[branch["id"]][name] = role
        return {**role, "password": password}

    def _new_database(self, state: ProjectState, branch: dict, name: str, owner: str) -> dict:
        if name in state.databases[branch["id"]]:
            raise ApiError(409, "conflict", f"database {name} already exists in branch {branch['id']}")
        if owner not in state.roles[branch["id"]]:
            raise ApiError(404, "not_found", f"role {owner} not found in branch {branch['id']}")
        if self._database_elsewhere(name, branch["id"]):
            raise ApiError(
                409,
                "conflict",
                f"stand-in limit: database {name} is held by another branch, and one"
                " PostgreSQL serves every branch here",
            )
        if not self.backing.database_exists(name):
            self.backing.create_database(name, owner)
        database = {
            "id": next(self._database_ids),
            "branch_id": branch["id"],
            "name": name,
            "owner_name": owner,
            "created_at": now(),
            "updated_at": now(),
        }
        state.databases[branch["id"]][name] = database
        return database

    def _database_elsewhere(self, name: str, branch_id: str) -> bool:
        return any(
            name in databases
            for state in self.projects.values()
            for other, databases in state.databases.items()
            if other != branch_id
        )

    def _role_elsewhere(self, name: str, branch_id: str) -> bool:
        return any(
            name in roles
            for state in self.projects.values()
            for other, roles in state.roles.items()
            if other != branch_id
        )

    def _drop_branch_contents(self, state: ProjectState, branch_id: str) -> None:
        for name in list(state.databases.get(branch_id, {})):
            del state.databases[branch_id][name]
            if not self._database_elsewhere(name, branch_id):
                self.backing.drop_database(name)
        for name in list(state.roles.get(branch_id, {})):
            del state.roles[branch_id][name]
            if not self._role_elsewhere(name, branch_id):
                self.backing.drop_role(name)
        for endpoint_id in [e for e, ep in state.endpoints.items() if ep["branch_id"] == branch_id]:
            del state.endpoints[endpoint_id]
        state.branches.pop(branch_id, None)

    def _uri(self, state: ProjectState, role: str, database: str) -> str:
        return self.backing.uri(role, state.passwords[role], database)

    # --- projects ---------------------------------------------------------------------------------
    def get_projects(self, query, **_):
        search = query.get("search", "")
        found = [s.project for s in self.projects.values() if search in s.project["name"] or search == s.project["id"]]
        limit = int(query.get("limit", 10))
        items = [self._list_item(p) for p in found[:limit]]
        return 200, {"projects": items, "applications": {}, "integrations": {}}

    @staticmethod
    def _list_item(project: dict) -> dict:
        keep = (
            "id",
            "platform_id",
            "region_id",
            "name",
            "provisioner",
            "pg_version",
            "proxy_host",
            "branch_logical_size_limit",
            "branch_logical_size_limit_bytes",
            "store_passwords",
            "cpu_used_sec",
            "creation_source",
            "created_at",
            "updated_at",
            "owner_id",
        )
        return {**{k: project[k] for k in keep}, "active_time": 0}

    def post_projects(self, body, **_):
        spec = body["project"]
        project_id = neon_id()
        project = {
            "id": project_id,
            "platform_id": "aws",
            "region_id": "aws-us-east-2",
            "name": spec.get("name") or project_id,
            "provisioner": "k8s-neonvm",
            "pg_version": 17,
            "proxy_host": "127.0.0.1",
            "branch_logical_size_limit": 0,
            "branch_logical_size_limit_bytes": 0,
            "store_passwords": True,
            "cpu_used_sec": 0,
            "creation_source": "console",
            "created_at": now(),
            "updated_at": now(),
            "owner_id": "stand-in-user",
            "history_retention_seconds": 86400,
            "consumption_period_start": now(),
            "consumption_period_end": now(),
            "active_time_seconds": 0,
            "compute_time_seconds": 0,
            "written_data_bytes": 0,
            "data_transfer_bytes": 0,
            "data_storage_bytes_hour": 0,
        }
        state = ProjectState(project)
        self.projects[project_id] = state
        branch_spec = spec.get("branch") or {}
        database_name = branch_spec.get("database_name") or "neondb"
        role_name = branch_spec.get("role_name") or f"{database_name}_owner"
        if self._database_elsewhere(database_name, "") or self._role_elsewhere(role_name, ""):
            del self.projects[project_id]
            raise ApiError(
                409,
                "conflict",
                f"stand-in limit: {database_name} or {role_name} is held by another"
                " project, and one PostgreSQL serves every project here",
            )
        branch = self._new_branch(state, branch_spec.get("name") or "main", None)
        endpoint = self._new_endpoint(state, branch)
        role = self._new_role(state, branch, role_name)
        database = self._new_database(state, branch, database_name, role_name)
        uri = self._uri(state, role_name, database_name)
        return 201, {
            "project": project,
            "branch": branch,
            "endpoints": [endpoint],
            "roles": [role],
            "databases": [database],
            "operations": self._operations(
                state, ("create_timeline", branch["id"]), ("start_compute", branch["id"], endpoint["id"])
            ),
            "connection_uris": [
                {
                    "connection_uri": uri,
                    "connection_parameters": {
                        "database": database_name,
                        "password": state.passwords[role_name],
                        "role": role_name,
                        "host": "127.0.0.1",
                        "pooler_host": "127.0.0.1",
                    },
                }
            ],
        }

    def get_project(self, project_id, **_):
        return 200, {"project": self._project(project_id).project}

    # --- branches -----------------------------------------------------------------------------------
    def get_branches(self, project_id, **_):
        state = self._project(project_id)
        return 200, {"branches": list(state.branches.values()), "annotations": {}}

    def post_branches(self, project_id, body, **_):
        state = self._project(project_id)
        spec = (body or {}).get("branch") or {}
        parent_id = spec.get("parent_id") or next(b["id"] for b in state.branches.values() if b["default"])
        parent = self._branch(state, parent_id)
        name = spec.get("name") or neon_id("br-")
        if any(b["name"] == name for b in state.branches.values()):
            raise ApiError(409, "conflict", f"branch {name} already exists")
        branch = self._new_branch(state, name, parent)
        endpoints = [self._new_endpoint(state, branch) for _ in (body or {}).get("endpoints") or []]
        items = [("create_branch", branch["id"])] + [("start_compute", branch["id"], e["id"]) for e in endpoints]
        return 201, {
            "branch": branch,
            "endpoints": endpoints,
            "operations": self._operations(state, *items),
            "roles": list(state.roles[branch["id"]].values()),
            "databases": list(state.databases[branch["id"]].values()),
        }

    def get_branch(self, project_id, branch_id, **_):
        state = self._project(project_id)
        return 200, {"branch": self._branch(state, branch_id), "annotation": {}}

    def delete_branch(self, project_id, branch_id, **_):
        state = self._project(project_id)
        branch = state.branches.get(branch_id)
        if branch is None:
            return 204, None
        if branch["default"]:
            raise ApiError(400, "bad_request", "the default branch cannot be deleted")
        if any(b.get("parent_id") == branch_id for b in state.branches.values()):
            raise ApiError(400, "bad_request", f"branch {branch_id} has children")
        self._drop_branch_contents(state, branch_id)
        return 200, {"branch": branch, "operations": self._operations(state, ("delete_timeline", branch_id))}

    # --- endpoints ------------------------------------------------------------------------------------
    def get_branch_endpoints(self, project_id, branch_id, **_):
        state = self._project(project_id)
        self._branch(state, branch_id)
        return 200, {"endpoints": [e for e in state.endpoints.values() if e["branch_id"] == branch_id]}

    def get_endpoints(self, project_id, **_):
        return 200, {"endpoints": list(self._project(project_id).endpoints.values())}

    def post_endpoints(self, project_id, body, **_):
        state = self._project(project_id)
        spec = body["endpoint"]
        branch = self._branch(state, spec["branch_id"])
        if spec["type"] == "read_write" and any(
            e["branch_id"] == branch["id"] and e["type"] == "read_write" for e in state.endpoints.values()
        ):
            raise ApiError(409, "conflict", f"branch {branch['id']} already has a read_write endpoint")
        endpoint = self._new_endpoint(state, branch)
        endpoint["type"] = spec["type"]
        return 201, {
            "endpoint": endpoint,
            "operations": self._operations(state, ("start_compute", branch["id"], endpoint["id"])),
        }

    def delete_endpoint(self, project_id, endpoint_id, **_):
        state = self._project(project_id)
        endpoint = state.endpoints.pop(endpoint_id, None)
        if endpoint is None:
            return 204, None
        return 200, {
            "endpoint": endpoint,
            "operations": self._operations(state, ("suspend_compute", endpoint["branch_id"], endpoint_id)),
        }

    # --- roles --------------------------------------------------------------------------------------------
    def get_roles(self, project_id, branch_id, **_):
        state = self._project(project_id)
        self._branch(state, branch_id)
        return 200, {"roles": list(state.roles[branch_id].values())}

    def post_roles(self, project_id, branch_id, body, **_):
        state = self._project(project_id)
        branch = self._branch(state, branch_id)
        role = self._new_role(state, branch, body["role"]["name"])
        return 201, {"role": role, "operations": self._operations(state, ("apply_config", branch_id))}

    def get_role(self, project_id, branch_id, role_name, **_):
        state = self._project(project_id)
        self._branch(state, branch_id)
        role = state.roles[branch_id].get(role_name)
        if role is None:
            raise ApiError(404, "not_found", f"role {role_name} not found")
        return 200, {"role": role}

    def delete_role(self, project_id, branch_id, role_name, **_):
        state = self._project(project_id)
        self._branch(state, branch_id)
        role = state.roles[branch_id].get(role_name)
        if role is None:
            return 204, None
        if any(d["owner_name"] == role_name for d in state.databases[branch_id].values()):
            raise ApiError(400, "bad_request", f"role {role_name} owns a database; delete the database first")
        del state.roles[branch_id][role_name]
        if not self._role_elsewhere(role_name, branch_id):
            self.backing.drop_role(role_name)
            state.passwords.pop(role_name, None)
        return 200, {"role": role, "operations": self._operations(state, ("apply_config", branch_id))}

    def post_reset(self, project_id, branch_id, role_name, **_):
        state = self._project(project_id)
        self._branch(state, branch_id)
        role = state.roles[branch_id].get(role_name)
        if role is None:
            raise ApiError(404, "not_found", f"role {role_name} not found")
        password = neon_password()
        self.backing.set_password(role_name, password)
        state.passwords[role_name] = password
        role["updated_at"] = now()
        return 200, {
            "role": {**role, "password": password},
            "operations": self._operations(state, ("apply_config", branch_id)),
        }

    # --- databases -------------------------------------------------------------------------------------------
    def get_databases(self, project_id, branch_id, **_):
        state = self._project(project_id)
        self._branch(state, branch_id)
        return 200, {"databases": list(state.databases[branch_id].values())}

    def post_databases(self, project_id, branch_id, body, **_):
        state = self._project(project_id)
        branch = self._branch(state, branch_id)
        spec = body["database"]
        database = self._new_database(state, branch, spec["name"], spec["owner_name"])
        return 201, {"database": database, "operations": self._operations(state, ("apply_config", branch_id))}

    def get_database(self, project_id, branch_id, database_name, **_):
        state = self._project(project_id)
        self._branch(state, branch_id)
        database = state.databases[branch_id].get(database_name)
        if database is None:
            raise ApiError(404, "not_found", f"database {database_name} not found")
        return 200, {"database": database}

    def patch_database(self, project_id, branch_id, database_name, body, **_):
        state = self._project(project_id)
        self._branch(state, branch_id)
        database = state.databases[branch_id].get(database_name)
        if database is None:
            raise ApiError(404, "not_found", f"database {database_name} not found")
        owner = body["database"].get("owner_name")
        if owner:
            if owner not in state.roles[branch_id]:
                raise ApiError(404, "not_found", f"role {owner} not found")
            self.backing.alter_database_owner(database_name, owner)
            database["owner_name"] = owner
        return 200, {"database": database, "operations": self._operations(state, ("apply_config", branch_id))}

    def delete_database(self, project_id, branch_id, database_name, **_):
        state = self._project(project_id)
        self._branch(state, branch_id)
        database = state.databases[branch_id].pop(database_name, None)
        if database is None:
            return 204, None
        if not self._database_elsewhere(database_name, branch_id):
            self.backing.drop_database(database_name)
        return 200, {"database": database, "operations": self._operations(state, ("apply_config", branch_id))}

    # --- connection URIs and operations -------------------------------------------------------------------------
    def get_connection_uri(self, project_id, query, **_):
        state = self._project(project_id)
        branch_id = query.get("branch_id") or next(b["id"] for b in state.branches.values() if b["default"])
        self._branch(state, branch_id)
        role, database = query["role_name"], query["database_name"]
        if role not in state.roles[branch_id]:
            raise ApiError(404, "not_found", f"role {role} not found in branch {branch_id}")
        if database not in state.databases[branch_id]:
            raise ApiError(404, "not_found", f"database {database} not found in branch {branch_id}")
        endpoint_id = query.get("endpoint_id")
        if endpoint_id and (
            endpoint_id not in state.endpoints or state.endpoints[endpoint_id]["branch_id"] != branch_id
        ):
            raise ApiError(404, "not_found", f"endpoint {endpoint_id} not found in branch {branch_id}")
        return 200, {"uri": self._uri(state, role, database)}

    def get_operation(self, project_id, operation_id, **_):
        state = self._project(project_id)
        operation = state.operations.get(operation_id)
        if operation is None:
            raise ApiError(404, "not_found", f"operation {operation_id} not found")
        self._advance(operation)
        return 200, {"operation": self._public(operation)}

    # --- what tests look at ----------------------------------------------------------------------------------------
    def branch_names(self, project_name: str) -> list[str]:
        with self._lock:
            for state in self.projects.values():
                if state.project["name"] == project_name:
                    return sorted(b["name"] for b in state.branches.values())
        return []

    def listing(self, project_name: str, branch_name: str) -> dict:
        """Roles, databases and endpoints the API lists on a branch (empty if there is none)."""
        with self._lock:
            for state in self.projects.values():
                if state.project["name"] != project_name:
                    continue
                for branch in state.branches.values():
                    if branch["name"] == branch_name:
                        return {
                            "roles": sorted(state.roles[branch["id"]]),
                            "databases": sorted(state.databases[branch["id"]]),
                            "endpoints": sum(e["branch_id"] == branch["id"] for e in state.endpoints.values()),
                        }
        return {"roles": [], "databases": [], "endpoints": 0}


def _explain(exc: BaseException) -> str:
    parts = [f"{type(exc).__name__}: {exc}"]
    cause = exc.__cause__
    while cause is not None:
        errors = getattr(cause, "schema_errors", None)
        if errors:
            parts += [getattr(e, "message", str(e)) for e in errors]
        else:
            parts.append(f"{type(cause).__name__}: {cause}")
        cause = cause.__cause__
    return "; ".join(parts)[:2000]
