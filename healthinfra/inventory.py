"""Inventories: load, validate and describe one environment.

An inventory is `inventories/NAME.yml` (environment, providers, phase and their
settings) plus the one table of services in `inventories/services.yml`, shared by
every environment so that local, dev and prod can never disagree on what a
service owns. Validation is complete before anything else happens: a bad file,
key, type or phase becomes one `InventoryError` line naming the file, the key and
the fix (exit 2), and no provider is ever called with it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import names
from .errors import InventoryError
from .providers import DEFAULTS, PROVIDERS, Provider, Where
from .providers.host_access import Host
from .schema import DNS_LABEL, Schema, check_keys, one_of, parse_phase, read_yaml, rel, show
from .state import secrets_settings, state_settings
from .tables import SHARED_TABLES, DataType, Service, load_data_types, load_services

TOP_LEVEL: Schema = {
    "description": (str, False),
    "environment": (str, True),
    "prefix": (str, True),
    "phase": (int, True),
    "protected": (bool, False),
    "promotes_from": (str, False),  # the inventory this one is promoted from (`invoke promote --to NAME`)
    "providers": (dict, True),
    "database": (dict, True),
    "aws": (dict, True),
    "hosting": (dict, False),
    "lifecycle": (dict, False),
    "monitoring": (dict, False),
    "hosts": (dict, False),
    "state": (dict, False),
    "secrets": (dict, False),
}

# CloudWatch Logs accepts only these retention periods (days)
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
MONITORING_KEYS: dict[str, tuple[type, bool]] = {
    "retention_days": (int, False),
    "audit_retention_days": (int, False),
    "alert_subscriptions": (list, False),
    "ml_namespace": (str, False),
    "endpoints": (dict, False),
    "error_threshold": (int, False),
    "latency_p99_ms": (int, False),
    "inference_p99_ms": (int, False),
    "db_connections_percent": (int, False),
    "phi_access_threshold": (int, False),  # PHI_ACCESS events per service in 5 minutes that alarm
}
MONITORING_DEFAULTS = {
    "retention_days": 90,
    "audit_retention_days": 2192,
    "alert_subscriptions": [],
    "endpoints": {},
    "error_threshold": 5,
    "latency_p99_ms": 1000,
    "inference_p99_ms": 2000,
    "db_connections_percent": 80,
    "phi_access_threshold": 100,
}


@dataclass(frozen=True)
class Inventory:
    """A validated inventory. Immutable: the run reads it, never changes it."""

    name: str
    path: Path
    environment: str
    prefix: str
    phase: int
    protected: bool
    providers: dict[str, str]
    database: dict[str, Any]
    aws: dict[str, Any]
    hosting: dict[str, Any]
    services: tuple[Service, ...]
    state_dir: Path
    data_types: tuple[DataType, ...] = ()
    monitoring: dict[str, Any] = field(default_factory=dict)
    hosts: dict[str, tuple[Host, ...]] = field(default_factory=dict)
    description: str = ""
    promotes_from: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    provider_objects: dict[str, Provider] = field(default_factory=dict, repr=False, compare=False)
    state_backend: dict[str, Any] = field(default_factory=lambda: {"backend": "local"})  # `state:`
    secrets_backend: dict[str, Any] = field(default_factory=lambda: {"backend": "file"})  # `secrets:`

    def __post_init__(self) -> None:
        if not self.provider_objects:  # built by hand (a test's stand-in): the providers its names say
            settings = {
                "database": self.database,
                "aws": self.aws,
                "hosting": self.hosting,
                "hosts": {"hosts": self.hosts},
            }
            named = {**DEFAULTS, **self.providers}
            chosen = {area: named[area] for area in PROVIDERS}
            made = {area: PROVIDERS[area][name](settings[area]) for area, name in chosen.items()}
            object.__setattr__(self, "provider_objects", made)

    def provider(self, area: str) -> Any:
        """The provider object configured for an area: database, aws, hosting or hosts."""
        return self.provider_objects[area]

    @property
    def embedded(self) -> bool:
        """The database runs on this machine (the embedded default), not in a cloud."""
        return bool(self.provider("database").local_service)

    @property
    def local_providers(self) -> list[Provider]:
        """The providers whose servers run on this machine (`invoke local.up` starts them)."""
        return [p for p in self.provider_objects.values() if p.local_service]

    def resource_name(self, purpose: str) -> str:
        """`{prefix}-{env}-{purpose}`, the name of a cloud resource (see `names`)."""
        return names.resource(self, purpose)

    def services_at(self, phase: int) -> tuple[Service, ...]:
        return tuple(s for s in self.services if s.phase <= phase)

    def data_types_at(self, phase: int) -> tuple[DataType, ...]:
        return tuple(d for d in self.data_types if d.phase <= phase)

    @property
    def aws_account_id(self) -> str:
        """The AWS account (the local endpoint's fixed one when it has none of its own)."""
        return self.provider("aws").account_id()

    @property
    def aws_endpoint_url(self) -> str | None:
        return self.provider("aws").endpoint_url()


def project_root() -> Path:
    """The checkout this package lives in (tasks.py sits there)."""
    return Path(__file__).resolve().parent.parent


def inventories_dir() -> Path:
    """`inventories/`, or `$HEALTHINFRA_INVENTORIES` (tests use their own)."""
    return Path(os.environ.get("HEALTHINFRA_INVENTORIES") or project_root() / "inventories")


def state_root() -> Path:
    """`state/`, or `$HEALTHINFRA_STATE` (tests use their own)."""
    return Path(os.environ.get("HEALTHINFRA_STATE") or project_root() / "state")


def available_inventories(directory: Path | None = None) -> list[str]:
    directory = directory or inventories_dir()
    return sorted(p.stem for p in directory.glob("*.yml") if p.stem not in SHARED_TABLES)


def load_inventory(name: str, directory: Path | None = None) -> Inventory:
    """Read and validate `inventories/NAME.yml` and the services table."""
    directory = directory or inventories_dir()
    choices = available_inventories(directory)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", name or ""):
        raise InventoryError(f"--inventory: `{show(name)}` is not an inventory name; choose one of {one_of(choices)}")
    path = directory / f"{name}.yml"
    if name in SHARED_TABLES or not path.is_file():
        raise InventoryError(
            f"{rel(path)}: no such inventory `{name}`; choose one of {one_of(choices)} or create {rel(path)}"
        )
    data = read_yaml(path)
    shown = rel(path)
    check_keys(data, TOP_LEVEL, shown, "")
    chosen = _provider_choices(data["providers"], shown)
    sections = {"database": data["database"], "aws": data["aws"], "hosting": data.get("hosting") or {}}
    sections["hosts"] = data.get("hosts") or {}
    for area in ("database", "aws", "hosting"):  # each area's settings on their own, before anything else
        PROVIDERS[area][chosen[area]].check(sections[area], shown)
    for key, pattern in (("prefix", DNS_LABEL), ("environment", DNS_LABEL)):
        if not pattern.match(data[key]):
            raise InventoryError(
                f"{shown}: `{key}` must be lower-case letters, digits and dashes (it names cloud"
                f" resources), got `{show(data[key])}`"
            )
    phase = parse_phase(data["phase"], shown)
    promotes_from = data.get("promotes_from")
    if promotes_from is not None and (
        not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", promotes_from) or promotes_from in (name, *SHARED_TABLES)
    ):
        raise InventoryError(
            f"{shown}: `promotes_from` must name another inventory (the file inventories/NAME.yml it is promoted"
            f" from, like `dev`), got `{show(promotes_from)}`"
        )
    services = load_services(directory / "services.yml")
    where = Where(file=shown, prefix=data["prefix"], environment=data["environment"], services=services)
    loaded = {
        area: PROVIDERS[area][chosen[area]].load(sections[area], where) for area in ("database", "aws", "hosting")
    }
    data_types = load_data_types(directory / "data_types.yml", services, data.get("lifecycle") or {}, shown)

    monitoring = _monitoring_settings(data.get("monitoring") or {}, shown, services)
    monitoring.setdefault("ml_namespace", names.ml_metric_namespace(data["prefix"], data["environment"]))
    loaded["hosts"] = PROVIDERS["hosts"][chosen["hosts"]].load(sections["hosts"], where)
    state = state_settings(data.get("state"), shown, data["environment"])
    secrets = secrets_settings(data.get("secrets"), shown)

    return Inventory(
        name=name,
        monitoring=monitoring,
        hosts=loaded["hosts"].settings["hosts"],
        path=path,
        environment=data["environment"],
        prefix=data["prefix"],
        phase=phase,
        protected=bool(data.get("protected", False)),
        providers={area: chosen[area] for area in ("database", "aws", "hosting")},
        database=loaded["database"].settings,
        aws=loaded["aws"].settings,
        hosting=loaded["hosting"].settings,
        provider_objects=loaded,
        state_backend=state,
        secrets_backend=secrets,
        services=services,
        data_types=data_types,
        state_dir=state_root() / name,
        description=data.get("description", ""),
        promotes_from=promotes_from,
    )


def _provider_choices(providers: Any, shown: str) -> dict[str, str]:
    """`providers:`, one known provider per area (an area with a default may be left out)."""
    schema: Schema = {area: (str, area not in DEFAULTS) for area in PROVIDERS}
    check_keys(providers, schema, shown, "providers.")
    named = {**DEFAULTS, **providers}
    chosen = {area: named[area] for area in PROVIDERS}  # in the areas' order, whatever the file's
    for area, classes in PROVIDERS.items():
        if chosen[area] not in classes:
            raise InventoryError(
                f"{shown}: `providers.{area}` must be one of {one_of(classes)}, got `{show(chosen[area])}`"
            )
    return chosen


def _monitoring_settings(settings: dict, shown: str, services: tuple[Service, ...]) -> dict[str, Any]:
    check_keys(settings, MONITORING_KEYS, shown, "monitoring.")
    for key in ("retention_days", "audit_retention_days"):
        if key in settings and settings[key] not in LOG_RETENTION_DAYS:
            raise InventoryError(
                f"{shown}: `monitoring.{key}` must be a period CloudWatch Logs accepts"
                f" ({', '.join(map(str, LOG_RETENTION_DAYS))}), got `{settings[key]}`"
            )
    for i, subscription in enumerate(settings.get("alert_subscriptions") or []):
        check_keys(
            subscription,
            {"protocol": (str, True), "endpoint": (str, True)},
            shown,
            f"monitoring.alert_subscriptions[{i}].",
        )
        if subscription["protocol"] not in ("email", "https", "sms", "sqs", "lambda"):
            raise InventoryError(
                f"{shown}: `monitoring.alert_subscriptions[{i}].protocol` must be one of"
                f" `email`, `https`, `sms`, `sqs` or `lambda`"
            )
    names = {s.name for s in services}
    for service, url in (settings.get("endpoints") or {}).items():
        if service not in names:
            raise InventoryError(f"{shown}: `monitoring.endpoints.{show(service)}` is not a service in services.yml")
        if not isinstance(url, str) or not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", url):
            raise InventoryError(
                f"{shown}: `monitoring.endpoints.{service}` must be a URL like"
                f" `https://patient.example.org`, got `{show(url)}`"
            )
    return {**MONITORING_DEFAULTS, **settings}


__all__ = ["DataType", "Inventory", "Service", "load_inventory", "parse_phase"]
