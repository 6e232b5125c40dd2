"""A stand-in for Railway's public GraphQL API v2, checked against Railway's own schema.

Every request is parsed and validated with graphql-core against the introspection
result Railway publishes (contracts/railway/schema.json), and then *executed*
against that schema with state-keeping resolvers: variables are coerced by the
schema's input types (an unknown input field, a wrong type, a missing required
argument is refused), and the answer holds exactly the fields the schema has and
the document asked for. A request the real API would refuse is answered with
GraphQL errors *and* recorded in `violations`, which the tests assert empty.

State: projects, environments, services with an instance per environment,
variables per instance, deployments with statuses; a second identical run finds
everything in place. `mutations` lists the root field of every accepted mutation,
so a test can count them. `inject(...)` queues faults: an HTTP status (429 with
Retry-After, 503), or a slow answer (before or after the request takes effect).

Behaviour modelled on Railway's (as its schema describes it): `projectCreate` makes the
project with its default environment; `serviceCreate` creates the service in every
environment of the project; a service created with a source, or variables upserted
without `skipDeploys`, deploy at once; a new deployment that succeeds leaves the
previous one REMOVED (it can still be rolled back to); `deploymentRollback` makes a
new deployment from an earlier one's snapshot (source and variables), as Railway does.
Deployments here succeed at once.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from healthinfra.providers.railway import redact

REPO = Path(__file__).resolve().parents[3]


def contracts_dir() -> Path:
    """`$HEALTHINFRA_CONTRACTS` when it holds Railway's schema (a newer copy being tried out), else
    the copy vendored in the repository (contracts/, MIT): a directory that holds only Neon's
    document, or none at all, still finds Railway's."""
    override = os.environ.get("HEALTHINFRA_CONTRACTS")
    if override and (Path(override) / "railway" / "schema.json").is_file():
        return Path(override)
    return REPO / "contracts"


def load_schema(path: Path | None = None):
    """Railway's schema from its introspection result.

    graphql-core 3.3 refuses the schema as published (Team.id is deprecated while the
    Node.id it implements is not; see contracts/README.md). The field is un-deprecated
    in memory, which changes nothing a client can send or receive, so any graphql-core
    from 3.2 on validates against it."""
    import graphql

    path = path or contracts_dir() / "railway" / "schema.json"
    with open(path, encoding="utf-8") as f:
        data = json.load(f)["data"]
    for kind in data["__schema"]["types"]:
        if kind["name"] == "Team":
            for field in kind.get("fields") or []:
                if field["name"] == "id":
                    field["isDeprecated"], field["deprecationReason"] = False, None
    schema = graphql.build_client_schema(data)
    problems = graphql.validate_schema(schema)
    assert not problems, problems
    return schema


class DomainError(Exception):
    """A refusal the real API would give for a valid request (not found, not allowed)."""


@dataclass
class Fault:
    status: int = 0
    retry_after: float | None = None
    delay: float = 0.0
    after_effect: bool = False  # slow answer after the request took effect (a client timeout then must re-read)
    field: str | None = None  # only requests with this root field
    times: int = 1


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _connection(nodes: list) -> dict:
    return {
        "edges": [{"node": n, "cursor": str(i)} for i, n in enumerate(nodes)],
        "pageInfo": {"hasNextPage": False, "hasPreviousPage": False, "startCursor": None, "endCursor": None},
    }


