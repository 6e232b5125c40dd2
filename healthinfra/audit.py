"""security.audit: find misconfigurations, whoever made them.

The rules are pure functions of what was read (a bucket's settings, a policy
document, a role, a role's privileges), each finding naming the resource, what
is wrong and the fix; gathering reads every bucket and every IAM role and policy
of the environment, not only the ones the playbooks manage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import names
from .privileges import table_privileges


@dataclass(frozen=True)
class Finding:
    resource: str
    problem: str
    fix: str

    def to_json(self) -> dict:
        return {"resource": self.resource, "problem": self.problem, "fix": self.fix}


def bucket_findings(name: str, settings: dict[str, Any], log_bucket: bool) -> list[Finding]:
    found = []
    pab = settings.get("public_access_block") or {}
    if not pab or not all(pab.values()):
        off = sorted(k for k, v in pab.items() if not v) or ["all four settings"]
        found.append(
            Finding(
                f"s3 {name}",
                f"public access is not fully blocked ({', '.join(off)})",
                "turn on all four Block Public Access settings (invoke deploy)",
            )
        )
    encryption = settings.get("encryption")
    if encryption is None:
        found.append(Finding(f"s3 {name}", "no default encryption", "set SSE-KMS with the PHI key (invoke deploy)"))
    elif not log_bucket and encryption.get("algorithm") != "aws:kms":
        found.append(
            Finding(
                f"s3 {name}",
                f"encrypted with {encryption.get('algorithm')}, not a customer KMS key",
                "set SSE-KMS with the PHI key (invoke deploy)",
            )
        )
    policy = settings.get("policy") or {}
    statements = policy.get("Statement", [])
    if not any(s.get("Effect") == "Deny" and "aws:SecureTransport" in str(s.get("Condition")) for s in statements):
        found.append(
            Finding(
                f"s3 {name}",
                "plain-HTTP requests are not denied",
                "add the TLS-only statement to the bucket policy (invoke deploy)",
            )
        )
    for statement in statements:
        if statement.get("Effect") == "Allow" and _anyone(statement.get("Principal")):
            found.append(
                Finding(
                    f"s3 {name}",
                    f"policy statement `{statement.get('Sid', '?')}` allows anyone",
                    "remove it; grant services access through their IAM roles",
                )
            )
    if settings.get("versioning") != "Enabled":
        found.append(
            Finding(
                f"s3 {name}",
                "versioning is off: an overwrite or delete loses data",
                "enable versioning (invoke deploy)",
            )
        )
    if not log_bucket and not settings.get("logging"):
        found.append(
            Finding(
                f"s3 {name}",
                "server access logging is off: reads of PHI leave no trace",
                "log to the access-logs bucket (invoke deploy)",
            )
        )
    return found


def _anyone(principal) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        values = principal.get("AWS", [])
        values = values if isinstance(values, list) else [values]
        return "*" in values
    return False


def key_findings(alias: str, key: dict | None) -> list[Finding]:
    if key is None:
        return []
    found = []
    if key.get("pending_deletion"):
        found.append(
            Finding(
                f"kms {alias}",
                "scheduled for deletion: data encrypted with it will be lost",
                "cancel the deletion (invoke deploy)",
            )
        )
    if not key.get("rotation"):
        found.append(Finding(f"kms {alias}", "automatic key rotation is off", "turn rotation on (invoke deploy)"))
    return found


def table_security_findings(tables: dict[str, dict]) -> list[Finding]:
    """Row security and audit triggers on the PHI tables, once migration 0002 is applied."""
    found = []
    for table, state in sorted(tables.items()):
        if not (state["rls"] and state["forced"]):
            found.append(
                Finding(
                    f"db table {table}",
                    "row-level security is not on and forced",
                    f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY",
                )
            )
        if not state["audited"]:
            found.append(
                Finding(
                    f"db table {table}",
                    "changes are not audited (its audit trigger is missing)",
                    "restore the trigger from templates/sql/migrations/0002_phi_protection.up.sql",
                )
            )
    return found


def policy_findings(name: str, document: dict | None) -> list[Finding]:
    found = []
    for statement in (document or {}).get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        actions = actions if isinstance(actions, list) else [actions]
        resources = statement.get("Resource", [])
        resources = resources if isinstance(resources, list) else [resources]
        sid = statement.get("Sid", "?")
        if "NotAction" in statement:
            found.append(
                Finding(
                    name,
                    f"statement `{sid}` allows everything but a list (NotAction)",
                    "list the actions allowed instead",
                )
            )
        if any(a == "*" or a.endswith(":*") for a in actions):
            found.append(
                Finding(
                    name,
                    f"statement `{sid}` allows every action ({', '.join(actions)})",
                    "list the actions the service needs",
                )
            )
        if any(r == "*" or r in ("arn:aws:s3:::*", "arn:aws:s3:::*/*") for r in resources):
            found.append(Finding(name, f"statement `{sid}` applies to every resource", "name the resources"))
    return found


def role_findings(name: str, role: dict) -> list[Finding]:
    if not role.get("permissions_boundary"):
        return [Finding(f"iam role {name}", "no permissions boundary", "attach the service boundary (invoke deploy)")]
    return []


def db_role_findings(
    role: str,
    attributes: dict,
    held: dict[str, list[str]],
    allowed: dict[str, list[str]] | None,
    member_of: tuple[str, ...] | list[str] = (),
) -> list[Finding]:
    found = []
    for group in member_of:
        found.append(
            Finding(
                f"db role {role}", f"is a member of `{group}`, gaining its privileges", f"REVOKE {group} FROM {role}"
            )
        )
    for power in ("superuser", "createrole", "createdb", "bypassrls", "replication"):
        if attributes.get(power):
            found.append(Finding(f"db role {role}", f"has {power.upper()}", f"ALTER ROLE {role} NO{power.upper()}"))
    if allowed is None:
        if any(held.values()):
            found.append(
                Finding(
                    f"db role {role}",
                    "holds privileges but is not in the services table",
                    "revoke them, or add the service to inventories/services.yml",
                )
            )
        return found
    for target, privileges in sorted(held.items()):
        extra = sorted(set(privileges) - set(allowed.get(target, [])))
        if extra:
            found.append(
                Finding(
                    f"db role {role}",
                    f"more than it needs on {target.replace('table:', 'table ')}: {', '.join(extra)}",
                    "revoke them (invoke deploy restores the services table's grants)",
                )
            )
    return found


def gather(ctx, inventory, phase: int) -> list[Finding]:
    """Read everything auditable in the environment and apply the rules."""
    from .resources.iam import IamManagedPolicy, IamRole, IamRolePolicy
    from .resources.postgres import PgGrants, roles_fact
    from .resources.s3 import S3Bucket, buckets_fact

    findings: list[Finding] = []
    log_bucket = names.access_log_bucket(inventory)
    for name in sorted(buckets_fact(ctx)):
        settings = S3Bucket(name, None, region=inventory.aws["region"]).read(ctx)
        findings += bucket_findings(name, settings, log_bucket=name == log_bucket)

    iam = ctx.aws.client("iam")
    prefix = names.resource(inventory, "")
    for page in iam.get_paginator("list_roles").paginate():
        for listed in page["Roles"]:
            name = listed["RoleName"]
            if not name.startswith(prefix):
                continue
            role = IamRole(name, None).read(ctx)
            if role is None:
                continue
            findings += role_findings(name, role)
            for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
                current = IamRolePolicy(f"{name}/{policy}", None, role=name, policy=policy).read(ctx)
                findings += policy_findings(f"iam role {name} policy {policy}", (current or {}).get("document"))
            for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
                findings += [
                    Finding(
                        f"iam role {name}",
                        f"managed policy `{attached['PolicyName']}` attached",
                        "grant through the service's own inline policy only",
                    )
                ]
    for page in iam.get_paginator("list_policies").paginate(Scope="Local"):
        for policy in page["Policies"]:
            current = IamManagedPolicy(policy["PolicyName"], None, account=inventory.aws_account_id).read(ctx)
            findings += policy_findings(f"iam policy {policy['PolicyName']}", (current or {}).get("document"))

    from .resources.kms import KmsKey

    alias = names.phi_key_alias(inventory)
    findings += key_findings(alias, KmsKey(alias, None).read(ctx))

    services = {s.db_role: s for s in inventory.services}
    conn = ctx.pg.admin()
    memberships: dict[str, list[str]] = {}
    for member, group in conn.execute("""select m.rolname, g.rolname from pg_auth_members a
                                           join pg_roles m on m.oid = a.member join pg_roles g on g.oid = a.roleid
                                          order by 1, 2""").fetchall():
        memberships.setdefault(member, []).append(group)
    for role, attributes in sorted(roles_fact(ctx).items()):
        admin = inventory.provider("database").admin_role(inventory)  # it owns the database, runs migrations
        if role in ("postgres", admin) or role.startswith("pg_") or not attributes.get("login"):
            continue
        held = PgGrants(role, None, database=inventory.database["name"]).read(ctx)
        service = services.get(role)
        allowed = {"database": ["CONNECT"], **table_privileges(service)} if service else None
        findings += db_role_findings(role, attributes, held, allowed, memberships.get(role, []))

    from .resources.postgres import databases_fact, migrations_fact

    database = inventory.database["name"]
    if database in databases_fact(ctx) and "0002_phi_protection" in migrations_fact(ctx, database):
        rows = (
            ctx.pg.admin(database)
            .execute(
                """select c.relname, c.relrowsecurity, c.relforcerowsecurity,
                      exists (select 1 from pg_trigger t where t.tgrelid = c.oid and not t.tgisinternal
                                 and t.tgfoid = 'audit_phi_change'::regproc)
                 from pg_class c where c.relnamespace = 'public'::regnamespace
                  and c.relname in ('patients', 'medical_records')"""
            )
            .fetchall()
        )
        findings += table_security_findings({r[0]: {"rls": r[1], "forced": r[2], "audited": r[3]} for r in rows})
    return findings
