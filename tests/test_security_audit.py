"""security.audit finds each misconfiguration; rotate changes a password and leaks nothing."""

from __future__ import annotations

import json

import psycopg
import pytest

from healthinfra.audit import Finding, bucket_findings, db_role_findings, policy_findings, role_findings
from healthinfra.providers.aws import AwsClients
from healthinfra.providers.postgres import admin_conninfo, service_conninfo
from healthinfra.secret_store import SecretStore

GOOD_BUCKET = {
    "public_access_block": {
        "block_public_acls": True,
        "ignore_public_acls": True,
        "block_public_policy": True,
        "restrict_public_buckets": True,
    },
    "encryption": {"algorithm": "aws:kms", "kms_key": "k", "bucket_key": True},
    "policy": {
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ]
    },
    "versioning": "Enabled",
    "logging": {"target_bucket": "logs", "target_prefix": "b/"},
}


@pytest.mark.parametrize(
    "change, problem",
    [
        ({}, None),
        ({"public_access_block": None}, "public access is not fully blocked (all four settings)"),
        (
            {"public_access_block": {**GOOD_BUCKET["public_access_block"], "block_public_policy": False}},
            "public access is not fully blocked (block_public_policy)",
        ),
        ({"encryption": None}, "no default encryption"),
        ({"encryption": {"algorithm": "AES256"}}, "encrypted with AES256, not a customer KMS key"),
        ({"policy": None}, "plain-HTTP requests are not denied"),
        ({"versioning": "Suspended"}, "versioning is off: an overwrite or delete loses data"),
        ({"logging": None}, "server access logging is off: reads of PHI leave no trace"),
    ],
)
def test_bucket_rules(change, problem):
    found = [f.problem for f in bucket_findings("b", {**GOOD_BUCKET, **change}, log_bucket=False)]
    assert found == ([problem] if problem else [])


