"""The `host.service` resource, one per (service, host) such as `host.service ai@ai-1`:
the service's system user, directories, env file, models and process on one of its own
SSH hosts. `read` turns the host's facts (`host_facts`) into its state, `diff` is pure,
`resolve` works out the desired state at the start of the run (it depends on the model
registry and the secrets file), and `apply` runs the commands `host_commands` builds,
part by part in the one safe order (user, directories, env file, models, process
definition, restart); undo is converging back, in the same order, the restart last.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .. import names
from ..errors import HealthInfraError, ProviderError
from ..inventory import Host, Inventory
from ..resource import Action, Resource, diff_attributes
from . import host_commands as cmd
from .host_facts import (
    current_state,
    download_model,
    host_facts,
    layout,
    model_file_name,
    registry_fact,
    service_user,
)

UNRESOLVED = {"resolve": "from the inventory, the model registry and the secrets file"}
ORDER = ("user", "directories", "env_file", "models", "definition", "process")
SHELL = "/usr/sbin/nologin"
HOME = "/nonexistent"  # Debian's home for system users that need none
SECRET_KEYS = ("DATABASE_URL",)  # env file values that are secrets (redacted from service output)


def desired_directories(user: str, paths: dict[str, str]) -> dict[str, str]:
    return {
        paths["base"]: f"root:{user}:750",  # the service reads here and may not rename what root runs
        paths["models"]: f"root:{user}:750",  # the service reads its models, never changes them
        paths["run"]: "root:root:700",
        paths["backup"]: "root:root:700",
    }


def inputs_fingerprint(env_file: dict, models: dict, definition: dict) -> str:
    """What the process runs with: a change to any part means a restart (pure)."""
    blob = json.dumps({"env": env_file["content"], "models": models, "definition": definition}, sort_keys=True)
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class HostService(Resource):
    """A `runs_on: host` service prepared on one host over SSH. Its state:

        user         {home, shell} of the service's system user
        directories  {path: "owner:group:mode"}
        env_file     {content: "sha256:…", meta: "root:root:600"}
        models       {file: "sha256:…"}, the registry's active versions
        definition   {manager: systemd | pidfile, content: "sha256:…"}
        process      {running: true, inputs: "sha256:…"}, inputs being what it was started with

    Contents are compared by sha256 on the host, never uploaded blind. A file that is
    replaced or removed is first kept in `{base_dir}/.hc-backup/{sha256}` on the host,
    so undoing a change restores the exact bytes without any secret passing through
    the journal (which holds only checksums).
    """

    kind = "host.service"
    parallel_group = "hosts"  # the hosts of a group are converged at once
    isolated = True  # a host that fails, fails alone: the others' results stand
    unmanaged = (
        "the service's release under base_dir/app (or wherever start_command points): its own pipeline",
        "files in base_dir the runner did not put there: never touched; they keep base_dir from being removed",
    )

    def __init__(self, name, desired, *, host: dict, sources: dict | None = None):
        super().__init__(name, desired, host=host, sources=sources or {})

    @property
    def host(self) -> Host:
        return Host(**self.params["host"])

    @property
    def host_name(self) -> str:
        """What `--limit HOST` matches."""
        return self.params["host"]["name"]

    def paths(self, inv: Inventory) -> dict[str, str]:
        return layout(inv, self.host)

    # --- facts -------------------------------------------------------------
    def facts(self, ctx) -> dict[str, Any]:
        inv, host = ctx.inventory, self.host
        directories = desired_directories(service_user(inv, host.group), self.paths(inv))
        return host_facts(ctx, host, list(directories))

    def read(self, ctx):
        return current_state(self.facts(ctx), self.paths(ctx.inventory))

    # --- desired state -----------------------------------------------------
    def resolve(self, ctx) -> HostService:
        if self.desired != UNRESOLVED:
            return self
        inv, host = ctx.inventory, self.host
        paths = self.paths(inv)
        user = service_user(inv, host.group)
        models, sources = {}, {}
        for row in registry_fact(ctx):
            file_name = model_file_name(row["name"], row["version"], row["s3_key"])
            models[file_name] = "sha256:" + row["checksum"]
            sources[file_name] = row["s3_key"]
        env_file = {"content": _sha(self.env_content(ctx, sorted(models))), "meta": "root:root:600"}
        manager = self.facts(ctx)["manager"]
        definition = {"manager": manager, "content": _sha(self.definition_content(ctx, manager))}
        desired = {
            "user": {"home": HOME, "shell": SHELL},
            "directories": desired_directories(user, paths),
            "env_file": env_file,
            "models": models,
            "definition": definition,
            "process": {"running": True, "inputs": inputs_fingerprint(env_file, models, definition)},
        }
        return HostService(self.name, desired, host=self.params["host"], sources=sources)

    def env_content(self, ctx, model_files: list[str]) -> bytes:
        from ..service_env import role_database_url

        inv, host = ctx.inventory, self.host
        service = next(s for s in inv.services if s.name == host.group)
        secret = f"pg.{service.db_role}"
        password = ctx.secrets.get(secret)
        if password is None and ctx.check:
            url = "(a password this run creates)"
        else:  # the db playbook creates the role later in this run, with this same password
            password = password or ctx.secrets.get_or_create(secret)
            url = role_database_url(inv, service.db_role, password, ctx.database_api).reveal()
        return cmd.env_file(inv, host, self.paths(inv), database_url=url, model_files=model_files)

    def definition_content(self, ctx, manager: str) -> bytes:
        inv, host = ctx.inventory, self.host
        user = service_user(inv, host.group)
        return cmd.definition_file(inv, host, self.paths(inv), user=user, manager=manager)

    def diff(self, current, desired):
        return diff_attributes(current, desired)

    def noop_reason(self, current):
        return "absent, as wanted" if current is None else "prepared, nothing to change"

    def depends_on(self):
        return [f"pg.role {names.db_role(self.host.group)}"]

    # --- apply -------------------------------------------------------------
    def apply(self, ctx, actions: list[Action]) -> None:
        if any(a.op == "delete" for a in actions):
            return self._remove(ctx)
        if any(a.op == "create" for a in actions):
            wanted = next(a.after for a in actions if a.op == "create")
            current = {
                "user": None,
                "directories": {},
                "env_file": None,
                "models": {},
                "definition": None,
                "process": {"running": False, "inputs": None},
            }
        else:
            wanted = dict(self.read(ctx) or {})
            current = dict(wanted)
            for action in actions:
                wanted[action.attribute] = action.after
        run = _Remote(ctx, self)
        run.fetch_models(current.get("models") or {}, wanted.get("models") or {})  # verified before any change
        for attribute in ORDER:
            if wanted.get(attribute) != current.get(attribute):
                getattr(run, f"set_{attribute}")(current.get(attribute), wanted[attribute], wanted)

    def _remove(self, ctx) -> None:
        _Remote(ctx, self).remove_everything()


class _Remote:
    """Moves one host from one state to another, part by part in ORDER, running `host_commands`."""

    def __init__(self, ctx, resource: HostService):
        self.ctx, self.resource = ctx, resource
        self.inv, self.host = ctx.inventory, resource.host
        self.paths = resource.paths(self.inv)
        self.user = service_user(self.inv, self.host.group)
        self.kept = set(resource.facts(ctx)["backups"])  # checksums the host keeps a copy of, for undo

    def sh(self, command: str, check: bool = True):
        return self.ctx.hosts.run(self.host, command, check=check)

    def set_user(self, before, after, wanted) -> None:
        if after is None:
            self.sh(cmd.remove_user(self.user))
            return
        self.sh(cmd.ensure_user(self.user, after["home"], after["shell"]))

    def set_directories(self, before, after, wanted) -> None:
        self.sh(cmd.make_directories(after, self.host.user, self.paths["staging"]))

    # files ------------------------------------------------------------------
    def _install(self, data: bytes | None, source_path: str | None, target: str, meta: str, want_sha: str) -> None:
        """Stage the bytes (or restore them from a backup), check them, and move them into place."""
        staged = cmd.staged_path(self.paths["staging"], target)
        if data is not None or source_path is not None:
            self.sh(cmd.make_staging(self.host.user, self.paths["staging"]))
            if data is not None:
                self.ctx.hosts.upload(self.host, data, staged)
            else:
                self.ctx.hosts.upload_file(self.host, source_path, staged)
            origin = staged
        else:
            origin = cmd.backup_path(self.paths["backup"], want_sha)
            if want_sha not in self.kept:
                raise ProviderError(
                    f"host {self.host.name}: cannot restore {target} to {want_sha}: no copy in {self.paths['backup']};"
                    " deploy again to converge instead"
                )
        self.sh(cmd.install_file(origin, target, meta, want_sha, staged=staged, backup=self.paths["backup"]))

    def _remove_file(self, path: str) -> None:
        self.sh(cmd.remove_file(path, self.paths["backup"]))

    def set_env_file(self, before, after, wanted) -> None:
        target = self.paths["env_file"]
        if after is None:
            return self._remove_file(target)
        data = self.resource.env_content(self.ctx, sorted(wanted.get("models") or {}))
        fresh = _sha(data) == after["content"]
        self._install(data if fresh else None, None, target, after["meta"], after["content"])

    def set_models(self, before, after, wanted) -> None:
        before = before or {}
        for file_name in sorted(set(before) - set(after)):
            self._remove_file(f"{self.paths['models']}/{file_name}")
        for file_name, sha in sorted(after.items()):
            if before.get(file_name) == sha:
                continue
            target = f"{self.paths['models']}/{file_name}"
            meta = f"root:{self.user}:640"
            if sha in self.kept:
                self._install(None, None, target, meta, sha)
                continue
            s3_key = self.resource.params["sources"].get(file_name)
            if s3_key is None:
                raise ProviderError(
                    f"host {self.host.name}: model {file_name} ({sha}) is neither in the registry"
                    " nor kept on the host; deploy again to converge to the registry"
                )
            local = download_model(self.ctx, s3_key, sha)
            self._install(None, local, target, meta, sha)

    def fetch_models(self, before: dict, after: dict) -> None:
        """Download and verify every model that will change (and that the host keeps no copy of,
        as when an undo puts an earlier version back), so a bad one stops the apply before the
        host is touched."""
        for file_name, sha in sorted(after.items()):
            s3_key = self.resource.params["sources"].get(file_name)
            if before.get(file_name) != sha and sha not in self.kept and s3_key is not None:
                download_model(self.ctx, s3_key, sha)

    # the process ------------------------------------------------------------
    def set_definition(self, before, after, wanted) -> None:
        if after is None:
            return
        data = self.resource.definition_content(self.ctx, after["manager"])
        fresh = _sha(data) == after["content"]
        if after["manager"] == "systemd":
            self._install(data if fresh else None, None, self.paths["unit"], "root:root:644", after["content"])
            self.sh(cmd.enable_unit(self.paths["unit_name"]))
        else:
            self._install(data if fresh else None, None, self.paths["run_script"], "root:root:700", after["content"])

    def set_process(self, before, after, wanted) -> None:
        if not after or not after.get("running"):
            return self.stop()
        manager = (wanted.get("definition") or {}).get("manager", "pidfile")
        if manager == "systemd":
            self.sh(cmd.restart_unit(self.paths["unit_name"]))
        else:
            self.stop()
            self.sh(cmd.start_detached(self.paths))
        self.sh(cmd.record_inputs(after["inputs"], self.paths))
        if self.sh(cmd.still_alive(manager, self.paths), check=False)[0] != 0:
            log = self.sh(cmd.log_tail(self.paths), check=False)[1].strip()
            try:
                log = cmd.redact(log, self.known_secrets(wanted))
            except HealthInfraError:
                log = "(not shown: the secrets to hide from it could not be read)"
            raise ProviderError(
                f"host {self.host.name}: {self.host.group} exited right after its start;"
                f" last lines of {self.paths['log']}: {log[-400:] or '(empty)'}"
            )

    def known_secrets(self, wanted: dict) -> list[str]:
        """Every secret value this run knows that the service's output may print: its env file's
        DATABASE_URL and password (as written and URL-decoded), and each secret of the run's
        secrets store. Read only when output is about to be quoted (a failure)."""
        from urllib.parse import unquote, urlsplit

        values = []
        data = self.resource.env_content(self.ctx, sorted(wanted.get("models") or {})).decode()
        for line in data.splitlines():
            key, _, value = line.partition("=")
            if key in SECRET_KEYS and value:
                password = urlsplit(value).password or ""
                values += [value, password, unquote(password)]
        secrets = self.ctx.secrets
        for name in secrets.names():
            secret = secrets.get(name)
            if secret is not None:
                values.append(secret.reveal())
        return values

    def stop(self) -> None:
        self.sh(cmd.stop_process(self.paths))

    def remove_everything(self) -> None:
        """Stop, then remove what the runner put there; files it did not put there stay, and say so."""
        p = self.paths
        self.stop()
        self.sh(cmd.remove_unit(p))
        self.sh(cmd.remove_files(p))
        code, out, _ = self.sh(cmd.remove_directories(p), check=False)
        left = out.split()
        if left:
            raise ProviderError(
                f"host {self.host.name}: {p['base']} still holds {', '.join(left[:5])}, which the runner did not put"
                " there; move them away and run again (nothing of ours is left but the directory and the user)"
            )
        self.set_user(None, None, {})
