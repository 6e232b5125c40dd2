"""What a run carries: the inventory, its mode, secrets, connections and gathered facts.

Passed explicitly to every resource (`ctx`); nothing lives in module globals.
Facts are gathered in batches, one query or list call per family of resources,
memoised for the run, and all forgotten after any change is applied.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .inventory import Inventory
from .providers.aws import AwsClients
from .providers.postgres import Connections
from .secret_store import SecretStore

_MISSING = object()


class RunContext:
    def __init__(self, inventory: Inventory, *, check: bool = False, destroy_data: bool = False):
        self.inventory = inventory
        self.check = check
        self.destroy_data = destroy_data
        self.secrets = SecretStore(inventory.state_dir / "secrets.json")
        self.provider_retries = 0  # retries made inside a provider's client (Neon's), for the recap
        self.neon = None
        resolve = None
        if inventory.providers["database"] == "neon":
            from .providers.neon import NeonClient

            self.neon = NeonClient(inventory, on_retry=self._count_provider_retry)
            resolve = self._neon_admin_conninfo
        self.pg = Connections(inventory, resolve)
        self.aws = AwsClients(inventory)
        self._facts: dict[str, Any] = {}
        self._loading: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._hosts = None
        self._downloads: dict[str, Any] = {}
        self.temporary_files: list[str] = []  # removed when the run closes
        self.isolated_failures: set[int] = set()  # items (hosts) that failed alone; the run went on
        self.planned_deletions: set[str] = set()  # resource keys this run deletes, known after preflight
        self.planned_creations: set[str] = set()  # and those it creates

    def fact(self, key: str, loader: Callable[[], Any]) -> Any:
        """Memoised for the run; concurrent callers of one key load it once."""
        value = self._facts.get(key, _MISSING)  # one lookup: another thread may forget all at any time
        if value is not _MISSING:
            return value
        with self._guard:
            lock = self._loading.setdefault(key, threading.Lock())
        with lock:
            value = self._facts.get(key, _MISSING)
            if value is _MISSING:
                value = self._facts[key] = loader()
            return value

    @property
    def hosts(self):
        """SSH connections to the inventory's hosts, opened on first use."""
        with self._guard:
            if self._hosts is None:
                from .providers.ssh import HostConnections

                self._hosts = HostConnections()
            return self._hosts

    def download_once(self, key: str, loader: Callable[[], Any]) -> Any:
        """Like `fact`, but kept for the whole run: a download serves every host."""
        with self._guard:
            lock = self._loading.setdefault(f"download:{key}", threading.Lock())
        with lock:
            if key not in self._downloads:
                self._downloads[key] = loader()
            return self._downloads[key]

    def _count_provider_retry(self, exc, attempt) -> None:
        with self._guard:
            self.provider_retries += 1

    def _neon_admin_conninfo(self, dbname: str) -> dict:
        from .providers import neon
        from .resources.neon import target_fact

        assert self.neon is not None
        return neon.conninfo(neon.owner_uri(self.neon, self.inventory, target_fact(self), dbname))

    def forget_all(self) -> None:
        self._facts.clear()

    def reset_connections(self) -> None:
        """After a transient fault: drop cached connections and facts, start clean."""
        self.pg.close()
        self.forget_all()

    _railway = None  # the Railway API client, made on first use

    @property
    def railway(self):
        """The run's Railway client (hosting: railway), shared by every resource and thread."""
        with self._guard:
            if self._railway is None:
                from .providers.railway import RailwayClient

                self._railway = RailwayClient(self.inventory)
            return self._railway

    def close(self) -> None:
        import os

        self.pg.close()
        if self._hosts is not None:
            self._hosts.close()
        for path in self.temporary_files:
            try:
                os.unlink(path)
            except OSError:
                pass
        if self._railway is not None:
            self._railway.close()
        if self.neon is not None:
            self.neon.close()
