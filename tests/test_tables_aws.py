"""IAM and KMS, as tables: diff, the parse of responses spelled as AWS documents them, and
actions -> the calls apply makes (a recording client, no server). Also the tag arithmetic.

Response shapes follow the API references (IAM GetRole / GetRolePolicy / GetPolicyVersion,
KMS DescribeKey / GetKeyRotationStatus / ListResourceTags) and botocore's models of them:
IAM sends policy documents URL-encoded (RFC 3986) on the wire, and botocore's
`json_decode_policies` handler (after-call.iam) hands them to us as dicts; a client without
that handler would hand us the string, so both spellings are covered.
"""

from __future__ import annotations

import datetime
import json
from urllib.parse import quote

import pytest

from healthinfra.providers.aws import tag_changes
from healthinfra.resource import Action
from healthinfra.resources.iam import IamManagedPolicy, IamRole, IamRolePolicy
from healthinfra.resources.kms import KmsKey, key_identifiers, key_users_refusal

from .support.aws_calls import WHEN, Ctx, Recorder, calls_of, client_error

# --- tag arithmetic ------------------------------------------------------------


@pytest.mark.parametrize(
    "before, after, gone, changed",
    [
        ({}, {}, [], {}),
        (None, None, [], {}),
        (None, {"env": "dev"}, [], {"env": "dev"}),
        ({"env": "dev"}, None, ["env"], {}),
        ({"env": "dev"}, {"env": "dev"}, [], {}),
        # a changed value is set again, never removed first
        ({"env": "dev"}, {"env": "prod"}, [], {"env": "prod"}),
        # only the differences: an unchanged tag is not set again
        ({"env": "dev"}, {"env": "dev", "service": "auth"}, [], {"service": "auth"}),
        ({"env": "dev", "service": "auth"}, {"env": "dev"}, ["service"], {}),
        # a renamed key: the old one removed, the new one set
        ({"svc": "auth"}, {"service": "auth"}, ["svc"], {"service": "auth"}),
        # an empty value is a value
        ({"note": ""}, {}, ["note"], {}),
        ({}, {"note": ""}, [], {"note": ""}),
        ({"note": ""}, {"note": "x"}, [], {"note": "x"}),
        # keys come out sorted, whatever order the dicts were built in
        ({"z": "1", "a": "1", "m": "1"}, {}, ["a", "m", "z"], {}),
        ({}, {"z": "1", "a": "2"}, [], {"a": "2", "z": "1"}),
    ],
)
def test_tag_changes(before, after, gone, changed):
    removed, to_set = tag_changes(before, after)
    assert removed == gone
    assert to_set == changed and list(to_set) == sorted(changed)


# --- iam.role ------------------------------------------------------------------

TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}
    ],
}
BOUNDARY = "arn:aws:iam::123456789012:policy/hc-local-boundary"
ROLE = {
    "assume_role_policy": TRUST,
    "description": "auth service (local), managed by healthcare-infra",
    "max_session_duration": 3600,
    "permissions_boundary": BOUNDARY,
    "tags": {"env": "local", "managed-by": "healthcare-infra", "service": "auth"},
}
ROLE_TAGS = [
    {"Key": "env", "Value": "local"},
    {"Key": "managed-by", "Value": "healthcare-infra"},
    {"Key": "service", "Value": "auth"},
]


def get_role(**overrides) -> dict:
    """GetRole's `Role`, every field the API reference lists, as boto3 returns it."""
    role = {
        "Path": "/",
        "RoleName": "hc-local-auth",
        "RoleId": "AROA1234567890EXAMPLE",
        "Arn": "arn:aws:iam::123456789012:role/hc-local-auth",
        "CreateDate": WHEN,
        "AssumeRolePolicyDocument": TRUST,
        "Description": ROLE["description"],
        "MaxSessionDuration": 3600,
        "PermissionsBoundary": {"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": BOUNDARY},
        "Tags": ROLE_TAGS,
        "RoleLastUsed": {"LastUsedDate": WHEN, "Region": "us-east-1"},
    }
    role.update(overrides)
    return {k: v for k, v in role.items() if v is not None}


