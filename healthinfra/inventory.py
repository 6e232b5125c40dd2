"""Inventories: load, validate and describe one environment.

An inventory is `inventories/NAME.yml` (environment, providers, phase and their
settings) plus the one table of services in `inventories/services.yml`, shared by
every environment so that local, dev and prod can never disagree on what a
service owns. Validation is complete before anything else happens: a bad file,
key, type or phase becomes one `InventoryError` line naming the file, the key and
the fix (exit 2), and no provider is ever called with it.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import names
from .errors import InventoryError

PHASES = (1, 2, 3, 4)
IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
TABLE_NAME = re.compile(r"^(?:[a-z][a-z0-9_]{0,40}\.)?[a-z][a-z0-9_]{0,40}$")
DNS_LABEL = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
ENV_VAR = re.compile(r"^[A-Z][A-Z0-9_]{0,60}$")

PROVIDER_CHOICES = {
    "database": ("embedded", "neon"),
    "aws": ("moto", "aws"),
    "hosting": ("local", "railway"),
}

# Settings each provider accepts: key -> (type, required). Anything else is an
# unknown key, reported with the closest valid spelling.
PROVIDER_SETTINGS: dict[tuple[str, str], dict[str, tuple[type, bool]]] = {
    ("database", "embedded"): {"name": (str, True), "port": (int, True)},
    ("database", "neon"): {
        "name": (str, True),
        "project": (str, True),
        "branch": (str, True),
        "parent_branch": (str, False),
        "owner_role": (str, False),
        "api_key_env": (str, True),
    },
    ("aws", "moto"): {"region": (str, True), "port": (int, True)},
    ("aws", "aws"): {"region": (str, True), "account_id": (str, True), "profile": (str, False)},
    ("hosting", "local"): {},
    ("hosting", "railway"): {
        "project": (str, True),
        "environment": (str, True),
        "token_env": (str, True),
        "workspace": (str, False),
        "services": (dict, True),
    },
}

# `hosting.services.NAME` for a Railway-hosted service: where its code comes from and how it runs.
RAILWAY_SERVICE_KEYS: dict[str, tuple[type, bool]] = {
    "image": (str, False),
    "repo": (str, False),
    "start_command": (str, False),
    "replicas": (int, False),
}
MAX_REPLICAS = 50

TOP_LEVEL: dict[str, tuple[type, bool]] = {
    "description": (str, False),
    "environment": (str, True),
    "prefix": (str, True),
    "phase": (int, True),
    "protected": (bool, False),
    "providers": (dict, True),
    "database": (dict, True),
    "aws": (dict, True),
    "hosting": (dict, False),
    "lifecycle": (dict, False),
    "monitoring": (dict, False),
    "hosts": (dict, False),
}

# One SSH host of a group under `hosts:` (a service that runs_on: host). Optional
# keys default from the service: base_dir /opt/{prefix}-{env}-{service}, the
# service's own port, start_command {base_dir}/app/run.
HOST_KEYS: dict[str, tuple[type, bool]] = {
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
}

SERVICE_KEYS: dict[str, tuple[type, bool]] = {
    "port": (int, True),
    "phase": (int, True),
    "runs_on": (str, True),
    "owns": (list, False),
    "reads": (list, False),
    "appends": (list, False),
    "description": (str, False),
}
RUNS_ON = ("railway", "host")
SHARED_TABLES = ("services", "data_types")  # tables every inventory shares; not inventories
MOTO_ACCOUNT_ID = "123456789012"


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
    extra: dict[str, Any] = field(default_factory=dict)

    def resource_name(self, purpose: str) -> str:
        """`{prefix}-{env}-{purpose}`, the name of a cloud resource (see `names`)."""
        return names.resource(self, purpose)

    def services_at(self, phase: int) -> tuple[Service, ...]:
        return tuple(s for s in self.services if s.phase <= phase)

    def data_types_at(self, phase: int) -> tuple[DataType, ...]:
        return tuple(d for d in self.data_types if d.phase <= phase)

    @property
    def embedded(self) -> bool:
        return self.providers["database"] == "embedded"

    @property
    def aws_account_id(self) -> str:
        """The AWS account; moto's fixed account for the local environment."""
        return self.aws.get("account_id", MOTO_ACCOUNT_ID)

    @property
    def aws_endpoint_url(self) -> str | None:
        if self.providers["aws"] == "moto":
            return f"https://127.0.0.1:{self.aws['port']}"
        return None


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


