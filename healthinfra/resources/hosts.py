"""A service on one of its own SSH hosts: user, directories, env file, models, process.

One resource per (service, host), `host.service ai@ai-1`, so that the parts are
applied in their one safe order (user, directories, env file, models, process
definition, restart) and undone in the same order by converging back, with the
restart last, after the files it loads are back. Its state:

    user         {home, shell} of the service's system user
    directories  {path: "owner:group:mode"}
    env_file     {content: "sha256:…", meta: "root:root:600"}
    models       {file: "sha256:…"}, the registry's active versions
    definition   {manager: systemd | pidfile, content: "sha256:…"}
    process      {running: true, inputs: "sha256:…"}, inputs being what it was started with

Contents are compared by sha256 on the host, never uploaded blind. A file that is
replaced or removed is first kept in `{base_dir}/.hc-backup/{sha256}` on the host,
so undoing a change restores the exact bytes without any secret passing through
the journal (which holds only checksums). The desired state depends on the
registry and the secrets file, so it is worked out by `resolve()` at the start of
the run; `diff` stays pure.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from typing import Any

from .. import names
from ..errors import HealthInfraError, ProviderError
from ..inventory import Host, Inventory
from ..resource import Action, Resource, diff_attributes

UNRESOLVED = {"resolve": "from the inventory, the model registry and the secrets file"}
ORDER = ("user", "directories", "env_file", "models", "definition", "process")
SHELL = "/usr/sbin/nologin"
HOME = "/nonexistent"  # Debian's home for system users that need none
BACKUP = ".hc-backup"
STAGING = ".hc-staging"
MODEL_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


class ChecksumMismatch(ProviderError):
    """A model's bytes are not what the registry says: it is never installed."""


def service_user(inv: Inventory, service: str) -> str:
    return names.host_system_user(inv, service)


def layout(inv: Inventory, host: Host) -> dict[str, str]:
    """Where everything lives on the host (pure)."""
    base = host.base_dir
    service = host.group
    return {
        "base": base,
        "models": f"{base}/models",
        "run": f"{base}/run",
        "backup": f"{base}/{BACKUP}",
        "staging": f"{base}/{STAGING}",
        "env_file": f"{base}/{service}.env",
        "pid": f"{base}/run/{service}.pid",
        "log": f"{base}/run/{service}.log",
        "inputs": f"{base}/run/inputs",
        "run_script": f"{base}/run/{service}.sh",
        "unit_name": names.host_unit(inv, service),
        "unit": f"/etc/systemd/system/{names.host_unit(inv, service)}",
    }


def model_file_name(name: str, version: str, s3_key: str) -> str:
    """`{name}-{version}{extension of the S3 key}` (pure): one file per active model."""
    tail = s3_key.rsplit("/", 1)[-1]
    extension = "." + tail.rsplit(".", 1)[1] if "." in tail else ""
    file_name = f"{name}-{version}{extension}"
    if not set(file_name) <= MODEL_NAME_CHARS or file_name.startswith("."):
        raise ProviderError(f"model registry: `{name}` version `{version}` makes the unsafe file name `{file_name}`")
    return file_name


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