# a policy whose strings hold characters the wire encodes: %, +, space, /, :
ODD = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Deny",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::hc-local-docs/100% a+b/*",
            "Condition": {"StringLike": {"s3:prefix": "q=1&r=2"}},
        }
    ],
}
PLUS = {**TRUST, "Statement": [{**TRUST["Statement"][0], "Principal": {"AWS": "arn:aws:iam::123456789012:role/ci+cd"}}]}


@pytest.mark.parametrize(
    "role, expected",
    [
        (None, None),
        # boto3: botocore's json_decode_policies has already decoded the document
        (get_role(), ROLE),
        # the wire's spelling (API reference: URL-encoded JSON, RFC 3986)
        (get_role(AssumeRolePolicyDocument=quote(json.dumps(TRUST), safe="")), ROLE),
        # plain JSON text; a `+` in it (IAM names may hold one) is not a space
        (get_role(AssumeRolePolicyDocument=json.dumps(TRUST, indent=2)), ROLE),
        (get_role(AssumeRolePolicyDocument=json.dumps(PLUS)), {**ROLE, "assume_role_policy": PLUS}),
        # characters that only survive a single, exact URL-decoding
        (get_role(AssumeRolePolicyDocument=quote(json.dumps(ODD), safe="")), {**ROLE, "assume_role_policy": ODD}),
        # the minimal role: Description, Tags, PermissionsBoundary, MaxSessionDuration are optional
        (
            get_role(Description=None, Tags=None, PermissionsBoundary=None, MaxSessionDuration=None, RoleLastUsed=None),
            {**ROLE, "description": "", "max_session_duration": 3600, "permissions_boundary": None, "tags": {}},
        ),
        (get_role(Tags=[]), {**ROLE, "tags": {}}),
        (get_role(MaxSessionDuration=43200), {**ROLE, "max_session_duration": 43200}),
        # tags in AWS's order, whatever it is, make the same dict
        (get_role(Tags=list(reversed(ROLE_TAGS))), ROLE),
    ],
)
def test_iam_role_parse(role, expected):
    assert IamRole.parse(role) == expected


@pytest.mark.parametrize(
    "current, desired, expected",
    [
        (None, None, []),
        (None, ROLE, [Action("create", after=ROLE)]),
        (ROLE, None, [Action("delete", before=ROLE)]),
        (ROLE, dict(ROLE), []),
        (
            {**ROLE, "assume_role_policy": ODD},
            ROLE,
            [Action("set", "assume_role_policy", ODD, TRUST)],
        ),
        ({**ROLE, "description": "old"}, ROLE, [Action("set", "description", "old", ROLE["description"])]),
        ({**ROLE, "max_session_duration": 7200}, ROLE, [Action("set", "max_session_duration", 7200, 3600)]),
        ({**ROLE, "permissions_boundary": None}, ROLE, [Action("set", "permissions_boundary", None, BOUNDARY)]),
        (ROLE, {**ROLE, "permissions_boundary": None}, [Action("set", "permissions_boundary", BOUNDARY, None)]),
        (
            {**ROLE, "tags": {"env": "local"}},
            ROLE,
            [Action("set", "tags", {"env": "local"}, ROLE["tags"])],
        ),
        (
            {**ROLE, "tags": {**ROLE["tags"], "owner": "me"}},
            ROLE,
            [Action("set", "tags", {**ROLE["tags"], "owner": "me"}, ROLE["tags"])],
        ),
        # documents and tags are compared by content: key order never makes a diff
        (
            {
                **ROLE,
                "assume_role_policy": json.loads(json.dumps(TRUST, sort_keys=True)),
                "tags": dict(reversed(list(ROLE["tags"].items()))),
            },
            ROLE,
            [],
        ),
        # ... but a statement's value is content: a list where a string was is a change
        (
            {**ROLE, "assume_role_policy": {**TRUST, "Statement": [{**TRUST["Statement"][0], "Action": ["sts:*"]}]}},
            ROLE,
            [
                Action(
                    "set",
                    "assume_role_policy",
                    {**TRUST, "Statement": [{**TRUST["Statement"][0], "Action": ["sts:*"]}]},
                    TRUST,
                )
            ],
        ),
    ],
)
def test_iam_role_diff(current, desired, expected):
    assert IamRole("hc-local-auth", desired).diff(current, desired) == expected


