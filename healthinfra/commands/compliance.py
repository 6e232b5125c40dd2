"""`security.compliance`: the HIPAA Security Rule safeguards, each with its checks and the
evidence read live; exit 1 when any check fails. Reads only (a check-mode RunContext).

The rules are pure, in healthinfra/compliance.py; this module reads what they judge.
`compliance_rows` is what `monitoring.report` embeds.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from .. import names
from ..compliance import MODIFYING, Facts, failed, judge, password_kind, sslmode_of
from .common import load, observed_phase, require_local_services

if TYPE_CHECKING:
    from ..inventory import Inventory
    from ..step import Catalog


def security_compliance(inventory_name: str, *, catalog: Catalog, as_json=False, out=None) -> int:
    """One row per safeguard (or one JSON document); exit 1 when any check fails."""
    out = out or sys.stdout
    inventory = load(inventory_name)
    require_local_services(inventory)
    phase = observed_phase(inventory, None)
    rows = compliance_rows(inventory, phase, catalog)
    if as_json:
        document = {"inventory": inventory.name, "phase": phase, "ok": not failed(rows), "safeguards": rows}
        out.write(json.dumps(document, indent=2) + "\n")
    else:
        render(inventory.name, phase, rows, out)
    return 1 if failed(rows) else 0


def render(inventory: str, phase: int, rows: list[dict], out) -> None:
    out.write(f"HIPAA Security Rule safeguards in `{inventory}` at phase {phase}, evidence read live\n")
    for row in rows:
        out.write(f"\n{row['status'].upper():<4}  {row['safeguard']} {row['title']}\n")
        for check in row["checks"]:
            out.write(f"  {check['status']:<4}  {check['id']}: {check['title']}\n")
            for e in check["evidence"]:
                mark = "ok  " if e["ok"] else "FAIL"
                out.write(f"          {mark}  {e['resource']}  {e['setting']}: {e['observed']}\n")
    bad = [r["safeguard"] for r in rows if r["status"] == "fail"]
    out.write(f"\n{len(bad)} safeguard(s) failing: {', '.join(bad)}\n" if bad else "\nevery safeguard passes\n")


def compliance_rows(inventory: Inventory, phase: int, catalog: Catalog) -> list[dict]:
    """The safeguard rows (JSON-able) of the environment at `phase`, read live."""
    from ..context import RunContext
    from ..faults import provider_call

    with RunContext(inventory, check=True) as ctx, provider_call("security compliance"):
        return judge(read_facts(ctx, inventory, phase, catalog))


# --- reading (through a check-mode RunContext; nothing is changed) -------------------------


def first_phases(catalog: Catalog, inventory: Inventory) -> dict[str, int | None]:
    """From which phase each kind of evidence exists, by what the playbooks build."""
    from ..audit import migration_expectations
    from ..deployed import TOP_PHASE
    from ..plan import desired_names

    def first(test) -> int | None:
        return next((p for p in range(1, TOP_PHASE + 1) if test(p)), None)

    def expectations(p: int):
        return migration_expectations(desired_names(catalog, inventory, p, "pg.migration"))

    return {
        "db": 1,
        "storage": first(lambda p: bool(desired_names(catalog, inventory, p, "s3.bucket"))),
        "logs": first(
            lambda p: names.log_group(inventory, "audit") in desired_names(catalog, inventory, p, "logs.group")
        ),
        "triggers": first(lambda p: bool(expectations(p)[0])),
        "rls": first(lambda p: bool(expectations(p)[1])),
    }


def read_facts(ctx, inventory: Inventory, phase: int, catalog: Catalog) -> Facts:
    """Everything the checks judge, read live at `phase`."""
    from ..audit import live_triggers, migration_expectations, row_security_state
    from ..privileges import table_privileges
    from ..resources.iam import IamManagedPolicy, IamRole, IamRolePolicy, trust_policy
    from ..resources.kms import KmsKey, aliases_fact, key_identifiers
    from ..resources.monitoring import log_groups_fact
    from ..resources.pg_facts import databases_fact, migrations_fact, roles_fact
    from ..resources.postgres import PgGrants
    from ..resources.s3 import S3Bucket, buckets_fact

    start = first_phases(catalog, inventory)
    services = inventory.services_at(phase)
    admin = inventory.provider("database").admin_role(inventory)
    database = inventory.database["name"]
    f: Facts = {"phase": phase, "from": start, "admin": admin, "trust_policy": trust_policy(inventory.aws_account_id)}
    f["services"] = [
        {
            "name": s.name,
            "db_role": s.db_role,
            "iam_role": names.iam_role(inventory, s.name),
            "allowed": {"database": ["CONNECT"], **table_privileges(s)},
        }
        for s in services
    ]
    roles = roles_fact(ctx)
    f["login_roles"] = {r: a for r, a in roles.items() if a["login"] and r != "postgres" and not r.startswith("pg_")}
    conn = ctx.pg.admin(database) if database in databases_fact(ctx) else ctx.pg.admin()
    f["memberships"] = {}
    for member, group in conn.execute(
        "select m.rolname, g.rolname from pg_auth_members a join pg_roles m on m.oid = a.member"
        " join pg_roles g on g.oid = a.roleid order by 1, 2"
    ).fetchall():
        f["memberships"].setdefault(member, []).append(group)
    f["grants"] = {s.db_role: PgGrants(s.db_role, None, database=database).read(ctx) for s in services}
    f["passwords"] = read_passwords(conn, sorted(f["login_roles"]))
    f["shared_passwords"] = shared_passwords(ctx, inventory, services, set(f["login_roles"]) - {admin})
    f["audit_log_privileges"] = {}
    if conn.execute("select to_regclass('public.audit_log') is not null").fetchone()[0]:
        for s in services:
            if s.db_role in roles:
                f["audit_log_privileges"][s.db_role] = [
                    p for p in ("INSERT", "SELECT", *MODIFYING)
                    if conn.execute("select has_table_privilege(%s, 'public.audit_log', %s)", (s.db_role, p)).fetchone()[0]
                ]  # fmt: skip

    iam = ctx.aws.client("iam")
    prefix = names.resource(inventory, "")
    listed = [r["RoleName"] for page in iam.get_paginator("list_roles").paginate() for r in page["Roles"]]
    f["iam_roles"] = {}
    for name in sorted({n for n in listed if n.startswith(prefix)} | {s["iam_role"] for s in f["services"]}):
        role = IamRole(name, None).read(ctx)
        if role is not None:
            role["attached"] = [
                a["PolicyName"] for a in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
            ]
            role["policies"] = {
                p: (IamRolePolicy(f"{name}/{p}", None, role=name, policy=p).read(ctx) or {}).get("document")
                for p in iam.list_role_policies(RoleName=name)["PolicyNames"]
            }
        f["iam_roles"][name] = role
    boundary = IamManagedPolicy(names.boundary_policy(inventory), None, account=inventory.aws_account_id).read(ctx)
    f["managed_policies"] = {names.boundary_policy(inventory): boundary["document"]} if boundary else {}

    f["key_alias"] = alias = names.phi_key_alias(inventory)
    key = KmsKey(alias, None)
    f["key"] = key.read(ctx)
    f["key_identifiers"] = []
    if f["key"] is not None:
        meta = ctx.aws.client("kms").describe_key(KeyId=key.key_id(ctx))["KeyMetadata"]
        f["key_identifiers"] = sorted(key_identifiers(meta["KeyId"], meta["Arn"], aliases_fact(ctx)))
    f["log_bucket"] = names.access_log_bucket(inventory)
    existing = buckets_fact(ctx)
    f["buckets"] = {
        b: S3Bucket(b, None, region=inventory.aws["region"]).read(ctx) if b in existing else None
        for b in desired_names_at(catalog, inventory, phase, S3Bucket.kind)
    }
    f["audit_group_name"] = group = names.log_group(inventory, "audit")
    f["audit_group"] = log_groups_fact(ctx, group).get(group)
    if f["audit_group"] is not None:
        f["audit_group"] = {"retention_days": f["audit_group"].get("retentionInDays")}

    applied = sorted(migrations_fact(ctx, database))
    expected, forced = migration_expectations(applied)
    has_db = database in databases_fact(ctx)
    f["expected_triggers"] = expected
    f["live_triggers"] = live_triggers(conn) if has_db else {}
    f["row_security"] = row_security_state(conn, forced) if has_db else {}
    f["plaintext_probe"] = plaintext_probe(ctx, inventory, services)
    f["database_urls"] = database_urls(ctx, inventory, catalog, phase)
    return f


def desired_names_at(catalog: Catalog, inventory: Inventory, phase: int, kind: str) -> list[str]:
    from ..plan import desired_names

    return desired_names(catalog, inventory, phase, kind)


def read_passwords(conn, roles: list[str]) -> dict[str, str]:
    """Each login role's kind of password, from pg_authid (readable by a superuser only)."""
    from psycopg import errors

    try:
        rows = conn.execute("select rolname, rolpassword from pg_authid where rolname = any(%s)", (roles,)).fetchall()
    except errors.InsufficientPrivilege:
        return {r: "unreadable: pg_authid needs a superuser" for r in roles}
    return {name: password_kind(verifier) for name, verifier in rows}