def parse_phase(value: Any, source: str = "--phase") -> int:
    """A phase from the command line or a file: an int 1..4, else a clean error."""
    if isinstance(value, bool):
        ok = False
    elif isinstance(value, int):
        ok = value in PHASES
    elif isinstance(value, str) and re.fullmatch(r"[1-4]", value.strip()):
        value, ok = int(value.strip()), True
    else:
        ok = False
    if not ok:
        raise InventoryError(f"{source}: `phase` must be 1, 2, 3 or 4, got `{_show(value)}`")
    return int(value)


def load_inventory(name: str, directory: Path | None = None) -> Inventory:
    """Read and validate `inventories/NAME.yml` and the services table."""
    directory = directory or inventories_dir()
    choices = available_inventories(directory)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", name or ""):
        raise InventoryError(f"--inventory: `{_show(name)}` is not an inventory name; choose one of {_list(choices)}")
    path = directory / f"{name}.yml"
    if name in SHARED_TABLES or not path.is_file():
        raise InventoryError(
            f"{_rel(path)}: no such inventory `{name}`; choose one of {_list(choices)} or create {_rel(path)}"
        )
    data = _read_yaml(path)
    shown = _rel(path)
    _check_keys(data, TOP_LEVEL, shown, "")

    providers = data["providers"]
    _check_keys(providers, {k: (str, True) for k in PROVIDER_CHOICES}, shown, "providers.")
    for area, choices_for_area in PROVIDER_CHOICES.items():
        if providers[area] not in choices_for_area:
            raise InventoryError(
                f"{shown}: `providers.{area}` must be one of {_list(choices_for_area)}, got `{_show(providers[area])}`"
            )
    hosting = data.get("hosting") or {}
    for area, settings in (("database", data["database"]), ("aws", data["aws"]), ("hosting", hosting)):
        if not isinstance(settings, dict):
            raise InventoryError(f"{shown}: `{area}` must be a mapping of settings")
        schema = PROVIDER_SETTINGS[(area, providers[area])]
        _check_keys(settings, schema, shown, f"{area}.")
        for key, value in settings.items():
            if key.endswith("_env") and not ENV_VAR.match(value):
                raise InventoryError(
                    f"{shown}: `{area}.{key}` names an environment variable holding a secret;"
                    f" write its name (like `NEON_API_KEY`), never the secret itself"
                )
            if key == "port" and not 1024 <= value <= 65535:
                raise InventoryError(f"{shown}: `{area}.port` must be between 1024 and 65535, got `{value}`")
    account = data["aws"].get("account_id")
    if account is not None and not re.fullmatch(r"\d{12}", account):
        raise InventoryError(
            f"{shown}: `aws.account_id` must be the 12-digit AWS account id, quoted, got `{_show(account)}`"
        )
    if not IDENTIFIER.match(data["database"]["name"]):
        raise InventoryError(
            f"{shown}: `database.name` must be a lower-case identifier (letters, digits, _),"
            f" got `{_show(data['database']['name'])}`"
        )
    for key, pattern in (("prefix", DNS_LABEL), ("environment", DNS_LABEL)):
        if not pattern.match(data[key]):
            raise InventoryError(
                f"{shown}: `{key}` must be lower-case letters, digits and dashes (it names cloud"
                f" resources), got `{_show(data[key])}`"
            )
    database = dict(data["database"])
    if providers["database"] == "neon":
        database = _neon_settings(database, shown)
    phase = parse_phase(data["phase"], shown)
    services = load_services(directory / "services.yml")
    if providers["hosting"] == "railway":
        hosting["services"] = _railway_services(hosting["services"], services, shown)
    data_types = load_data_types(directory / "data_types.yml", services, data.get("lifecycle") or {}, shown)

    monitoring = _monitoring_settings(data.get("monitoring") or {}, shown, services)
    monitoring.setdefault("ml_namespace", names.ml_metric_namespace(data["prefix"], data["environment"]))
    hosts = _hosts(data.get("hosts") or {}, shown, services, data["prefix"], data["environment"])

    return Inventory(
        name=name,
        monitoring=monitoring,
        hosts=hosts,
        path=path,
        environment=data["environment"],
        prefix=data["prefix"],
        phase=phase,
        protected=bool(data.get("protected", False)),
        providers=dict(providers),
        database=database,
        aws=dict(data["aws"]),
        hosting=dict(hosting),
        services=services,
        data_types=data_types,
        state_dir=state_root() / name,
        description=data.get("description", ""),
    )


