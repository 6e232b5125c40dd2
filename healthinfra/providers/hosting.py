"""The hosting providers: where the services that run on a platform get their configuration.

`local`: one env file per hosted service under state/INVENTORY/services/ (0600), holding
the variables a hosted service would get, so a developer can start any service against
the local environment. `railway`: Railway's GraphQL API (project, environment, a service
per row, its variables, instance settings and deployments), with the token named by
`hosting.token_env` and `hosting.services` saying where each service's code comes from.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..errors import InventoryError
from ..schema import Schema, check_keys, one_of, show
from .base import Provider, RetryHook, Where

if TYPE_CHECKING:
    from ..inventory import Inventory

# `hosting.services.NAME` for a Railway-hosted service: where its code comes from and how it runs.
RAILWAY_SERVICE_KEYS: Schema = {
    "image": (str, False),
    "repo": (str, False),
    "start_command": (str, False),
    "replicas": (int, False),
}
MAX_REPLICAS = 50


class HostingProvider(Provider):
    area = "hosting"
    platform = ""  # how people call it in messages


class LocalHosting(HostingProvider):
    name = "local"
    resource_kinds = frozenset({"local.env_file"})
    platform = "env files on this machine"


class RailwayHosting(HostingProvider):
    name = "railway"
    schema = {
        "project": (str, True),
        "environment": (str, True),
        "token_env": (str, True),
        "workspace": (str, False),
        "services": (dict, True),
    }
    resource_kinds = frozenset(
        {
            "railway.project",
            "railway.environment",
            "railway.service",
            "railway.instance",
            "railway.variables",
            "railway.deployment",
        }
    )
    platform = "Railway"
    can_roll_back_deployments = True

    @classmethod
    def validate(cls, settings: dict[str, Any], where: Where) -> dict[str, Any]:
        return {**settings, "services": _railway_services(settings["services"], where)}

    def check_credentials(self, inventory: Inventory) -> None:
        from .railway import require_token

        require_token(inventory)

    def open_client(self, inventory: Inventory, on_retry: RetryHook | None = None):
        from .railway import RailwayClient

        return RailwayClient(inventory, on_retry=on_retry)


def _railway_services(settings: dict, where: Where) -> dict[str, dict]:
    """Every hosted service of the table, with exactly one source (image or repo)."""
    shown = where.file
    hosted = [s.name for s in where.services if s.hosted]
    for name in settings:
        if name not in hosted:
            raise InventoryError(
                f"{shown}: `hosting.services.{show(name)}` is not a service services.yml runs on Railway;"
                f" choose from {one_of(hosted)}"
            )
    result = {}
    for name in hosted:
        if name not in settings:
            raise InventoryError(
                f"{shown}: missing key `hosting.services.{name}`; add `{name}: {{image: REGISTRY/IMAGE:TAG}}`"
                f" or `{name}: {{repo: OWNER/REPO}}` (where Railway gets its code)"
            )
        row = settings[name]
        check_keys(row, RAILWAY_SERVICE_KEYS, shown, f"hosting.services.{name}.")
        if ("image" in row) == ("repo" in row):
            raise InventoryError(
                f"{shown}: `hosting.services.{name}` needs exactly one source, `image` (a container image)"
                f" or `repo` (a GitHub OWNER/REPO); it has {'both' if 'image' in row else 'neither'}"
            )
        source = row.get("image") or row.get("repo")
        if not source.strip() or any(ch.isspace() for ch in source):
            raise InventoryError(
                f"{shown}: `hosting.services.{name}.{'image' if 'image' in row else 'repo'}`"
                f" must be one word like `ghcr.io/org/{name}:1.0.0`, got `{show(source)}`"
            )
        if "repo" in row and not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", row["repo"]):
            raise InventoryError(
                f"{shown}: `hosting.services.{name}.repo` must be a GitHub `OWNER/REPO`, got `{show(row['repo'])}`"
            )
        replicas = row.get("replicas", 1)
        if not 1 <= replicas <= MAX_REPLICAS:
            raise InventoryError(
                f"{shown}: `hosting.services.{name}.replicas` must be between 1 and {MAX_REPLICAS}, got `{replicas}`"
            )
        result[name] = {**row, "replicas": replicas}
    return result
