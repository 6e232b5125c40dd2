"""Each service's IAM policy is exactly its data (pure), and parliament finds nothing to fix."""

from __future__ import annotations

import json

import pytest

from healthinfra.inventory import load_inventory
from playbooks.security import boundary_document, service_policy

from .support.environment import REPO

DOCS, IMAGES = "arn:aws:s3:::hc-local-medical-documents", "arn:aws:s3:::hc-local-medical-images"
MODELS, EXPORTS = "arn:aws:s3:::hc-local-ml-models", "arn:aws:s3:::hc-local-analytics-exports"


@pytest.fixture(scope="module")
def local():
    return load_inventory("local", REPO / "inventories")


def access(policy) -> set[tuple[str, str]]:
    """(action, resource) pairs the policy allows."""
    pairs = set()
    for statement in (policy or {}).get("Statement", []):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for action in actions:
            pairs.add((action, statement["Resource"]))
    return pairs


def service(inv, name):
    return next(s for s in inv.services if s.name == name)


@pytest.mark.parametrize(
    "name, phase, expected",
    [
        ("gateway", 4, set()),
        ("auth", 4, set()),
        ("patient", 1, set()),
        (
            "patient",
            2,
            {
                ("s3:GetObject", f"{DOCS}/*"),
                ("s3:GetObjectVersion", f"{DOCS}/*"),
                ("s3:ListBucket", DOCS),
                ("s3:PutObject", f"{DOCS}/*"),
                ("s3:GetObject", f"{IMAGES}/*"),
                ("s3:GetObjectVersion", f"{IMAGES}/*"),
                ("s3:ListBucket", IMAGES),
                ("s3:PutObject", f"{IMAGES}/*"),
                ("kms:Decrypt", "arn:aws:kms:us-east-1:123456789012:key/*"),
                ("kms:GenerateDataKey", "arn:aws:kms:us-east-1:123456789012:key/*"),
            },
        ),
        (
            "appointment",
            3,
            {
                ("s3:GetObject", f"{DOCS}/appointments/*"),
                ("s3:GetObjectVersion", f"{DOCS}/appointments/*"),
                ("s3:ListBucket", DOCS),
                ("s3:PutObject", f"{DOCS}/appointments/*"),
                ("kms:Decrypt", "arn:aws:kms:us-east-1:123456789012:key/*"),
                ("kms:GenerateDataKey", "arn:aws:kms:us-east-1:123456789012:key/*"),
            },
        ),
        (
            "ai",
            4,
            {
                ("s3:GetObject", f"{MODELS}/*"),
                ("s3:GetObjectVersion", f"{MODELS}/*"),
                ("s3:ListBucket", MODELS),
                ("s3:PutObject", f"{EXPORTS}/*"),
                ("kms:Decrypt", "arn:aws:kms:us-east-1:123456789012:key/*"),
                ("kms:GenerateDataKey", "arn:aws:kms:us-east-1:123456789012:key/*"),
            },
        ),
    ],
)
def test_each_service_gets_exactly_its_data(local, name, phase, expected):
    policy = service_policy(local, service(local, name), phase)
    assert access(policy) == expected
    if policy is None:
        assert not expected, "a service with no data has no policy at all"


def test_a_prefix_grant_lists_only_that_prefix_and_keys_only_the_phi_key(local):
    policy = service_policy(local, service(local, "appointment"), 3)
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["ListAppointmentAttachments"]["Condition"] == {"StringLike": {"s3:prefix": ["appointments/*"]}}
    assert by_sid["UsePhiKey"]["Condition"] == {
        "ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/hc-local-phi"}
    }


def all_documents(inv):
    docs = {"boundary": boundary_document(inv)}
    for s in inv.services_at(4):
        if (policy := service_policy(inv, s, 4)) is not None:
            docs[s.name] = policy
    return docs


def test_no_wildcard_action_or_resource(local):
    for name, document in all_documents(local).items():
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert all("*" not in a for a in actions), (name, statement)
            assert statement["Resource"] != "*", (name, statement)
            assert statement["Effect"] == "Allow"


# parliament 1.6.4's IAM database predates the condition key kms:ResourceAliases (AWS added it
# in 2021 and documents it for kms:Decrypt and kms:GenerateDataKey). It is how a policy names a
# KMS key by alias, so this one finding is expected; anything else fails the test.
EXPLAINED = {
    ("UNKNOWN_CONDITION_FOR_ACTION", "Unknown condition kms:ResourceAliases for action kms:Decrypt"),
    ("UNKNOWN_CONDITION_FOR_ACTION", "Unknown condition kms:ResourceAliases for action kms:GenerateDataKey"),
}


def test_parliament_finds_nothing_unexplained(local):
    import parliament

    for name, document in all_documents(local).items():
        findings = parliament.analyze_policy_string(json.dumps(document)).findings
        unexplained = [(f.issue, f.detail) for f in findings if (f.issue, f.detail) not in EXPLAINED]
        assert unexplained == [], (name, unexplained)
