"""What every provider is: an object owning its inventory settings, credentials and client.

As in Terraform's plugin framework (`provider.Provider`: Schema, Configure, Resources),
a provider validates its own settings (`schema`, `validate`), checks its credentials
before anything runs (`check_credentials`), makes its client once per run, lazily
(`open_client`; the run closes it on every path), reports on the servers it runs on
this machine (`start`, `stop`, `status`), and lists the resource kinds it offers
(`offers`). Code outside `healthinfra/providers/` asks a provider object these
questions and never which provider is in use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import InventoryError
from ..schema import ENV_VAR, Schema, check_keys

if TYPE_CHECKING:
    from ..inventory import Inventory, Service

RetryHook = Callable[[BaseException, int], None]


@dataclass(frozen=True)
class Where:
    """What a provider's settings are checked against: the file they come from and the
    parts of the inventory they may refer to."""

    file: str
    prefix: str
    environment: str
    services: tuple[Service, ...]


class Provider:
    """Base of every provider. Subclasses set the class attributes and override what applies."""

    area: ClassVar[str] = ""  # the inventory's `providers.AREA` key: database, aws, hosting, hosts
    name: ClassVar[str] = ""  # its value there
    schema: ClassVar[Schema] = {}  # the settings under the inventory's AREA key
    resource_kinds: ClassVar[frozenset[str]] = frozenset()
    local_service: ClassVar[str] = ""  # a server this machine runs for it (`invoke local.up`), named for people
    status_key: ClassVar[str] = ""  # its key in `local.status --json`

    def __init__(self, settings: dict[str, Any]):
        self.settings = settings

    @classmethod
    def check(cls, raw: Any, file: str) -> None:
        """The settings' keys, types and values on their own (before the rest of the inventory)."""
        if not isinstance(raw, dict):
            raise InventoryError(f"{file}: `{cls.area}` must be a mapping of settings")
        check_keys(raw, cls.schema, file, f"{cls.area}.")
        for key, value in raw.items():
            if key.endswith("_env") and not ENV_VAR.match(value):
                raise InventoryError(
                    f"{file}: `{cls.area}.{key}` names an environment variable holding a secret;"
                    f" write its name (like `NEON_API_KEY`), never the secret itself"
                )
            if key == "port" and not 1024 <= value <= 65535:
                raise InventoryError(f"{file}: `{cls.area}.port` must be between 1024 and 65535, got `{value}`")
        cls.check_values(raw, file)

    @classmethod
    def check_values(cls, settings: dict[str, Any], file: str) -> None:
        """A provider's own rules for single values (an account id's form…)."""

    @classmethod
    def load(cls, raw: Any, where: Where) -> Provider:
        """The provider configured by the inventory's settings for its area, or InventoryError."""
        cls.check(raw, where.file)
        return cls(cls.validate(dict(raw), where))

    @classmethod
    def validate(cls, settings: dict[str, Any], where: Where) -> dict[str, Any]:
        """Settings made concrete (defaults filled in) against the rest of the inventory."""
        return settings

    def offers(self, kind: str) -> bool:
        """Whether this provider's resources include `kind` (a resource type's `kind`)."""
        return kind in self.resource_kinds

    def check_credentials(self, inventory: Inventory) -> None:
        """Refuse (InventoryError, exit 2) before any call when a credential is missing."""

    def open_client(self, inventory: Inventory, on_retry: RetryHook | None = None) -> Any:
        """The run's client for this provider (made once, on first use), or None."""
        return None

    # --- servers this machine runs for the provider (the embedded default) ---------------
    def start(self, inventory: Inventory) -> dict[str, Any]:
        raise InventoryError(f"{inventory.path.name}: `providers.{self.area}` runs nothing on this machine")

    def stop(self, inventory: Inventory) -> None:
        """Stop the local server, keeping its data."""

    def status(self, inventory: Inventory) -> dict[str, Any]:
        """`running`, `pid` and where to reach the local server."""
        return {"running": True, "pid": None}

    def describe(self, status: dict[str, Any]) -> tuple[str, str]:
        """(label, where) of the local server for people: `postgres`, its DSN or URL."""
        return self.status_key, ""

    stopped_note = "stopped"  # what `local.down` says it did

    def started(self, status: dict[str, Any]) -> str:
        """What `local.up` says once the server runs."""
        return f"running (pid {status.get('pid')})"

    def __repr__(self) -> str:
        return f"<provider {self.area}: {self.name}>"