NEON_BRANCH = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
USER_LABEL = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
DEFAULT_PARENT_BRANCH = "main"


def _neon_settings(database: dict[str, Any], shown: str) -> dict[str, Any]:
    """Neon's settings made concrete: `{user}` in `database.branch` becomes $USER (a
    per-developer branch, e.g. `dev-{user}`), and the parent and owner role get defaults.
    `branch_template` keeps what the file says."""
    template = database["branch"]
    branch = template
    if "{user}" in template:
        user = os.environ.get("USER") or _login_name()
        if not USER_LABEL.match(user):
            raise InventoryError(
                f"{shown}: `database.branch` is `{_show(template)}`, whose `{{user}}` comes from $USER, which is"
                f" `{_show(user)}`; set USER to a lower-case name of letters, digits and dashes (like `alice`)"
            )
        branch = template.replace("{user}", user)
    if not NEON_BRANCH.match(branch):
        raise InventoryError(
            f"{shown}: `database.branch` must be lower-case letters, digits and dashes (`{{user}}` is allowed),"
            f" got `{_show(branch)}`"
        )
    parent = database.get("parent_branch") or DEFAULT_PARENT_BRANCH
    if not NEON_BRANCH.match(parent):
        raise InventoryError(
            f"{shown}: `database.parent_branch` must be a branch name like `main`, got `{_show(parent)}`"
        )
    owner = database.get("owner_role") or f"{database['name']}_owner"
    if not IDENTIFIER.match(owner):
        raise InventoryError(f"{shown}: `database.owner_role` must be a lower-case identifier, got `{_show(owner)}`")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}", database["project"]):
        raise InventoryError(
            f"{shown}: `database.project` must be a Neon project name like `hc-dev`, got `{_show(database['project'])}`"
        )
    return {**database, "branch": branch, "branch_template": template, "parent_branch": parent, "owner_role": owner}


def _login_name() -> str:
    """The login name when $USER is unset (cron, CI, containers): the password database's."""
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return ""


