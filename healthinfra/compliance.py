"""security.compliance: the HIPAA Security Rule safeguards that infrastructure can evidence.

One row per safeguard, made of checks; each check turns what was read live into evidence
(resource, setting, observed value, pass or fail). The rules are pure functions of the facts
`read_facts` gathers through a check-mode RunContext (docs/compliance.md); a check for
something the environment's phase does not have yet is "not applicable (from phase N)".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .audit import db_role_findings, policy_findings, role_findings, trigger_findings

if TYPE_CHECKING:
    pass

AUDIT_RETENTION_DAYS = 2192  # six years, leap days counted (CloudWatch's own value for 6 years)
LIFECYCLE_DAYS = 2190  # six years of 365 days: no access-log version may expire sooner
MODIFYING = ("UPDATE", "DELETE", "TRUNCATE")  # what an append-only table allows nobody


@dataclass(frozen=True)
class Evidence:
    resource: str
    setting: str
    observed: str
    ok: bool

    def to_json(self) -> dict:
        return {"resource": self.resource, "setting": self.setting, "observed": self.observed, "ok": self.ok}


E = Evidence
Facts = dict[str, Any]


# --- the checks (pure: facts -> evidence) ------------------------------------------------


def unique_identities(f: Facts) -> list[Evidence]:
    found = []
    for s in f["services"]:
        role = f["login_roles"].get(s["db_role"])
        found.append(E(f"db role {s['db_role']}", "login role", "exists" if role else "missing", role is not None))
        exists = f["iam_roles"].get(s["iam_role"]) is not None
        found.append(E(f"iam role {s['iam_role']}", "role", "exists" if exists else "missing", exists))
    own = {s["db_role"] for s in f["services"]} | {f["admin"]}
    for role in sorted(set(f["login_roles"]) - own):
        shared = f["shared_passwords"].get(role)
        seen = "belongs to no service" + (f"; accepts the password of {shared}" if shared else "")
        found.append(E(f"db role {role}", "login role", seen, False))
    for role in sorted(set(f["iam_roles"]) - {s["iam_role"] for s in f["services"]}):
        found.append(E(f"iam role {role}", "role", "belongs to no service", False))
    return found


def least_privilege(f: Facts) -> list[Evidence]:
    found = []
    for s in f["services"]:
        role = s["db_role"]
        if role not in f["login_roles"]:
            continue
        problems = db_role_findings(
            role, f["login_roles"][role], f["grants"].get(role, {}), s["allowed"], f["memberships"].get(role, [])
        )
        seen = "; ".join(p.problem for p in problems) or "no superuser/createrole/bypassrls, grants as services.yml"
        found.append(E(f"db role {role}", "attributes and grants", seen, not problems))
    for name, role in sorted(f["iam_roles"].items()):
        if role is None:
            continue
        boundary = role_findings(name, role)
        found.append(
            E(f"iam role {name}", "permissions boundary", role["permissions_boundary"] or "none", not boundary)
        )
        for policy in role.get("attached", []):
            found.append(E(f"iam role {name}", "attached managed policy", policy, False))
        for policy, document in sorted(role.get("policies", {}).items()):
            problems = policy_findings(policy, document)
            seen = "; ".join(p.problem for p in problems) or "no wildcard action or resource"
            found.append(E(f"iam role {name} policy {policy}", "statements", seen, not problems))
    for policy, document in sorted(f["managed_policies"].items()):
        problems = policy_findings(policy, document)
        seen = "; ".join(p.problem for p in problems) or "no wildcard action or resource"
        found.append(E(f"iam policy {policy}", "statements", seen, not problems))
    return found


def _kms_buckets(f: Facts) -> list[str]:
    return [b for b in sorted(f["buckets"]) if b != f["log_bucket"]]


def _bucket(f: Facts, name: str) -> dict:
    return f["buckets"][name] or {}


def encryption_at_rest(f: Facts) -> list[Evidence]:
    found = []
    for b in _kms_buckets(f):
        enc = _bucket(f, b).get("encryption") or {}
        ok = enc.get("algorithm") == "aws:kms" and enc.get("kms_key") in f["key_identifiers"]
        seen = f"{enc['algorithm']} with {enc.get('kms_key') or 'the AWS managed key'}" if enc else "none"
        found.append(E(f"s3 {b}", "default encryption", seen, ok))
    key, alias = f["key"], f["key_alias"]
    if key is None:
        return [*found, E(f"kms {alias}", "key", "missing", False)]
    state = "pending deletion" if key["pending_deletion"] else "enabled" if key["enabled"] else "disabled"
    found.append(E(f"kms {alias}", "state", state, state == "enabled"))
    found.append(E(f"kms {alias}", "automatic rotation", "on" if key["rotation"] else "off", bool(key["rotation"])))
    return found


def audit_triggers(f: Facts) -> list[Evidence]:
    found = []
    for (table, trigger), migration in sorted(f["expected_triggers"].items()):
        live = f["live_triggers"].get((table, trigger))
        problems = trigger_findings({(table, trigger): migration}, f["live_triggers"])
        seen = "missing" if live is None else problems[0].problem if problems else "enabled, on every change"
        found.append(E(f"db table {table}", f"trigger {trigger}", seen, not problems))
    return found


def audit_log_group(f: Facts) -> list[Evidence]:
    group = f["audit_group"]
    return [E(f"log group {f['audit_group_name']}", "exists", "yes" if group else "missing", group is not None)]


def access_logging(f: Facts) -> list[Evidence]:
    found = []
    for b in _kms_buckets(f):
        logging = _bucket(f, b).get("logging")
        seen = f"to {logging['target_bucket']}/{logging['target_prefix']}" if logging else "off"
        found.append(
            E(
                f"s3 {b}",
                "server access logging",
                seen,
                logging is not None and logging["target_bucket"] == f["log_bucket"],
            )
        )
    return found


def versioning(f: Facts) -> list[Evidence]:
    return [
        E(
            f"s3 {b}",
            "versioning",
            _bucket(f, b).get("versioning") or "never enabled",
            _bucket(f, b).get("versioning") == "Enabled",
        )
        for b in sorted(f["buckets"])
    ]


def forced_row_security(f: Facts) -> list[Evidence]:
    found = []
    for table, state in sorted(f["row_security"].items()):
        seen = ("on" if state["rls"] else "off") + (", forced" if state["forced"] else ", not forced")
        found.append(E(f"db table {table}", "row-level security", seen, state["rls"] and state["forced"]))
    return found


def append_only_audit_log(f: Facts) -> list[Evidence]:
    found = []
    for role, held in sorted(f["audit_log_privileges"].items()):
        modifying = [p for p in MODIFYING if p in held]
        seen = (
            f"may {', '.join(modifying)}"
            if modifying
            else f"{', '.join(held) or 'nothing'}; no update, delete or truncate"
        )
        found.append(E(f"db role {role}", "privileges on audit_log", seen, not modifying))
    return found


PASSWORD_KINDS = {"scram": "SCRAM-SHA-256 verifier", "md5": "md5 hash", "none": "no password", "plain": "plain text"}


def scram_passwords(f: Facts) -> list[Evidence]:
    return [
        E(f"db role {role}", "password (pg_authid)", PASSWORD_KINDS.get(kind, kind), kind == "scram")
        for role, kind in sorted(f["passwords"].items())
    ]


def trust_policies(f: Facts) -> list[Evidence]:
    found = []
    for name, role in sorted(f["iam_roles"].items()):
        if role is None:
            continue
        trusted = sorted(_principals(role["assume_role_policy"]))
        seen = f"assumable by {', '.join(trusted) or 'nobody'}"
        found.append(E(f"iam role {name}", "trust policy", seen, role["assume_role_policy"] == f["trust_policy"]))
    return found


def _principals(document: dict) -> set[str]:
    found: set[str] = set()
    for statement in document.get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        for kind, values in principal.items() if isinstance(principal, dict) else [("*", principal)]:
            found.update(f"{kind}:{v}" for v in (values if isinstance(values, list) else [values]))
    return found


def tls_only_buckets(f: Facts) -> list[Evidence]:
    found = []
    for b in sorted(f["buckets"]):
        statements = (_bucket(f, b).get("policy") or {}).get("Statement", [])
        deny = [
            s.get("Sid", "?")
            for s in statements
            if s.get("Effect") == "Deny" and "aws:SecureTransport" in str(s.get("Condition"))
        ]
        found.append(
            E(f"s3 {b}", "policy denies requests without TLS", f"yes ({', '.join(deny)})" if deny else "no", bool(deny))
        )
    return found


def database_refuses_plaintext(f: Facts) -> list[Evidence]:
    probe = f["plaintext_probe"]
    seen = f"refused: {probe['message']}" if probe["refused"] else "accepted a session without TLS"
    return [E(f"database {probe['where']}", f"sslmode=disable as {probe['role']}", seen, probe["refused"])]


def verified_database_urls(f: Facts) -> list[Evidence]:
    return [
        E(f"service {service}", "DATABASE_URL sslmode", mode, mode == "verify-full")
        for service, mode in sorted(f["database_urls"].items())
    ]


def audit_group_retention(f: Facts) -> list[Evidence]:
    group, name = f["audit_group"], f["audit_group_name"]
    if group is None:
        return [E(f"log group {name}", "retention", "group missing", False)]
    days = group["retention_days"]
    seen = "never expires" if days is None else f"{days} days"
    return [E(f"log group {name}", "retention", seen, days is None or days >= AUDIT_RETENTION_DAYS)]


def access_log_lifecycle(f: Facts) -> list[Evidence]:
    b = f["log_bucket"]
    if b not in f["buckets"] or f["buckets"][b] is None:
        return [E(f"s3 {b}", "lifecycle", "bucket missing", False)]
    found = []
    for rule in _bucket(f, b).get("lifecycle") or []:
        if not rule["enabled"]:
            continue
        kept = [d for d in (rule["expiration_days"], rule["noncurrent_expiration_days"]) if d]
        seen = f"rule {rule['id']}: " + (f"expires after {min(kept)} days" if kept else "never expires")
        found.append(E(f"s3 {b}", "lifecycle", seen, all(d >= LIFECYCLE_DAYS for d in kept)))
    return found or [E(f"s3 {b}", "lifecycle", "no rule: kept until deleted by hand", True)]


# --- the row table -----------------------------------------------------------------------

Check = tuple[str, str, str, Callable[[Facts], list[Evidence]]]  # id, title, from (a key of facts["from"]), rule
SAFEGUARDS: tuple[tuple[str, str, tuple[Check, ...]], ...] = (
    ("164.312(a)(1)", "Access control", (
        ("unique-identities", "one database login role and one IAM role per service, no shared login", "db", unique_identities),
        ("least-privilege", "no powers beyond the services table; IAM without wildcards, bounded", "db", least_privilege),
    )),
    ("164.312(a)(2)(iv)", "Encryption and decryption (at rest)", (
        ("sse-kms", "every data bucket SSE-KMS with the environment's rotated, enabled key", "storage", encryption_at_rest),
    )),
    ("164.312(b)", "Audit controls", (
        ("audit-triggers", "every audit trigger the migrations create present and enabled", "triggers", audit_triggers),
        ("audit-log-group", "the audit log group exists", "logs", audit_log_group),
        ("access-logging", "server access logging on every data bucket", "storage", access_logging),
    )),
    ("164.312(c)(1)", "Integrity", (
        ("versioning", "versioning on every bucket", "storage", versioning),
        ("forced-row-security", "row-level security on and forced on patient data", "rls", forced_row_security),
        ("append-only-audit-log", "audit_log append-only for every service", "db", append_only_audit_log),
    )),
    ("164.312(d)", "Person or entity authentication", (
        ("scram-passwords", "every login role authenticates with a SCRAM-SHA-256 password", "db", scram_passwords),
        ("trust-policies", "IAM roles assumable only as the trust policy says", "db", trust_policies),
    )),
    ("164.312(e)(1)", "Transmission security", (
        ("tls-only-buckets", "every bucket policy denies requests without TLS", "storage", tls_only_buckets),
        ("database-refuses-plaintext", "the database refuses a TCP session without TLS", "db", database_refuses_plaintext),
        ("verified-database-urls", "every service's DATABASE_URL verifies the server", "db", verified_database_urls),
    )),
    ("164.316(b)(2)(i)", "Retention: six years", (
        ("audit-log-retention", f"the audit log group keeps events >= {AUDIT_RETENTION_DAYS} days", "logs", audit_group_retention),
        ("access-log-lifecycle", f"the access-log bucket keeps every version >= {LIFECYCLE_DAYS} days", "storage", access_log_lifecycle),
    )),
)  # fmt: skip


def judge(facts: Facts) -> list[dict]:
    """The facts -> one row per safeguard, each check with its evidence and status. Pure."""
    rows = []
    for safeguard, title, checks in SAFEGUARDS:
        judged: list[dict] = []
        for check, what, needs, rule in checks:
            start = facts["from"].get(needs)
            if start is None or facts["phase"] < start:
                later = f"from phase {start}" if start else "at no phase"
                judged.append({"id": check, "title": what, "status": f"not applicable ({later})", "evidence": []})
                continue
            evidence = rule(facts)
            ok = bool(evidence) and all(e.ok for e in evidence)
            evidence = evidence or [E("-", what, "nothing found to show it", False)]
            judged.append(
                {
                    "id": check,
                    "title": what,
                    "status": "pass" if ok else "fail",
                    "evidence": [e.to_json() for e in evidence],
                }
            )
        statuses = [c["status"] for c in judged]
        status = "fail" if "fail" in statuses else "pass" if "pass" in statuses else statuses[0]
        rows.append({"safeguard": safeguard, "title": title, "status": status, "checks": judged})
    return rows


def failed(rows: list[dict]) -> bool:
    return any(r["status"] == "fail" for r in rows)


def password_kind(verifier: str | None) -> str:
    """pg_authid.rolpassword -> scram | md5 | none | plain. Pure."""
    if not verifier:
        return "none"
    if verifier.startswith("SCRAM-SHA-256$"):
        return "scram"
    return "md5" if verifier.startswith("md5") and len(verifier) == 35 else "plain"


def sslmode_of(url: str) -> str:
    """The sslmode a connection URL asks for (libpq's default `prefer` when it names none). Pure."""
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(url).query).get("sslmode", ["prefer (not set)"])[-1]
