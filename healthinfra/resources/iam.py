"""IAM roles, one per service: trust policy, description, session length and tags.

All roles are listed with one paginated call per run (the family's facts); tags
come from one call per existing role. Policies attached to a role are the
security playbook's own resources and are not managed here.
"""

from __future__ import annotations

import json
from urllib.parse import unquote

from ..resource import Resource


def roles_fact(ctx) -> dict[str, dict]:
    def load():
        iam = ctx.aws.client("iam")
        roles = {}
        for page in iam.get_paginator("list_roles").paginate():
            for role in page["Roles"]:
                roles[role["RoleName"]] = role
        return roles

    return ctx.fact("iam.roles", load)


def _policy(document) -> dict:
    if isinstance(document, str):
        document = json.loads(unquote(document))
    return document


class IamRole(Resource):
    kind = "iam.role"
    unmanaged = ("policies and permissions boundary: their own resources (security playbook)",)

    def read(self, ctx):
        role = roles_fact(ctx).get(self.name)
        if role is None:
            return None
        tags = ctx.aws.client("iam").list_role_tags(RoleName=self.name)["Tags"]
        return {
            "assume_role_policy": _policy(role["AssumeRolePolicyDocument"]),
            "description": role.get("Description", ""),
            "max_session_duration": role.get("MaxSessionDuration", 3600),
            "tags": {t["Key"]: t["Value"] for t in tags},
        }

    def apply(self, ctx, actions):
        iam = ctx.aws.client("iam")
        for action in actions:
            if action.op == "create":
                want = action.after
                iam.create_role(
                    RoleName=self.name,
                    AssumeRolePolicyDocument=json.dumps(want["assume_role_policy"]),
                    Description=want["description"],
                    MaxSessionDuration=want["max_session_duration"],
                    Tags=[{"Key": k, "Value": v} for k, v in sorted(want["tags"].items())],
                )
            elif action.op == "delete":
                if self.name not in roles_fact(ctx):
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
            elif action.attribute == "tags":
                before, after = action.before or {}, action.after or {}
                gone = sorted(set(before) - set(after))
                if gone:
                    iam.untag_role(RoleName=self.name, TagKeys=gone)
                changed = {k: v for k, v in after.items() if before.get(k) != v}
                if changed:
                    iam.tag_role(RoleName=self.name, Tags=[{"Key": k, "Value": v} for k, v in sorted(changed.items())])


def trust_policy(account_id: str) -> dict:
    """Phase 1's basic trust: principals of this account may assume the role, if their
    own policies allow it. Later phases narrow this per service."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
            "Action": "sts:AssumeRole",
        }],
    }
