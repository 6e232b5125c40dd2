"""security.audit: find misconfigurations, whoever made them.

The rules are pure functions of what was read (a bucket's settings, a policy
document, a role, a role's privileges), each finding naming the resource, what
is wrong and the fix; gathering reads every bucket and every IAM role and policy
of the environment, not only the ones the playbooks manage.
"""

from __future__ import annotations

import re
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


MIGRATIONS_DIR = "templates/sql/migrations"  # as playbooks/db.py, which the engine may not import
AUDIT_FUNCTION = "audit_phi_change"
_CREATE_TRIGGER = re.compile(
    r"create\s+trigger\s+(\w+)[^;]*?\son\s+([\w.]+)[^;]*?\sexecute\s+(?:function|procedure)\s+"
    rf"(?:public\.)?{AUDIT_FUNCTION}\s*\(",
    re.IGNORECASE,
)
_DROP_TRIGGER = re.compile(r"drop\s+trigger\s+(?:if\s+exists\s+)?(\w+)\s+on\s+([\w.]+)", re.IGNORECASE)
_FORCE_RLS = re.compile(r"alter\s+table\s+([\w.]+)\s+(no\s+)?force\s+row\s+level\s+security", re.IGNORECASE)
ROW_TRIGGER_ON_EVERY_CHANGE = 1 | 4 | 8 | 16  # pg_trigger.tgtype: ROW, INSERT, DELETE, UPDATE
_SHOWN = "case when n.nspname = 'public' then c.relname else n.nspname || '.' || c.relname end"


def _shown(table: str) -> str:
    return table.removeprefix("public.")


def expected_row_security(migrations: list[tuple[str, str]]) -> tuple[dict[tuple[str, str], str], set[str]]:
    """What the applied migrations leave, from their up files in order ([(name, sql)]): every
    audit trigger, (table, trigger) -> the migration creating it, and the tables whose row-level
    security they force. Pure."""
    triggers: dict[tuple[str, str], str] = {}
    forced: set[str] = set()
    for name, text in migrations:
        events = [(m.start(), "create", m) for m in _CREATE_TRIGGER.finditer(text)]
        events += [(m.start(), "drop", m) for m in _DROP_TRIGGER.finditer(text)]
        events += [(m.start(), "force", m) for m in _FORCE_RLS.finditer(text)]
        for _, kind, match in sorted(events, key=lambda e: e[0]):
            if kind == "force":
                table = _shown(match[1])
                (forced.discard if match[2] else forced.add)(table)
                continue
            key = (_shown(match[2]), match[1])
            if kind == "create":
                triggers[key] = name
            else:
                triggers.pop(key, None)
    return triggers, forced


def table_security_findings(tables: dict[str, dict]) -> list[Finding]:
    """Row security on the tables that must have it, {table: {"rls": bool, "forced": bool}}. Pure."""
    return [
        Finding(
            f"db table {table}",
            "row-level security is not on and forced",
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY",
        )
        for table, state in sorted(tables.items())
        if not (state["rls"] and state["forced"])
    ]


NOT_FIRING = {"D": "is disabled", "R": "fires only in replica mode"}  # pg_trigger.tgenabled


def trigger_findings(expected: dict[tuple[str, str], str], live: dict[tuple[str, str], dict]) -> list[Finding]:
    """Each audit trigger the migrations create, against the server's (table, trigger) ->
    {"enabled": pg_trigger.tgenabled, "function": its function's name, "type": tgtype}. Pure."""
    found = []
    for (table, trigger), migration in sorted(expected.items()):
        state = live.get((table, trigger))
        restore = f"restore it from {MIGRATIONS_DIR}/{migration}.up.sql"
        if state is None:
            problem, fix = f"changes are not audited (its audit trigger `{trigger}` is missing)", restore
        elif state["enabled"] in NOT_FIRING:
            problem = f"changes are not audited (its audit trigger `{trigger}` {NOT_FIRING[state['enabled']]})"
            fix = f"ALTER TABLE {table} ENABLE TRIGGER {trigger}"
        elif state["function"] != AUDIT_FUNCTION or ~state["type"] & ROW_TRIGGER_ON_EVERY_CHANGE:
            problem = (
                f"its audit trigger `{trigger}` does not run {AUDIT_FUNCTION}() on every insert, update and delete"
            )
            fix = restore
        else:
            continue
        found.append(Finding(f"db table {table}", problem, fix))
    return found


