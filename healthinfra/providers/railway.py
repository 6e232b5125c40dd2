"""Railway's public GraphQL API v2, over httpx.

One POST per operation to `$RAILWAY_API_URL` (default Railway's own endpoint) with
`Authorization: Bearer TOKEN`, the token read from the environment variable the
inventory names in `hosting.token_env` (an account or workspace token; see
docs/railway-setup.md). The token is wrapped in `Secret` at once and never printed.

Faults (one retry path with Neon's client, `http.py`): HTTP 429 and 5xx and transport
errors (refused, reset, timed out) become transient faults carrying the server's
Retry-After. A query, or a mutation Railway rate-limited (it did not act on it), is
repeated inside the client; any other mutation's fault goes up, and the runner re-reads
before a retry, so a mutation whose answer was lost is never repeated blindly. GraphQL
`errors` become `ProviderError` with Railway's own messages.

Every operation below uses only root fields, arguments and input fields that exist
in Railway's schema (contracts/railway/schema.json); the tests' stand-in validates
each one against it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import InventoryError, ProviderError
from ..secret_store import Secret
from .base import RetryHook
from .http import fault_for_status, fault_for_transport, send

if TYPE_CHECKING:
    from ..inventory import Inventory

DEFAULT_API_URL = "https://backboard.railway.com/graphql/v2"
API_URL_ENV = "RAILWAY_API_URL"
TIMEOUT_ENV = "RAILWAY_API_TIMEOUT"
DEFAULT_TIMEOUT_SECONDS = 30.0
PAGE = 100

# --- operations -------------------------------------------------------------------

PROJECTS = """
query Projects($workspaceId: String, $after: String) {
  projects(workspaceId: $workspaceId, first: 100, after: $after) {
    edges { node {
      id name
      environments(first: 100) { edges { node { id name } } }
      services(first: 100) { edges { node { id name } } }
    } }
    pageInfo { hasNextPage endCursor }
  }
}"""

INSTANCE_FIELDS = """
      serviceId serviceName
      source { image repo }
      healthcheckPath startCommand numReplicas
      latestDeployment { id status }"""

PROJECT_CREATE = """
mutation ProjectCreate($input: ProjectCreateInput!) { projectCreate(input: $input) { id name } }"""
PROJECT_DELETE = """
mutation ProjectDelete($id: String!) { projectDelete(id: $id) }"""
ENVIRONMENT_CREATE = """
mutation EnvironmentCreate($input: EnvironmentCreateInput!) { environmentCreate(input: $input) { id name } }"""
ENVIRONMENT_DELETE = """
mutation EnvironmentDelete($id: String!) { environmentDelete(id: $id) }"""
SERVICE_CREATE = """
mutation ServiceCreate($input: ServiceCreateInput!) { serviceCreate(input: $input) { id name } }"""
SERVICE_DELETE = """
mutation ServiceDelete($id: String!, $environmentId: String) { serviceDelete(id: $id, environmentId: $environmentId) }"""
SERVICE_INSTANCE_UPDATE = """
mutation ServiceInstanceUpdate($serviceId: String!, $environmentId: String, $input: ServiceInstanceUpdateInput!) {
  serviceInstanceUpdate(serviceId: $serviceId, environmentId: $environmentId, input: $input)
}"""
VARIABLE_COLLECTION_UPSERT = """
mutation VariableCollectionUpsert($input: VariableCollectionUpsertInput!) { variableCollectionUpsert(input: $input) }"""
VARIABLE_DELETE = """
mutation VariableDelete($input: VariableDeleteInput!) { variableDelete(input: $input) }"""
SERVICE_INSTANCE_DEPLOY = """
mutation ServiceInstanceDeploy($serviceId: String!, $environmentId: String!) {
  serviceInstanceDeployV2(serviceId: $serviceId, environmentId: $environmentId)
}"""
DEPLOYMENT_ROLLBACK = """
mutation DeploymentRollback($id: String!) { deploymentRollback(id: $id) }"""
DEPLOYMENTS = """
query Deployments($input: DeploymentListInput!) {
  deployments(input: $input, first: 50) {
    edges { node { id status canRollback createdAt } }
  }
}"""
LATEST_DEPLOYMENT = """
query LatestDeployment($serviceId: String!, $environmentId: String!) {
  serviceInstance(serviceId: $serviceId, environmentId: $environmentId) { latestDeployment { id status } }
}"""


def instances_and_variables(service_ids: list[str]) -> str:
    """One query: every service instance of the environment, and each named service's variables."""
    params = "".join(f", $s{i}: String" for i in range(len(service_ids)))
    variables = "".join(
        f"\n  v{i}: variables(projectId: $projectId, environmentId: $environmentId, serviceId: $s{i}, unrendered: true)"
        for i in range(len(service_ids))
    )
    return (
        f"query InstancesAndVariables($projectId: String!, $environmentId: String!{params}) {{\n"
        f"  environment(id: $environmentId, projectId: $projectId) {{\n"
        f"    serviceInstances(first: {PAGE}) {{ edges {{ node {{{INSTANCE_FIELDS}\n    }} }} }}\n  }}"
        f"{variables}\n}}"
    )


