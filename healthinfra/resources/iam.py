"""IAM: roles per service, their inline policies, and the managed boundary policy.

A role is read with one `get_role` (which, unlike `list_roles`, returns its tags and
permissions boundary); an inline policy with one `get_role_policy`; a managed
policy by listing the account's own policies once per run, then its default
version. Documents are compared as parsed JSON, so key order never makes a diff.
"""

from __future__ import annotations

import json
from urllib.parse import unquote

from ..providers.aws import absent_on, list_by_name, tag_changes
from ..resource import Resource


def _document(document) -> dict:
    if isinstance(document, str):
        document = json.loads(unquote(document))
    return document


def _tags(items) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in items or []}


class IamRole(Resource):
    kind = "iam.role"
    unmanaged = ("inline policies: `iam.role_policy` resources", "path: `/`, fixed at creation")

    def read(self, ctx):
        return self.parse(absent_on(lambda: ctx.aws.client("iam").get_role(RoleName=self.name)["Role"], "NoSuchEntity"))

    @staticmethod
    def parse(role: dict | None) -> dict | None:
        """GetRole's `Role` (None: NoSuchEntity) -> the managed attributes. Pure."""
        if role is None:
            return None
        return {
            "assume_role_policy": _document(role["AssumeRolePolicyDocument"]),
            "description": role.get("Description", ""),
            "max_session_duration": role.get("MaxSessionDuration", 3600),
            "permissions_boundary": (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn"),
            "tags": _tags(role.get("Tags")),
        }

    def apply(self, ctx, actions):
        iam = ctx.aws.client("iam")
        for action in actions:
            if action.op == "create":
                want = action.after
                extra = (
                    {"PermissionsBoundary": want["permissions_boundary"]} if want.get("permissions_boundary") else {}
                )
                iam.create_role(
                    RoleName=self.name,
                    AssumeRolePolicyDocument=json.dumps(want["assume_role_policy"]),
                    Description=want["description"],
                    MaxSessionDuration=want["max_session_duration"],
                    Tags=[{"Key": k, "Value": v} for k, v in sorted(want["tags"].items())],
                    **extra,
                )
            elif action.op == "delete":
                if absent_on(lambda: iam.get_role(RoleName=self.name), "NoSuchEntity") is None:
                    continue
                for name in iam.list_role_policies(RoleName=self.name)["PolicyNames"]:
                    iam.delete_role_policy(RoleName=self.name, PolicyName=name)
                for policy in iam.list_attached_role_policies(RoleName=self.name)["AttachedPolicies"]:
                    iam.detach_role_policy(RoleName=self.name, PolicyArn=policy["PolicyArn"])
                iam.delete_role(RoleName=self.name)
            elif action.attribute == "assume_role_policy":
                iam.update_assume_role_policy(RoleName=self.name, PolicyDocument=json.dumps(action.after))
            elif action.attribute == "description":
                iam.update_role(RoleName=self.name, Description=action.after)
            elif action.attribute == "max_session_duration":
                iam.update_role(RoleName=self.name, MaxSessionDuration=action.after)
            elif action.attribute == "permissions_boundary":
                if action.after:
                    iam.put_role_permissions_boundary(RoleName=self.name, PermissionsBoundary=action.after)
                else:
                    iam.delete_role_permissions_boundary(RoleName=self.name)
            elif action.attribute == "tags":
                gone, changed = tag_changes(action.before, action.after)
                if gone:
                    iam.untag_role(RoleName=self.name, TagKeys=gone)
                if changed:
                    iam.tag_role(RoleName=self.name, Tags=[{"Key": k, "Value": v} for k, v in changed.items()])


class IamRolePolicy(Resource):
    """An inline policy of a role: the service's own grants. Named `ROLE/POLICY`."""

    kind = "iam.role_policy"

    def __init__(self, name, desired, *, role: str, policy: str):
        super().__init__(name, desired, role=role, policy=policy)

    def depends_on(self):
        return [f"iam.role {self.params['role']}"]

    def read(self, ctx):
        iam = ctx.aws.client("iam")
        answer = absent_on(
            lambda: iam.get_role_policy(RoleName=self.params["role"], PolicyName=self.params["policy"]), "NoSuchEntity"
        )
        return self.parse(answer)

    @staticmethod
    def parse(answer: dict | None) -> dict | None:
        """GetRolePolicy's response (None: NoSuchEntity) -> the managed attributes. Pure."""
        return {"document": _document(answer["PolicyDocument"])} if answer else None

    def apply(self, ctx, actions):
        iam = ctx.aws.client("iam")
        role, policy = self.params["role"], self.params["policy"]
        for action in actions:
            if action.op == "delete":
                absent_on(lambda: iam.delete_role_policy(RoleName=role, PolicyName=policy), "NoSuchEntity")
            else:
                document = (action.after or {}).get("document") if action.op == "create" else action.after
                iam.put_role_policy(RoleName=role, PolicyName=policy, PolicyDocument=json.dumps(document))


def local_policies_fact(ctx) -> dict[str, dict]:
    return ctx.fact(
        "iam.policies",
        lambda: list_by_name(ctx.aws.client("iam"), "list_policies", "Policies", "PolicyName", Scope="Local"),
    )


class IamManagedPolicy(Resource):
    """A customer-managed policy (the permissions boundary). Updates add a version and
    make it the default, keeping at most the last four older versions, as IAM allows."""

    kind = "iam.policy"
    unmanaged = (
        "path: `/`; older policy versions: pruned to IAM's limit of five",
        "description: set at creation (IAM cannot change it)",
    )

    def __init__(self, name, desired, *, account: str, description: str = ""):
        super().__init__(name, desired, account=account, description=description)

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.params['account']}:policy/{self.name}"

    def read(self, ctx):
        policy = local_policies_fact(ctx).get(self.name)
        if policy is None:
            return None
        iam = ctx.aws.client("iam")
        return self.parse(iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"]))

    @staticmethod
    def parse(answer: dict | None) -> dict | None:
        """GetPolicyVersion's response for the default version (None: no such policy) -> the managed attributes. Pure."""
        return {"document": _document(answer["PolicyVersion"]["Document"])} if answer else None

    def apply(self, ctx, actions):
        iam = ctx.aws.client("iam")
        for action in actions:
            if action.op == "create":
                iam.create_policy(
                    PolicyName=self.name,
                    PolicyDocument=json.dumps(action.after["document"]),
                    Description=self.params["description"],
                )
            elif action.op == "delete":
                if self.name not in local_policies_fact(ctx):
                    continue
                for version in iam.list_policy_versions(PolicyArn=self.arn)["Versions"]:
                    if not version["IsDefaultVersion"]:
                        iam.delete_policy_version(PolicyArn=self.arn, VersionId=version["VersionId"])
                iam.delete_policy(PolicyArn=self.arn)
            elif action.attribute == "document":
                versions = iam.list_policy_versions(PolicyArn=self.arn)["Versions"]
                older = sorted((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
                for version in older[: max(0, len(versions) - 4)]:
                    iam.delete_policy_version(PolicyArn=self.arn, VersionId=version["VersionId"])
                iam.create_policy_version(
                    PolicyArn=self.arn, PolicyDocument=json.dumps(action.after), SetAsDefault=True
                )


def trust_policy(account_id: str) -> dict:
    """Principals of this account may assume a service role, if their own policies allow it."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