def definer_findings(functions: list[str]) -> list[Finding]:
    """SECURITY DEFINER functions PUBLIC may execute (by signature). Pure."""
    return [
        Finding(
            f"db function {function}",
            "SECURITY DEFINER and PUBLIC may execute it: any role runs it with its owner's rights",
            f"REVOKE EXECUTE ON FUNCTION {function} FROM PUBLIC (grant it only to the roles that need it)",
        )
        for function in sorted(functions)
    ]


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

    from .resources.pg_facts import databases_fact, migrations_fact

    database = inventory.database["name"]
    if database in databases_fact(ctx):
        findings += row_security_findings(ctx.pg.admin(database), sorted(migrations_fact(ctx, database)))
    return findings


def row_security_findings(conn, applied: list[str]) -> list[Finding]:
    """The applied migrations' audit triggers and forced row security, patient data (patients and
    any table referencing it) others may touch, and SECURITY DEFINER functions open to PUBLIC."""
    expected, forced = migration_expectations(applied)
    found = trigger_findings(expected, live_triggers(conn))
    if "0002_phi_protection" in applied:  # the row-level security contract starts with phase 2
        found += table_security_findings(row_security_state(conn, forced))
    open_to_public = conn.execute(
        """select p.oid::regprocedure::text from pg_proc p
            where p.prosecdef and p.pronamespace not in ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
              and exists (select 1 from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                           where a.grantee = 0 and a.privilege_type = 'EXECUTE')"""
    ).fetchall()
    return found + definer_findings([r[0] for r in open_to_public])


def migration_expectations(applied: list[str]) -> tuple[dict[tuple[str, str], str], set[str]]:
    """`expected_row_security` of the applied migrations' up files (security.compliance reads it too)."""
    from .inventory import project_root

    paths = [(name, project_root() / MIGRATIONS_DIR / f"{name}.up.sql") for name in applied]
    return expected_row_security([(name, path.read_text(encoding="utf-8")) for name, path in paths if path.exists()])


def live_triggers(conn) -> dict[tuple[str, str], dict]:
    return {  # every user trigger, (table, trigger) -> what `trigger_findings` judges
        (table, trigger): {"enabled": enabled, "function": function, "type": kind}
        for table, trigger, enabled, function, kind in conn.execute(
            f"""select {_SHOWN}, t.tgname, t.tgenabled::text, p.proname, t.tgtype::int
                  from pg_trigger t join pg_class c on c.oid = t.tgrelid
                  join pg_namespace n on n.oid = c.relnamespace join pg_proc p on p.oid = t.tgfoid
                 where not t.tgisinternal"""
        ).fetchall()
    }


def row_security_state(conn, forced: set[str]) -> dict[str, dict]:
    """{table: {"rls", "forced"}}: the tables forced, and those of patient data others may touch."""
    rows = conn.execute(
        f"""select {_SHOWN}, c.relrowsecurity, c.relforcerowsecurity,
                   (c.oid = to_regclass('public.patients') or exists (
                       select 1 from pg_constraint k where k.contype = 'f' and k.conrelid = c.oid
                          and k.confrelid = to_regclass('public.patients')))
                   and exists (select 1 from aclexplode(c.relacl) a where a.grantee <> c.relowner)
              from pg_class c join pg_namespace n on n.oid = c.relnamespace
             where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema')"""
    ).fetchall()
    return {t: {"rls": rls, "forced": force} for t, rls, force, phi in rows if phi or t in forced}
