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

from healthinfra.inventory import Inventory, Service
from healthinfra.resources.local_env import FILE_MODE, EnvFile
from healthinfra.service_env import desired_variables
from healthinfra.step import Step

HEALTHCHECK_PATH = "/health"


def hosted_services(inv: Inventory, phase: int) -> tuple[Service, ...]:
    return tuple(s for s in inv.services_at(phase) if s.runs_on == "railway")


def write_env_files(inv: Inventory, phase: int):
    if inv.providers["hosting"] != "local":
        return []
    return [EnvFile(s.name, {"variables": desired_variables(inv, s, phase), "mode": FILE_MODE}, inventory=inv.name)
            for s in hosted_services(inv, phase)]


STEPS = [
    Step("write an env file per hosted service", "railway", 1, write_env_files, tags=("hosting", "env-files")),
]
