"""security.compliance: every HIPAA safeguard row passes on a healthy environment, and each row
fails, naming what broke, when that safeguard is broken on purpose (real servers on loopback)."""

from __future__ import annotations

import json

import pytest
from psycopg import sql

from healthinfra.compliance import (
    AUDIT_RETENTION_DAYS,
    SAFEGUARDS,
    Evidence,
    access_log_lifecycle,
    audit_group_retention,
    judge,
    password_kind,
    sslmode_of,
)
from healthinfra.providers.aws import AwsClients
from healthinfra.secret_store import SecretStore

from .support.database import admin
from .support.environment import INVENTORY
from .support.invoking import run_invoke
from .support.reset import empty_environment

# --- the pure rules, as tables -------------------------------------------------------------


@pytest.mark.parametrize(
    "verifier, kind",
    [
        ("SCRAM-SHA-256$4096:c2FsdA==$a:b", "scram"),
        ("md5" + "0" * 32, "md5"),
        (None, "none"),
        ("", "none"),
        ("hunter2", "plain"),
    ],
)
def test_password_kinds(verifier, kind):
    assert password_kind(verifier) == kind


@pytest.mark.parametrize(
    "url, mode",
    [
        ("postgresql://u:p@h:5432/db?sslmode=verify-full&sslrootcert=/x", "verify-full"),
        ("postgresql://u:p@h/db?sslmode=require", "require"),
        ("postgresql://u:p@h/db", "prefer (not set)"),
    ],
)
def test_sslmode_of_a_url(url, mode):
    assert sslmode_of(url) == mode


@pytest.mark.parametrize(
    "group, ok, observed",
    [
        ({"retention_days": AUDIT_RETENTION_DAYS}, True, "2192 days"),
        ({"retention_days": 3653}, True, "3653 days"),
        ({"retention_days": None}, True, "never expires"),
        ({"retention_days": 2190}, False, "2190 days"),
        (None, False, "group missing"),
    ],
)
def test_audit_group_retention(group, ok, observed):
    [e] = audit_group_retention({"audit_group": group, "audit_group_name": "/hc/x/audit"})
    assert (e.ok, e.observed) == (ok, observed)


def rule(expiration=None, noncurrent=None, enabled=True):
    return {"id": "r", "enabled": enabled, "expiration_days": expiration, "noncurrent_expiration_days": noncurrent}


@pytest.mark.parametrize(
    "lifecycle, oks",
    [
        ([rule(2190)], [True]),
        ([rule(365)], [False]),
        ([rule(2190, noncurrent=30)], [False]),  # an overwritten log would be gone in a month
        ([rule(30, enabled=False)], [True]),  # only the fallback: a disabled rule expires nothing
        (None, [True]),
    ],
)
def test_access_log_lifecycle(lifecycle, oks):
    facts = {"log_bucket": "logs", "buckets": {"logs": {"lifecycle": lifecycle}}}
    assert [e.ok for e in access_log_lifecycle(facts)] == oks


def test_a_row_passes_only_when_every_applicable_check_passes_and_later_phases_are_not_applicable():
    checks = [c for _, _, row in SAFEGUARDS for c in row]
    facts = {"phase": 1, "from": {"db": 1, "storage": 2, "logs": 2, "triggers": 2, "rls": 2}}
    good = {c[3]: [Evidence("r", "s", "v", True)] for c in checks}
    import healthinfra.compliance as compliance

    def with_rules(results):
        saved = compliance.SAFEGUARDS
        compliance.SAFEGUARDS = tuple(
            (sid, title, tuple((i, t, needs, lambda f, r=r: results[r]) for i, t, needs, r in row))
            for sid, title, row in saved
        )
        try:
            return {r["safeguard"]: r for r in judge(facts)}
        finally:
            compliance.SAFEGUARDS = saved

    rows = with_rules(good)
    assert rows["164.312(a)(2)(iv)"]["status"] == "not applicable (from phase 2)"
    assert rows["164.312(b)"]["status"] == "not applicable (from phase 2)"
    assert rows["164.312(c)(1)"]["status"] == "pass"  # append-only applies at phase 1; versioning does not
    assert {c["id"]: c["status"] for c in rows["164.312(c)(1)"]["checks"]}["versioning"].startswith("not applicable")
    bad = dict(good)
    bad[checks[0][3]] = [Evidence("db role x", "login role", "belongs to no service", False)]
    bad[checks[1][3]] = []  # nothing to show it is no proof: a failure
    rows = with_rules(bad)
    assert rows["164.312(a)(1)"]["status"] == "fail"
    assert [c["status"] for c in rows["164.312(a)(1)"]["checks"]] == ["fail", "fail"]
    assert rows["164.312(a)(1)"]["checks"][1]["evidence"][0]["observed"] == "nothing found to show it"
    facts["phase"] = 4
    assert all(r["status"] == "pass" for r in with_rules(good).values())


