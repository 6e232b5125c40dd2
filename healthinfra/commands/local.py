"""`local.*`: the servers this machine runs for an inventory's providers (embedded PostgreSQL,
the moto server): start them, stop them (never under a running deploy), say how they are."""

from __future__ import annotations

import json
import sys
from typing import Any

from ..errors import InventoryError, ProviderError
from ..inventory import Inventory, load_inventory
from ..state import open_state


def _with_local_servers(inventory_name: str) -> Inventory:
    inventory = load_inventory(inventory_name)
    if not inventory.local_providers:
        chosen = ", ".join(f"`providers.{area}` is `{name}`" for area, name in inventory.providers.items())
        raise InventoryError(
            f"{inventory.path.name}: local.* manages embedded services, but none of this inventory's providers"
            f" runs on this machine ({chosen}); use `-i local`"
        )
    return inventory


def local_up(inventory_name: str, *, out=None) -> int:
    out = out or sys.stdout
    inventory = _with_local_servers(inventory_name)
    for provider in inventory.local_providers:
        status = provider.start(inventory)
        label, _ = provider.describe(status)
        out.write(f"{label}: {provider.started(status)}\n")
    return 0


def local_down(inventory_name: str, *, out=None) -> int:
    out = out or sys.stdout
    inventory = _with_local_servers(inventory_name)
    # never under a running deploy; when the state lives on a local server (a state bucket on the
    # moto server), that server stops last, after the lock is released
    hosts_state = "aws" if inventory.state_backend["backend"] == "s3" else None
    lock = open_state(inventory).lock("local.down")
    held = True
    try:
        lock.acquire()
    except ProviderError:  # the state's own server is down: no run can be going (it could not journal)
        if not hosts_state:
            raise
        held = False
    try:
        for area, provider in inventory.provider_objects.items():
            if provider.local_service and area != hosts_state:
                provider.stop(inventory)
    finally:
        if held:
            lock.release()
    if hosts_state and inventory.provider(hosts_state).local_service:
        inventory.provider(hosts_state).stop(inventory)
    for provider in inventory.local_providers:
        label, _ = provider.describe({})
        out.write(f"{label}: {provider.stopped_note}\n")
    return 0


def local_status(inventory_name: str, *, as_json=False, out=None) -> int:
    out = out or sys.stdout
    inventory = _with_local_servers(inventory_name)
    document: dict[str, Any] = {"inventory": inventory.name, "state_dir": str(inventory.state_dir)}
    for provider in inventory.local_providers:
        document[provider.status_key] = provider.status(inventory)
    running = all(document[p.status_key]["running"] for p in inventory.local_providers)
    document["deployed_phase"], note = _deployed(inventory, running)
    if note:
        document["deployed_phase_unknown"] = note
    if as_json:
        out.write(json.dumps(document, indent=2) + "\n")
        return 0 if running else 1
    for provider in inventory.local_providers:
        item = document[provider.status_key]
        _, where = provider.describe(item)
        state = "running" if item["running"] else "stopped"
        out.write(f"{provider.status_key:<9} {state:<8} pid={item['pid']}  {where}\n")
    phase = document["deployed_phase"]
    out.write(f"deployed  phase {phase}\n" if phase is not None else f"deployed  {note or 'nothing yet'}\n")
    return 0 if running else 1


def _deployed(inventory: Inventory, running: bool) -> tuple[int | None, str]:
    """The deployed phase from the journal, or why it cannot be read now (a state bucket on a
    stopped local server)."""
    from ..deployed import deployed_phase
    from ..errors import HealthInfraError

    if inventory.state_backend["backend"] == "s3" and not running:
        return None, "unknown: the state bucket's server is stopped (`invoke local.up`)"
    try:
        return deployed_phase(open_state(inventory).journal().runs()), ""
    except HealthInfraError as exc:
        return None, f"unknown: the journal cannot be read ({exc})"
