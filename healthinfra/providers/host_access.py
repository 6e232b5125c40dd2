"""The hosts provider: services that run on their own machines, reached over SSH (Fabric).

It owns the inventory's `hosts:` table (`{service: [host, ...]}` for every service with
`runs_on: host`), validated at load, and the run's SSH connections (`ssh.py`), opened on
first use and closed when the run ends.

Every string of a host that reaches a shell command, a path, a systemd unit or a template
is held to a small character set when the inventory loads (`value_problem`): a host name
or IP address, a login name, a path of letters, digits and `. _ - / + @`, a start command
of such words (spaces and quotes allowed, split once with `shlex.split`, never by a shell).
`check_host` runs the same checks again where the host's files are rendered, so a host
rebuilt from a plan or a journal entry is held to them too.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import names
from ..errors import InventoryError, ProviderError
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
    "listen": (str, False),
    "health_tls": (bool, False),
    "health_ca_file": (str, False),
    "tls_cert_file": (str, False),
    "tls_key_file": (str, False),
}

LISTEN = "127.0.0.1"  # where the service listens unless the inventory says otherwise
PATH_WORD = re.compile(r"[A-Za-z0-9._/+@-]+")
HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?")
COMMAND_CHARS = re.compile(r"[A-Za-z0-9 ._/+@:,='\"-]+")
LOGIN = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
PATH_FIX = "letters, digits and `. _ - / + @` only, starting with `/`"
# keys of a host that name a path: on the host (False) or on this machine (True, `~/` allowed)
PATH_KEYS = {"base_dir": False, "tls_cert_file": False, "tls_key_file": False}
LOCAL_PATH_KEYS = {"key_file": True, "known_hosts": True, "health_ca_file": True}
HOST_STRINGS = ("address", "listen", "user", *PATH_KEYS, *LOCAL_PATH_KEYS, "start_command")


def _path_problem(value: str, local: bool) -> str | None:
    body = value[1:] if local and value.startswith("~/") else value
    if not body.startswith("/") and not (local and value.startswith("~/")):
        return f"must be an absolute path ({PATH_FIX})"
    if not PATH_WORD.fullmatch(body) or len(value) > 255:
        return f"must be a path of {PATH_FIX}"
    if any(part in (".", "..") for part in body.split("/")):
        return "must not contain `.` or `..` segments; give the real directory"
    return None


def command_words(command: str) -> list[str]:
    """The start command's words: split once, as data (the command is validated at load)."""
    return shlex.split(command)


def _command_problem(value: str) -> str | None:
    fix = (
        "use an absolute program path and arguments of letters, digits, spaces, quotes and `. _ - / + @ : , =`;"
        " no `;`, `|`, `&`, `$`, backticks, redirections, globs or newlines (it is never run by a shell:"
        " put anything more in a script under base_dir and name that script)"
    )
    if not COMMAND_CHARS.fullmatch(value):
        return f"holds a character a shell would act on; {fix}"
    try:
        words = command_words(value)
    except ValueError:
        return f"has an unclosed quote; {fix}"
    if not words or not words[0].startswith("/") or not PATH_WORD.fullmatch(words[0]):
        return f"must start with the absolute path of the program; {fix}"
    return None


def value_problem(key: str, value: str) -> str | None:
    """Why a host's string value is unsafe, or None (pure; the message ends with the fix)."""
    if key == "address":
        if _is_ip(value) or (HOSTNAME.fullmatch(value) and len(value) <= 253):
            return None
        return "must be a host name (letters, digits, dots, dashes) or an IP address"
    if key == "listen":
        return None if _is_ip(value) else "must be an IP address to listen on, such as 127.0.0.1 (the default)"
    if key == "user":
        return None if LOGIN.fullmatch(value) else "must be a login name (lower-case letters, digits, `_`, `-`)"
    if key in PATH_KEYS or key in LOCAL_PATH_KEYS:
        return _path_problem(value, LOCAL_PATH_KEYS.get(key, False))
    if key == "start_command":
        return _command_problem(value)
    return None


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def check_host(host: Host) -> None:
    """The load-time checks again, on a host rebuilt from elsewhere (a plan, a journal entry)."""
    for key in HOST_STRINGS:
        value = getattr(host, key)
        problem = value_problem(key, value) if isinstance(value, str) else None
        if problem is None and value is not None and not isinstance(value, str):
            problem = "must be text"
        if problem:
            raise ProviderError(f"host {host.name}: `{key}` {problem} (got `{show(value)}`); not sent to the host")
    for key in ("port", "service_port"):
        value = getattr(host, key)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise ProviderError(f"host {host.name}: `{key}` must be a port number, got `{show(value)}`")


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
    # defaults, so a host recorded before these keys existed (an older journal) still loads
    listen: str = LISTEN
    health_tls: bool = False
    health_ca_file: str | None = None  # on this machine: the CA the service's certificate is checked against
    tls_cert_file: str | None = None  # on the host: the service's certificate and key, readable by it
    tls_key_file: str | None = None

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
            if not DNS_LABEL.fullmatch(name):
                raise InventoryError(
                    f"{shown}: `{where}.name` must be lower-case letters, digits and dashes, got `{show(name)}`"
                )
            if name in seen:
                raise InventoryError(f"{shown}: `{where}.name` repeats host `{name}`; host names must be unique")
            seen.add(name)
            for key in ("port", "service_port"):
                if key in entry and not 1 <= entry[key] <= 65535:
                    raise InventoryError(f"{shown}: `{where}.{key}` must be between 1 and 65535, got `{entry[key]}`")
            base_dir = entry.get("base_dir", names.host_base_dir(prefix, env, group))
            if base_dir.rstrip("/") in ("", "/opt", "/usr", "/etc", "/var", "/home"):
                raise InventoryError(
                    f"{shown}: `{where}.base_dir` must be a directory of the service's own, got `{base_dir}`"
                )
            host = Host(
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
                listen=entry.get("listen", LISTEN),
                health_tls=bool(entry.get("health_tls", False)),
                health_ca_file=entry.get("health_ca_file"),
                tls_cert_file=entry.get("tls_cert_file"),
                tls_key_file=entry.get("tls_key_file"),
            )
            for key in HOST_STRINGS:  # the values given and the defaults made from them
                value = getattr(host, key)
                problem = value_problem(key, value) if value is not None else None
                if problem:
                    raise InventoryError(f"{shown}: `{where}.{key}` {problem} (got `{show(value)}`)")
            tls_files = [k for k in ("tls_cert_file", "tls_key_file") if entry.get(k)]
            if entry.get("health_tls") and len(tls_files) < 2:
                raise InventoryError(
                    f"{shown}: `{where}.health_tls` needs `{where}.tls_cert_file` and `{where}.tls_key_file`:"
                    " the service's certificate and key on the host, readable by the service user"
                )
            if tls_files and not entry.get("health_tls"):
                raise InventoryError(
                    f"{shown}: `{where}.{tls_files[0]}` is set but `{where}.health_tls` is not;"
                    " add `health_tls: true` (the service serves TLS and is probed over it)"
                )
            hosts.append(host)
        result[group] = tuple(hosts)
    return result
