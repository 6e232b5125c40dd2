"""What the runner knows about a service host and what its desired state is worked out
from: where everything lives on the host (`layout`, the service user, safe model file
names), what is there now (the fact script's output, parsed by the pure `parse_facts`
and turned into the resource's state by the pure `current_state`; `host_facts` runs
the script over SSH once per host per run), and the sources: the model registry's
active rows (`registry_fact`, one query for every host) and each model's bytes,
downloaded once per run and checked against the registry's sha256 before any host
sees them (`download_model`). The parsers are pure; only `host_facts`,
`registry_fact` and `download_model` do I/O, through the run context.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from .. import names
from ..errors import HealthInfraError, ProviderError
from .host_commands import fact_script

if TYPE_CHECKING:
    from ..inventory import Host, Inventory

BACKUP = ".hc-backup"
STAGING = ".hc-staging"
MODEL_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


class ChecksumMismatch(ProviderError):
    """A model's bytes are not what the registry says: it is never installed."""


# --- where things live (pure) ----------------------------------------------------------------


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


# --- what is there now -----------------------------------------------------------------------


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


def current_state(facts: dict[str, Any], paths: dict[str, str]) -> dict[str, Any] | None:
    """The resource's state from the parsed facts, None when nothing of it is there (pure)."""
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
    if not any(state[k] for k in ("user", "directories", "env_file", "models", "definition")) and not facts["running"]:
        return None
    return state


def host_facts(ctx, host: Host, directories: list[str]) -> dict[str, Any]:
    """The host's facts, from one SSH command, memoised for the run (until a change is applied)."""

    def load():
        inv = ctx.inventory
        script = fact_script(service_user(inv, host.group), layout(inv, host), directories)
        _, out, _ = ctx.hosts.run(host, script)
        return parse_facts(out)

    return ctx.fact(f"host:{host.name}:facts", load)


# --- the sources -----------------------------------------------------------------------------


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
