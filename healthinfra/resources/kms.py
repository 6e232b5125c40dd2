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


def aliases_fact(ctx) -> dict[str, str]:
    def load():
        aliases = list_by_name(ctx.aws.client("kms"), "list_aliases", "Aliases", "AliasName")
        return {name: alias["TargetKeyId"] for name, alias in aliases.items() if "TargetKeyId" in alias}

    return ctx.fact("kms.aliases", load)


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
        """Never schedule the key's deletion while a bucket that stays still encrypts with it."""
        if not any(a.op == "delete" for a in actions):
            return
        from ..errors import DataLossRefused
        from .s3 import S3Bucket, buckets_fact

        users = []
        for bucket in sorted(buckets_fact(ctx)):
            if f"s3.bucket {bucket}" in ctx.planned_deletions:
                continue  # removed earlier in this same run (its own guard checks its data)
            encryption = S3Bucket(bucket, None, region="").read_setting(ctx, "encryption")
            if encryption and (encryption.get("kms_key") or "").endswith(self.name):
                users.append(bucket)
        if users:
            raise DataLossRefused(
                f"refusing to delete KMS key `{self.name}`: bucket(s) {', '.join(users)} still encrypt with it, and"
                " their data would become unreadable; remove or re-encrypt them first"
            )

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