def test_a_public_statement_is_found():
    policy = {
        "Statement": GOOD_BUCKET["policy"]["Statement"]
        + [
            {
                "Sid": "Open",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::b/*",
            }
        ]
    }
    assert [f.problem for f in bucket_findings("b", {**GOOD_BUCKET, "policy": policy}, False)] == [
        "policy statement `Open` allows anyone"
    ]


@pytest.mark.parametrize(
    "statement, problems",
    [
        ({"Sid": "A", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}, []),
        (
            {"Sid": "A", "Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b/*"},
            ["statement `A` allows every action (*)"],
        ),
        (
            {"Sid": "A", "Effect": "Allow", "Action": ["s3:*"], "Resource": "*"},
            ["statement `A` allows every action (s3:*)", "statement `A` applies to every resource"],
        ),
        ({"Sid": "A", "Effect": "Deny", "Action": "*", "Resource": "*"}, []),
    ],
)
def test_policy_rules(statement, problems):
    assert [f.problem for f in policy_findings("p", {"Statement": [statement]})] == problems


def test_role_and_db_rules():
    assert role_findings("r", {"permissions_boundary": None}) == [
        Finding("iam role r", "no permissions boundary", "attach the service boundary (invoke deploy)")
    ]
    assert role_findings("r", {"permissions_boundary": "arn"}) == []
    allowed = {"database": ["CONNECT"], "table:users": ["SELECT"]}
    assert db_role_findings("x_svc", {"superuser": False}, dict(allowed), allowed) == []
    found = db_role_findings("x_svc", {"createdb": True}, {**allowed, "table:patients": ["SELECT"]}, allowed)
    assert [f.problem for f in found] == ["has CREATEDB", "more than it needs on table patients: SELECT"]
    assert [f.problem for f in db_role_findings("stray", {}, {"table:users": ["SELECT"]}, None)] == [
        "holds privileges but is not in the services table"
    ]


def test_audit_of_a_clean_environment_then_of_injected_misconfigurations(env, invoke):
    assert invoke("deploy", "-i", "test", "--phase", "4").code == 0
    clean = invoke("security.audit", "-i", "test", "--json")
    assert clean.code == 0 and clean.json["findings"] == [], clean

    aws = AwsClients(env)
    s3, iam = aws.client("s3"), aws.client("iam")
    s3.delete_public_access_block(Bucket="hc-local-medical-images")
    s3.put_bucket_policy(
        Bucket="hc-local-medical-images",
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "Open",
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": "arn:aws:s3:::hc-local-medical-images/*",
                    }
                ],
            }
        ),
    )
    s3.delete_bucket_encryption(Bucket="hc-local-analytics-exports")
    iam.put_role_policy(
        RoleName="hc-local-patient",
        PolicyName="debug",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Sid": "Everything", "Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
            }
        ),
    )
    iam.delete_role_permissions_boundary(RoleName="hc-local-ai")
    with psycopg.connect(**admin_conninfo(env, "healthcare"), autocommit=True) as conn:
        conn.execute("grant select on patients to gateway_svc")
        conn.execute("alter role auth_svc createdb")
        conn.execute("alter table medical_records no force row level security")
        conn.execute("drop trigger patients_audit on patients")
        conn.execute("grant pg_read_all_data to provider_svc")
    s3.put_bucket_logging(Bucket="hc-local-medical-documents", BucketLoggingStatus={})

    dirty = invoke("security.audit", "-i", "test", "--json")
    assert dirty.code == 1
    found = {(f["resource"], f["problem"]) for f in dirty.json["findings"]}
    assert found == {
        ("s3 hc-local-medical-images", "public access is not fully blocked (all four settings)"),
        ("s3 hc-local-medical-images", "plain-HTTP requests are not denied"),
        ("s3 hc-local-medical-images", "policy statement `Open` allows anyone"),
        ("s3 hc-local-analytics-exports", "no default encryption"),
        ("iam role hc-local-patient policy debug", "statement `Everything` allows every action (s3:*)"),
        ("iam role hc-local-patient policy debug", "statement `Everything` applies to every resource"),
        ("iam role hc-local-ai", "no permissions boundary"),
        ("db role gateway_svc", "more than it needs on table patients: SELECT"),
        ("db role auth_svc", "has CREATEDB"),
        ("db table medical_records", "row-level security is not on and forced"),
        ("db table patients", "changes are not audited (its audit trigger `patients_audit` is missing)"),
        ("db role provider_svc", "is a member of `pg_read_all_data`, gaining its privileges"),
        ("s3 hc-local-medical-documents", "server access logging is off: reads of PHI leave no trace"),
    }
    table = invoke("security.audit", "-i", "test")
    assert table.code == 1 and "13 finding(s)" in table.out

    # deploy repairs what it manages; what it does not manage stays a finding until someone mends it
    assert invoke("deploy", "-i", "test", "--phase", "4").code == 0
    left = invoke("security.audit", "-i", "test", "--json").json["findings"]
    assert {f["resource"] for f in left} == {
        "iam role hc-local-patient policy debug",
        "db table medical_records",
        "db table patients",
        "db role provider_svc",
    }
    iam.delete_role_policy(RoleName="hc-local-patient", PolicyName="debug")
    with psycopg.connect(**admin_conninfo(env, "healthcare"), autocommit=True) as conn:
        conn.execute("alter table medical_records force row level security")
        conn.execute(
            "create trigger patients_audit after insert or update or delete on patients"
            " for each row execute function audit_phi_change()"
        )
        conn.execute("revoke pg_read_all_data from provider_svc")
    assert invoke("security.audit", "-i", "test").code == 0


def test_setup_deploy_rotate_rollback_cleanup_leaks_no_secret(env, invoke):
    store = SecretStore(env.state_dir / "secrets.json")
    seen: set[str] = set()
    outputs: list[str] = []

    def step(*args):
        result = invoke(*args)
        outputs.extend([result.out, result.err])
        seen.update(store.get(n).reveal() for n in store.names())
        return result

    assert step("deploy", "-i", "test", "--phase", "1").code == 0
    assert step("deploy", "-i", "test", "--phase", "4", "--json").code == 0
    before = store.get("pg.patient_svc").reveal()
    assert step("security.rotate", "-i", "test", "--service", "patient").code == 0
    after = store.get("pg.patient_svc").reveal()
    assert after != before
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**service_conninfo(env, "patient_svc", type(store.get("pg.patient_svc"))(before)))
    with psycopg.connect(**service_conninfo(env, "patient_svc", store.get("pg.patient_svc"))) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "patient_svc"
    assert step("monitoring.check", "-i", "test", "--phase", "4", "--json").code == 0
    assert step("security.audit", "-i", "test").code == 0
    assert step("plan", "-i", "test", "--phase", "4").code == 0
    history = step("history", "-i", "test", "--json").json["runs"]
    assert [r["kind"] for r in history][-1] == "rotate"
    rolled = step("rollback", "-i", "test", "--destroy-data")  # undoes deploy 4, not the rotation
    assert rolled.code == 0 and "phase=4" in rolled.out, rolled
    assert step("cleanup-dev", "-i", "test", "--destroy-data", "--json").code == 0
    assert len(seen) >= 7
    logs = [env.state_dir / name for name in ("journal.jsonl", "moto.log", "tls-front.log")]
    logs.append(env.state_dir / "postgres" / "server.log")
    texts = outputs + [path.read_text(errors="replace") for path in logs if path.exists()]
    for secret in seen:
        assert all(secret not in text for text in texts)


def test_more_rules():
    from healthinfra.audit import key_findings, table_security_findings

    assert [
        f.problem
        for f in bucket_findings(
            "b",
            {
                **GOOD_BUCKET,
                "policy": {
                    "Statement": GOOD_BUCKET["policy"]["Statement"]
                    + [
                        {
                            "Sid": "L",
                            "Effect": "Allow",
                            "Principal": {"AWS": ["*"]},
                            "Action": "s3:GetObject",
                            "Resource": "x",
                        }
                    ]
                },
            },
            False,
        )
    ] == ["policy statement `L` allows anyone"]
    assert [
        f.problem
        for f in policy_findings(
            "p", {"Statement": [{"Sid": "N", "Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::*"}]}
        )
    ] == ["statement `N` allows everything but a list (NotAction)", "statement `N` applies to every resource"]
    assert [f.problem for f in key_findings("alias/k", {"rotation": False, "pending_deletion": True})] == [
        "scheduled for deletion: data encrypted with it will be lost",
        "automatic key rotation is off",
    ]
    assert [f.problem for f in table_security_findings({"patients": {"rls": True, "forced": False}})] == [
        "row-level security is not on and forced"
    ]
    assert [f.problem for f in db_role_findings("x_svc", {}, {}, {}, ["pg_read_all_data"])] == [
        "is a member of `pg_read_all_data`, gaining its privileges"
    ]


def test_the_audit_triggers_and_forced_tables_come_from_the_migrations():
    from healthinfra.audit import expected_row_security, trigger_findings

    migrations = [
        (
            "0001_a",
            """create trigger t_audit after insert or update or delete on t
                   for each row execute function audit_phi_change();
               create trigger x_audit after insert on ml.x for each row execute function public.audit_phi_change();
               create trigger other before update on t for each row execute function touch();
               alter table t enable row level security; alter table t force row level security;
               alter table ml.x force row level security;""",
        ),
        ("0002_b", "drop trigger if exists x_audit on ml.x; alter table ml.x no force row level security;"),
    ]
    triggers, forced = expected_row_security(migrations)
    assert triggers == {("t", "t_audit"): "0001_a"} and forced == {"t"}
    every_change = 1 | 4 | 8 | 16
    ok = {"enabled": "O", "function": "audit_phi_change", "type": every_change}
    assert trigger_findings(triggers, {("t", "t_audit"): ok}) == []
    assert [f.problem for f in trigger_findings(triggers, {("t", "t_audit"): {**ok, "type": 1 | 4}})] == [
        "its audit trigger `t_audit` does not run audit_phi_change() on every insert, update and delete"
    ]
    assert [f.fix for f in trigger_findings(triggers, {("t", "t_audit"): {**ok, "enabled": "D"}})] == [
        "ALTER TABLE t ENABLE TRIGGER t_audit"
    ]
