"""Storage playbook: the PHI key, then one bucket per data type, every setting from the table.

`inventories/data_types.yml` says, per kind of medical data, which bucket and prefix
hold it, from which phase, its data class and its lifecycle. Everything below is a
pure function of that table and the inventory: no I/O, unit-tested as tables.
"""

from __future__ import annotations

from healthinfra import names
from healthinfra.inventory import DataType, Inventory
from healthinfra.resources.kms import KmsKey
from healthinfra.resources.s3 import S3Bucket
from healthinfra.step import Step

ALL_PUBLIC_ACCESS_BLOCKED = {
    "block_public_acls": True,
    "ignore_public_acls": True,
    "block_public_policy": True,
    "restrict_public_buckets": True,
}


def lifecycle_rule(data_type: DataType) -> dict:
    rule = data_type.lifecycle
    return {
        "id": data_type.name,
        "enabled": True,
        "prefix": data_type.prefix,
        "transitions": sorted(
            ({"days": t["days"], "storage_class": t["storage_class"]} for t in rule.get("transitions", [])),
            key=lambda t: t["days"],
        ),
        "expiration_days": rule.get("expiration_days"),
        "noncurrent_expiration_days": rule.get("noncurrent_expiration_days"),
        "extra": {},
    }


# `{"AWS": "*"}` means everyone, as `"*"` does; the string form makes moto 5.2.5's
# log-delivery permission check crash (it expects a mapping), so we write the mapping.
EVERYONE = {"AWS": "*"}


def bucket_policy(inv: Inventory, owner: DataType) -> dict:
    arn = f"arn:aws:s3:::{names.bucket(inv, owner.bucket)}"
    statements = [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": EVERYONE,
            "Action": "s3:*",
            "Resource": [arn, f"{arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]
    if owner.data_class == "logs":
        statements.append(
            {
                "Sid": "AllowS3ServerAccessLogDelivery",
                "Effect": "Allow",
                "Principal": {"Service": "logging.s3.amazonaws.com"},
                "Action": "s3:PutObject",
                "Resource": f"{arn}/*",
                "Condition": {
                    "ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{names.resource(inv, '*')}"},
                    "StringEquals": {"aws:SourceAccount": inv.aws_account_id},
                },
            }
        )
    else:
        statements.append(
            {
                "Sid": "DenyPutsWithoutKmsEncryption",
                "Effect": "Deny",
                "Principal": EVERYONE,
                "Action": "s3:PutObject",
                "Resource": f"{arn}/*",
                "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}},
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def bucket_designs(inv: Inventory, phase: int) -> dict[str, dict]:
    """Every bucket at this phase and its desired settings, the log bucket first."""
    types = inv.data_types_at(phase)
    owners = sorted((d for d in types if not d.prefix), key=lambda d: (d.data_class != "logs", d.phase))
    logs = next((d for d in owners if d.data_class == "logs"), None)
    designs = {}
    for owner in owners:
        rules = sorted((lifecycle_rule(d) for d in types if d.bucket == owner.bucket), key=lambda r: r["id"])
        if owner.data_class == "logs":
            encryption = {"algorithm": "AES256", "kms_key": None, "bucket_key": False}
        else:
            encryption = {"algorithm": "aws:kms", "kms_key": names.phi_key_arn(inv), "bucket_key": True}
        designs[names.bucket(inv, owner.bucket)] = {
            "tags": {
                "env": inv.environment,
                "data-class": owner.data_class,
                "phase": str(owner.phase),
                "managed-by": "healthcare-infra",
            },
            "versioning": "Enabled",
            "public_access_block": dict(ALL_PUBLIC_ACCESS_BLOCKED),
            "encryption": encryption,
            "policy": bucket_policy(inv, owner),
            "lifecycle": rules,
            "logging": None
            if owner is logs or logs is None
            else {"target_bucket": names.bucket(inv, logs.bucket), "target_prefix": f"{owner.bucket}/"},
        }
    return designs


def create_phi_key(inv: Inventory, phase: int):
    desired = {
        "description": f"PHI at rest ({inv.environment}), managed by healthcare-infra",
        "pending_deletion": False,
        "enabled": True,
        "rotation": True,
        "tags": {"env": inv.environment, "data-class": "phi", "managed-by": "healthcare-infra"},
    }
    return [KmsKey(names.phi_key_alias(inv), desired)]


def create_buckets(inv: Inventory, phase: int):
    return [S3Bucket(name, desired, region=inv.aws["region"]) for name, desired in bucket_designs(inv, phase).items()]


STEPS = [
    Step("create the PHI encryption key", "storage", 2, create_phi_key, tags=("kms", "encryption")),
    Step("create a bucket per data type", "storage", 2, create_buckets, tags=("s3", "buckets")),
]