TAGS_AS_SENT = [{"Key": k, "Value": v} for k, v in sorted(ROLE["tags"].items())]


@pytest.mark.parametrize(
    "actions, answers, expected",
    [
        (
            [Action("create", after=ROLE)],
            {},
            [
                (
                    "create_role",
                    {
                        "RoleName": "hc-local-auth",
                        "AssumeRolePolicyDocument": json.dumps(TRUST),
                        "Description": ROLE["description"],
                        "MaxSessionDuration": 3600,
                        "Tags": TAGS_AS_SENT,
                        "PermissionsBoundary": BOUNDARY,
                    },
                )
            ],
        ),
        # no boundary: the parameter is left out, not sent empty
        (
            [Action("create", after={**ROLE, "permissions_boundary": None})],
            {},
            [
                (
                    "create_role",
                    {
                        "RoleName": "hc-local-auth",
                        "AssumeRolePolicyDocument": json.dumps(TRUST),
                        "Description": ROLE["description"],
                        "MaxSessionDuration": 3600,
                        "Tags": TAGS_AS_SENT,
                    },
                )
            ],
        ),
        (
            [Action("set", "assume_role_policy", ODD, TRUST)],
            {},
            [("update_assume_role_policy", {"RoleName": "hc-local-auth", "PolicyDocument": json.dumps(TRUST)})],
        ),
        (
            [Action("set", "description", "old", "new")],
            {},
            [("update_role", {"RoleName": "hc-local-auth", "Description": "new"})],
        ),
        (
            [Action("set", "max_session_duration", 3600, 7200)],
            {},
            [("update_role", {"RoleName": "hc-local-auth", "MaxSessionDuration": 7200})],
        ),
        (
            [Action("set", "permissions_boundary", None, BOUNDARY)],
            {},
            [("put_role_permissions_boundary", {"RoleName": "hc-local-auth", "PermissionsBoundary": BOUNDARY})],
        ),
        (
            [Action("set", "permissions_boundary", BOUNDARY, None)],
            {},
            [("delete_role_permissions_boundary", {"RoleName": "hc-local-auth"})],
        ),
        (
            [Action("set", "tags", {"env": "local", "old": "x", "service": "a"}, {"env": "local", "service": "b"})],
            {},
            [
                ("untag_role", {"RoleName": "hc-local-auth", "TagKeys": ["old"]}),
                ("tag_role", {"RoleName": "hc-local-auth", "Tags": [{"Key": "service", "Value": "b"}]}),
            ],
        ),
        (
            [Action("set", "tags", {"env": "local"}, {"env": "local", "service": "a"})],
            {},
            [("tag_role", {"RoleName": "hc-local-auth", "Tags": [{"Key": "service", "Value": "a"}]})],
        ),
        (
            [Action("set", "tags", {"env": "local", "service": "a"}, {"env": "local"})],
            {},
            [("untag_role", {"RoleName": "hc-local-auth", "TagKeys": ["service"]})],
        ),
        # delete: inline policies deleted and managed ones detached first, as IAM requires
        (
            [Action("delete", before=ROLE)],
            {
                "list_role_policies": {"PolicyNames": ["service-access"]},
                "list_attached_role_policies": {
                    "AttachedPolicies": [{"PolicyName": "extra", "PolicyArn": "arn:aws:iam::123456789012:policy/extra"}]
                },
            },
            [
                ("get_role", {"RoleName": "hc-local-auth"}),
                ("list_role_policies", {"RoleName": "hc-local-auth"}),
                ("delete_role_policy", {"RoleName": "hc-local-auth", "PolicyName": "service-access"}),
                ("list_attached_role_policies", {"RoleName": "hc-local-auth"}),
                (
                    "detach_role_policy",
                    {"RoleName": "hc-local-auth", "PolicyArn": "arn:aws:iam::123456789012:policy/extra"},
                ),
                ("delete_role", {"RoleName": "hc-local-auth"}),
            ],
        ),
        # already gone (a replayed undo): nothing more
        (
            [Action("delete", before=ROLE)],
            {"get_role": client_error("NoSuchEntity", "GetRole")},
            [("get_role", {"RoleName": "hc-local-auth"})],
        ),
    ],
)
def test_iam_role_apply_calls(actions, answers, expected):
    assert calls_of(IamRole("hc-local-auth", None), actions, "iam", answers) == expected