def parse_facts(text: str) -> dict[str, Any]:
    """The one-shot fact script's output, parsed (pure)."""
    facts: dict[str, Any] = {
        "manager": "pidfile",
        "user": None,
        "directories": {},
        "env_file": None,
        "models": {},
        "definitions": {},
        "inputs": None,
        "running": False,
        "backups": set(),
    }
    env_meta = env_sha = None
    for line in text.splitlines():
        tag, _, rest = line.partition(" ")
        if tag == "manager":
            facts["manager"] = rest.strip()
        elif tag == "user":
            home, _, shell = rest.partition(" ")
            facts["user"] = {"home": home, "shell": shell.strip()}
        elif tag == "dir":
            meta, _, path = rest.partition(" ")
            facts["directories"][path] = meta
        elif tag == "envmeta":
            env_meta = rest.strip()
        elif tag == "envsha":
            env_sha = rest.split()[0]
        elif tag == "model":
            sha, _, path = rest.partition(" ")
            facts["models"][path.strip().lstrip("*").rsplit("/", 1)[-1]] = "sha256:" + sha
        elif tag == "definition":
            sha, _, path = rest.partition(" ")
            facts["definitions"][path.strip().lstrip("*")] = "sha256:" + sha
        elif tag == "inputs":
            facts["inputs"] = rest.strip() or None
        elif tag == "running":
            facts["running"] = True
        elif tag == "backup":
            facts["backups"].add("sha256:" + rest.strip())
    if env_sha is not None:
        facts["env_file"] = {"content": "sha256:" + env_sha, "meta": env_meta}
    return facts


def fact_script(user: str, paths: dict[str, str], directories: list[str]) -> str:
    q = shlex.quote
    dirs = " ".join(q(d) for d in directories)
    return f"""
if [ -d /run/systemd/system ]; then echo manager systemd; else echo manager pidfile; fi
getent passwd {q(user)} | awk -F: '{{print "user " $6 " " $7}}'
for d in {dirs}; do [ -d "$d" ] && stat -c 'dir %U:%G:%a %n' "$d"; done
if [ -f {q(paths["env_file"])} ]; then stat -c 'envmeta %U:%G:%a' {q(paths["env_file"])};
  sha256sum {q(paths["env_file"])} | sed 's/^/envsha /'; fi
if [ -d {q(paths["models"])} ]; then for f in {q(paths["models"])}/*; do
  [ -f "$f" ] && sha256sum "$f" | sed 's/^/model /'; done; fi
for f in {q(paths["run_script"])} {q(paths["unit"])}; do [ -f "$f" ] && sha256sum "$f" | sed 's/^/definition /'; done
[ -f {q(paths["inputs"])} ] && echo "inputs $(cat {q(paths["inputs"])})"
if [ -d {q(paths["backup"])} ]; then for f in {q(paths["backup"])}/*; do [ -f "$f" ] && echo "backup ${{f##*/}}"; done; fi
if [ -d /run/systemd/system ]; then systemctl is-active --quiet {q(paths["unit_name"])} && echo running;
elif [ -f {q(paths["pid"])} ] && kill -0 "$(cat {q(paths["pid"])})" 2>/dev/null; then echo running; fi
true
"""


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class HostService(Resource):
    """A `runs_on: host` service prepared on one host over SSH (see the module docstring)."""

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
        def load():
            inv, host = ctx.inventory, self.host
            paths = self.paths(inv)
            user = service_user(inv, host.group)
            script = fact_script(user, paths, list(desired_directories(user, paths)))
            _, out, _ = ctx.hosts.run(host, script)
            return parse_facts(out)

        return ctx.fact(f"host:{self.host.name}:facts", load)

    def read(self, ctx):
        facts = self.facts(ctx)
        paths = self.paths(ctx.inventory)
        definition = None
        for path, manager in ((paths["unit"], "systemd"), (paths["run_script"], "pidfile")):
            if path in facts["definitions"]:
                definition = {"manager": manager, "content": facts["definitions"][path]}
        state = {
            "user": facts["user"],
            "directories": facts["directories"],
            "env_file": facts["env_file"],
            "models": facts["models"],
            "definition": definition,
            "process": {"running": facts["running"], "inputs": facts["inputs"]},
        }
        if (
            not any(state[k] for k in ("user", "directories", "env_file", "models", "definition"))
            and not facts["running"]
        ):
            return None
        return state

    # --- desired state -----------------------------------------------------
    def resolve(self, ctx) -> HostService:
        if self.desired != UNRESOLVED:
            return self
        inv, host = ctx.inventory, self.host
        paths = self.paths(inv)
        user = service_user(inv, host.group)
        registry = registry_fact(ctx)
        models, sources = {}, {}
        for row in registry:
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
        from ..templates import render

        inv, host = ctx.inventory, self.host
        service = next(s for s in inv.services if s.name == host.group)
        secret = f"pg.{service.db_role}"
        password = ctx.secrets.get(secret)
        if password is None and ctx.check:
            url = "(a password this run creates)"
        else:  # the db playbook creates the role later in this run, with this same password
            password = password or ctx.secrets.get_or_create(secret)
            url = role_database_url(inv, service.db_role, password).reveal()
        paths = self.paths(inv)
        text = render(
            "hosts/service.env.j2",
            service=service.name,
            host=host.name,
            database_url=url,
            region=inv.aws["region"],
            model_bucket=names.bucket(inv, "ml-models"),
            model_dir=paths["models"],
            models=model_files,
            log_group=names.log_group(inv, service.name),
            port=host.service_port,
        )
        return text.encode()

    def definition_content(self, ctx, manager: str) -> bytes:
        from ..templates import render

        inv, host = ctx.inventory, self.host
        paths = self.paths(inv)
        variables = dict(
            service=host.group,
            env=inv.environment,
            user=service_user(inv, host.group),
            base_dir=paths["base"],
            env_file=paths["env_file"],
            start_command=host.start_command,
            pid_file=paths["pid"],
        )
        template = "hosts/service.unit.j2" if manager == "systemd" else "hosts/service.run.j2"
        return render(template, **variables).encode()

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


