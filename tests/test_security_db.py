"""Database security by use: each role, row-level security on PHI, and the audit trail."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from healthinfra.providers.postgres import service_conninfo
from healthinfra.secret_store import SecretStore

from .support.catalog import snapshot
from .support.database import act_for, admin, connect_as


@pytest.fixture
def phase2(env, invoke):
    assert invoke("deploy", "-i", "test", "--phase", "1").code == 0
    before = snapshot(env)
    result = invoke("deploy", "-i", "test", "--phase", "2")
    assert result.code == 0, result
    with admin(env) as conn:
        ids = {}
        for email, role in (
            ("ann@example.org", "patient"),
            ("bob@example.org", "patient"),
            ("dr@example.org", "provider"),
        ):
            ids[email] = conn.execute(
                "insert into users (email, password_hash, role) values (%s, 'x', %s) returning id", (email, role)
            ).fetchone()[0]
        for email, mrn, name in (("ann@example.org", "MRN-A", "Ann"), ("bob@example.org", "MRN-B", "Bob")):
            patient = conn.execute(
                """insert into patients (user_id, medical_record_number, first_name, last_name, date_of_birth)
                   values (%s, %s, %s, 'Doe', '1980-01-01') returning id""",
                (ids[email], mrn, name),
            ).fetchone()[0]
            conn.execute(
                "insert into medical_records (patient_id, record_type, summary) values (%s, 'note', %s)",
                (patient, f"{name}'s private note"),
            )
    return {"before": before, "ids": ids}


def test_row_level_security_shows_each_patient_only_their_own_rows(env, phase2):
    ann, bob = phase2["ids"]["ann@example.org"], phase2["ids"]["bob@example.org"]
    with connect_as(env, "patient_svc") as conn:
        assert conn.execute("select count(*) from patients").fetchone()[0] == 0, "no session settings: no rows"
        act_for(conn, ann)
        assert [r[0] for r in conn.execute("select first_name from patients")] == ["Ann"]
        assert [r[0] for r in conn.execute("select summary from medical_records")] == ["Ann's private note"]
        bobs = conn.execute("select id from patients where medical_record_number = 'MRN-B'").fetchone()
        assert bobs is None
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                """insert into patients (user_id, medical_record_number, first_name, last_name, date_of_birth)
                            values (%s, 'MRN-X', 'Mallory', 'X', '1990-01-01')""",
                (bob,),
            )
    with connect_as(env, "provider_svc") as conn:
        act_for(conn, phase2["ids"]["dr@example.org"])
        assert conn.execute("select count(*) from patients").fetchone()[0] == 2
        assert conn.execute("select count(*) from medical_records").fetchone()[0] == 2
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("update medical_records set summary = 'changed'")  # provider only reads records
    with connect_as(env, "auth_svc") as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from patients")


def test_a_service_cannot_claim_a_clinical_role_by_setting_it(env, phase2):
    ann = phase2["ids"]["ann@example.org"]
    with connect_as(env, "patient_svc") as conn:
        act_for(conn, ann)
        conn.execute("select set_config('app.role', 'admin', false)")  # the old contract's setting: ignored
        assert [r[0] for r in conn.execute("select first_name from patients")] == ["Ann"]
        assert conn.execute("delete from medical_records where summary like 'Bob%%'").rowcount == 0
    with psycopg.connect(
        **{
            **service_conninfo(env, "patient_svc", SecretStore(env.state_dir / "secrets.json").get("pg.patient_svc")),
            "options": "-c app.role=provider",
        },
        autocommit=True,
    ) as conn:
        act_for(conn, ann)
        assert conn.execute("select count(*) from patients").fetchone()[0] == 1
    with admin(env) as conn:  # a deactivated provider loses clinical access at once
        conn.execute("update users set is_active = false where email = 'dr@example.org'")
    with connect_as(env, "provider_svc") as conn:
        act_for(conn, phase2["ids"]["dr@example.org"])
        assert conn.execute("select count(*) from patients").fetchone()[0] == 0


def test_services_append_audit_events_only_as_themselves(env, phase2):
    with connect_as(env, "patient_svc") as conn:
        conn.execute(
            "insert into audit_log (actor, action, table_name, row_key) values ('patient_svc', 'select', 'patients', 'x')"
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                "insert into audit_log (actor, action, table_name, row_key) values ('dr_house', 'select', 'patients', 'x')"
            )


def test_changes_to_phi_are_audited_without_the_values(env, phase2):
    ann = phase2["ids"]["ann@example.org"]
    with connect_as(env, "patient_svc") as conn:
        act_for(conn, ann)
        patient_id = conn.execute("select id from patients").fetchone()[0]
        conn.execute("update patients set phone = '555-0100' where id = %s", (patient_id,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("update audit_log set actor = 'nobody'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("delete from audit_log")
    with admin(env) as conn:
        rows = conn.execute("""select actor, action, table_name, row_key, details::text from audit_log
                                where actor = 'patient_svc' order by id""").fetchall()
        changes_to_users = conn.execute("select count(*) from audit_log where table_name = 'users'").fetchone()[0]
        everything = conn.execute("select string_agg(audit_log::text, ' ') from audit_log").fetchone()[0]
    assert changes_to_users == 3, "the fixture's three users were audited too"
    assert rows == [("patient_svc", "update", "patients", str(patient_id), f'{{"app_user_id": "{ann}"}}')]
    for phi in ("555-0100", "Ann", "MRN-A", "private note", "1980-01-01"):
        assert phi not in everything


def test_rollback_of_phase_2_removes_row_security_and_triggers(env, phase2, invoke):
    with admin(env) as conn:
        conn.execute("truncate audit_log, medical_records, patients, users cascade")
    result = invoke("rollback", "-i", "test", "--destroy-data")
    assert result.code == 0, result
    assert snapshot(env)["row_security"] == phase2["before"]["row_security"]
    after, before = snapshot(env), phase2["before"]
    for key in ("row_security", "policies", "triggers", "functions", "roles", "grants"):
        assert after[key] == before[key], key


def test_service_roles_connect_only_over_tls(env, invoke):
    assert invoke("deploy", "-i", "test").code == 0
    password = SecretStore(env.state_dir / "secrets.json").get("pg.auth_svc")
    info = service_conninfo(env, "auth_svc", password)
    assert info["sslmode"] == "verify-full"
    with psycopg.connect(**info) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("select current_user").fetchone()[0] == "auth_svc"
    with pytest.raises(
        psycopg.OperationalError, match="accepts only TLS connections; connect with sslmode=verify-full"
    ):
        psycopg.connect(**{**info, "sslmode": "disable"})
    with pytest.raises(psycopg.OperationalError, match='password authentication failed for user "auth_svc"'):
        psycopg.connect(**{**info, "password": "not-the-password"})
    status = invoke("local.status", "-i", "test", "--json").json["postgres"]
    assert "passfile=" in status["admin_dsn"] and "password=" not in status["admin_dsn"] and status["tls_front_pid"]
    certificate = Path(status["certificate"]).read_text()
    assert certificate.startswith("-----BEGIN CERTIFICATE-----")
    with psycopg.connect(
        **{**info, "sslmode": "verify-full", "sslrootcert": status["certificate"], "host": "localhost"}
    ) as conn:
        assert conn.pgconn.ssl_in_use, "the certificate verifies for localhost"


def test_a_running_query_can_be_cancelled_through_the_tls_front(env, invoke):
    import threading

    assert invoke("deploy", "-i", "test").code == 0
    password = SecretStore(env.state_dir / "secrets.json").get("pg.auth_svc")
    with psycopg.connect(**service_conninfo(env, "auth_svc", password)) as conn:
        timer = threading.Timer(0.5, lambda: conn.pgconn.get_cancel().cancel())  # the plaintext cancel, as JDBC sends
        timer.start()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("select pg_sleep(20)")
        timer.join()