# --- against the real servers ---------------------------------------------------------------


def failures(doc: dict) -> dict[str, list[tuple[str, str, str]]]:
    """Failing safeguard -> its failing evidence, (resource, setting, observed)."""
    return {
        row["safeguard"]: [
            (e["resource"], e["setting"], e["observed"]) for c in row["checks"] for e in c["evidence"] if not e["ok"]
        ]
        for row in doc["safeguards"]
        if row["status"] == "fail"
    }


def compliance() -> tuple[int, dict]:
    result = run_invoke("security.compliance", "-i", INVENTORY, "--json")
    assert result.code in (0, 1), result
    return result.code, result.json


def test_a_phase_1_environment_passes_and_storage_safeguards_are_not_applicable_yet(env, invoke):
    assert invoke("deploy", "-i", "test", "--phase", "1").code == 0
    code, doc = compliance()
    assert code == 0 and doc["ok"] and doc["phase"] == 1, failures(doc)
    status = {r["safeguard"]: r["status"] for r in doc["safeguards"]}
    assert status["164.312(a)(2)(iv)"] == "not applicable (from phase 2)"
    assert status["164.316(b)(2)(i)"] == "not applicable (from phase 2)"
    assert status["164.312(a)(1)"] == status["164.312(d)"] == status["164.312(e)(1)"] == "pass"
    table = invoke("security.compliance", "-i", "test")
    assert table.code == 0 and "not applicable (from phase 2)" in table.out and "every safeguard passes" in table.out


@pytest.fixture(scope="module")
def phase4(servers):
    """One environment deployed at phase 4 for every test below; each mends what it breaks."""
    inventory = empty_environment(servers)
    assert run_invoke("deploy", "-i", INVENTORY, "--phase", "4").code == 0
    return inventory


def test_a_healthy_phase_4_environment_passes_every_safeguard(phase4):
    code, doc = compliance()
    assert code == 0 and doc["ok"] and doc["phase"] == 4, failures(doc)
    assert [r["safeguard"] for r in doc["safeguards"]] == [s for s, _, _ in SAFEGUARDS]
    assert all(r["status"] == "pass" for r in doc["safeguards"])
    evidence = {(e["resource"], e["setting"]) for r in doc["safeguards"] for c in r["checks"] for e in c["evidence"]}
    assert ("s3 hc-local-medical-images", "default encryption") in evidence
    assert ("db table patients", "trigger patients_audit") in evidence
    assert ("log group /hc/local/audit", "retention") in evidence
    assert ("service patient", "DATABASE_URL sslmode") in evidence


def test_access_control_fails_on_a_login_sharing_a_password_and_a_superuser_service_role(phase4):
    password = SecretStore(phase4.state_dir / "secrets.json").get("pg.gateway_svc").reveal()
    with admin(phase4) as conn:
        conn.execute(sql.SQL("create role shared_login login password {}").format(sql.Literal(password)))
        conn.execute("alter role auth_svc superuser")
    try:
        code, doc = compliance()
    finally:
        with admin(phase4) as conn:
            conn.execute("drop role shared_login")
            conn.execute("alter role auth_svc nosuperuser")
    assert code == 1 and not doc["ok"]
    failed = failures(doc)
    assert (
        "db role shared_login",
        "login role",
        "belongs to no service; accepts the password of gateway_svc",
    ) in failed["164.312(a)(1)"]
    assert any(r == "db role auth_svc" and "has SUPERUSER" in o for r, _, o in failed["164.312(a)(1)"])
    # a superuser may also rewrite the audit log: integrity says so too, and nothing else fails
    assert failed.get("164.312(c)(1)") == [
        ("db role auth_svc", "privileges on audit_log", "may UPDATE, DELETE, TRUNCATE")
    ]
    assert set(failed) == {"164.312(a)(1)", "164.312(c)(1)"}


def test_encryption_at_rest_fails_when_a_bucket_loses_its_default_encryption(phase4):
    s3 = AwsClients(phase4).client("s3")
    saved = s3.get_bucket_encryption(Bucket="hc-local-medical-images")["ServerSideEncryptionConfiguration"]
    s3.delete_bucket_encryption(Bucket="hc-local-medical-images")
    try:
        code, doc = compliance()
    finally:
        s3.put_bucket_encryption(Bucket="hc-local-medical-images", ServerSideEncryptionConfiguration=saved)
    assert code == 1
    assert failures(doc) == {"164.312(a)(2)(iv)": [("s3 hc-local-medical-images", "default encryption", "none")]}


