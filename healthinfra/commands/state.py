"""`state.*`: the environment's state backend — create it, move a laptop's state into it, force-unlock.

`state.init` makes the state bucket and its KMS key (idempotently: versioning, SSE-KMS,
Block Public Access, a TLS-only policy); nothing else ever removes them (`cleanup-dev`
does not: they are the change history). `state.migrate --from local` copies a file-backed
environment's journal, run state and secrets into the configured backends, then moves the
local files aside. `state.unlock --id` is Terraform's force-unlock.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from .. import names
from ..errors import UsageError
from ..faults import provider_call
from ..state import FileState, open_state
from .common import load

if TYPE_CHECKING:
    from ..inventory import Inventory


def _s3_backend(inventory: Inventory, command: str):
    if inventory.state_backend["backend"] != "s3":
        raise UsageError(
            f"{inventory.path.name}: {command} needs `state: {{backend: s3, bucket: BUCKET}}` in the inventory;"
            " the local backend keeps its files under state/ and needs no setting up"
        )


def state_designs(inventory: Inventory) -> list[Any]:
    """The state key and bucket, as resources (pure)."""
    from ..resources.kms import KmsKey
    from ..resources.s3 import S3Bucket

    tags = {"env": inventory.environment, "data-class": "state", "managed-by": names.MANAGED_BY}
    bucket = inventory.state_backend["bucket"]
    arn = f"arn:aws:s3:::{bucket}"
    key_arn = f"arn:aws:kms:{inventory.aws['region']}:{inventory.aws_account_id}:{names.state_key_alias(inventory)}"
    key = KmsKey(
        names.state_key_alias(inventory),
        {
            "description": f"run state and secrets of {inventory.environment}, managed by healthcare-infra",
            "pending_deletion": False,
            "enabled": True,
            "rotation": True,
            "tags": tags,
        },
    )
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }
    desired: dict[str, Any] = {
        "tags": tags,
        "versioning": "Enabled",
        "public_access_block": {
            "block_public_acls": True,
            "ignore_public_acls": True,
            "block_public_policy": True,
            "restrict_public_buckets": True,
        },
        "encryption": {"algorithm": "aws:kms", "kms_key": key_arn, "bucket_key": True},
        "policy": policy,
        "lifecycle": None,
        "logging": None,
    }
    return [key, S3Bucket(bucket, desired, region=inventory.aws["region"])]


def state_init(inventory_name: str, *, out=None) -> int:
    from ..context import RunContext
    from ..options import RunOptions

    out = out or sys.stdout
    inventory = load(inventory_name)
    _s3_backend(inventory, "state.init")
    with RunContext(inventory, RunOptions(command="state.init")) as ctx:
        for resource in state_designs(inventory):
            with provider_call(f"state.init {resource.key}"):
                current = resource.read(ctx)
                actions = resource.actions_for(current)
                if actions:
                    resource.apply(ctx, actions)
                    ctx.forget_all()
            done = ", ".join(a.describe() for a in actions) if actions else resource.noop_reason(current)
            out.write(f"{'changed' if actions else 'ok'}: [{resource.key}] {done}\n")
    out.write(f"state of `{inventory.name}`: {open_state(inventory).location}\n")
    return 0


def state_unlock(inventory_name: str, lock_id: str, *, out=None) -> int:
    out = out or sys.stdout
    if not lock_id:
        raise UsageError("--id: give the lock id a refused run named (`lock id ...`)")
    inventory = load(inventory_name)
    _s3_backend(inventory, "state.unlock")
    state = open_state(inventory)
    holder = state.unlock(lock_id)  # type: ignore[attr-defined]
    out.write(
        f"removed lock {lock_id} of `{inventory.name}` (held by {holder.get('holder')}, `{holder.get('command')}`,"
        f" since {holder.get('since')}); if that run is still going, it stops before its next change\n"
    )
    return 0


def state_migrate(inventory_name: str, source: str = "local", *, out=None) -> int:
    """Copy the file backends' journal, run state and secrets into the configured backends, then
    move the local files aside (state/INVENTORY/migrated-TIMESTAMP/, 0700)."""
    out = out or sys.stdout
    if source != "local":
        raise UsageError(f"--from: only `local` (the file backends under state/) can be migrated from, got `{source}`")
    inventory = load(inventory_name)
    to_s3 = inventory.state_backend["backend"] == "s3"
    to_manager = inventory.secrets_backend["backend"] == "secretsmanager"
    if not (to_s3 or to_manager):
        raise UsageError(
            f"{inventory.path.name}: `state` and `secrets` are the local file backends already; set"
            " `state: {backend: s3, ...}` and/or `secrets: {backend: secretsmanager}` first"
        )
    local = FileState(inventory.state_dir, inventory.name)
    target = open_state(inventory)
    moved: list[str] = []
    import contextlib

    with local.lock("state.migrate"), target.lock("state.migrate") if to_s3 else contextlib.nullcontext():
        if to_s3:
            events = list(local.journal().events())
            journal = target.journal()
            if events and any(True for _ in journal.events()):
                raise UsageError(
                    f"{target.location}: the state bucket's journal already has runs; it was migrated before,"
                    " or runs were made there: nothing was copied"
                )
            for event in events:
                journal.append(event)
            out.write(f"journal: {len(events)} events copied to {journal.location}\n")
            for path in sorted(inventory.state_dir.glob("*.json")):
                if path.name == "secrets.json":
                    continue
                document = local.read_document(path.stem)
                if document is not None:
                    target.write_document(path.stem, document)
                    moved.append(path.name)
            if (inventory.state_dir / "journal.jsonl").exists():
                moved.append("journal.jsonl")
        if to_manager:
            secrets, copied = local.secrets(), target.secrets()
            names_ = secrets.names()
            for name in names_:
                value = secrets.get(name)
                if value is not None:
                    copied.put(name, value)
            out.write(f"secrets: {len(names_)} copied to {copied.location} (values not shown)\n")
            if (inventory.state_dir / "secrets.json").exists():
                moved.append("secrets.json")
    if moved:
        aside = inventory.state_dir / f"migrated-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        aside.mkdir(mode=0o700)
        for name in moved:
            (inventory.state_dir / name).rename(aside / name)
        out.write(f"moved {', '.join(moved)} aside to {aside}: delete it once `invoke history` shows the runs\n")
    return 0
