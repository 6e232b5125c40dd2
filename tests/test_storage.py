"""Storage against the local moto endpoint over TLS: every setting, drift, phases, data kept safe.

moto 5.2.5 on its own ignores a bucket policy's conditions (it would refuse every
object request to a PHI bucket); the local endpoint (healthinfra/local/moto_server.py)
evaluates them, so these tests see AWS's answers: TLS only, and puts without the
KMS header refused.
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from healthinfra.providers.aws import AwsClients

from .support.catalog import bucket_settings, snapshot

DOCS, IMAGES, LOGS = "hc-local-medical-documents", "hc-local-medical-images", "hc-local-access-logs"
KEY_ALIAS = "alias/hc-local-phi"


@pytest.fixture
def aws(env):
    return AwsClients(env)


def storage_changes(result):
    return sorted(
        (c["resource"], tuple(a["op"] if a["op"] != "set" else a["attribute"] for a in c["actions"]))
        for c in result.json["changes"]
        if c["playbook"] == "storage"
    )


def put_objects_out_of_band(s3, bucket, *puts):
    """Write as a service would (with the KMS header the bucket policy asks for), or delete."""
    for key, body in puts:
        if body is None:
            s3.delete_object(Bucket=bucket, Key=key)
        else:
            s3.put_object(Bucket=bucket, Key=key, Body=body, ServerSideEncryption="aws:kms")


def test_phase_2_buckets_carry_every_setting(env, invoke, aws):
    result = invoke("deploy", "-i", "test", "--phase", "2", "--json")
    assert result.code == 0, result
    assert storage_changes(result) == [
        ("kms.key alias/hc-local-phi", ("create",)),
        (f"s3.bucket {LOGS}", ("create",)),
        (f"s3.bucket {DOCS}", ("create",)),
        (f"s3.bucket {IMAGES}", ("create",)),
    ]
    s3, kms = aws.client("s3"), aws.client("kms")
    key_id = next(a["TargetKeyId"] for a in kms.list_aliases()["Aliases"] if a["AliasName"] == KEY_ALIAS)
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyManager"] == "CUSTOMER"

    for bucket in (DOCS, IMAGES):
        got = bucket_settings(s3, bucket)
        assert got["versioning"]["Status"] == "Enabled"
        rule = got["encryption"]["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert rule["ApplyServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": f"arn:aws:kms:us-east-1:123456789012:{KEY_ALIAS}",
        }
        assert rule["BucketKeyEnabled"] is True
        assert got["public_access_block"]["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        }
        policy = json.loads(got["policy"]["Policy"])
        by_sid = {s["Sid"]: s for s in policy["Statement"]}
        assert by_sid["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert by_sid["DenyPutsWithoutKmsEncryption"]["Condition"] == {
            "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}
        }
        assert got["logging"]["LoggingEnabled"] == {
            "TargetBucket": LOGS,
            "TargetPrefix": bucket[len("hc-local-") :] + "/",
        }
        tags = {t["Key"]: t["Value"] for t in got["tags"]["TagSet"]}
        assert tags == {"env": "local", "data-class": "phi", "phase": "2", "managed-by": "healthcare-infra"}
    docs_rules = bucket_settings(s3, DOCS)["lifecycle"]["Rules"]
    assert [(r["ID"], r["Transitions"], r["NoncurrentVersionExpiration"]["NoncurrentDays"]) for r in docs_rules] == [
        ("medical_documents", [{"Days": 90, "StorageClass": "GLACIER"}], 365)
    ]
    image_rules = bucket_settings(s3, IMAGES)["lifecycle"]["Rules"]
    assert [(t["Days"], t["StorageClass"]) for t in image_rules[0]["Transitions"]] == [
        (30, "STANDARD_IA"),
        (180, "GLACIER"),
    ]
    logs = bucket_settings(s3, LOGS)
    assert logs["lifecycle"]["Rules"][0]["Expiration"] == {"Days": 2190}
    assert logs["encryption"]["ServerSideEncryptionConfiguration"]["Rules"][0][
        "ApplyServerSideEncryptionByDefault"
    ] == {"SSEAlgorithm": "AES256"}
    assert logs["logging"] == {}

    again = invoke("deploy", "-i", "test", "--phase", "2", "--json")
    assert again.code == 0 and again.json["changed"] == 0, again


def test_bucket_policy_refusals_and_default_kms_encryption(env, invoke, aws):
    assert invoke("deploy", "-i", "test", "--phase", "2").code == 0
    s3 = aws.client("s3")
    with pytest.raises(ClientError) as plain:
        s3.put_object(Bucket=DOCS, Key="note.pdf", Body=b"x")  # no encryption header
    assert plain.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    s3.put_object(Bucket=DOCS, Key="kms.pdf", Body=b"x", ServerSideEncryption="aws:kms")
    assert s3.get_object(Bucket=DOCS, Key="kms.pdf")["Body"].read() == b"x"
    import urllib.request

    with pytest.raises(OSError):  # plain HTTP gets no answer at all: the endpoint speaks only TLS
        urllib.request.urlopen(f"http://127.0.0.1:{env.aws['port']}/{DOCS}/kms.pdf", timeout=3)

    # someone lifts the policy by hand: a plain put now lands, encrypted by the bucket default
    s3.delete_bucket_policy(Bucket=DOCS)
    s3.put_object(Bucket=DOCS, Key="note.pdf", Body=b"x")
    head = s3.head_object(Bucket=DOCS, Key="note.pdf")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"].endswith(KEY_ALIAS)
    plan = invoke("plan", "-i", "test", "--phase", "2")
    drift = [line for line in plan.out.splitlines() if line.startswith("would change")]
    assert drift == [f"would change: [s3.bucket {DOCS}] set policy"], plan
    assert '+  "Statement": [' in plan.out, "the policy is shown as a unified JSON diff"
    assert invoke("deploy", "-i", "test", "--phase", "2").code == 0
    with pytest.raises(ClientError):
        s3.put_object(Bucket=DOCS, Key="again.pdf", Body=b"x")


def test_drifted_settings_show_up_alone_and_are_restored(env, invoke, aws):
    assert invoke("deploy", "-i", "test", "--phase", "2").code == 0
    s3 = aws.client("s3")
    s3.put_bucket_versioning(Bucket=IMAGES, VersioningConfiguration={"Status": "Suspended"})
    s3.delete_bucket_lifecycle(Bucket=DOCS)
    s3.delete_public_access_block(Bucket=IMAGES)
    plan = invoke("deploy", "-i", "test", "--phase", "2", "--check", "--json")
    assert plan.code == 0
    assert storage_changes(plan) == [
        (f"s3.bucket {DOCS}", ("lifecycle",)),
        (f"s3.bucket {IMAGES}", ("versioning", "public_access_block")),
    ]
    fixed = invoke("deploy", "-i", "test", "--phase", "2", "--json")
    assert storage_changes(fixed) == storage_changes(plan), "the plan and the apply agree"
    assert bucket_settings(s3, IMAGES)["versioning"]["Status"] == "Enabled"
    assert bucket_settings(s3, IMAGES)["public_access_block"]["PublicAccessBlockConfiguration"]["BlockPublicAcls"]
    assert bucket_settings(s3, DOCS)["lifecycle"]["Rules"][0]["ID"] == "medical_documents"
    # undoing that run puts exactly those settings back as they were
    undone = invoke("rollback", "-i", "test", "--json")
    assert undone.code == 0 and undone.json["changed"] == 2, undone
    assert bucket_settings(s3, IMAGES)["versioning"]["Status"] == "Suspended"
    assert bucket_settings(s3, DOCS)["lifecycle"] == "NoSuchLifecycleConfiguration"


def test_phases_3_and_4_add_exactly_their_rows(env, invoke, aws):
    assert invoke("deploy", "-i", "test", "--phase", "2").code == 0
    three = invoke("deploy", "-i", "test", "--phase", "3", "--json")
    assert storage_changes(three) == [(f"s3.bucket {DOCS}", ("lifecycle",))]
    rules = {r["ID"]: r for r in bucket_settings(aws.client("s3"), DOCS)["lifecycle"]["Rules"]}
    assert set(rules) == {"medical_documents", "appointment_attachments"}
    assert rules["appointment_attachments"]["Filter"] == {"Prefix": "appointments/"}
    four = invoke("deploy", "-i", "test", "--phase", "4", "--json")
    assert storage_changes(four) == [
        ("s3.bucket hc-local-analytics-exports", ("create",)),
        ("s3.bucket hc-local-ml-models", ("create",)),
    ]
    models = bucket_settings(aws.client("s3"), "hc-local-ml-models")
    assert models["versioning"]["Status"] == "Enabled"
    assert models["lifecycle"]["Rules"][0]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 90}
    assert invoke("deploy", "-i", "test", "--phase", "4", "--json").json["changed"] == 0


def test_rollback_refuses_buckets_with_objects_and_destroy_data_removes_every_version(env, invoke, aws):
    assert invoke("deploy", "-i", "test", "--phase", "1").code == 0
    phase_1 = snapshot(env)
    assert invoke("deploy", "-i", "test", "--phase", "2").code == 0
    s3 = aws.client("s3")
    put_objects_out_of_band(s3, DOCS, ("a.pdf", b"1" * 10), ("a.pdf", b"2" * 20), ("b.pdf", b"3"), ("b.pdf", None))
    usage = invoke("storage.usage", "-i", "test", "--json").json["buckets"]
    docs = next(b for b in usage if b["bucket"] == DOCS)
    assert (docs["objects"], docs["versions"], docs["delete_markers"], docs["bytes"]) == (1, 3, 1, 31)
    assert next(b for b in usage if b["bucket"] == "hc-local-ml-models")["exists"] is False

    # the rollback target is the phase-2 run; nothing may be deleted while it holds data
    before = snapshot(env)
    refused = invoke("rollback", "-i", "test")
    assert refused.code == 1, refused
    assert (
        f"refusing to delete bucket `{DOCS}`: it holds 1 objects in 3 versions (1 delete markers, 31 bytes)"
        in refused.out
    ), refused
    assert "nothing was changed" in refused.out
    assert f"refusing to delete bucket `{IMAGES}`" not in refused.out
    assert snapshot(env)["buckets"].keys() == before["buckets"].keys()

    done = invoke("rollback", "-i", "test", "--destroy-data")
    assert done.code == 0, done
    after = snapshot(env)
    assert after == phase_1, "rollback to phase 1 restores exactly the phase-1 state"
    assert KEY_ALIAS not in after["kms_aliases"]


def test_cleanup_removes_all_storage_with_destroy_data(env, invoke, aws):
    assert invoke("deploy", "-i", "test", "--phase", "4").code == 0
    assert len(snapshot(env)["buckets"]) == 5
    from healthinfra import commands
    from playbooks import catalog

    class Sink:
        def write(self, text):
            pass

        def flush(self):
            pass

    assert commands.cleanup("test", catalog=catalog(), destroy_data=True, stop_services=False, out=Sink()) == 0
    shot = snapshot(env)
    assert shot["buckets"] == {} and shot["kms_aliases"] == []


def test_the_phi_key_is_kept_while_a_bucket_uses_it_and_a_pending_deletion_is_cancelled(env, invoke, aws):
    key_only = invoke("deploy", "-i", "test", "--phase", "2", "--tags", "kms", "--json")
    assert key_only.code == 0 and [c["resource"] for c in key_only.json["changes"]] == ["kms.key alias/hc-local-phi"]
    assert invoke("deploy", "-i", "test", "--phase", "2").code == 0  # the buckets, encrypted with the key
    refused = invoke("rollback", "-i", "test", "--run", key_only.json["run_id"])
    assert refused.code == 1, refused
    assert "refusing to delete KMS key `alias/hc-local-phi`: bucket(s) hc-local-access-logs" not in refused.out
    assert (
        "refusing to delete KMS key `alias/hc-local-phi`: bucket(s) hc-local-medical-documents,"
        " hc-local-medical-images still encrypt with it"
    ) in refused.out, refused
    kms = aws.client("kms")
    key_id = next(a["TargetKeyId"] for a in kms.list_aliases()["Aliases"] if a["AliasName"] == KEY_ALIAS)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"

    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)  # by hand, by mistake
    plan = invoke("plan", "-i", "test", "--phase", "2")
    assert "would change: [kms.key alias/hc-local-phi] set pending_deletion, set enabled" in plan.out, plan
    assert invoke("deploy", "-i", "test", "--phase", "2").code == 0
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