def test_audit_controls_fail_when_an_audit_trigger_is_disabled(phase4):
    with admin(phase4) as conn:
        conn.execute("alter table patients disable trigger patients_audit")
    try:
        code, doc = compliance()
    finally:
        with admin(phase4) as conn:
            conn.execute("alter table patients enable trigger patients_audit")
    assert code == 1
    assert failures(doc) == {
        "164.312(b)": [
            (
                "db table patients",
                "trigger patients_audit",
                "changes are not audited (its audit trigger `patients_audit` is disabled)",
            )
        ]
    }


def test_integrity_fails_when_versioning_is_suspended(phase4):
    s3 = AwsClients(phase4).client("s3")
    s3.put_bucket_versioning(Bucket="hc-local-medical-documents", VersioningConfiguration={"Status": "Suspended"})
    try:
        code, doc = compliance()
    finally:
        s3.put_bucket_versioning(Bucket="hc-local-medical-documents", VersioningConfiguration={"Status": "Enabled"})
    assert code == 1
    assert failures(doc) == {"164.312(c)(1)": [("s3 hc-local-medical-documents", "versioning", "Suspended")]}


def test_authentication_fails_on_an_md5_password(phase4):
    password = SecretStore(phase4.state_dir / "secrets.json").get("pg.patient_svc").reveal()
    set_password = sql.SQL("alter role patient_svc password {}").format(sql.Literal(password))
    with admin(phase4) as conn:
        conn.execute("set password_encryption = 'md5'")
        conn.execute(set_password)
    try:
        code, doc = compliance()
    finally:
        with admin(phase4) as conn:
            conn.execute("set password_encryption = 'scram-sha-256'")
            conn.execute(set_password)
    assert code == 1
    assert failures(doc) == {"164.312(d)": [("db role patient_svc", "password (pg_authid)", "md5 hash")]}


def test_transmission_security_fails_when_a_bucket_policy_loses_its_tls_statement(phase4):
    s3 = AwsClients(phase4).client("s3")
    saved = s3.get_bucket_policy(Bucket="hc-local-medical-images")["Policy"]
    policy = json.loads(saved)
    policy["Statement"] = [s for s in policy["Statement"] if s["Sid"] != "DenyInsecureTransport"]
    s3.put_bucket_policy(Bucket="hc-local-medical-images", Policy=json.dumps(policy))
    try:
        code, doc = compliance()
    finally:
        s3.put_bucket_policy(Bucket="hc-local-medical-images", Policy=saved)
    assert code == 1
    assert failures(doc) == {
        "164.312(e)(1)": [("s3 hc-local-medical-images", "policy denies requests without TLS", "no")]
    }


def test_retention_fails_when_the_audit_group_keeps_less_than_six_years(phase4):
    logs = AwsClients(phase4).client("logs")
    logs.put_retention_policy(logGroupName="/hc/local/audit", retentionInDays=365)
    try:
        code, doc = compliance()
    finally:
        logs.put_retention_policy(logGroupName="/hc/local/audit", retentionInDays=AUDIT_RETENTION_DAYS)
    assert code == 1
    assert failures(doc) == {"164.316(b)(2)(i)": [("log group /hc/local/audit", "retention", "365 days")]}


def test_every_safeguard_passes_again_once_mended(phase4):
    code, doc = compliance()
    assert code == 0, failures(doc)


def test_the_report_shows_the_same_safeguards_with_their_evidence(phase4, tmp_path):
    s3 = AwsClients(phase4).client("s3")
    s3.put_bucket_versioning(Bucket="hc-local-medical-documents", VersioningConfiguration={"Status": "Suspended"})
    page = tmp_path / "report.html"
    try:
        code, doc = compliance()
        written = run_invoke("monitoring.report", "-i", INVENTORY, "--out", str(page))
    finally:
        s3.put_bucket_versioning(Bucket="hc-local-medical-documents", VersioningConfiguration={"Status": "Enabled"})
    assert code == 1 and written.code == 0, written
    html = page.read_text()
    table = html[html.index('<table id="compliance">') : html.index("</table>", html.index('<table id="compliance">'))]
    for row in doc["safeguards"]:
        assert f"<strong>{row['safeguard']}</strong>" in table
    assert table.count('<span class="bad">FAIL</span>') == 1 and "Suspended" in table
    assert "hc-local-medical-documents" in table