def shared_passwords(ctx, inventory: Inventory, services, others: set[str]) -> dict[str, str]:
    """Each login role of no service that accepts a service's password -> that service's role."""
    import psycopg

    from ..providers.postgres import service_conninfo

    found: dict[str, str] = {}
    for role in sorted(others - {s.db_role for s in services}):
        for s in services:
            password = ctx.secrets.get(f"pg.{s.db_role}")
            if password is None:
                continue
            try:
                psycopg.connect(**service_conninfo(inventory, role, password), connect_timeout=3).close()
            except psycopg.OperationalError as e:
                if "permission denied for database" not in str(e):  # that one comes after the password
                    continue
            found[role] = s.db_role
            break
    return found


def plaintext_probe(ctx, inventory: Inventory, services) -> dict:
    """Connect as a service role, with its password, and sslmode=disable: the server must refuse."""
    import psycopg

    from ..providers.postgres import service_conninfo

    role = next((s.db_role for s in services if ctx.secrets.get(f"pg.{s.db_role}") is not None), services[0].db_role)
    info = {**service_conninfo(inventory, role, ctx.secrets.get(f"pg.{role}"), client=ctx.database_api)}
    info.update(sslmode="disable")
    info.pop("sslrootcert", None)
    where = f"{info['host']}:{info.get('port', 5432)}"
    try:
        psycopg.connect(**info, connect_timeout=5).close()
    except psycopg.OperationalError as e:
        message = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        return {"where": where, "role": role, "refused": True, "message": message}
    return {"where": where, "role": role, "refused": False, "message": ""}