class RailwayStandIn:
    def __init__(self, token: str = "stand-in-token", schema_path: Path | None = None):
        self.schema = load_schema(schema_path)
        self.token = token
        self.lock = threading.RLock()
        self.projects: dict[str, dict] = {}
        self.environments: dict[str, dict] = {}
        self.services: dict[str, dict] = {}
        self.instances: dict[tuple[str, str], dict] = {}
        self.variables: dict[tuple[str, str], dict[str, str]] = {}
        self.deployments: dict[str, dict] = {}
        self.violations: list[str] = []
        self.requests: list[list[str]] = []  # root fields of every request answered
        self.mutations: list[str] = []  # root field of every mutation that took effect
        self.faults: list[Fault] = []
        self._order = itertools.count()
        self._server: ThreadingHTTPServer | None = None

    # --- the HTTP server ------------------------------------------------------
    def start(self) -> RailwayStandIn:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, headers, answer = stand_in.handle(self.path, dict(self.headers), body)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout we caused on purpose)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/graphql/v2"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def inject(
        self,
        status: int = 0,
        *,
        retry_after: float | None = None,
        delay: float = 0.0,
        after_effect: bool = False,
        field: str | None = None,
        times: int = 1,
    ) -> None:
        with self.lock:
            self.faults.append(Fault(status, retry_after, delay, after_effect, field, times))

    def _take_fault(self, fields: list[str]) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.field is None or fault.field in fields:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def violation(self, text: str) -> dict:
        self.violations.append(text)
        return {"errors": [{"message": text}]}

    def handle(self, path: str, headers: dict, body: bytes) -> tuple[int, dict, dict]:
        import graphql

        if path != "/graphql/v2":
            return 404, {}, self.violation(f"POST to {path}: Railway serves GraphQL at /graphql/v2")
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if auth != f"Bearer {self.token}":
            self.violations.append("a request without the right `Authorization: Bearer` token")
            return 200, {}, {"errors": [{"message": "Not Authorized"}]}
        try:
            request = json.loads(body)
            query, variables, operation = request["query"], request.get("variables") or {}, request.get("operationName")
        except (ValueError, KeyError, TypeError):
            return 400, {}, self.violation("the body is not a GraphQL request (JSON with `query`)")
        try:
            document = graphql.parse(query)
        except graphql.GraphQLError as exc:
            return 400, {}, self.violation(f"syntax: {exc.message}")
        errors = graphql.validate(self.schema, document)
        if errors:
            return 400, {}, self.violation("invalid against Railway's schema: " + "; ".join(e.message for e in errors))
        fields = [
            selection.name.value
            for definition in document.definitions
            if isinstance(definition, graphql.OperationDefinitionNode)
            for selection in definition.selection_set.selections
            if isinstance(selection, graphql.FieldNode)
        ]
        is_mutation = any(
            isinstance(d, graphql.OperationDefinitionNode) and d.operation.value == "mutation"
            for d in document.definitions
        )

        fault = self._take_fault(fields)
        if fault and fault.status:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return fault.status, headers, {"errors": [{"message": f"stand-in: injected HTTP {fault.status}"}]}
        if fault and fault.delay and not fault.after_effect:
            time.sleep(fault.delay)
        with self.lock:
            result = graphql.execute(
                self.schema, document, root_value=Resolvers(self), variable_values=variables, operation_name=operation
            )
            self.requests.append(fields)
            if is_mutation and not result.errors:
                self.mutations.extend(fields)
        if fault and fault.delay and fault.after_effect:
            time.sleep(fault.delay)
        answer: dict = {"data": result.data}
        if result.errors:
            answer["errors"] = []
            for error in result.errors:
                if not isinstance(error.original_error, DomainError):  # coercion, a null for a non-null field…
                    self.violations.append(redact(f"execution: {error.message}", variables))
                answer["errors"].append({"message": error.message, "path": error.path})
        return 200, {}, answer

    # --- state helpers --------------------------------------------------------
    def new_id(self) -> str:
        return str(uuid.uuid4())

    def project_of(self, project_id: str) -> dict:
        project = self.projects.get(project_id)
        if project is None:
            raise DomainError("Project not found")
        return project

    def environment_of(self, environment_id: str) -> dict:
        environment = self.environments.get(environment_id)
        if environment is None:
            raise DomainError("Environment not found")
        return environment

    def service_of(self, service_id: str) -> dict:
        service = self.services.get(service_id)
        if service is None:
            raise DomainError("Service not found")
        return service

    def instance_of(self, service_id: str, environment_id: str) -> dict:
        instance = self.instances.get((service_id, environment_id))
        if instance is None:
            raise DomainError("ServiceInstance not found")
        return instance

    def add_instance(self, service: dict, environment: dict) -> None:
        key = (service["id"], environment["id"])
        self.instances[key] = {
            "id": self.new_id(),
            "serviceId": service["id"],
            "environmentId": environment["id"],
            "source": None,
            "healthcheckPath": None,
            "healthcheckTimeout": None,
            "startCommand": None,
            "numReplicas": 1,
            "createdAt": _now(),
        }
        self.variables[key] = {}

    def deploy(self, service_id: str, environment_id: str, snapshot: dict | None = None, rolled_back_from=None) -> str:
        key = (service_id, environment_id)
        instance = self.instance_of(service_id, environment_id)
        for deployment in self.deployments.values():
            if (deployment["serviceId"], deployment["environmentId"]) == key and deployment["status"] == "SUCCESS":
                deployment["status"] = "REMOVED"
        deployment_id = self.new_id()
        self.deployments[deployment_id] = {
            "id": deployment_id,
            "serviceId": service_id,
            "environmentId": environment_id,
            "projectId": self.services[service_id]["projectId"],
            "status": "SUCCESS",
            "createdAt": _now(),
            "order": next(self._order),
            "rolledBackFrom": rolled_back_from,
            "snapshot": snapshot
            or {"source": copy.deepcopy(instance["source"]), "variables": dict(self.variables[key])},
        }
        return deployment_id

    def deployments_of(self, service_id: str, environment_id: str) -> list[dict]:
        return sorted(
            (
                d
                for d in self.deployments.values()
                if d["serviceId"] == service_id and d["environmentId"] == environment_id
            ),
            key=lambda d: d["order"],
            reverse=True,
        )

    def latest_deployment(self, service_id: str, environment_id: str) -> dict | None:
        found = self.deployments_of(service_id, environment_id)
        return found[0] if found else None

    def find_service(self, project_name: str, service_name: str) -> dict | None:
        for service in self.services.values():
            project = self.projects[service["projectId"]]
            if project["name"] == project_name and service["name"] == service_name:
                return service
        return None

    def find_environment(self, project_name: str, environment_name: str) -> dict | None:
        for environment in self.environments.values():
            if (
                self.projects[environment["projectId"]]["name"] == project_name
                and environment["name"] == environment_name
            ):
                return environment
        return None

    # --- views: what the schema's object types resolve from ---------------------
    def project_view(self, project: dict) -> dict:
        def environments(info, **args):
            return _connection(
                [self.environment_view(e) for e in self.environments.values() if e["projectId"] == project["id"]]
            )

        def services(info, **args):
            return _connection(
                [self.service_view(s) for s in self.services.values() if s["projectId"] == project["id"]]
            )

        return {
            "id": project["id"],
            "name": project["name"],
            "description": project.get("description"),
            "workspaceId": project.get("workspaceId"),
            "createdAt": project["createdAt"],
            "updatedAt": project["createdAt"],
            "deletedAt": None,
            "isPublic": False,
            "environments": environments,
            "services": services,
        }

    def environment_view(self, environment: dict) -> dict:
        def instances(info, **args):
            return _connection(
                [self.instance_view(i) for i in self.instances.values() if i["environmentId"] == environment["id"]]
            )

        return {
            "id": environment["id"],
            "name": environment["name"],
            "projectId": environment["projectId"],
            "createdAt": environment["createdAt"],
            "updatedAt": environment["createdAt"],
            "deletedAt": None,
            "isEphemeral": False,
            "serviceInstances": instances,
        }

    def service_view(self, service: dict) -> dict:
        def instances(info, **args):
            return _connection(
                [self.instance_view(i) for i in self.instances.values() if i["serviceId"] == service["id"]]
            )

        def deployments(info, **args):
            return _connection(
                [self.deployment_view(d) for d in self.deployments.values() if d["serviceId"] == service["id"]]
            )

        return {
            "id": service["id"],
            "name": service["name"],
            "projectId": service["projectId"],
            "createdAt": service["createdAt"],
            "updatedAt": service["createdAt"],
            "deletedAt": None,
            "serviceInstances": instances,
            "deployments": deployments,
        }

    def instance_view(self, instance: dict) -> dict:
        latest = self.latest_deployment(instance["serviceId"], instance["environmentId"])
        service = self.services[instance["serviceId"]]
        return {
            **{k: copy.deepcopy(v) for k, v in instance.items()},
            "serviceName": service["name"],
            "updatedAt": instance["createdAt"],
            "deletedAt": None,
            "builder": "RAILPACK",
            "isUpdatable": True,
            "restartPolicyMaxRetries": 10,
            "restartPolicyType": "ON_FAILURE",
            "watchPatterns": [],
            "latestDeployment": self.deployment_view(latest) if latest else None,
            "activeDeployments": [
                self.deployment_view(d)
                for d in self.deployments_of(instance["serviceId"], instance["environmentId"])
                if d["status"] == "SUCCESS"
            ],
            "service": lambda info, **args: self.service_view(service),
        }

    def deployment_view(self, deployment: dict) -> dict:
        return {
            "id": deployment["id"],
            "status": deployment["status"],
            "serviceId": deployment["serviceId"],
            "environmentId": deployment["environmentId"],
            "projectId": deployment["projectId"],
            "createdAt": deployment["createdAt"],
            "updatedAt": deployment["createdAt"],
            "statusUpdatedAt": deployment["createdAt"],
            "canRollback": deployment["status"] == "REMOVED",
            "canRedeploy": True,
            "deploymentStopped": False,
            "suggestAddServiceDomain": False,
            "instances": [],
            "sockets": [],
            "staticUrl": None,
            "url": None,
            "meta": {"image": (deployment["snapshot"]["source"] or {}).get("image")},
            "environment": lambda info, **args: self.environment_view(self.environments[deployment["environmentId"]]),
            "service": lambda info, **args: self.service_view(self.services[deployment["serviceId"]]),
        }


