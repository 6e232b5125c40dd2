"""Where an environment keeps what makes a run safe: its journal, its lock, its secrets, its run state.

One small interface, `StateBackend`, and its first implementation, `FileState`: files
under `state/<inventory>/` (journal.jsonl fsynced, an `flock`ed lock file, secrets.json
0600, one JSON document per piece of run state, such as the Railway deployments a run
made). A second backend (an S3 bucket with conditional writes, AWS Secrets Manager) is
one new module offering the same four things; `open_state` picks it from the inventory.
Nothing else in the engine knows where state lives.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import InventoryError
from .files import write_private
from .journal import FileJournal, Journal
from .lock import EnvironmentLock
from .schema import Schema, check_keys, one_of, show
from .secret_store import Secret, SecretStore

if TYPE_CHECKING:
    from .inventory import Inventory


class Lock(Protocol):
    """Held by one run of an environment at a time; a refused taker gets LockHeld (exit 3)."""

    def acquire(self) -> Lock: ...

    def release(self) -> None: ...

    def __enter__(self) -> Lock: ...

    def __exit__(self, *exc: object) -> None: ...


class Secrets(Protocol):
    """Named secrets, values wrapped in `Secret`; `location` is shown to people (never a value)."""

    location: str

    def get(self, name: str) -> Secret | None: ...

    def get_or_create(self, name: str) -> Secret: ...

    def put(self, name: str, value: Secret) -> None: ...

    def delete(self, name: str) -> None: ...

    def names(self) -> list[str]: ...


class StateBackend(Protocol):
    location: str

    def journal(self) -> Journal: ...

    def lock(self, command: str) -> Lock: ...

    def secrets(self) -> Secrets: ...

    def read_document(self, name: str) -> dict[str, Any] | None: ...

    def write_document(self, name: str, document: dict[str, Any]) -> None: ...

    def update_document(self, name: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None: ...


class FileState:
    """Everything under one directory of this machine (the local default)."""

    def __init__(self, directory: Path, inventory_name: str, secrets: Callable[[], Secrets] | None = None):
        self.directory = directory
        self.inventory_name = inventory_name
        self._secrets = secrets
        self.aws_clients: Any = None  # shared with the run when the secrets are in AWS
        self.location = str(directory)
        self._documents = threading.Lock()  # a run's threads read-modify-write documents one at a time

    def journal(self) -> Journal:
        return Journal(FileJournal(self.directory / "journal.jsonl"))

    def lock(self, command: str) -> Lock:
        return EnvironmentLock(self.directory, self.inventory_name, command)

    def secrets(self) -> Secrets:
        return self._secrets() if self._secrets else SecretStore(self.directory / "secrets.json")

    def read_document(self, name: str) -> dict[str, Any] | None:
        """A JSON document of run state, or None when absent or damaged (callers rebuild it)."""
        try:
            document = json.loads((self.directory / f"{name}.json").read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError, UnicodeDecodeError):
            return None
        return document if isinstance(document, dict) else None

    def write_document(self, name: str, document: dict[str, Any]) -> None:
        write_private(self.directory / f"{name}.json", json.dumps(document, indent=1, sort_keys=True))

    def update_document(self, name: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Read, change and write a document as one step for this run's threads (the environment's
        lock keeps other runs out)."""
        with self._documents:
            self.write_document(name, change(self.read_document(name) or {}))


# --- the inventory's `state:` and `secrets:` keys ----------------------------------------------

STATE_BACKENDS = ("local", "s3")
SECRETS_BACKENDS = ("file", "secretsmanager")
STATE_KEYS: Schema = {
    "backend": (str, True),
    "bucket": (str, False),
    "prefix": (str, False),
    "lease_seconds": (int, False),
}
SECRETS_KEYS: Schema = {"backend": (str, True)}
DEFAULT_LEASE_SECONDS = 60
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def state_settings(raw: Any, file: str, environment: str) -> dict[str, Any]:
    """`state:` made concrete: `local` (the default), or `s3` with its bucket, prefix and lease."""
    if raw is None:
        return {"backend": "local"}
    check_keys(raw, STATE_KEYS, file, "state.")
    if raw["backend"] not in STATE_BACKENDS:
        raise InventoryError(
            f"{file}: `state.backend` must be one of {one_of(STATE_BACKENDS)}, got `{show(raw['backend'])}`"
        )
    if raw["backend"] == "local":
        extra = sorted(set(raw) - {"backend"})
        if extra:
            raise InventoryError(
                f"{file}: `state.{extra[0]}` is for `state.backend: s3`; remove it, or use the s3 backend"
            )
        return {"backend": "local"}
    if not raw.get("bucket") or not BUCKET_NAME.match(raw["bucket"]):
        raise InventoryError(
            f"{file}: `state.bucket` must name the state bucket (lower-case letters, digits, dots and dashes,"
            f" like `hc-{environment}-state`), got `{show(raw.get('bucket'))}`; create it with `invoke state.init`"
        )
    prefix = raw.get("prefix", f"{environment}/")
    if not re.fullmatch(r"([a-z0-9][a-z0-9_.-]*/)*", prefix):
        raise InventoryError(f"{file}: `state.prefix` must look like `{environment}/`, got `{show(prefix)}`")
    lease = raw.get("lease_seconds", DEFAULT_LEASE_SECONDS)
    if not 10 <= lease <= 3600:
        raise InventoryError(f"{file}: `state.lease_seconds` must be between 10 and 3600, got `{lease}`")
    return {"backend": "s3", "bucket": raw["bucket"], "prefix": prefix, "lease_seconds": lease}


def secrets_settings(raw: Any, file: str) -> dict[str, Any]:
    """`secrets:` made concrete: `file` (the default) or `secretsmanager`."""
    if raw is None:
        return {"backend": "file"}
    check_keys(raw, SECRETS_KEYS, file, "secrets.")
    if raw["backend"] not in SECRETS_BACKENDS:
        raise InventoryError(
            f"{file}: `secrets.backend` must be one of {one_of(SECRETS_BACKENDS)}, got `{show(raw['backend'])}`"
        )
    return {"backend": raw["backend"]}


def open_state(inventory: Inventory) -> StateBackend:
    """The inventory's state backend, with its secrets backend."""
    in_s3 = inventory.state_backend["backend"] == "s3"
    in_manager = inventory.secrets_backend["backend"] == "secretsmanager"
    aws = None
    if in_s3 or in_manager:  # one set of AWS clients for the state, the secrets and the run (made lazily)
        from .providers.aws import AwsClients

        aws = AwsClients(inventory)
    secrets = None
    if in_manager:
        from .aws_secret_store import SecretsManagerStore

        def secrets():
            return SecretsManagerStore(inventory, aws)

    if in_s3:
        from .state_s3 import S3State

        return S3State(inventory, secrets, aws)
    state = FileState(inventory.state_dir, inventory.name, secrets)
    state.aws_clients = aws
    return state
