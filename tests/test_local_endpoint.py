"""The local AWS endpoint's bucket-policy evaluation: pure unit tests of `evaluate`."""

from __future__ import annotations

from healthinfra.inventory import load_inventory
from healthinfra.local.moto_server import condition_holds, evaluate, request_context
from playbooks.storage import bucket_policy

from .support.environment import REPO

TLS = {"aws:SecureTransport": "true"}
PLAIN = {"aws:SecureTransport": "false"}
KMS = {"s3:x-amz-server-side-encryption": "aws:kms"}


def docs_policy():
    inventory = load_inventory("local", REPO / "inventories")
    owner = next(d for d in inventory.data_types if d.name == "medical_documents")
    return bucket_policy(inventory, owner)


OBJECT = "arn:aws:s3:::hc-local-medical-documents/records/a.pdf"


def test_tls_only_and_kms_header_rules_as_aws_applies_them():
    policy = docs_policy()
    assert evaluate(policy, "s3:GetObject", OBJECT, PLAIN) == "deny"
    assert evaluate(policy, "s3:GetObject", OBJECT, TLS) == "neutral"  # identity policies decide
    assert evaluate(policy, "s3:PutObject", OBJECT, TLS) == "deny"  # no KMS header
    assert evaluate(policy, "s3:PutObject", OBJECT, {**TLS, "s3:x-amz-server-side-encryption": "AES256"}) == "deny"
    assert evaluate(policy, "s3:PutObject", OBJECT, {**TLS, **KMS}) == "neutral"
    assert evaluate(policy, "s3:PutObject", "arn:aws:s3:::another-bucket/x", {**TLS}) == "neutral"


def test_missing_keys_and_unknown_operators():
    assert condition_holds("StringNotEquals", "s3:x-amz-server-side-encryption", "aws:kms", {}) is True
    assert condition_holds("StringEquals", "aws:SourceAccount", "1", {}) is False
    assert condition_holds("StringEqualsIfExists", "aws:SourceAccount", "1", {}) is True
    assert condition_holds("Bool", "aws:SecureTransport", "false", PLAIN) is True
    deny_unknown = {
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": "*",
                "Condition": {"NumericLessThan": {"s3:max-keys": "10"}},
            }
        ]
    }
    allow_unknown = {"Statement": [{**deny_unknown["Statement"][0], "Effect": "Allow"}]}
    assert evaluate(deny_unknown, "s3:GetObject", OBJECT, TLS) == "deny"  # fails closed
    assert evaluate(allow_unknown, "s3:GetObject", OBJECT, TLS) == "neutral"


def test_service_principals_are_not_the_caller_and_the_context_comes_from_the_request():
    log_delivery = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "logging.s3.amazonaws.com"},
                "Action": "s3:PutObject",
                "Resource": "*",
            }
        ]
    }
    assert evaluate(log_delivery, "s3:PutObject", OBJECT, TLS) == "neutral"
    environ = {"wsgi.url_scheme": "https", "HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION": "aws:kms"}
    assert request_context(environ) == {**TLS, **KMS}
    assert request_context({"wsgi.url_scheme": "http"}) == PLAIN