class Resolvers:
    """Root fields of Query and Mutation, called by graphql-core's default resolver with the
    arguments as the schema coerced them (names as in the schema)."""

    def __init__(self, api: RailwayStandIn):
        self.api = api

    # --- queries ------------------------------------------------------------------
    def projects(self, info, workspaceId=None, **args):
        return _connection(
            [
                self.api.project_view(p)
                for p in self.api.projects.values()
                if workspaceId is None or p.get("workspaceId") == workspaceId
            ]
        )

    def project(self, info, id):
        return self.api.project_view(self.api.project_of(id))

    def environments(self, info, projectId, **args):
        self.api.project_of(projectId)
        return _connection(
            [self.api.environment_view(e) for e in self.api.environments.values() if e["projectId"] == projectId]
        )

    def environment(self, info, id, projectId=None):
        return self.api.environment_view(self.api.environment_of(id))

    def service(self, info, id):
        return self.api.service_view(self.api.service_of(id))

    def serviceInstance(self, info, serviceId, environmentId):
        return self.api.instance_view(self.api.instance_of(serviceId, environmentId))

    def variables(self, info, projectId, environmentId, serviceId=None, unrendered=None):
        self.api.project_of(projectId)
        if serviceId is None:
            return {}
        return dict(self.api.variables.get((serviceId, environmentId)) or {})

    def deployments(self, info, input, first=None, **args):
        found = [
            d
            for d in self.api.deployments.values()
            if all(input.get(k) is None or d[k] == input[k] for k in ("projectId", "environmentId", "serviceId"))
        ]
        status = input.get("status") or {}
        if status.get("in") is not None:
            found = [d for d in found if d["status"] in status["in"]]
        if status.get("notIn") is not None:
            found = [d for d in found if d["status"] not in status["notIn"]]
        found.sort(key=lambda d: d["order"], reverse=True)
        return _connection([self.api.deployment_view(d) for d in found[: first or None]])

    def deployment(self, info, id):
        deployment = self.api.deployments.get(id)
        if deployment is None:
            raise DomainError("Deployment not found")
        return self.api.deployment_view(deployment)

    # --- mutations ----------------------------------------------------------------
    def projectCreate(self, info, input):
        api = self.api
        project = {
            "id": api.new_id(),
            "name": input.get("name") or "untitled",
            "createdAt": _now(),
            "workspaceId": input.get("workspaceId"),
            "description": input.get("description"),
        }
        api.projects[project["id"]] = project
        environment = {
            "id": api.new_id(),
            "name": input.get("defaultEnvironmentName") or "production",
            "projectId": project["id"],
            "createdAt": _now(),
        }
        api.environments[environment["id"]] = environment
        return api.project_view(project)

    def projectDelete(self, info, id):
        api = self.api
        api.project_of(id)
        for service in [s for s in api.services.values() if s["projectId"] == id]:
            self._delete_service(service["id"])
        for environment in [e for e in api.environments.values() if e["projectId"] == id]:
            del api.environments[environment["id"]]
        del api.projects[id]
        return True

    def environmentCreate(self, info, input):
        api = self.api
        project = api.project_of(input["projectId"])
        if any(e["name"] == input["name"] and e["projectId"] == project["id"] for e in api.environments.values()):
            raise DomainError(f"Environment {input['name']} already exists")
        environment = {"id": api.new_id(), "name": input["name"], "projectId": project["id"], "createdAt": _now()}
        api.environments[environment["id"]] = environment
        for service in api.services.values():
            if service["projectId"] == project["id"]:
                api.add_instance(service, environment)
        return api.environment_view(environment)

    def environmentDelete(self, info, id):
        api = self.api
        api.environment_of(id)
        for key in [k for k in api.instances if k[1] == id]:
            del api.instances[key]
            del api.variables[key]
        for deployment_id in [d for d, v in api.deployments.items() if v["environmentId"] == id]:
            del api.deployments[deployment_id]
        del api.environments[id]
        return True

    def serviceCreate(self, info, input):
        api = self.api
        project = api.project_of(input["projectId"])
        service = {
            "id": api.new_id(),
            "name": input.get("name") or "service",
            "projectId": project["id"],
            "createdAt": _now(),
        }
        api.services[service["id"]] = service
        for environment in [e for e in api.environments.values() if e["projectId"] == project["id"]]:
            api.add_instance(service, environment)
            key = (service["id"], environment["id"])
            api.variables[key].update(input.get("variables") or {})
            if input.get("source"):
                api.instances[key]["source"] = dict(input["source"])
                api.deploy(*key)  # a service made with a source deploys at once
        return api.service_view(service)

    def serviceDelete(self, info, id, environmentId=None):
        self.api.service_of(id)
        self._delete_service(id)
        return True

    def _delete_service(self, service_id: str) -> None:
        api = self.api
        for key in [k for k in api.instances if k[0] == service_id]:
            del api.instances[key]
            del api.variables[key]
        for deployment_id in [d for d, v in api.deployments.items() if v["serviceId"] == service_id]:
            del api.deployments[deployment_id]
        del api.services[service_id]

    def serviceInstanceUpdate(self, info, serviceId, input, environmentId=None):
        if environmentId is None:
            raise DomainError("environmentId is required")
        instance = self.api.instance_of(serviceId, environmentId)
        for key, value in input.items():
            if key not in instance:
                raise DomainError(f"the stand-in does not model `{key}`")
            instance[key] = dict(value) if isinstance(value, dict) else value
        return True

    def variableCollectionUpsert(self, info, input):
        api = self.api
        api.project_of(input["projectId"])
        if input.get("serviceId") is None:
            raise DomainError("the stand-in models service variables only")
        key = (input["serviceId"], input["environmentId"])
        api.instance_of(*key)
        variables = input["variables"]
        if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
            raise DomainError("variables must be an object of strings")
        if input.get("replace"):
            api.variables[key] = {}
        api.variables[key].update(variables)
        if not input.get("skipDeploys") and api.latest_deployment(*key):
            api.deploy(*key)  # Railway redeploys a service whose variables changed
        return True

    def variableDelete(self, info, input):
        api = self.api
        key = (input.get("serviceId"), input["environmentId"])
        api.instance_of(*key)
        if input["name"] not in api.variables[key]:
            raise DomainError(f"Variable {input['name']} not found")
        del api.variables[key][input["name"]]
        return True

    def serviceInstanceDeployV2(self, info, serviceId, environmentId, commitSha=None):
        instance = self.api.instance_of(serviceId, environmentId)
        if not instance["source"]:
            raise DomainError("Service has no source to deploy")
        return self.api.deploy(serviceId, environmentId)

    def deploymentRollback(self, info, id):
        api = self.api
        target = api.deployments.get(id)
        if target is None:
            raise DomainError("Deployment not found")
        if target["status"] != "REMOVED":
            raise DomainError("Deployment cannot be rolled back")
        key = (target["serviceId"], target["environmentId"])
        snapshot = copy.deepcopy(target["snapshot"])
        api.instances[key]["source"] = copy.deepcopy(snapshot["source"])
        api.variables[key] = dict(snapshot["variables"])
        api.deploy(*key, snapshot=snapshot, rolled_back_from=id)
        return True
