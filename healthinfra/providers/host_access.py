"""The hosts provider: services that run on their own machines, reached over SSH (Fabric).

It owns the inventory's `hosts:` table (`{service: [host, ...]}` for every service with
`runs_on: host`), validated at load, and the run's SSH connections (`ssh.py`), opened on
first use and closed when the run ends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import names
from ..errors import InventoryError
from ..schema import DNS_LABEL, Schema, check_keys, one_of, show
from .base import Provider, RetryHook, Where

if TYPE_CHECKING:
    from ..inventory import Inventory, Service

# One SSH host of a group under `hosts:` (a service that runs_on: host). Optional
# keys default from the service: base_dir /opt/{prefix}-{env}-{service}, the
# service's own port, start_command {base_dir}/app/run.
HOST_KEYS: Schema = {
    "name": (str, True),
    "address": (str, True),
    "port": (int, False),
    "user": (str, True),
    "key_file": (str, True),
    "known_hosts": (str, False),
    "base_dir": (str, False),
    "service_port": (int, False),
    "start_command": (str, False),
}


@dataclass(frozen=True)
class Host:
    """One SSH host a `runs_on: host` service runs on, with how to reach it."""

    group: str  # the service
    name: str
    address: str
    port: int
    user: str
    key_file: str
    known_hosts: str
    base_dir: str
    service_port: int
    start_command: str

    def ref(self) -> dict[str, Any]:
        """Plain values (no secret: a key file is named, never read here), for journal replays."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class SshHosts(Provider):
    """`providers.hosts: ssh` (the default): every host of `hosts:` over SSH."""

    area = "hosts"
    name = "ssh"
    resource_kinds = frozenset({"host.service"})

    @classmethod
    def load(cls, raw: Any, where: Where) -> Provider:
        if not isinstance(raw, dict):
            raise InventoryError(f"{where.file}: `hosts` must be a mapping of services to lists of hosts")
        return cls({"hosts": _hosts(raw, where.file, where.services, where.prefix, where.environment)})

    @property
    def hosts(self) -> dict[str, tuple[Host, ...]]:
        return self.settings["hosts"]

    def open_client(self, inventory: Inventory, on_retry: RetryHook | None = None):
        from .ssh import HostConnections

        return HostConnections()


def _hosts(
    groups: dict, shown: str, services: tuple[Service, ...], prefix: str, env: str
) -> dict[str, tuple[Host, ...]]:
    """`hosts: {service: [host, ...]}` for the services that run on their own hosts."""
    on_hosts = {s.name: s for s in services if s.on_own_host}
    result: dict[str, tuple[Host, ...]] = {}
    seen: set[str] = set()
    for group, entries in groups.items():
        if group not in on_hosts:
            raise InventoryError(
                f"{shown}: `hosts.{show(group)}` is not a service that runs on its own hosts;"
                f" use one of {one_of(sorted(on_hosts))} (services with `runs_on: host` in services.yml)"
            )
        if not isinstance(entries, list) or not entries:
            raise InventoryError(
                f"{shown}: `hosts.{group}` must be a list of hosts, each with name, address, user, key_file"
            )
        hosts = []
        for index, entry in enumerate(entries):
            where = f"hosts.{group}[{index}]"
            if not isinstance(entry, dict):
                raise InventoryError(f"{shown}: `{where}` must be a mapping: name, address, port, user, key_file")
            check_keys(entry, HOST_KEYS, shown, f"{where}.")
            name = entry["name"]
            if not DNS_LABEL.match(name):
                raise InventoryError(
                    f"{shown}: `{where}.name` must be lower-case letters, digits and dashes, got `{show(name)}`"
                )
            if name in seen:
                raise InventoryError(f"{shown}: `{where}.name` repeats host `{name}`; host names must be unique")
            seen.add(name)
            for key in ("port", "service_port"):
                if key in entry and not 1 <= entry[key] <= 65535:
                    raise InventoryError(f"{shown}: `{where}.{key}` must be between 1 and 65535, got `{entry[key]}`")
            if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", entry["user"]):
                raise InventoryError(f"{shown}: `{where}.user` must be a login name, got `{show(entry['user'])}`")
            for key in ("base_dir", "key_file", "known_hosts"):
                value = entry.get(key)
                if value is not None and not (value.startswith("/") or value.startswith("~/")):
                    raise InventoryError(f"{shown}: `{where}.{key}` must be an absolute path, got `{show(value)}`")
            base_dir = entry.get("base_dir", names.host_base_dir(prefix, env, group))
            if base_dir.startswith("~") or base_dir.rstrip("/") in ("", "/opt", "/usr", "/etc", "/var", "/home"):
                raise InventoryError(
                    f"{shown}: `{where}.base_dir` must be a directory of the service's own, got `{base_dir}`"
                )
            hosts.append(
                Host(
                    group=group,
                    name=name,
                    address=entry["address"],
                    port=entry.get("port", 22),
                    user=entry["user"],
                    key_file=entry["key_file"],
                    known_hosts=entry.get("known_hosts", "~/.ssh/known_hosts"),
                    base_dir=base_dir.rstrip("/"),
                    service_port=entry.get("service_port", on_hosts[group].port),
                    start_command=entry.get("start_command", f"{base_dir.rstrip('/')}/app/run"),
                )
            )
        result[group] = tuple(hosts)
    return result
