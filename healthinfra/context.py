"""What a run hands every resource: the inventory, the options, the clients, the facts, the state.

`RunContext` is a context manager: whatever happens inside, its clients are closed and
its temporary files removed on the way out. The parts are separate objects — the
options (`options.py`, fixed), the clients (`clients.py`, made lazily), the facts
(`facts.py`, memoised until a change) and the state backend (`state.py`: journal, lock,
secrets) — and the context only gives resources short ways to them. Nothing lives in
module globals.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .clients import Clients
from .facts import Facts
from .options import RunOptions
from .state import StateBackend, open_state

if TYPE_CHECKING:
    from .inventory import Inventory

T = TypeVar("T")


class RunContext:
    def __init__(
        self,
        inventory: Inventory,
        options: RunOptions | None = None,
        *,
        check: bool = False,
        destroy_data: bool = False,
        state: StateBackend | None = None,
    ):
        self.inventory = inventory
        self.options = options or RunOptions(check=check, destroy_data=destroy_data)
        self.state = state or open_state(inventory)
        self.secrets = self.state.secrets()
        self.facts = Facts()
        self.clients = Clients(
            inventory, on_retry=self._count_provider_retry, aws=getattr(self.state, "aws_clients", None)
        )
        self.temporary_files: list[str] = []  # removed when the run closes
        self.planned_deletions: frozenset[str] = frozenset()  # resource keys this run deletes (after preflight)
        self.provider_retries = 0  # retries made inside a provider's client (Neon's), for the recap
        self._guard = threading.Lock()
        self._notices: dict[str, list[str]] = {}  # resource key -> what its apply had to say

    # --- what an apply says --------------------------------------------------------------
    def notice(self, key: str, text: str) -> None:
        """Something the person running should know of resource `key`'s apply (an index rebuilt)."""
        with self._guard:
            self._notices.setdefault(key, []).append(text)

    def take_notices(self, key: str) -> list[str]:
        with self._guard:
            return self._notices.pop(key, [])

    # --- the options ---------------------------------------------------------------------
    @property
    def check(self) -> bool:
        return self.options.check

    @property
    def destroy_data(self) -> bool:
        return self.options.destroy_data

    # --- the facts -----------------------------------------------------------------------
    def fact(self, key: str, loader: Callable[[], T]) -> T:
        return self.facts.get(key, loader)

    def download_once(self, key: str, loader: Callable[[], T]) -> T:
        return self.facts.download_once(key, loader)

    def forget_all(self) -> None:
        """After a change: every fact, and what the API clients memoised, is read again."""
        self.facts.forget_all()
        self.clients.forget()

    def reset_connections(self) -> None:
        """After a transient fault: drop cached connections and facts, start clean."""
        self.clients.reset()
        self.facts.forget_all()

    # --- the clients ---------------------------------------------------------------------
    @property
    def pg(self):
        return self.clients.pg

    @property
    def aws(self):
        return self.clients.aws

    @property
    def database_api(self) -> Any:
        """The database provider's API client (Neon's), shared by every resource and thread."""
        return self.clients.provider_client("database")

    neon = database_api  # the Neon resources' name for it

    @property
    def railway(self) -> Any:
        """The hosting platform's API client (Railway's)."""
        return self.clients.provider_client("hosting")

    @property
    def hosts(self) -> Any:
        """SSH connections to the inventory's hosts, opened on first use."""
        return self.clients.provider_client("hosts")

    def _count_provider_retry(self, exc: BaseException, attempt: int) -> None:
        with self._guard:
            self.provider_retries += 1

    # --- the end -------------------------------------------------------------------------
    def close(self) -> None:
        try:
            self.clients.close()
        finally:
            for path in self.temporary_files:
                try:
                    os.unlink(path)
                except OSError:
                    pass

    def __enter__(self) -> RunContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
