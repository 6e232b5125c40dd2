"""Hosts playbook: services that run on their own SSH hosts (the AI service, phase 4).

For each such service in the services table, every host the inventory lists under
`hosts: {service: [...]}` gets one `host.service` resource: its system user,
directories, a 0600 env file, the registry's active models, and the process
definition (systemd unit, or the documented fallback) restarted when its inputs
change. The hosts of a service are converged at once; `--limit HOST` picks one.
"""

from __future__ import annotations

from healthinfra.inventory import Inventory
from healthinfra.resources.host_service import UNRESOLVED, HostService
from healthinfra.step import Step


def prepare_service_hosts(inv: Inventory, phase: int):
    resources = []
    for service in inv.services_at(phase):
        if service.runs_on != "host":
            continue
        for host in inv.hosts.get(service.name, ()):
            resources.append(HostService(f"{service.name}@{host.name}", dict(UNRESOLVED), host=host.ref()))
    return resources


STEPS = [
    Step(
        "prepare each service host: user, directories, env file, models, process",
        "hosts",
        1,
        prepare_service_hosts,
        tags=("ai",),
    ),
]