# --- the client ----------------------------------------------------------------------


def token(inventory: Inventory) -> Secret:
    name = inventory.hosting["token_env"]
    value = os.environ.get(name, "").strip()
    if not value:
        raise InventoryError(
            f"{inventory.path.name}: `hosting.token_env` names `{name}`, which is not set; export a Railway account"
            f" or workspace token in it (docs/railway-setup.md), nothing was changed"
        )
    return Secret(value)


def require_token(inventory: Inventory) -> None:
    """Refuse a Railway inventory without its token before anything runs (exit 2)."""
    token(inventory)


def redact(text: str, variables: Any) -> str:
    """`text` with every string value sent in `variables` replaced by `***` (pure): Railway's
    (and graphql-core's) errors quote the input they refuse, secrets included."""
    values: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif isinstance(value, str) and len(value) >= 4:
            values.append(value)

    walk(variables)
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, "***")
    return text


NOT_CARRIED_OUT = (429,)  # rate limited: Railway did not act on it


class RailwayClient:
    """One run's way to Railway's API. `on_retry(exc, attempt)` hears of every retry made here."""

    def __init__(self, inventory: Inventory, on_retry: RetryHook | None = None):
        import httpx

        self.on_retry = on_retry
        self.token_env = inventory.hosting["token_env"]
        self._token = token(inventory)
        self.url = os.environ.get(API_URL_ENV) or DEFAULT_API_URL
        timeout = float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_SECONDS)
        self._http = httpx.Client(timeout=timeout, headers={"User-Agent": "healthcare-infra"})

    def execute(self, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run one GraphQL operation; a query is repeated here after a fault, a mutation only
        when Railway said it did not act on it (see http.py)."""
        return send(lambda: self._post(document, variables), self.on_retry)

    def _post(self, document: str, variables: dict[str, Any] | None) -> dict[str, Any]:
        import httpx

        operation = document.split("(")[0].split("{")[0].split()[-1]
        reads_only = document.lstrip().startswith("query")
        try:
            response = self._http.post(
                self.url,
                json={"query": document, "variables": variables or {}, "operationName": operation},
                headers={"Authorization": f"Bearer {self._token.reveal()}"},
            )
        except httpx.TransportError as exc:  # connect, read, write, timeout, protocol
            raise fault_for_transport(
                f"Railway {operation}: {type(exc).__name__} talking to {self.url}", reads_only=reads_only
            ) from None
        status = response.status_code
        fault = fault_for_status(
            f"Railway {operation}: HTTP {status}" + (" (rate limited)" if status == 429 else ""),
            status,
            response.headers,
            reads_only=reads_only,
            not_carried_out=NOT_CARRIED_OUT,
        )
        if fault is not None:
            raise fault
        try:
            body = response.json()
        except ValueError:
            raise ProviderError(f"Railway {operation}: HTTP {status} without a JSON answer from {self.url}") from None
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            messages = "; ".join(str(e.get("message", e)) for e in errors if isinstance(e, dict)) or str(errors)
            messages = redact(messages, variables)  # a validation error echoes its input: a DATABASE_URL too
            if status in (401, 403) or "not authorized" in messages.lower():
                raise ProviderError(
                    f"Railway {operation}: {messages}: the token in `{self.token_env}` is not allowed to do this;"
                    " use an account token, or a workspace token of the project's workspace (docs/railway-setup.md)"
                )
            raise ProviderError(f"Railway {operation}: {messages}")
        if status >= 400 or not isinstance(body, dict) or body.get("data") is None:
            raise ProviderError(f"Railway {operation}: HTTP {status} without data")
        return body["data"]

    def close(self) -> None:
        self._http.close()
