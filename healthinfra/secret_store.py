"""Secrets: a value type that never prints, and the 0600 file that keeps them.

A secret is wrapped in `Secret` the moment it is read or generated, so logs,
journal lines, exceptions and reprs show `***`. Resources refer to secrets by
name (a reference), never by value; only the code that talks to a server calls
`reveal()`.
"""

from __future__ import annotations

import json
import os
import secrets as _random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .files import PRIVATE_DIR, PRIVATE_FILE, write_private


class Secret:
    """A secret value that prints as `***` everywhere."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def generate_password() -> Secret:
    """A 32-character URL-safe password: no quoting trouble in DSNs or env files."""
    return Secret(_random.token_urlsafe(24))


_NAME_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_NAME_LOCKS_LOCK = threading.Lock()


def name_lock(store: str, name: str) -> threading.Lock:
    """The one lock of this process for creating secret `name` in `store` (every store object
    of one place shares it, so two threads never each create a different value)."""
    with _NAME_LOCKS_LOCK:
        return _NAME_LOCKS.setdefault((store, name), threading.Lock())


class SecretStore:
    """Named secrets in a JSON file readable only by its owner (mode 0600): the file backend
    of an environment's secrets (`state.py`).

    Writes are atomic (a temporary file of a unique name in the same directory, fsync,
    rename: `files.write_private`), so a killed run leaves either the old file or the new
    one, never half of one. Every read-modify-write holds an `flock` on a lock file beside
    it (`.secrets.json.lock`, 0600), so two processes never both create a name or lose each
    other's writes; within a process, creating a name is serialised per name as well.
    """

    def __init__(self, path: Path):
        self.path = path
        self.location = str(path)
        self._lock = threading.RLock()  # a run's threads (its hosts) share one store: one password per name

    def _load(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):  # never echo the file: it holds secrets
            from .errors import HealthInfraError

            raise HealthInfraError(
                f"{self.path}: the secrets file is damaged (not a JSON object); restore it from your backup,"
                " or move it aside and rotate every service password"
            )
        return data

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold the file's lock (other processes wait); the kernel frees it if we die."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
        fd = os.open(self.path.with_name(f".{self.path.name}.lock"), os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    def get(self, name: str) -> Secret | None:
        value = self._load().get(name)
        return Secret(value) if value is not None else None

    def get_or_create(self, name: str) -> Secret:
        """The secret `name`, created once: whoever creates it first (a thread, another process),
        every caller gets that one value."""
        existing = self.get(name)
        if existing is not None:
            return existing
        with name_lock(str(self.path.resolve()), name), self._lock, self._exclusive():
            data = self._load()  # read again under the lock: another creator may have won
            if data.get(name) is not None:
                return Secret(data[name])
            created = generate_password()
            data[name] = created.reveal()
            self._write(data)
            return created

    def put(self, name: str, value: Secret) -> None:
        with self._lock, self._exclusive():
            data = self._load()
            data[name] = value.reveal()
            self._write(data)

    def delete(self, name: str) -> None:
        with self._lock, self._exclusive():
            data = self._load()
            if data.pop(name, None) is not None:
                self._write(data)

    def names(self) -> list[str]:
        return sorted(self._load())

    def _write(self, data: dict[str, str]) -> None:
        write_private(self.path, json.dumps(data, indent=1, sort_keys=True))
