"""Secrets: a value type that never prints, and the 0600 file that keeps them.

A secret is wrapped in `Secret` the moment it is read or generated, so logs,
journal lines, exceptions and reprs show `***`. Resources refer to secrets by
name (a reference), never by value; only the code that talks to a server calls
`reveal()`.
"""

from __future__ import annotations

import json
import secrets as _random
import threading
from pathlib import Path

from .files import write_private


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


class SecretStore:
    """Named secrets in a JSON file readable only by its owner (mode 0600): the file backend
    of an environment's secrets (`state.py`).

    Writes are atomic (temporary file, fsync, rename), so a killed run leaves
    either the old file or the new one, never half of one.
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

    def get(self, name: str) -> Secret | None:
        value = self._load().get(name)
        return Secret(value) if value is not None else None

    def get_or_create(self, name: str) -> Secret:
        with self._lock:
            existing = self.get(name)
            if existing is not None:
                return existing
            created = generate_password()
            self.put(name, created)
            return created

    def put(self, name: str, value: Secret) -> None:
        with self._lock:
            data = self._load()
            data[name] = value.reveal()
            self._write(data)

    def delete(self, name: str) -> None:
        with self._lock:
            data = self._load()
            if data.pop(name, None) is not None:
                self._write(data)

    def names(self) -> list[str]:
        return sorted(self._load())

    def _write(self, data: dict[str, str]) -> None:
        write_private(self.path, json.dumps(data, indent=1, sort_keys=True))