def registry_fact(ctx) -> list[dict[str, str]]:
    """The registry's active models, one query for every host, on a connection of its own
    (host reads run in the read pool, beside the run's own PostgreSQL connection)."""

    def load():
        import psycopg

        from ..faults import provider_call
        from ..providers.postgres import admin_conninfo

        inv = ctx.inventory
        with provider_call("read the model registry"):
            try:
                info = admin_conninfo(inv, inv.database["name"])
            except HealthInfraError as exc:
                if type(exc).__name__ == "NotProvisioned":
                    return []  # a Neon branch this run creates: an empty registry
                raise
            try:
                conn = psycopg.connect(**info, connect_timeout=15, autocommit=True)
            except psycopg.OperationalError as exc:
                if "does not exist" in str(exc):
                    return []  # no database yet: this run creates it, with an empty registry
                raise
            with conn:
                if not conn.execute("select to_regclass('ml.model_registry') is not null").fetchone()[0]:
                    return []
                rows = conn.execute(
                    "select name, version, s3_key, checksum from ml.model_registry"
                    " where status = 'active' order by name"
                ).fetchall()
        return [{"name": n, "version": v, "s3_key": k, "checksum": c} for n, v, k, c in rows]

    return ctx.fact("ml.registry", load)


class _Remote:
    """The commands that move one host from one state to another, in ORDER."""

    def __init__(self, ctx, resource: HostService):
        self.ctx, self.resource = ctx, resource
        self.inv, self.host = ctx.inventory, resource.host
        self.paths = resource.paths(self.inv)
        self.user = service_user(self.inv, self.host.group)
        self.kept = set(resource.facts(ctx)["backups"])  # checksums the host keeps a copy of, for undo

    def sh(self, command: str, check: bool = True):
        return self.ctx.hosts.run(self.host, command, check=check)

    # user -------------------------------------------------------------------
    def set_user(self, before, after, wanted) -> None:
        q = shlex.quote
        if after is None:
            self.sh(f"userdel {q(self.user)} 2>/dev/null || ! getent passwd {q(self.user)} >/dev/null")
            return
        home, shell = q(after["home"]), q(after["shell"])
        # two hosts of a test may share one machine: a user made meanwhile is fine
        self.sh(
            f"getent passwd {q(self.user)} >/dev/null || useradd --system --user-group --no-create-home"
            f" --home-dir {home} --shell {shell} {q(self.user)} || getent passwd {q(self.user)} >/dev/null;"
            f" usermod --home {home} --shell {shell} {q(self.user)}"
        )

    # directories ------------------------------------------------------------
    def set_directories(self, before, after, wanted) -> None:
        q = shlex.quote
        commands = []
        for path, meta in sorted(after.items()):
            owner, group, mode = meta.split(":")
            commands.append(f"install -d -o {q(owner)} -g {q(group)} -m {q(mode)} {q(path)}")
        commands.append(f"install -d -o {q(self.host.user)} -m 700 {q(self.paths['staging'])}")
        self.sh(" && ".join(commands))

    # files ------------------------------------------------------------------
    def _backup(self, path: str) -> str:
        """Keep the file's bytes under .hc-backup/{sha} before it is replaced or removed."""
        q = shlex.quote
        backup = q(self.paths["backup"])
        return (
            f"if [ -f {q(path)} ]; then s=$(sha256sum {q(path)} | cut -d' ' -f1);"
            f" [ -f {backup}/$s ] || cp -p {q(path)} {backup}/$s; fi"
        )

    def _install(self, data: bytes | None, source_path: str | None, target: str, meta: str, want_sha: str) -> None:
        """Stage the bytes (or restore them from a backup), check them, and move them into place."""
        q = shlex.quote
        owner, group, mode = meta.split(":")
        staged = f"{self.paths['staging']}/{target.rsplit('/', 1)[-1]}"
        if data is not None or source_path is not None:
            self.sh(f"install -d -o {q(self.host.user)} -m 700 {q(self.paths['staging'])}")
            if data is not None:
                self.ctx.hosts.upload(self.host, data, staged)
            else:
                self.ctx.hosts.upload_file(self.host, source_path, staged)
            origin = staged
        else:
            origin = f"{self.paths['backup']}/{want_sha.removeprefix('sha256:')}"
            if want_sha not in self.kept:
                raise ProviderError(
                    f"host {self.host.name}: cannot restore {target} to {want_sha}: no copy in {self.paths['backup']};"
                    " deploy again to converge instead"
                )
        self.sh(
            f'set -e; umask 077; {self._backup(target)}; tmp={q(target)}.hc-new; cp {q(origin)} "$tmp";'
            f' chown {q(owner)}:{q(group)} "$tmp"; chmod {q(mode)} "$tmp";'
            f' test "$(sha256sum "$tmp" | cut -d\' \' -f1)" = {q(want_sha.removeprefix("sha256:"))};'
            f' mv -f "$tmp" {q(target)}; rm -f {q(staged)}'
        )

    def _remove_file(self, path: str) -> None:
        self.sh(f"{self._backup(path)}; rm -f {shlex.quote(path)}")

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

    def set_definition(self, before, after, wanted) -> None:
        q = shlex.quote
        if after is None:
            return
        data = self.resource.definition_content(self.ctx, after["manager"])
        fresh = _sha(data) == after["content"]
        if after["manager"] == "systemd":
            self._install(data if fresh else None, None, self.paths["unit"], "root:root:644", after["content"])
            self.sh(f"systemctl daemon-reload && systemctl enable --quiet {q(self.paths['unit_name'])}")
        else:
            self._install(data if fresh else None, None, self.paths["run_script"], "root:root:700", after["content"])

    def set_process(self, before, after, wanted) -> None:
        q = shlex.quote
        if not after or not after.get("running"):
            return self.stop()
        manager = (wanted.get("definition") or {}).get("manager", "pidfile")
        if manager == "systemd":
            self.sh(f"systemctl restart {q(self.paths['unit_name'])}")
        else:
            self.stop()
            self.sh(
                f"cd {q(self.paths['base'])} && (setsid sh {q(self.paths['run_script'])}"
                f" >> {q(self.paths['log'])} 2>&1 < /dev/null & echo $! > {q(self.paths['pid'])})"
            )
        self.sh(f"printf '%s\\n' {q(after['inputs'] or '')} > {q(self.paths['inputs'])}")
        alive = (
            "systemctl is-active --quiet " + q(self.paths["unit_name"])
            if manager == "systemd"
            else f'kill -0 "$(cat {q(self.paths["pid"])})" 2>/dev/null'
        )
        if self.sh(f"sleep 1; {alive}", check=False)[0] != 0:
            log = self.sh(f"tail -n 5 {q(self.paths['log'])} 2>/dev/null", check=False)[1].strip()
            raise ProviderError(
                f"host {self.host.name}: {self.host.group} exited right after its start;"
                f" last lines of {self.paths['log']}: {log[-400:] or '(empty)'}"
            )

    def stop(self) -> None:
        q = shlex.quote
        pid = q(self.paths["pid"])
        self.sh(
            f"if [ -d /run/systemd/system ] && [ -f {q(self.paths['unit'])} ]; then"
            f" systemctl stop {q(self.paths['unit_name'])}; fi;"
            f' if [ -f {pid} ]; then p=$(cat {pid}); kill "$p" 2>/dev/null || true;'
            f' for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done;'
            f' kill -9 "$p" 2>/dev/null || true; rm -f {pid}; fi'
        )

    def remove_everything(self) -> None:
        """Stop, then remove what the runner put there; files it did not put there stay, and say so."""
        q = shlex.quote
        p = self.paths
        self.stop()
        self.sh(
            f"if [ -f {q(p['unit'])} ]; then systemctl disable --quiet {q(p['unit_name'])} 2>/dev/null || true;"
            f" rm -f {q(p['unit'])}; systemctl daemon-reload 2>/dev/null || true; fi"
        )
        self.sh(
            f"rm -f {q(p['run_script'])} {q(p['inputs'])} {q(p['log'])} {q(p['env_file'])}"
            f" && rm -rf {q(p['backup'])} {q(p['staging'])}"
            f" && if [ -d {q(p['models'])} ]; then find {q(p['models'])} -maxdepth 1 -type f -delete; fi"
        )
        code, out, _ = self.sh(
            f"rmdir {q(p['models'])} {q(p['run'])} 2>/dev/null; rmdir {q(p['base'])} 2>/dev/null"
            f" || ls -A {q(p['base'])} 2>/dev/null",
            check=False,
        )
        left = out.split()
        if left:
            raise ProviderError(
                f"host {self.host.name}: {p['base']} still holds {', '.join(left[:5])}, which the runner did not put"
                " there; move them away and run again (nothing of ours is left but the directory and the user)"
            )
        self.set_user(None, None, {})


def download_model(ctx, s3_key: str, sha: str) -> str:
    """The model's bytes from the ml-models bucket in a local temporary file, checked
    against the registry's sha256 before any host sees them; once per run for all hosts."""

    def load():
        import os
        import tempfile

        from ..faults import provider_call

        bucket = names.bucket(ctx.inventory, "ml-models")
        fd, path = tempfile.mkstemp(prefix="hc-model-")
        digest = hashlib.sha256()
        with provider_call(f"download s3://{bucket}/{s3_key}"):
            body = ctx.aws.client("s3").get_object(Bucket=bucket, Key=s3_key)["Body"]
            with os.fdopen(fd, "wb") as out:
                for chunk in iter(lambda: body.read(1 << 20), b""):
                    digest.update(chunk)
                    out.write(chunk)
        ctx.temporary_files.append(path)
        got = "sha256:" + digest.hexdigest()
        if got != sha:
            raise ChecksumMismatch(
                f"s3://{bucket}/{s3_key} has {got}, the model registry says {sha}; not installed anywhere:"
                " upload the right file or correct ml.model_registry.checksum"
            )
        return path

    return ctx.download_once(f"{s3_key}:{sha}", load)
