"""Railway playbook: hosting for every service the services table runs on Railway.

`providers.hosting: local` writes one env file per service (state/INVENTORY/services/
SERVICE.env, 0600) with the variables a Railway service would get, so a developer
can start any service against the local environment. `providers.hosting: railway`
finds or creates the project, its environment and a service per row, upserts each
service's variables as one collection, sets its instance settings and deploys it
when its configuration changed. Runs after the db playbook: the variables carry
each service role's password. Every function here is pure.
"""

from __future__ import annotations

import hashlib
import json

from healthinfra.inventory import Inventory, Service
from healthinfra.resources.local_env import FILE_MODE, EnvFile
from healthinfra.resources.railway import (
    RailwayDeployment,
    RailwayEnvironment,
    RailwayInstance,
    RailwayProject,
    RailwayService,
    RailwayVariables,
)
from healthinfra.service_env import desired_variables, managed_names
from healthinfra.step import Step

HEALTHCHECK_PATH = "/health"


def hosted_services(inv: Inventory, phase: int) -> tuple[Service, ...]:
    return tuple(s for s in inv.services_at(phase) if s.hosted)


def write_env_files(inv: Inventory, phase: int):
    if not inv.provider("hosting").offers(EnvFile.kind):
        return []
    return [
        EnvFile(s.name, {"variables": desired_variables(inv, s, phase), "mode": FILE_MODE}, inventory=inv.name)
        for s in hosted_services(inv, phase)
    ]


# --- a hosting provider with Railway's resources ---------------------------------------------


def on_railway(inv: Inventory) -> bool:
    return inv.provider("hosting").offers(RailwayService.kind)


def where(inv: Inventory) -> dict[str, str]:
    return {"project": inv.hosting["project"], "environment": inv.hosting["environment"]}


def instance_settings(inv: Inventory, service: Service) -> dict:
    """What `serviceInstanceUpdate` sets: source from the inventory, /health, start command, replicas."""
    row = inv.hosting["services"][service.name]
    source = {"image": row["image"]} if "image" in row else {"repo": row["repo"]}
    settings = {"source": source, "healthcheckPath": HEALTHCHECK_PATH, "numReplicas": row["replicas"]}
    if "start_command" in row:
        settings["startCommand"] = row["start_command"]
    return settings


def configuration(inv: Inventory, service: Service, phase: int) -> str:
    """A fingerprint of everything a deployment runs with: a change to any of it deploys again."""
    document = {"settings": instance_settings(inv, service), "variables": desired_variables(inv, service, phase)}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


def find_or_create_project(inv: Inventory, phase: int):
    if not on_railway(inv):
        return []
    return [
        RailwayProject(inv.hosting["project"], {}, **where(inv)),
        RailwayEnvironment(inv.hosting["environment"], {}, **where(inv)),
    ]


def create_services(inv: Inventory, phase: int):
    if not on_railway(inv):
        return []
    return [RailwayService(s.name, {}, **where(inv)) for s in hosted_services(inv, phase)]


def set_variables(inv: Inventory, phase: int):
    if not on_railway(inv):
        return []
    return [
        RailwayVariables(s.name, desired_variables(inv, s, phase), managed=managed_names(inv, s), **where(inv))
        for s in hosted_services(inv, phase)
    ]


def set_instance_settings(inv: Inventory, phase: int):
    if not on_railway(inv):
        return []
    return [RailwayInstance(s.name, instance_settings(inv, s), **where(inv)) for s in hosted_services(inv, phase)]


def deploy_services(inv: Inventory, phase: int):
    if not on_railway(inv):
        return []
    return [
        RailwayDeployment(s.name, {"config": configuration(inv, s, phase)}, **where(inv))
        for s in hosted_services(inv, phase)
    ]


STEPS = [
    Step("write an env file per hosted service", "railway", 1, write_env_files, tags=("hosting", "env-files")),
    Step("find or create the Railway project and environment", "railway", 1, find_or_create_project, tags=("hosting",)),
    Step("create a Railway service per hosted service", "railway", 1, create_services, tags=("hosting",)),
    Step("set each service's variables", "railway", 1, set_variables, tags=("hosting", "variables")),
    Step("set each service's instance settings", "railway", 1, set_instance_settings, tags=("hosting",)),
    Step("deploy each service whose configuration changed", "railway", 1, deploy_services, tags=("hosting", "deploys")),
]
