"""The two tables every environment shares: the services (`inventories/services.yml`) and the
data types (`inventories/data_types.yml`), loaded and validated.

One table of services drives everything (DB roles and grants, IAM roles and policies, log
groups, alarms, hosted services); one table of data types says where each kind of medical
data lives, from which phase, and who may touch it. local, dev and prod read the same
files, so they can never disagree on what a service owns.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import names
from .errors import InventoryError
from .schema import DNS_LABEL, IDENTIFIER, check_keys, one_of, parse_phase, read_yaml, rel, show

TABLE_NAME = re.compile(r"^(?:[a-z][a-z0-9_]{0,40}\.)?[a-z][a-z0-9_]{0,40}$")

SERVICE_KEYS: dict[str, tuple[type, bool]] = {
    "port": (int, True),
    "phase": (int, True),
    "runs_on": (str, True),
    "owns": (list, False),
    "reads": (list, False),
    "appends": (list, False),
    "description": (str, False),
}
# `runs_on` in services.yml: on the hosting platform (`providers.hosting`), or on hosts of its own
# (`hosts:`, reached by `providers.hosts`). The spelling is the services table's.
RUNS_ON_PLATFORM, RUNS_ON_OWN_HOST = "railway", "host"
RUNS_ON = (RUNS_ON_PLATFORM, RUNS_ON_OWN_HOST)
SHARED_TABLES = ("services", "data_types")  # tables every inventory shares; not inventories


@dataclass(frozen=True)
class Service:
    """One row of the services table: what a service is and which data it owns."""

    name: str
    port: int
    phase: int
    runs_on: str
    owns: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    appends: tuple[str, ...] = ()

    @property
    def db_role(self) -> str:
        return names.db_role(self.name)

    @property
    def hosted(self) -> bool:
        """Runs on the hosting platform (Railway, or env files locally)."""
        return self.runs_on == RUNS_ON_PLATFORM

    @property
    def on_own_host(self) -> bool:
        """Runs on hosts of its own, listed under `hosts:`."""
        return self.runs_on == RUNS_ON_OWN_HOST


DATA_CLASSES = ("phi", "logs", "model", "deidentified")
STORAGE_CLASSES = ("STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE")
LIFECYCLE_KEYS: dict[str, tuple[type, bool]] = {
    "transitions": (list, False),
    "expiration_days": (int, False),
    "noncurrent_expiration_days": (int, False),
}
DATA_TYPE_KEYS: dict[str, tuple[type, bool]] = {
    "purpose": (str, True),
    "bucket": (str, True),
    "prefix": (str, False),
    "phase": (int, True),
    "data_class": (str, True),
    "lifecycle": (dict, False),
    "read": (list, False),
    "write": (list, False),
}


@dataclass(frozen=True)
class DataType:
    """One row of the data types table: where a kind of medical data lives and who touches it."""

    name: str
    purpose: str
    bucket: str
    prefix: str
    phase: int
    data_class: str
    lifecycle: dict[str, Any]
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()


def load_services(path: Path) -> tuple[Service, ...]:
    """The one table of services; every resource per service derives from it."""
    shown = rel(path)
    if not path.is_file():
        raise InventoryError(f"{shown}: the services table is missing; restore it from git")
    data = read_yaml(path)
    check_keys(data, {"services": (dict, True)}, shown, "")
    services = []
    for name, row in data["services"].items():
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            raise InventoryError(f"{shown}: service name `{show(name)}` must be a lower-case identifier")
        if not isinstance(row, dict):
            raise InventoryError(f"{shown}: `services.{name}` must be a mapping of settings")
        check_keys(row, SERVICE_KEYS, shown, f"services.{name}.")
        parse_phase(row["phase"], f"{shown}: services.{name}")
        if row["runs_on"] not in RUNS_ON:
            raise InventoryError(
                f"{shown}: `services.{name}.runs_on` must be one of {one_of(RUNS_ON)}, got `{show(row['runs_on'])}`"
            )
        tables = {}
        for key in ("owns", "reads", "appends"):
            values = row.get(key) or []
            for table in values:
                if not isinstance(table, str) or not TABLE_NAME.match(table):
                    raise InventoryError(
                        f"{shown}: `services.{name}.{key}` lists `{show(table)}`; write table names"
                        " (schema-qualified outside `public`: ml.predictions)"
                    )
            tables[key] = tuple(values)
        services.append(Service(name=name, port=row["port"], phase=row["phase"], runs_on=row["runs_on"], **tables))
    if not services:
        raise InventoryError(f"{shown}: `services` is empty; list at least one service")
    return tuple(services)


def load_data_types(
    path: Path, services: tuple[Service, ...], overrides: dict, inventory_shown: str
) -> tuple[DataType, ...]:
    """The data types table, with the inventory's lifecycle overrides applied."""
    shown = rel(path)
    if not path.is_file():
        raise InventoryError(f"{shown}: the data types table is missing; restore it from git")
    data = read_yaml(path)
    check_keys(data, {"data_types": (dict, True)}, shown, "")
    service_names = {s.name for s in services}
    rows = data["data_types"]
    for name in overrides:
        if name not in rows:
            close = difflib.get_close_matches(str(name), list(rows), n=1)
            hint = f"did you mean `lifecycle.{close[0]}`?" if close else f"data types: {one_of(rows)}"
            raise InventoryError(f"{inventory_shown}: unknown key `lifecycle.{show(name)}`; {hint}")
    result = []
    buckets_owned: dict[str, str] = {}
    for name, row in rows.items():
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            raise InventoryError(f"{shown}: data type name `{show(name)}` must be a lower-case identifier")
        check_keys(row, DATA_TYPE_KEYS, shown, f"data_types.{name}.")
        parse_phase(row["phase"], f"{shown}: data_types.{name}")
        if not DNS_LABEL.match(row["bucket"]):
            raise InventoryError(f"{shown}: `data_types.{name}.bucket` must be lower-case letters, digits and dashes")
        if row["data_class"] not in DATA_CLASSES:
            raise InventoryError(
                f"{shown}: `data_types.{name}.data_class` must be one of {one_of(DATA_CLASSES)}, got `{show(row['data_class'])}`"
            )
        prefix = row.get("prefix") or ""
        if prefix and not re.fullmatch(r"[a-z0-9][a-z0-9_/-]*/", prefix):
            raise InventoryError(
                f"{shown}: `data_types.{name}.prefix` must look like `appointments/`, got `{show(prefix)}`"
            )
        if not prefix:
            if row["bucket"] in buckets_owned:
                raise InventoryError(
                    f"{shown}: `data_types.{name}` and `data_types.{buckets_owned[row['bucket']]}` both own bucket"
                    f" `{row['bucket']}`; give one of them a `prefix`"
                )
            buckets_owned[row["bucket"]] = name
        for key in ("read", "write"):
            for service in row.get(key) or []:
                if service not in service_names:
                    raise InventoryError(
                        f"{shown}: `data_types.{name}.{key}` names service `{show(service)}`, which is not in"
                        f" services.yml; choose from {one_of(sorted(service_names))}"
                    )
        where, lifecycle = (
            (inventory_shown, overrides[name]) if name in overrides else (shown, row.get("lifecycle") or {})
        )
        check_lifecycle(
            lifecycle, where, f"lifecycle.{name}." if name in overrides else f"data_types.{name}.lifecycle."
        )
        result.append(
            DataType(
                name=name,
                purpose=row["purpose"],
                bucket=row["bucket"],
                prefix=prefix,
                phase=row["phase"],
                data_class=row["data_class"],
                lifecycle=dict(lifecycle),
                read=tuple(row.get("read") or ()),
                write=tuple(row.get("write") or ()),
            )
        )
    for dt in result:
        if dt.prefix and dt.bucket not in buckets_owned:
            raise InventoryError(f"{shown}: `data_types.{dt.name}` uses bucket `{dt.bucket}`, which no data type owns")
    return tuple(result)


def check_lifecycle(rule: Any, shown: str, prefix: str) -> None:
    check_keys(rule, LIFECYCLE_KEYS, shown, prefix)
    for key in ("expiration_days", "noncurrent_expiration_days"):
        if key in rule and not 1 <= rule[key] <= 36500:
            raise InventoryError(f"{shown}: `{prefix}{key}` must be between 1 and 36500 days, got `{rule[key]}`")
    for i, transition in enumerate(rule.get("transitions") or []):
        check_keys(transition, {"days": (int, True), "storage_class": (str, True)}, shown, f"{prefix}transitions[{i}].")
        if transition["storage_class"] not in STORAGE_CLASSES:
            raise InventoryError(
                f"{shown}: `{prefix}transitions[{i}].storage_class` must be one of {one_of(STORAGE_CLASSES)},"
                f" got `{show(transition['storage_class'])}`"
            )
        if not 0 <= transition["days"] <= 36500:
            raise InventoryError(f"{shown}: `{prefix}transitions[{i}].days` must be between 0 and 36500")
