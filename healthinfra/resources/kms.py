"""The customer-managed KMS key that encrypts PHI at rest, found by its alias.

Deleting a key is never immediate in KMS: removing this resource deletes the alias
and schedules the key's deletion after the shortest window (7 days), during which
`aws kms cancel-key-deletion` brings it back. The key policy stays AWS's default
(the account may use it, through IAM policies), narrowed per service by the
security playbook's policies.
"""

from __future__ import annotations

from ..providers.aws import list_by_name, tag_changes
from ..resource import Resource

DELETION_WINDOW_DAYS = 7


def key_identifiers(key_id: str, key_arn: str, aliases: dict[str, str]) -> dict[str, str]:
    """Every name a bucket's default or an object may give the key -> what kind of name it is:
    its id, its ARN, and each alias naming it (`aliases`: alias -> target key id), by name and
    by ARN (the key's ARN with `key/ID` replaced by the alias). Pure."""
    names = {key_id: "key id", key_arn: "key ARN"}
    prefix = key_arn.rsplit(":", 1)[0]  # arn:aws:kms:REGION:ACCOUNT
    for alias, target in sorted(aliases.items()):
        if target == key_id:
            names[alias] = "alias name"
            names[f"{prefix}:{alias}"] = "alias ARN"
    return names


def key_users_refusal(alias: str, users: dict[str, dict]) -> str | None:
    """The refusal to delete the key while `users` use it (bucket -> `default`: how its default
    encryption names the key, or None; `versions`: object versions encrypted with it), or None
    when nothing does. Every bucket is listed, in name order. Pure."""
    using = {bucket: use for bucket, use in sorted(users.items()) if use.get("default") or use.get("versions")}
    if not using:
        return None
    details = []
    for bucket, use in using.items():
        parts = []
        if use.get("default"):
            parts.append(f"default encryption names it by {use['default']}")
        if use.get("versions"):
            parts.append(f"{use['versions']} object versions encrypted with it")
        details.append(f"{bucket}: {', '.join(parts)}")
    return (
        f"refusing to delete KMS key `{alias}`: bucket(s) {', '.join(using)} still encrypt with it"
        f" ({'; '.join(details)}), and their data would become unreadable; re-encrypt those objects with"
        " another key (or delete them) and change those defaults first, or remove the buckets"
    )


def aliases_fact(ctx) -> dict[str, str]:
    def load():
        aliases = list_by_name(ctx.aws.client("kms"), "list_aliases", "Aliases", "AliasName")
        return {name: alias["TargetKeyId"] for name, alias in aliases.items() if "TargetKeyId" in alias}

    return ctx.fact("kms.aliases", load)


def versions_encrypted_with(s3, bucket: str, names: set[str]) -> int:
    """How many object versions in the bucket are encrypted with a key known by one of `names`
    (HeadObject of each version, a few at a time; delete markers hold nothing)."""
    from concurrent.futures import ThreadPoolExecutor

    versions = [
        (v["Key"], v["VersionId"])
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for v in page.get("Versions", [])
    ]
    if not versions:
        return 0

    def key_of(version: tuple[str, str]) -> str:
        return s3.head_object(Bucket=bucket, Key=version[0], VersionId=version[1]).get("SSEKMSKeyId", "")

    with ThreadPoolExecutor(max_workers=min(16, len(versions))) as pool:
        return sum(1 for key in pool.map(key_of, versions) if key in names)


