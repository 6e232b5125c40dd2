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
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .files import write_private
from .journal import FileJournal, Journal
from .lock import EnvironmentLock
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

    def __init__(self, directory: Path, inventory_name: str):
        self.directory = directory
        self.inventory_name = inventory_name
        self.location = str(directory)
        self._documents = threading.Lock()  # a run's threads read-modify-write documents one at a time

    def journal(self) -> Journal:
        return Journal(FileJournal(self.directory / "journal.jsonl"))

    def lock(self, command: str) -> Lock:
        return EnvironmentLock(self.directory, self.inventory_name, command)

    def secrets(self) -> Secrets:
        return SecretStore(self.directory / "secrets.json")

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


def open_state(inventory: Inventory) -> StateBackend:
    """The inventory's state backend."""
    return FileState(inventory.state_dir, inventory.name)
