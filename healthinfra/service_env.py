"""The variables a hosted service gets, and how secret ones are named without their values.

One pure function, `service_variables`, says what a service in the services table
needs to run at a phase: its own database URL (a `Secret`), the buckets it may
touch (from the data types table's `read`/`write` lists), the AWS region, its log
group and its port. The local provider writes them to an env file, the Railway
provider upserts them as one collection: both call this, so they never disagree.

State that reaches the journal or the output never holds a secret value. A secret
variable appears there as one of two markers:

- `DATABASE_URL_REF` ("the database URL of this service's role, as the secrets file
  has it now"): the desired value, resolved only when applied;
- `DATABASE_URL_STALE`: the same URL with an older password (after `security.rotate`).
  A rotation keeps the old password nowhere, by design, so undoing a change from it
  converges to the role's URL as it is now;
- `***sha256:<16 hex>`: some other value, known by digest only. Before the runner
  overwrites or deletes such a value it keeps it in the secrets file (0600) under
  `stash.<digest>`, so undo can put it back; the journal holds only the digest.

The digest is of a URL carrying a 32-character random password (or Neon's own),
so it cannot be guessed back; it only tells "same value" from "different value".
"""

from __future__ import annotations

import hashlib
from typing import Any

from . import names
from .errors import ProviderError
from .inventory import Inventory, Service
from .secret_store import Secret

SECRET_VARIABLES = frozenset({"DATABASE_URL"})
DATABASE_URL_REF = "***database URL of the service's role"
DATABASE_URL_STALE = "***database URL of the service's role, with a password it no longer has"
DIGEST_PREFIX = "***sha256:"
STASH_PREFIX = "stash."


def bucket_variables(inventory: Inventory, service: Service, phase: int) -> dict[str, str]:
    """`{DATA_TYPE}_BUCKET` (and `_PREFIX` when the data type lives under a key prefix)
    for every data type of phase <= N the service may read or write."""
    variables: dict[str, str] = {}
    for data_type in inventory.data_types_at(phase):
        if service.name not in data_type.read and service.name not in data_type.write:
            continue
        name = data_type.name.upper()
        variables[f"{name}_BUCKET"] = names.bucket(inventory, data_type.bucket)
        if data_type.prefix:
            variables[f"{name}_PREFIX"] = data_type.prefix
    return variables


def service_variables(inventory: Inventory, service: Service, phase: int, database_url: Secret) -> dict[str, Any]:
    """Every variable a hosted service gets at a phase; DATABASE_URL stays a `Secret`. Pure."""
    variables: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "AWS_REGION": inventory.aws["region"],
        "LOG_GROUP": names.log_group(inventory, service.name),
        "PORT": str(service.port),
    }
    if inventory.aws_endpoint_url:  # moto: a service started locally must find it, and trust its certificate
        from .local.moto import certificate

        variables["AWS_ENDPOINT_URL"] = inventory.aws_endpoint_url
        variables["AWS_CA_BUNDLE"] = str(certificate(inventory))
    variables.update(bucket_variables(inventory, service, phase))
    return dict(sorted(variables.items()))


def desired_variables(inventory: Inventory, service: Service, phase: int) -> dict[str, str]:
    """`service_variables` with each secret replaced by its reference: fit for the journal. Pure."""
    return {
        name: DATABASE_URL_REF if isinstance(value, Secret) else value
        for name, value in service_variables(inventory, service, phase, Secret("")).items()
    }


def managed_names(inventory: Inventory, service: Service) -> list[str]:
    """Every variable name the runner may have set on a service, at any phase: names outside
    this list (a variable set by hand) are never read into state, changed or deleted."""
    return sorted(desired_variables(inventory, service, 4))


# --- secret values, by reference ------------------------------------------------


def digest(value: str) -> str:
    return DIGEST_PREFIX + hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]


def observed(name: str, actual: str, wanted: Secret | None) -> str:
    """How a variable's current value appears in state: as itself, or, for a secret one,
    as the reference when it equals the wanted value, else as a digest."""
    if name not in SECRET_VARIABLES:
        return actual
    if wanted is not None and actual == wanted.reveal():
        return DATABASE_URL_REF
    if wanted is not None and _without_password(actual) == _without_password(wanted.reveal()):
        return DATABASE_URL_STALE
    return digest(actual)


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        return parts._replace(netloc=f"{parts.username or ''}@{host}").geturl()
    except ValueError:
        return url


def needs_keeping(name: str, actual: str, wanted: Secret | None) -> bool:
    """A secret value about to be replaced that undo could not rebuild: keep it (see `stash`)."""
    return name in SECRET_VARIABLES and observed(name, actual, wanted).startswith(DIGEST_PREFIX)


def stash(secrets, value: str) -> None:
    """Keep a secret value we are about to overwrite, under its digest, in the 0600 secrets file."""
    key = STASH_PREFIX + digest(value)[len(DIGEST_PREFIX) :]
    if secrets.get(key) is None:
        secrets.put(key, Secret(value))


def resolve(value: str, secrets, database_url) -> str:
    """The real value of a state value: a reference or digest becomes the secret itself.
    `database_url` is a callable returning the service's URL (looked up only if needed)."""
    if value in (DATABASE_URL_REF, DATABASE_URL_STALE):
        return database_url().reveal()
    if isinstance(value, str) and value.startswith(DIGEST_PREFIX):
        kept = secrets.get(STASH_PREFIX + value[len(DIGEST_PREFIX) :])
        if kept is None:
            raise ProviderError(
                f"the value to restore ({value}) is not in {secrets.location}; it was kept there when it was replaced."
                " Restore the secrets file from a backup, or set the variable by hand"
            )
        return kept.reveal()
    return value


# --- the database URL, per database provider -------------------------------------


def database_url(inventory: Inventory, service: Service, secrets, client: Any = None) -> Secret:
    """The service role's connection URL, with its password from the secrets store. `client` is
    the run's database API client (its lookups memoised), when the provider has one."""
    from .resources.postgres import PgRole

    role = PgRole(service.db_role, None, database=inventory.database["name"])
    password = secrets.get(role.secret_name)
    if password is None:
        raise ProviderError(
            f"no password for database role `{role.name}` in {secrets.location}; the db playbook creates it:"
            f" run `invoke db.deploy -i {inventory.name}` (or a full deploy) first"
        )
    return role_database_url(inventory, role.name, password, client)


def role_database_url(inventory: Inventory, role: str, password: Secret, client: Any = None) -> Secret:
    """A login role's connection URL (TLS required) on the inventory's database provider."""
    return inventory.provider("database").role_url(inventory, role, password, client)


def current_database_url(inventory: Inventory, name: str, secrets, client: Any = None) -> Secret | None:
    """Service `name`'s URL now, or None while it cannot be made (no password or branch yet).
    A transient fault is raised: a provider hiccup must never read as "the secret changed"."""
    from .errors import TransientProviderError

    service = next((s for s in inventory.services if s.name == name), None)
    if service is None:
        return None
    try:
        return database_url(inventory, service, secrets, client)
    except TransientProviderError:
        raise
    except ProviderError:
        return None
