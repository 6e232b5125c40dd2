"""The storage table -> buckets and settings, and S3's answers -> canonical settings. Pure."""

from __future__ import annotations

import pytest

from healthinfra.inventory import load_inventory
from healthinfra.resources.s3 import S3Bucket, aws_rule, canonical_rule
from playbooks.storage import bucket_designs

from .support.environment import REPO


@pytest.fixture(scope="module")
def local():
    return load_inventory("local", REPO / "inventories")


def rules(design):
    return {r["id"]: r for r in design["lifecycle"]}


@pytest.mark.parametrize(
    "phase, buckets",
    [
        (1, []),
        (2, ["hc-local-access-logs", "hc-local-medical-documents", "hc-local-medical-images"]),
        (3, ["hc-local-access-logs", "hc-local-medical-documents", "hc-local-medical-images"]),
        (
            4,
            [
                "hc-local-access-logs",
                "hc-local-medical-documents",
                "hc-local-medical-images",
                "hc-local-ml-models",
                "hc-local-analytics-exports",
            ],
        ),
    ],
)
def test_each_phase_has_exactly_its_buckets_log_bucket_first(local, phase, buckets):
    assert list(bucket_designs(local, phase)) == buckets


def test_phase_3_adds_only_the_appointments_rule(local):
    two, three = bucket_designs(local, 2), bucket_designs(local, 3)
    docs2, docs3 = three.pop("hc-local-medical-documents"), two.pop("hc-local-medical-documents")
    assert two == three
    assert set(rules(docs2)) - set(rules(docs3)) == {"appointment_attachments"}
    assert rules(docs2)["appointment_attachments"]["prefix"] == "appointments/"


def test_every_bucket_is_private_versioned_tls_only_and_logged(local):
    designs = bucket_designs(local, 4)
    for name, design in designs.items():
        assert design["versioning"] == "Enabled"
        assert all(design["public_access_block"].values()) and len(design["public_access_block"]) == 4
        tls = design["policy"]["Statement"][0]
        assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert f"arn:aws:s3:::{name}/*" in tls["Resource"]
        if name == "hc-local-access-logs":
            assert design["encryption"]["algorithm"] == "AES256" and design["logging"] is None
            assert design["policy"]["Statement"][1]["Principal"] == {"Service": "logging.s3.amazonaws.com"}
        else:
            assert design["encryption"] == {
                "algorithm": "aws:kms",
                "bucket_key": True,
                "kms_key": "arn:aws:kms:us-east-1:123456789012:alias/hc-local-phi",
            }
            assert design["policy"]["Statement"][1]["Condition"] == {
                "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}
            }
            assert design["logging"] == {
                "target_bucket": "hc-local-access-logs",
                "target_prefix": name[len("hc-local-") :] + "/",
            }
        assert design["tags"]["env"] == "local" and design["tags"]["managed-by"] == "healthcare-infra"


@pytest.mark.parametrize(
    "bucket, rule, expected",
    [
        (
            "hc-local-medical-documents",
            "medical_documents",
            {
                "transitions": [{"days": 90, "storage_class": "GLACIER"}],
                "noncurrent_expiration_days": 365,
                "expiration_days": None,
            },
        ),
        (
            "hc-local-medical-images",
            "medical_images",
            {
                "transitions": [
                    {"days": 30, "storage_class": "STANDARD_IA"},
                    {"days": 180, "storage_class": "GLACIER"},
                ],
                "noncurrent_expiration_days": None,
                "expiration_days": None,
            },
        ),
        (
            "hc-local-access-logs",
            "access_logs",
            {"transitions": [], "expiration_days": 2190, "noncurrent_expiration_days": None},
        ),
        (
            "hc-local-ml-models",
            "ml_models",
            {"transitions": [], "expiration_days": None, "noncurrent_expiration_days": 90},
        ),
        (
            "hc-local-analytics-exports",
            "analytics_exports",
            {"transitions": [], "expiration_days": 30, "noncurrent_expiration_days": None},
        ),
    ],
)
def test_lifecycle_defaults_from_the_table(local, bucket, rule, expected):
    got = rules(bucket_designs(local, 4)[bucket])[rule]
    assert {k: got[k] for k in expected} == expected


def test_inventory_can_override_a_lifecycle(tmp_path):
    for name in ("services.yml", "data_types.yml"):
        (tmp_path / name).write_text((REPO / "inventories" / name).read_text())
    text = (
        REPO / "inventories" / "local.yml"
    ).read_text() + "lifecycle:\n  medical_images:\n    expiration_days: 3650\n"
    (tmp_path / "x.yml").write_text(text)
    design = bucket_designs(load_inventory("x", tmp_path), 2)["hc-local-medical-images"]
    assert rules(design)["medical_images"]["expiration_days"] == 3650
    assert rules(design)["medical_images"]["transitions"] == []


def test_lifecycle_rule_round_trips_through_s3s_spelling():
    rule = {
        "id": "r",
        "enabled": True,
        "prefix": "appointments/",
        "expiration_days": None,
        "extra": {},
        "transitions": [{"days": 30, "storage_class": "STANDARD_IA"}],
        "noncurrent_expiration_days": 365,
    }
    assert canonical_rule(aws_rule(rule)) == rule
    # what the canonical form does not model is kept, so it can never drift unseen
    odd = {
        "ID": "r",
        "Status": "Enabled",
        "Filter": {"Tag": {"Key": "k", "Value": "v"}},
        "Expiration": {"Date": "2027-01-01T00:00:00Z"},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
    }
    kept = canonical_rule(odd)
    assert kept["extra"] == {
        "Filter": {"Tag": {"Key": "k", "Value": "v"}},
        "Expiration": {"Date": "2027-01-01T00:00:00Z"},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
    }
    assert canonical_rule(aws_rule(kept)) == kept
    # S3 may answer with the legacy top-level Prefix and no Filter
    assert canonical_rule({"ID": "r", "Status": "Disabled", "Prefix": "x/"})["prefix"] == "x/"


def test_parse_of_an_unconfigured_bucket():
    raw = {
        "tags": None,
        "versioning": {},
        "public_access_block": None,
        "encryption": None,
        "policy": None,
        "lifecycle": None,
        "logging": {},
    }
    assert S3Bucket.parse(raw) == {
        "tags": {},
        "versioning": None,
        "public_access_block": None,
        "encryption": None,
        "policy": None,
        "lifecycle": None,
        "logging": None,
    }
