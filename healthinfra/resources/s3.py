"""S3 buckets with every setting a PHI bucket needs, diffed one setting at a time.

A bucket's managed attributes are its settings: versioning, default encryption,
Block Public Access, bucket policy, server access logging, lifecycle rules and
tags. Each is read into a canonical form (so AWS's spelling never causes a false
difference), compared on its own and put back on its own: a setting changed by
hand shows up as exactly that setting and `deploy` restores exactly that.

A bucket that holds anything (any object version or delete marker) is never
deleted without `--destroy-data`: preflight refuses it (`guard`), and at the change
itself the bucket is not emptied but only deleted, which S3 refuses while anything is
left (BucketNotEmpty, turned into the same refusal): an object written after preflight
is never lost. Only `--destroy-data` empties it, every version and marker, before the
delete. Its policy and other settings are never taken off beforehand: DeleteBucket
removes them with the bucket, so a delete that fails midway leaves a bucket that is
still whole, its TLS-only policy included. (The policy does not stand in the way: it
denies plain-HTTP requests and unencrypted puts, never a delete over TLS.)
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import DataLossRefused, ProviderError
from ..providers.aws import absent_on
from ..resource import Resource

SETTINGS = ("tags", "versioning", "public_access_block", "encryption", "policy", "lifecycle", "logging")


def buckets_fact(ctx) -> set[str]:
    return ctx.fact("s3.buckets", lambda: {b["Name"] for b in ctx.aws.client("s3").list_buckets().get("Buckets", [])})


# --- canonical forms (pure) --------------------------------------------------


def canonical_rule(rule: dict) -> dict:
    """An S3 lifecycle rule in the form the inventory writes it. Whatever S3 says that this
    form does not model (a date, a tag filter, multipart clean-up…) is kept under `extra`,
    so it shows up as a difference instead of passing unseen."""
    rest = {k: v for k, v in rule.items() if k not in ("ID", "Status")}
    flt = rest.pop("Filter", None)
    legacy = rest.pop("Prefix", None)
    if flt is not None and set(flt) - {"Prefix"}:
        rest["Filter"] = flt
        prefix = ""
    else:
        prefix = (flt or {}).get("Prefix", legacy or "") or ""
    transitions = rest.pop("Transitions", [])
    if any(set(t) - {"Days", "StorageClass"} for t in transitions):
        rest["Transitions"], transitions = transitions, []
    expiration = rest.pop("Expiration", None) or {}
    if set(expiration) - {"Days"}:
        rest["Expiration"], expiration = expiration, {}
    noncurrent = rest.pop("NoncurrentVersionExpiration", None) or {}
    if set(noncurrent) - {"NoncurrentDays"}:
        rest["NoncurrentVersionExpiration"], noncurrent = noncurrent, {}
    return {
        "id": rule.get("ID", ""),
        "enabled": rule.get("Status") == "Enabled",
        "prefix": prefix,
        "transitions": sorted(
            ({"days": t["Days"], "storage_class": t["StorageClass"]} for t in transitions), key=lambda t: t["days"]
        ),
        "expiration_days": expiration.get("Days"),
        "noncurrent_expiration_days": noncurrent.get("NoncurrentDays"),
        "extra": rest,
    }


def aws_rule(rule: dict) -> dict:
    """The inverse of canonical_rule."""
    out: dict[str, Any] = {
        "ID": rule["id"],
        "Status": "Enabled" if rule["enabled"] else "Disabled",
        "Filter": {"Prefix": rule["prefix"]},
        **rule.get("extra", {}),
    }
    if rule["transitions"] and "Transitions" not in out:
        out["Transitions"] = [{"Days": t["days"], "StorageClass": t["storage_class"]} for t in rule["transitions"]]
    if rule["expiration_days"] and "Expiration" not in out:
        out["Expiration"] = {"Days": rule["expiration_days"]}
    if rule["noncurrent_expiration_days"] and "NoncurrentVersionExpiration" not in out:
        out["NoncurrentVersionExpiration"] = {"NoncurrentDays": rule["noncurrent_expiration_days"]}
    return out


def canonical_encryption(config: dict | None) -> dict | None:
    if not config:
        return None
    rule = config["ServerSideEncryptionConfiguration"]["Rules"][0]
    default = rule.get("ApplyServerSideEncryptionByDefault", {})
    return {
        "algorithm": default.get("SSEAlgorithm"),
        "kms_key": default.get("KMSMasterKeyID"),
        "bucket_key": bool(rule.get("BucketKeyEnabled", False)),
    }


PUBLIC_ACCESS_KEYS = {
    "block_public_acls": "BlockPublicAcls",
    "ignore_public_acls": "IgnorePublicAcls",
    "block_public_policy": "BlockPublicPolicy",
    "restrict_public_buckets": "RestrictPublicBuckets",
}


class S3Bucket(Resource):
    kind = "s3.bucket"
    unmanaged = (
        "object ownership and ACLs: S3's default (bucket owner enforced, ACLs disabled)",
        "CORS, replication, object lock: not used by this platform",
    )

    def __init__(self, name, desired, *, region: str):
        super().__init__(name, desired, region=region)

    # --- read ---------------------------------------------------------------
    def read(self, ctx):
        if self.name not in buckets_fact(ctx):
            return None
        s3 = ctx.aws.client("s3")
        b = self.name
        getters = {
            "tags": lambda: absent_on(lambda: s3.get_bucket_tagging(Bucket=b), "NoSuchTagSet"),
            "versioning": lambda: s3.get_bucket_versioning(Bucket=b),
            "public_access_block": lambda: absent_on(
                lambda: s3.get_public_access_block(Bucket=b), "NoSuchPublicAccessBlockConfiguration"
            ),
            "encryption": lambda: absent_on(
                lambda: s3.get_bucket_encryption(Bucket=b), "ServerSideEncryptionConfigurationNotFoundError"
            ),
            "policy": lambda: absent_on(lambda: s3.get_bucket_policy(Bucket=b), "NoSuchBucketPolicy"),
            "lifecycle": lambda: absent_on(
                lambda: s3.get_bucket_lifecycle_configuration(Bucket=b), "NoSuchLifecycleConfiguration"
            ),
            "logging": lambda: s3.get_bucket_logging(Bucket=b),
        }
        with ThreadPoolExecutor(max_workers=len(getters)) as pool:  # independent reads, concurrently
            raw = dict(zip(getters, pool.map(lambda f: f(), getters.values()), strict=True))
        return self.parse(raw)

    def read_setting(self, ctx, setting: str):
        """One setting of an existing bucket, canonical (the KMS key's guard needs only encryption)."""
        s3 = ctx.aws.client("s3")
        if setting != "encryption":
            raise ValueError(setting)
        raw = absent_on(
            lambda: s3.get_bucket_encryption(Bucket=self.name), "ServerSideEncryptionConfigurationNotFoundError"
        )
        return canonical_encryption(raw)

    @staticmethod
    def parse(raw: dict[str, Any]) -> dict[str, Any]:
        """S3's answers -> canonical settings (pure)."""
        import json

        pab = (raw["public_access_block"] or {}).get("PublicAccessBlockConfiguration")
        logging = (raw["logging"] or {}).get("LoggingEnabled")
        rules = (raw["lifecycle"] or {}).get("Rules")
        return {
            "tags": {t["Key"]: t["Value"] for t in (raw["tags"] or {}).get("TagSet", [])},
            "versioning": (raw["versioning"] or {}).get("Status"),
            "public_access_block": {k: bool(pab.get(v)) for k, v in PUBLIC_ACCESS_KEYS.items()} if pab else None,
            "encryption": canonical_encryption(raw["encryption"]),
            "policy": json.loads(raw["policy"]["Policy"]) if raw["policy"] else None,
            "lifecycle": sorted((canonical_rule(r) for r in rules), key=lambda r: r["id"]) if rules else None,
            "logging": {"target_bucket": logging["TargetBucket"], "target_prefix": logging.get("TargetPrefix", "")}
            if logging
            else None,
        }

    # --- guard --------------------------------------------------------------
    def contents(self, ctx) -> dict[str, int]:
        """Objects (current versions), versions, delete markers and bytes, all versions counted."""
        counts = {"objects": 0, "versions": 0, "delete_markers": 0, "bytes": 0, "current_bytes": 0}
        if self.name not in buckets_fact(ctx):
            return counts
        for page in ctx.aws.client("s3").get_paginator("list_object_versions").paginate(Bucket=self.name):
            for version in page.get("Versions", []):
                counts["versions"] += 1
                counts["bytes"] += version.get("Size", 0)
                if version.get("IsLatest"):
                    counts["objects"] += 1
                    counts["current_bytes"] += version.get("Size", 0)
            counts["delete_markers"] += len(page.get("DeleteMarkers", []))
        return counts

    def refusal(self, held: dict[str, int]) -> DataLossRefused:
        return DataLossRefused(
            f"refusing to delete bucket `{self.name}`: it holds {held['objects']} objects in"
            f" {held['versions']} versions ({held['delete_markers']} delete markers, {held['bytes']} bytes);"
            " back them up, then re-run with --destroy-data to delete every version"
        )

    def guard(self, ctx, actions):
        if not any(a.op == "delete" for a in actions) or ctx.destroy_data:
            return
        held = self.contents(ctx)
        if held["versions"] or held["delete_markers"]:
            raise self.refusal(held)

    # --- apply --------------------------------------------------------------
    def apply(self, ctx, actions):
        s3 = ctx.aws.client("s3")
        for action in actions:
            if action.op == "create":
                if self.params["region"] == "us-east-1":
                    s3.create_bucket(Bucket=self.name)
                else:
                    s3.create_bucket(
                        Bucket=self.name, CreateBucketConfiguration={"LocationConstraint": self.params["region"]}
                    )
                for setting in SETTINGS:
                    self._put(s3, setting, action.after.get(setting))
            elif action.op == "delete":
                if self.name in buckets_fact(ctx):
                    self._delete(ctx, s3)
            else:
                self._put(s3, action.attribute, action.after)

    def _put(self, s3, setting: str, value: Any) -> None:
        import json

        b = self.name
        if setting == "tags":
            if value:
                s3.put_bucket_tagging(
                    Bucket=b, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in sorted(value.items())]}
                )
            else:
                s3.delete_bucket_tagging(Bucket=b)
        elif setting == "versioning":
            if value:
                s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": value})
            else:  # a versioned bucket can only be suspended, never unversioned
                s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Suspended"})
        elif setting == "public_access_block":
            if value:
                s3.put_public_access_block(
                    Bucket=b, PublicAccessBlockConfiguration={PUBLIC_ACCESS_KEYS[k]: v for k, v in value.items()}
                )
            else:
                s3.delete_public_access_block(Bucket=b)
        elif setting == "encryption":
            if value:
                default = {"SSEAlgorithm": value["algorithm"]}
                if value.get("kms_key"):
                    default["KMSMasterKeyID"] = value["kms_key"]
                s3.put_bucket_encryption(
                    Bucket=b,
                    ServerSideEncryptionConfiguration={
                        "Rules": [
                            {"ApplyServerSideEncryptionByDefault": default, "BucketKeyEnabled": value["bucket_key"]}
                        ]
                    },
                )
            else:
                s3.delete_bucket_encryption(Bucket=b)
        elif setting == "policy":
            if value:
                s3.put_bucket_policy(Bucket=b, Policy=json.dumps(value))
            else:
                s3.delete_bucket_policy(Bucket=b)
        elif setting == "lifecycle":
            if value:
                s3.put_bucket_lifecycle_configuration(
                    Bucket=b, LifecycleConfiguration={"Rules": [aws_rule(r) for r in value]}
                )
            else:
                s3.delete_bucket_lifecycle(Bucket=b)
        elif setting == "logging":
            status = (
                {"LoggingEnabled": {"TargetBucket": value["target_bucket"], "TargetPrefix": value["target_prefix"]}}
                if value
                else {}
            )
            s3.put_bucket_logging(Bucket=b, BucketLoggingStatus=status)
        else:
            raise ValueError(f"s3.bucket: unknown setting {setting}")

    def _delete(self, ctx, s3, rounds: int = 3) -> None:
        """Delete the bucket, settings and all. Without --destroy-data nothing is emptied:
        S3's own check (BucketNotEmpty) is the re-check at the moment of the change, atomic
        with the delete, and becomes the refusal. With it, every version goes first, again
        if something wrote in between."""
        from botocore.exceptions import ClientError

        for _ in range(rounds):
            if ctx.destroy_data:
                self._empty(s3)
            try:
                s3.delete_bucket(Bucket=self.name)
                return
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code == "NoSuchBucket":
                    return
                if code != "BucketNotEmpty":
                    raise
                if not ctx.destroy_data:
                    raise self.refusal(self.contents(ctx)) from None
        raise ProviderError(
            f"s3.bucket {self.name}: still not empty after {rounds} rounds of emptying (something keeps writing"
            " into it); stop the writer and re-run; the bucket is kept, with its settings"
        )

    def _empty(self, s3, rounds: int = 5) -> None:
        """Delete every object version and delete marker (only reached with --destroy-data).

        The listing is taken whole before deleting (deleting while paginating skips
        keys), and repeated: log delivery may still be writing into a log bucket.
        """
        for _ in range(rounds):
            doomed = []
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=self.name):
                doomed += [
                    {"Key": v["Key"], "VersionId": v["VersionId"]}
                    for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                ]
            if not doomed:
                return
            for start in range(0, len(doomed), 1000):
                answer = s3.delete_objects(
                    Bucket=self.name, Delete={"Objects": doomed[start : start + 1000], "Quiet": True}
                )
                errors = answer.get("Errors", [])
                if errors:
                    first = errors[0]
                    raise ProviderError(
                        f"s3.bucket {self.name}: {len(errors)} object versions could not be deleted"
                        f" (first: `{first['Key']}`: {first.get('Code')} {first.get('Message', '')}); the bucket is kept"
                    )
