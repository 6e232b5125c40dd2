"""A run's clients, one per provider, each made on first use and all closed when the run ends.

The database admin connections (psycopg), the AWS clients (boto3), the database
provider's API client (Neon's), the hosting platform's (Railway's) and the SSH
connections to service hosts. Which of them exist, and how they are made, is the
providers'; this object only makes each once, lazily, and closes whatever was made,
on every path (`close` never raises for one client and skips the rest).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .providers.base import RetryHook

if TYPE_CHECKING:
    from .inventory import Inventory
    from .providers.aws import AwsClients
    from .providers.postgres import Connections


class Clients:
    def __init__(self, inventory: Inventory, on_retry: RetryHook | None = None, aws: AwsClients | None = None):
        self.inventory = inventory
        self.on_retry = on_retry  # hears of retries made inside a client (Neon's)
        self._made: dict[str, Any] = {"aws": aws} if aws is not None else {}
        self._lock = threading.RLock()

    def _once(self, name: str, make):
        with self._lock:
            if name not in self._made:
                self._made[name] = make()
            return self._made[name]

    def provider_client(self, area: str) -> Any:
        """The API client of the provider of `area` (None when it has none)."""
        return self._once(area, lambda: self.inventory.provider(area).open_client(self.inventory, self.on_retry))

    @property
    def pg(self) -> Connections:
        from .providers.postgres import Connections

        def resolve(dbname: str) -> dict:
            client = self.provider_client("database")
            return self.inventory.provider("database").admin_conninfo(self.inventory, dbname, client)

        return self._once("pg", lambda: Connections(self.inventory, resolve))

    @property
    def aws(self) -> AwsClients:
        from .providers.aws import AwsClients

        return self._once("aws", lambda: AwsClients(self.inventory))

    def forget(self) -> None:
        """After a change or a fault: API clients drop what they memoised."""
        with self._lock:
            made = list(self._made.values())
        for client in made:
            forget = getattr(client, "forget", None)
            if forget is not None:
                forget()

    def reset(self) -> None:
        """After a transient fault: drop the database connections (they may be broken)."""
        with self._lock:
            pg = self._made.get("pg")
        if pg is not None:
            pg.close()
        self.forget()

    def close(self) -> None:
        with self._lock:
            made, self._made = self._made, {}
        errors = []
        for client in made.values():
            if client is None or not hasattr(client, "close"):
                continue
            try:
                client.close()
            except Exception as exc:  # close every client, whatever one of them does
                errors.append(exc)
        if errors:
            raise errors[0]