def database_urls(ctx, inventory: Inventory, catalog: Catalog, phase: int) -> dict[str, str]:
    """Each hosted service's DATABASE_URL sslmode, from its env file or its hosting variables."""
    from ..plan import plan_items
    from ..resources.local_env import env_file_path, parse_env_file
    from ..service_env import DATABASE_URL_REF, DATABASE_URL_STALE, current_database_url

    found = {}
    for item in plan_items(catalog, inventory, phase):
        resource = item.resource
        if resource.kind not in ("local.env_file", "railway.variables") or resource.desired is None:
            continue
        current = resource.read(ctx)
        variables = (current or {}).get("variables", current or {})
        value = variables.get("DATABASE_URL")
        if value is None:
            found[resource.name] = "no DATABASE_URL"
        elif value in (DATABASE_URL_REF, DATABASE_URL_STALE):
            url = current_database_url(inventory, resource.name, ctx.secrets, ctx.database_api)
            found[resource.name] = sslmode_of(url.reveal()) if url else "unknown"
        elif resource.kind == "local.env_file":
            raw = parse_env_file(env_file_path(inventory, resource.name).read_text(encoding="utf-8"))
            found[resource.name] = sslmode_of(raw["DATABASE_URL"])
        else:
            found[resource.name] = "unknown: not a URL the runner made"
    return found