class KmsKey(Resource):
    kind = "kms.key"
    unmanaged = (
        "key policy: AWS's default; access is granted per service by IAM policies",
        "key spec and usage: symmetric ENCRYPT_DECRYPT, fixed at creation",
    )

    def key_id(self, ctx) -> str | None:
        return aliases_fact(ctx).get(self.name)

    def read(self, ctx):
        key_id = self.key_id(ctx)
        if key_id is None:
            return None
        kms = ctx.aws.client("kms")
        described = kms.describe_key(KeyId=key_id)
        tagged = kms.list_resource_tags(KeyId=key_id)
        rotation = kms.get_key_rotation_status(KeyId=key_id)
        return self.parse(described, rotation, tagged)

    @staticmethod
    def parse(described: dict, rotation: dict, tagged: dict) -> dict:
        """The DescribeKey, GetKeyRotationStatus and ListResourceTags responses of the key the
        alias names -> the managed attributes. Pure."""
        meta = described["KeyMetadata"]
        return {
            "description": meta.get("Description", ""),
            "pending_deletion": meta["KeyState"] == "PendingDeletion",  # drift: cancelled by deploy
            "enabled": meta["KeyState"] == "Enabled",
            "rotation": rotation["KeyRotationEnabled"],
            "tags": {t["TagKey"]: t["TagValue"] for t in tagged.get("Tags", [])},
        }

    def guard(self, ctx, actions):
        """Never schedule the key's deletion (or delete its alias) while any bucket uses it: its
        default encryption names the key (by alias name or ARN, key id or key ARN), or any object
        version in it is encrypted with the key (HeadObject's SSEKMSKeyId, every version).

        A bucket deleted earlier in this same run is skipped: without --destroy-data its own guard
        refuses it while it holds any version, and with it every version goes with the bucket."""
        if not any(a.op == "delete" for a in actions):
            return
        key_id = self.key_id(ctx)
        if key_id is None:
            return
        from ..errors import DataLossRefused
        from .s3 import S3Bucket, buckets_fact

        key_arn = ctx.aws.client("kms").describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
        names = key_identifiers(key_id, key_arn, aliases_fact(ctx))
        users = {}
        for bucket in sorted(buckets_fact(ctx)):
            if f"s3.bucket {bucket}" in ctx.planned_deletions:
                continue
            encryption = S3Bucket(bucket, None, region="").read_setting(ctx, "encryption")
            users[bucket] = {
                "default": names.get((encryption or {}).get("kms_key") or ""),
                "versions": versions_encrypted_with(ctx.aws.client("s3"), bucket, set(names)),
            }
        message = key_users_refusal(self.name, users)
        if message:
            raise DataLossRefused(message)

    def apply(self, ctx, actions):
        kms = ctx.aws.client("kms")
        for action in actions:
            if action.op == "create":
                want = action.after
                key_id = kms.create_key(
                    Description=want["description"],
                    KeyUsage="ENCRYPT_DECRYPT",
                    KeySpec="SYMMETRIC_DEFAULT",
                    Tags=[{"TagKey": k, "TagValue": v} for k, v in sorted(want["tags"].items())],
                )["KeyMetadata"]["KeyId"]
                kms.create_alias(AliasName=self.name, TargetKeyId=key_id)
                if want["rotation"]:
                    kms.enable_key_rotation(KeyId=key_id)
                if not want["enabled"]:
                    kms.disable_key(KeyId=key_id)
                continue
            key_id = self.key_id(ctx)
            if key_id is None:
                continue
            if action.op == "delete":
                self.guard(ctx, [action])
                kms.delete_alias(AliasName=self.name)
                if not action.before.get("pending_deletion"):
                    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=DELETION_WINDOW_DAYS)
            elif action.attribute == "pending_deletion":
                if action.after:
                    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=DELETION_WINDOW_DAYS)
                else:
                    kms.cancel_key_deletion(KeyId=key_id)  # leaves the key disabled; `enabled` follows
            elif action.attribute == "description":
                kms.update_key_description(KeyId=key_id, Description=action.after)
            elif action.attribute == "rotation":
                (kms.enable_key_rotation if action.after else kms.disable_key_rotation)(KeyId=key_id)
            elif action.attribute == "enabled":
                (kms.enable_key if action.after else kms.disable_key)(KeyId=key_id)
            elif action.attribute == "tags":
                gone, changed = tag_changes(action.before, action.after)
                if gone:
                    kms.untag_resource(KeyId=key_id, TagKeys=gone)
                if changed:
                    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": k, "TagValue": v} for k, v in changed.items()])