# --- iam.role_policy and iam.policy ----------------------------------------------

GRANTS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::hc-local-docs/*"]}],
}


def role_policy() -> IamRolePolicy:
    return IamRolePolicy("hc-local-auth/service-access", None, role="hc-local-auth", policy="service-access")


@pytest.mark.parametrize(
    "answer, expected",
    [
        (None, None),
        ({"RoleName": "hc-local-auth", "PolicyName": "service-access", "PolicyDocument": GRANTS}, {"document": GRANTS}),
        (
            {"RoleName": "hc-local-auth", "PolicyName": "service-access", "PolicyDocument": quote(json.dumps(GRANTS))},
            {"document": GRANTS},
        ),
        (
            {"RoleName": "hc-local-auth", "PolicyName": "odd", "PolicyDocument": quote(json.dumps(ODD), safe="")},
            {"document": ODD},
        ),
    ],
)
def test_iam_role_policy_parse(answer, expected):
    assert IamRolePolicy.parse(answer) == expected


def policy_version(document, version="v3") -> dict:
    """GetPolicyVersion's response, as the API reference lists it."""
    return {"PolicyVersion": {"Document": document, "VersionId": version, "IsDefaultVersion": True, "CreateDate": WHEN}}


@pytest.mark.parametrize(
    "answer, expected",
    [
        (None, None),
        (policy_version(GRANTS), {"document": GRANTS}),
        (policy_version(quote(json.dumps(GRANTS), safe="")), {"document": GRANTS}),
        (policy_version(quote(json.dumps(ODD), safe=""), "v5"), {"document": ODD}),
    ],
)
def test_iam_managed_policy_parse(answer, expected):
    assert IamManagedPolicy.parse(answer) == expected


@pytest.mark.parametrize("resource", [role_policy(), IamManagedPolicy("hc-local-boundary", None, account="1")])
@pytest.mark.parametrize(
    "current, desired, expected",
    [
        (None, {"document": GRANTS}, [Action("create", after={"document": GRANTS})]),
        ({"document": GRANTS}, None, [Action("delete", before={"document": GRANTS})]),
        ({"document": GRANTS}, {"document": GRANTS}, []),
        ({"document": json.loads(json.dumps(GRANTS, sort_keys=True))}, {"document": GRANTS}, []),
        ({"document": ODD}, {"document": GRANTS}, [Action("set", "document", ODD, GRANTS)]),
    ],
)
def test_iam_policy_documents_diff(resource, current, desired, expected):
    assert resource.diff(current, desired) == expected


@pytest.mark.parametrize(
    "actions, expected",
    [
        (
            [Action("create", after={"document": GRANTS})],
            [
                (
                    "put_role_policy",
                    {"RoleName": "hc-local-auth", "PolicyName": "service-access", "PolicyDocument": json.dumps(GRANTS)},
                )
            ],
        ),
        (
            [Action("set", "document", ODD, GRANTS)],
            [
                (
                    "put_role_policy",
                    {"RoleName": "hc-local-auth", "PolicyName": "service-access", "PolicyDocument": json.dumps(GRANTS)},
                )
            ],
        ),
        (
            [Action("delete", before={"document": GRANTS})],
            [("delete_role_policy", {"RoleName": "hc-local-auth", "PolicyName": "service-access"})],
        ),
    ],
)
def test_iam_role_policy_apply_calls(actions, expected):
    assert calls_of(role_policy(), actions, "iam") == expected


POLICY_ARN = "arn:aws:iam::123456789012:policy/hc-local-boundary"


def versions(count: int) -> dict:
    """ListPolicyVersions: v1..vN, the newest the default, listed newest first as IAM does."""
    return {
        "Versions": [
            {"VersionId": f"v{n}", "IsDefaultVersion": n == count, "CreateDate": WHEN + datetime.timedelta(days=n)}
            for n in range(count, 0, -1)
        ]
    }


@pytest.mark.parametrize(
    "actions, answers, listed, expected",
    [
        (
            [Action("create", after={"document": GRANTS})],
            {},
            {},
            [
                (
                    "create_policy",
                    {
                        "PolicyName": "hc-local-boundary",
                        "PolicyDocument": json.dumps(GRANTS),
                        "Description": "the most",
                    },
                )
            ],
        ),
        # under IAM's limit of five versions: a new default version, nothing pruned
        (
            [Action("set", "document", ODD, GRANTS)],
            {"list_policy_versions": versions(3)},
            {},
            [
                ("list_policy_versions", {"PolicyArn": POLICY_ARN}),
                (
                    "create_policy_version",
                    {"PolicyArn": POLICY_ARN, "PolicyDocument": json.dumps(GRANTS), "SetAsDefault": True},
                ),
            ],
        ),
        # at the limit: the oldest non-default version goes first
        (
            [Action("set", "document", ODD, GRANTS)],
            {"list_policy_versions": versions(5)},
            {},
            [
                ("list_policy_versions", {"PolicyArn": POLICY_ARN}),
                ("delete_policy_version", {"PolicyArn": POLICY_ARN, "VersionId": "v1"}),
                (
                    "create_policy_version",
                    {"PolicyArn": POLICY_ARN, "PolicyDocument": json.dumps(GRANTS), "SetAsDefault": True},
                ),
            ],
        ),
        # delete: the non-default versions first, as IAM requires
        (
            [Action("delete", before={"document": GRANTS})],
            {"list_policy_versions": versions(2)},
            {"hc-local-boundary": {"Arn": POLICY_ARN, "DefaultVersionId": "v2"}},
            [
                ("list_policy_versions", {"PolicyArn": POLICY_ARN}),
                ("delete_policy_version", {"PolicyArn": POLICY_ARN, "VersionId": "v1"}),
                ("delete_policy", {"PolicyArn": POLICY_ARN}),
            ],
        ),
        # already gone: nothing
        ([Action("delete", before={"document": GRANTS})], {}, {}, []),
    ],
)
def test_iam_managed_policy_apply_calls(actions, answers, listed, expected):
    policy = IamManagedPolicy("hc-local-boundary", None, account="123456789012", description="the most")
    assert calls_of(policy, actions, "iam", answers, facts={"iam.policies": listed}) == expected


# --- kms.key -------------------------------------------------------------------

ALIAS = "alias/hc-local-phi"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:us-east-1:123456789012:key/{KEY_ID}"
KEY = {
    "description": "PHI at rest (local), managed by healthcare-infra",
    "pending_deletion": False,
    "enabled": True,
    "rotation": True,
    "tags": {"data-class": "phi", "env": "local", "managed-by": "healthcare-infra"},
}


def describe_key(state="Enabled", **overrides) -> dict:
    """DescribeKey's response for a customer managed symmetric key, as the API reference lists it."""
    meta = {
        "AWSAccountId": "123456789012",
        "KeyId": KEY_ID,
        "Arn": f"arn:aws:kms:us-east-1:123456789012:key/{KEY_ID}",
        "CreationDate": WHEN,
        "Enabled": state == "Enabled",
        "Description": KEY["description"],
        "KeyUsage": "ENCRYPT_DECRYPT",
        "KeyState": state,
        "Origin": "AWS_KMS",
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
        "KeySpec": "SYMMETRIC_DEFAULT",
        "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        "MultiRegion": False,
    }
    if state == "PendingDeletion":
        meta.update(DeletionDate=WHEN + datetime.timedelta(days=7), PendingDeletionWindowInDays=7)
    meta.update(overrides)
    return {"KeyMetadata": {k: v for k, v in meta.items() if v is not None}}


def rotation_status(enabled=True) -> dict:
    answer = {"KeyRotationEnabled": enabled, "KeyId": KEY_ID}
    if enabled:
        answer.update(RotationPeriodInDays=365, NextRotationDate=WHEN + datetime.timedelta(days=365))
    return answer


KEY_TAGS = {
    "Tags": [
        {"TagKey": "data-class", "TagValue": "phi"},
        {"TagKey": "env", "TagValue": "local"},
        {"TagKey": "managed-by", "TagValue": "healthcare-infra"},
    ],
    "Truncated": False,
}


@pytest.mark.parametrize(
    "described, rotation, tagged, expected",
    [
        (describe_key(), rotation_status(), KEY_TAGS, KEY),
        (describe_key("Disabled"), rotation_status(), KEY_TAGS, {**KEY, "enabled": False}),
        # pending deletion: KMS reports rotation false while the key waits (GetKeyRotationStatus)
        (
            describe_key("PendingDeletion"),
            rotation_status(False),
            KEY_TAGS,
            {**KEY, "pending_deletion": True, "enabled": False, "rotation": False},
        ),
        # other states the key can be in are neither enabled nor pending deletion
        (describe_key("Unavailable"), rotation_status(), KEY_TAGS, {**KEY, "enabled": False}),
        (describe_key("Creating"), rotation_status(), KEY_TAGS, {**KEY, "enabled": False}),
        (describe_key(), rotation_status(False), KEY_TAGS, {**KEY, "rotation": False}),
        # a key created without a description: "" (or the field left out)
        (describe_key(Description=""), rotation_status(), KEY_TAGS, {**KEY, "description": ""}),
        (describe_key(Description=None), rotation_status(), KEY_TAGS, {**KEY, "description": ""}),
        # no tags: an empty list, or no Tags member at all
        (describe_key(), rotation_status(), {"Tags": [], "Truncated": False}, {**KEY, "tags": {}}),
        (describe_key(), rotation_status(), {"Truncated": False}, {**KEY, "tags": {}}),
        # KMS's own spelling of tag members (TagKey/TagValue), in any order
        (describe_key(), rotation_status(), {"Tags": list(reversed(KEY_TAGS["Tags"]))}, KEY),
    ],
)
def test_kms_key_parse(described, rotation, tagged, expected):
    assert KmsKey.parse(described, rotation, tagged) == expected


PENDING = {**KEY, "pending_deletion": True, "enabled": False, "rotation": False}


@pytest.mark.parametrize(
    "current, desired, expected",
    [
        (None, None, []),
        (None, KEY, [Action("create", after=KEY)]),
        (KEY, None, [Action("delete", before=KEY)]),
        (KEY, dict(KEY), []),
        ({**KEY, "description": "old"}, KEY, [Action("set", "description", "old", KEY["description"])]),
        ({**KEY, "enabled": False}, KEY, [Action("set", "enabled", False, True)]),
        ({**KEY, "rotation": False}, KEY, [Action("set", "rotation", False, True)]),
        (KEY, {**KEY, "pending_deletion": True}, [Action("set", "pending_deletion", False, True)]),
        (
            {**KEY, "tags": {"env": "local"}},
            KEY,
            [Action("set", "tags", {"env": "local"}, KEY["tags"])],
        ),
        # a key scheduled for deletion by hand: cancel first, then enable, then rotation
        # (cancelling leaves the key disabled, and a disabled key's rotation cannot be turned on)
        (
            PENDING,
            KEY,
            [
                Action("set", "pending_deletion", True, False),
                Action("set", "enabled", False, True),
                Action("set", "rotation", False, True),
            ],
        ),
    ],
)
def test_kms_key_diff(current, desired, expected):
    assert KmsKey(ALIAS, desired).diff(current, desired) == expected


KEY_TAGS_AS_SENT = [{"TagKey": k, "TagValue": v} for k, v in sorted(KEY["tags"].items())]
NO_BUCKETS = {"kms.aliases": {ALIAS: KEY_ID}, "s3.buckets": set()}


@pytest.mark.parametrize(
    "actions, facts, expected",
    [
        (
            [Action("create", after=KEY)],
            {"kms.aliases": {}},
            [
                (
                    "create_key",
                    {
                        "Description": KEY["description"],
                        "KeyUsage": "ENCRYPT_DECRYPT",
                        "KeySpec": "SYMMETRIC_DEFAULT",
                        "Tags": KEY_TAGS_AS_SENT,
                    },
                ),
                ("create_alias", {"AliasName": ALIAS, "TargetKeyId": "new-key"}),
                ("enable_key_rotation", {"KeyId": "new-key"}),
            ],
        ),
        (
            [Action("create", after={**KEY, "rotation": False, "enabled": False, "tags": {}})],
            {"kms.aliases": {}},
            [
                (
                    "create_key",
                    {
                        "Description": KEY["description"],
                        "KeyUsage": "ENCRYPT_DECRYPT",
                        "KeySpec": "SYMMETRIC_DEFAULT",
                        "Tags": [],
                    },
                ),
                ("create_alias", {"AliasName": ALIAS, "TargetKeyId": "new-key"}),
                ("disable_key", {"KeyId": "new-key"}),
            ],
        ),
        # never deleted at once: the alias goes, the key waits the shortest window (its ARN
        # read first, for the guard that looks for buckets using it)
        (
            [Action("delete", before=KEY)],
            NO_BUCKETS,
            [
                ("describe_key", {"KeyId": KEY_ID}),
                ("delete_alias", {"AliasName": ALIAS}),
                ("schedule_key_deletion", {"KeyId": KEY_ID, "PendingWindowInDays": 7}),
            ],
        ),
        (
            [Action("delete", before=PENDING)],
            NO_BUCKETS,
            [("describe_key", {"KeyId": KEY_ID}), ("delete_alias", {"AliasName": ALIAS})],
        ),
        # the undo of a hand-made deletion, in the diff's order
        (
            [
                Action("set", "pending_deletion", True, False),
                Action("set", "enabled", False, True),
                Action("set", "rotation", False, True),
            ],
            NO_BUCKETS,
            [
                ("cancel_key_deletion", {"KeyId": KEY_ID}),
                ("enable_key", {"KeyId": KEY_ID}),
                ("enable_key_rotation", {"KeyId": KEY_ID}),
            ],
        ),
        (
            [Action("set", "pending_deletion", False, True)],
            NO_BUCKETS,
            [("schedule_key_deletion", {"KeyId": KEY_ID, "PendingWindowInDays": 7})],
        ),
        (
            [Action("set", "description", "old", "new")],
            NO_BUCKETS,
            [("update_key_description", {"KeyId": KEY_ID, "Description": "new"})],
        ),
        ([Action("set", "rotation", True, False)], NO_BUCKETS, [("disable_key_rotation", {"KeyId": KEY_ID})]),
        ([Action("set", "enabled", True, False)], NO_BUCKETS, [("disable_key", {"KeyId": KEY_ID})]),
        (
            [Action("set", "tags", {"env": "local", "old": "x"}, {"env": "dev"})],
            NO_BUCKETS,
            [
                ("untag_resource", {"KeyId": KEY_ID, "TagKeys": ["old"]}),
                ("tag_resource", {"KeyId": KEY_ID, "Tags": [{"TagKey": "env", "TagValue": "dev"}]}),
            ],
        ),
        # no alias names a key any more (a replayed undo): nothing to change
        ([Action("set", "enabled", True, False), Action("delete", before=KEY)], {"kms.aliases": {}}, []),
    ],
)
def test_kms_key_apply_calls(actions, facts, expected):
    answers = {
        "create_key": {"KeyMetadata": {"KeyId": "new-key"}},
        "describe_key": {"KeyMetadata": {"KeyId": KEY_ID, "Arn": KEY_ARN}},
    }
    assert calls_of(KmsKey(ALIAS, None), actions, "kms", answers, facts) == expected


# --- kms.key: what uses the key ---------------------------------------------------


def test_every_name_of_the_key_is_known_by_its_kind():
    aliases = {ALIAS: KEY_ID, "alias/other-name": KEY_ID, "alias/another-key": "5678"}
    assert key_identifiers(KEY_ID, KEY_ARN, aliases) == {
        KEY_ID: "key id",
        KEY_ARN: "key ARN",
        ALIAS: "alias name",
        f"arn:aws:kms:us-east-1:123456789012:{ALIAS}": "alias ARN",
        "alias/other-name": "alias name",
        "arn:aws:kms:us-east-1:123456789012:alias/other-name": "alias ARN",
    }


@pytest.mark.parametrize(
    "users, expected",
    [
        ({}, None),
        ({"b": {"default": None, "versions": 0}}, None),
        (
            {"b": {"default": "key ARN", "versions": 0}},
            "bucket(s) b still encrypt with it (b: default encryption names it by key ARN)",
        ),
        # every bucket, in name order, each with all it has
        (
            {
                "zz": {"default": None, "versions": 2},
                "aa": {"default": "alias ARN", "versions": 3},
                "mm": {"default": None, "versions": 0},
            },
            "bucket(s) aa, zz still encrypt with it (aa: default encryption names it by alias ARN,"
            " 3 object versions encrypted with it; zz: 2 object versions encrypted with it)",
        ),
    ],
)
def test_the_key_refusal_lists_every_bucket_using_it(users, expected):
    message = key_users_refusal(ALIAS, users)
    if expected is None:
        assert message is None
    else:
        assert message.startswith(f"refusing to delete KMS key `{ALIAS}`: {expected}, and their data")


def test_the_key_guard_finds_a_default_by_key_id_and_versions_by_their_key():
    from healthinfra.errors import DataLossRefused

    default_by_id = {
        "ServerSideEncryptionConfiguration": {
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KEY_ID}}]
        }
    }
    s3 = Recorder(
        {
            "get_bucket_encryption": default_by_id,
            "paginate list_object_versions": [{"Versions": [{"Key": "a", "VersionId": "v1"}]}],
            "head_object": {"SSEKMSKeyId": KEY_ARN},
        }
    )
    kms = Recorder({"describe_key": {"KeyMetadata": {"KeyId": KEY_ID, "Arn": KEY_ARN}}})
    ctx = Ctx({"kms.aliases": {ALIAS: KEY_ID}, "s3.buckets": {"b1", "gone"}}, s3=s3, kms=kms)
    ctx.planned_deletions = {"s3.bucket gone"}  # deleted earlier in the same run: its own guard
    with pytest.raises(DataLossRefused) as refused:
        KmsKey(ALIAS, None).guard(ctx, [Action("delete", before=KEY)])
    assert (
        "bucket(s) b1 still encrypt with it (b1: default encryption names it by key id,"
        " 1 object versions encrypted with it)"
    ) in str(refused.value)
    assert ("head_object", {"Bucket": "b1", "Key": "a", "VersionId": "v1"}) in s3.calls
    assert all(call[1].get("Bucket") != "gone" for call in s3.calls)
