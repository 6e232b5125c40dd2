"""What a run carries: the inventory, its mode, secrets, connections and gathered facts.

Passed explicitly to every resource (`ctx`); nothing lives in module globals.
Facts are gathered in batches, one query or list call per family of resources,
memoised for the run, and all forgotten after any change is applied.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from .inventory import Inventory
from .providers.aws import AwsClients
from .providers.postgres import Connections
from .secret_store import SecretStore


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
        self.planned_deletions: set[str] = set()  # resource keys this run deletes, known after preflight
        self.planned_creations: set[str] = set()  # and those it creates

    def fact(self, key: str, loader: Callable[[], Any]) -> Any:
        """Memoised for the run; concurrent callers of one key load it once."""
        if key in self._facts:
            return self._facts[key]
        with self._guard:
            lock = self._loading.setdefault(key, threading.Lock())
        with lock:
            if key not in self._facts:
                self._facts[key] = loader()
            return self._facts[key]

    def _count_provider_retry(self, exc, attempt) -> None:
        with self._guard:
            self.provider_retries += 1

    def _neon_admin_conninfo(self, dbname: str) -> dict:
        from .resources.neon import target_fact
        from .providers import neon

        return neon.conninfo(neon.owner_uri(self.neon, self.inventory, target_fact(self), dbname))

    def forget_all(self) -> None:
        self._facts.clear()

    def reset_connections(self) -> None:
        """After a transient fault: drop cached connections and facts, start clean."""
        self.pg.close()
        self.forget_all()

    def close(self) -> None:
        self.pg.close()
        if self.neon is not None:
            self.neon.close()