def load_services(path: Path) -> tuple[Service, ...]:
    """The one table of services; every resource per service derives from it."""
    shown = _rel(path)
    if not path.is_file():
        raise InventoryError(f"{shown}: the services table is missing; restore it from git")
    data = _read_yaml(path)
    _check_keys(data, {"services": (dict, True)}, shown, "")
    services = []
    for name, row in data["services"].items():
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            raise InventoryError(f"{shown}: service name `{_show(name)}` must be a lower-case identifier")
        if not isinstance(row, dict):
            raise InventoryError(f"{shown}: `services.{name}` must be a mapping of settings")
        _check_keys(row, SERVICE_KEYS, shown, f"services.{name}.")
        parse_phase(row["phase"], f"{shown}: services.{name}")
        if row["runs_on"] not in RUNS_ON:
            raise InventoryError(
                f"{shown}: `services.{name}.runs_on` must be one of {_list(RUNS_ON)}, got `{_show(row['runs_on'])}`"
            )
        tables = {}
        for key in ("owns", "reads", "appends"):
            values = row.get(key) or []
            for table in values:
                if not isinstance(table, str) or not TABLE_NAME.match(table):
                    raise InventoryError(
                        f"{shown}: `services.{name}.{key}` lists `{_show(table)}`; write table names"
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
    shown = _rel(path)
    if not path.is_file():
        raise InventoryError(f"{shown}: the data types table is missing; restore it from git")
    data = _read_yaml(path)
    _check_keys(data, {"data_types": (dict, True)}, shown, "")
    service_names = {s.name for s in services}
    rows = data["data_types"]
    for name in overrides:
        if name not in rows:
            close = difflib.get_close_matches(str(name), list(rows), n=1)
            hint = f"did you mean `lifecycle.{close[0]}`?" if close else f"data types: {_list(rows)}"
            raise InventoryError(f"{inventory_shown}: unknown key `lifecycle.{_show(name)}`; {hint}")
    result = []
    buckets_owned: dict[str, str] = {}
    for name, row in rows.items():
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            raise InventoryError(f"{shown}: data type name `{_show(name)}` must be a lower-case identifier")
        _check_keys(row, DATA_TYPE_KEYS, shown, f"data_types.{name}.")
        parse_phase(row["phase"], f"{shown}: data_types.{name}")
        if not DNS_LABEL.match(row["bucket"]):
            raise InventoryError(f"{shown}: `data_types.{name}.bucket` must be lower-case letters, digits and dashes")
        if row["data_class"] not in DATA_CLASSES:
            raise InventoryError(
                f"{shown}: `data_types.{name}.data_class` must be one of {_list(DATA_CLASSES)}, got `{_show(row['data_class'])}`"
            )
        prefix = row.get("prefix") or ""
        if prefix and not re.fullmatch(r"[a-z0-9][a-z0-9_/-]*/", prefix):
            raise InventoryError(
                f"{shown}: `data_types.{name}.prefix` must look like `appointments/`, got `{_show(prefix)}`"
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
                        f"{shown}: `data_types.{name}.{key}` names service `{_show(service)}`, which is not in"
                        f" services.yml; choose from {_list(sorted(service_names))}"
                    )
        where, lifecycle = (
            (inventory_shown, overrides[name]) if name in overrides else (shown, row.get("lifecycle") or {})
        )
        _check_lifecycle(
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


def _railway_services(settings: dict, services: tuple[Service, ...], shown: str) -> dict[str, dict]:
    """Every Railway-hosted service of the table, with exactly one source (image or repo)."""
    hosted = [s.name for s in services if s.runs_on == "railway"]
    for name in settings:
        if name not in hosted:
            raise InventoryError(
                f"{shown}: `hosting.services.{_show(name)}` is not a service services.yml runs on Railway;"
                f" choose from {_list(hosted)}"
            )
    result = {}
    for name in hosted:
        if name not in settings:
            raise InventoryError(
                f"{shown}: missing key `hosting.services.{name}`; add `{name}: {{image: REGISTRY/IMAGE:TAG}}`"
                f" or `{name}: {{repo: OWNER/REPO}}` (where Railway gets its code)"
            )
        row = settings[name]
        _check_keys(row, RAILWAY_SERVICE_KEYS, shown, f"hosting.services.{name}.")
        if ("image" in row) == ("repo" in row):
            raise InventoryError(
                f"{shown}: `hosting.services.{name}` needs exactly one source, `image` (a container image)"
                f" or `repo` (a GitHub OWNER/REPO); it has {'both' if 'image' in row else 'neither'}"
            )
        source = row.get("image") or row.get("repo")
        if not source.strip() or any(ch.isspace() for ch in source):
            raise InventoryError(
                f"{shown}: `hosting.services.{name}.{'image' if 'image' in row else 'repo'}`"
                f" must be one word like `ghcr.io/org/{name}:1.0.0`, got `{_show(source)}`"
            )
        if "repo" in row and not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", row["repo"]):
            raise InventoryError(
                f"{shown}: `hosting.services.{name}.repo` must be a GitHub `OWNER/REPO`, got `{_show(row['repo'])}`"
            )
        replicas = row.get("replicas", 1)
        if not 1 <= replicas <= MAX_REPLICAS:
            raise InventoryError(
                f"{shown}: `hosting.services.{name}.replicas` must be between 1 and {MAX_REPLICAS}, got `{replicas}`"
            )
        result[name] = {**row, "replicas": replicas}
    return result


def _monitoring_settings(settings: dict, shown: str, services: tuple[Service, ...]) -> dict[str, Any]:
    _check_keys(settings, MONITORING_KEYS, shown, "monitoring.")
    for key in ("retention_days", "audit_retention_days"):
        if key in settings and settings[key] not in LOG_RETENTION_DAYS:
            raise InventoryError(
                f"{shown}: `monitoring.{key}` must be a period CloudWatch Logs accepts"
                f" ({', '.join(map(str, LOG_RETENTION_DAYS))}), got `{settings[key]}`"
            )
    for i, subscription in enumerate(settings.get("alert_subscriptions") or []):
        _check_keys(
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
            raise InventoryError(f"{shown}: `monitoring.endpoints.{_show(service)}` is not a service in services.yml")
        if not isinstance(url, str) or not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", url):
            raise InventoryError(
                f"{shown}: `monitoring.endpoints.{service}` must be a URL like"
                f" `https://patient.example.org`, got `{_show(url)}`"
            )
    return {**MONITORING_DEFAULTS, **settings}


def _hosts(
    groups: dict, shown: str, services: tuple[Service, ...], prefix: str, env: str
) -> dict[str, tuple[Host, ...]]:
    """`hosts: {service: [host, ...]}` for the services that run on their own hosts."""
    on_hosts = {s.name: s for s in services if s.runs_on == "host"}
    result: dict[str, tuple[Host, ...]] = {}
    seen: set[str] = set()
    for group, entries in groups.items():
        if group not in on_hosts:
            raise InventoryError(
                f"{shown}: `hosts.{_show(group)}` is not a service that runs on its own hosts;"
                f" use one of {_list(sorted(on_hosts))} (services with `runs_on: host` in services.yml)"
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
            _check_keys(entry, HOST_KEYS, shown, f"{where}.")
            name = entry["name"]
            if not DNS_LABEL.match(name):
                raise InventoryError(
                    f"{shown}: `{where}.name` must be lower-case letters, digits and dashes, got `{_show(name)}`"
                )
            if name in seen:
                raise InventoryError(f"{shown}: `{where}.name` repeats host `{name}`; host names must be unique")
            seen.add(name)
            for key in ("port", "service_port"):
                if key in entry and not 1 <= entry[key] <= 65535:
                    raise InventoryError(f"{shown}: `{where}.{key}` must be between 1 and 65535, got `{entry[key]}`")
            if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", entry["user"]):
                raise InventoryError(f"{shown}: `{where}.user` must be a login name, got `{_show(entry['user'])}`")
            for key in ("base_dir", "key_file", "known_hosts"):
                value = entry.get(key)
                if value is not None and not (value.startswith("/") or value.startswith("~/")):
                    raise InventoryError(f"{shown}: `{where}.{key}` must be an absolute path, got `{_show(value)}`")
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


def _check_lifecycle(rule: Any, shown: str, prefix: str) -> None:
    _check_keys(rule, LIFECYCLE_KEYS, shown, prefix)
    for key in ("expiration_days", "noncurrent_expiration_days"):
        if key in rule and not 1 <= rule[key] <= 36500:
            raise InventoryError(f"{shown}: `{prefix}{key}` must be between 1 and 36500 days, got `{rule[key]}`")
    for i, transition in enumerate(rule.get("transitions") or []):
        _check_keys(
            transition, {"days": (int, True), "storage_class": (str, True)}, shown, f"{prefix}transitions[{i}]."
        )
        if transition["storage_class"] not in STORAGE_CLASSES:
            raise InventoryError(
                f"{shown}: `{prefix}transitions[{i}].storage_class` must be one of {_list(STORAGE_CLASSES)},"
                f" got `{_show(transition['storage_class'])}`"
            )
        if not 0 <= transition["days"] <= 36500:
            raise InventoryError(f"{shown}: `{prefix}transitions[{i}].days` must be between 0 and 36500")


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise InventoryError(f"{_rel(path)}: malformed YAML{where}: {problem}; fix the syntax there") from None
    except UnicodeDecodeError:
        raise InventoryError(f"{_rel(path)}: not UTF-8 text; save the file as UTF-8") from None
    if not isinstance(data, dict):
        raise InventoryError(f"{_rel(path)}: must be a mapping of keys at the top level, got {_kind(data)}")
    return data


def _check_keys(data: Any, schema: dict[str, tuple[type, bool]], shown: str, prefix: str) -> None:
    if not isinstance(data, dict):
        raise InventoryError(f"{shown}: `{prefix.rstrip('.')}` must be a mapping, got {_kind(data)}")
    for key in data:
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f"did you mean `{prefix}{close[0]}`?" if close else f"valid keys: {_list(schema, prefix)}"
            raise InventoryError(f"{shown}: unknown key `{prefix}{_show(key)}`; {hint}")
    for key, (kind, required) in schema.items():
        if key not in data or data[key] is None:
            if required:
                raise InventoryError(f"{shown}: missing key `{prefix}{key}`; add it ({_kind_name(kind)})")
            continue
        value = data[key]
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            if key == "phase":
                continue  # parse_phase gives the phase-specific message
            raise InventoryError(f"{shown}: `{prefix}{key}` must be a number, got `{_show(value)}`")
        if kind is not int and not isinstance(value, kind):
            raise InventoryError(f"{shown}: `{prefix}{key}` must be {_kind_name(kind)}, got {_kind(value)}")


def _kind_name(kind: type) -> str:
    return {str: "text", int: "a number", bool: "true or false", dict: "a mapping", list: "a list"}[kind]


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {str: "text", int: "a number", bool: "true/false", dict: "a mapping", list: "a list", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _show(value: Any, limit: int = 40) -> str:
    """A value made safe for a one-line message: printable, short."""
    text = str(value)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _list(values: Any, prefix: str = "") -> str:
    values = [f"`{prefix}{v}`" for v in values]
    if not values:
        return "(none)"
    return ", ".join(values[:-1]) + (" or " if len(values) > 1 else "") + values[-1]


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
