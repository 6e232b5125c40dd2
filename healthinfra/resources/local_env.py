"""The local hosting provider: one env file per hosted service, for a developer to start it.

`state/INVENTORY/services/SERVICE.env` holds `NAME=value` lines, the same variables a
Railway service would get (healthinfra/service_env.py). It is created 0600 from the
start and replaced atomically (temporary file, fsync, rename), so it is never
readable by others and never half written. Its state shows DATABASE_URL only by
reference or digest (see service_env), so neither the journal nor `--diff` ever
holds the password.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ProviderError
from ..files import write_private
from ..resource import Resource, diff_attributes
from ..secret_store import Secret
from ..service_env import SECRET_VARIABLES, current_database_url, database_url, needs_keeping, observed, resolve, stash

FILE_MODE = "0600"
HEADER = "# Written by healthcare-infra for `{service}` ({inventory}); every deploy rewrites it. Keep it private.\n"


def env_file_path(inventory, service: str) -> Path:
    return inventory.state_dir / "services" / f"{service}.env"


def parse_env_file(text: str) -> dict[str, str]:
    variables = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        variables[name.strip()] = value
    return variables


def render_env_file(service: str, inventory: str, variables: dict[str, str]) -> str:
    for name, value in variables.items():
        if "\n" in value or "\r" in value:
            raise ProviderError(f"variable `{name}` of `{service}` holds a line break; an env file cannot carry it")
    return HEADER.format(service=service, inventory=inventory) + "".join(
        f"{name}={value}\n" for name, value in sorted(variables.items())
    )


class EnvFile(Resource):
    """A hosted service's env file: its variables and its mode."""

    kind = "local.env_file"
    unmanaged = ("comments and blank lines: rewritten on every change",)

    def __init__(self, name, desired, *, inventory: str):
        super().__init__(name, desired, inventory=inventory)

    def path(self, ctx) -> Path:
        return env_file_path(ctx.inventory, self.name)

    def service(self, ctx):
        for service in ctx.inventory.services:
            if service.name == self.name:
                return service
        raise ProviderError(f"no service `{self.name}` in services.yml; its env file cannot be written")

    def wanted_url(self, ctx):
        """The service's database URL now, or None if its role has no password yet."""
        return current_database_url(ctx.inventory, self.name, ctx.secrets, ctx.database_api)

    def read(self, ctx):
        path = self.path(ctx)
        try:
            text = path.read_text(encoding="utf-8")
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            return None
        raw = parse_env_file(text)
        return self.parse(raw, mode, self.wanted_url(ctx) if SECRET_VARIABLES & raw.keys() else None)

    @staticmethod
    def parse(raw: dict[str, str], mode: int, wanted: Secret | None) -> dict:
        """The file's variables (`parse_env_file`), its permission bits and the service's database
        URL now (None: no password yet, or no secret variable in the file) -> the managed attributes,
        secret values by reference or digest only. Pure."""
        return {
            "variables": {name: observed(name, value, wanted) for name, value in sorted(raw.items())},
            "mode": f"{mode:04o}",
        }

    def diff(self, current, desired):
        return diff_attributes(current, desired)

    def noop_reason(self, current):
        return "absent, as wanted" if current is None else f"up to date ({len(current['variables'])} variables)"

    def apply(self, ctx, actions):
        path = self.path(ctx)
        if any(a.op == "delete" for a in actions):
            self._keep_secrets(ctx, path)
            path.unlink(missing_ok=True)
            return
        desired = self.desired
        service = self.service(ctx)
        values = {
            name: resolve(
                value, ctx.secrets, lambda: database_url(ctx.inventory, service, ctx.secrets, ctx.database_api)
            )
            for name, value in desired["variables"].items()
        }
        self._keep_secrets(ctx, path)
        write_private(path, render_env_file(self.name, ctx.inventory.name, values))

    def _keep_secrets(self, ctx, path: Path) -> None:
        """Before a file is replaced or removed, keep its secret values where undo finds them."""
        try:
            raw = parse_env_file(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        secret = SECRET_VARIABLES & raw.keys()
        wanted = self.wanted_url(ctx) if secret else None
        for name in secret:
            if needs_keeping(name, raw[name], wanted):  # our own role's URL is rebuilt, never kept
                stash(ctx.secrets, raw[name])
