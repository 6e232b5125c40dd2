"""Row security on every table holding patient data (appointments and the ml tables included),
the SECURITY DEFINER helpers closed to PUBLIC, the audit of every audit trigger, and exact downs."""

from __future__ import annotations

import contextlib
import hashlib

import psycopg
import pytest

from healthinfra.providers.postgres import service_conninfo
from healthinfra.secret_store import Secret

from .support.catalog import snapshot
from .support.database import act_for, admin, connect_as

CHECKSUM = hashlib.sha256(b"weights").hexdigest()
PROBE = "rowsec_probe"  # a login role of nobody's: not in the services table
PROBE_PASSWORD = "Probe-Password-4711"


def people(conn) -> dict:
    """Ann and Bob (patients), a provider, a patient each, one appointment each; their ids."""
    ids = {}
    for name, role in (("ann", "patient"), ("bob", "patient"), ("dr", "provider")):
        ids[name] = conn.execute(
            "insert into users (email, password_hash, role) values (%s, 'x', %s) returning id",
            (f"{name}@example.org", role),
        ).fetchone()[0]
    provider = conn.execute(
        """insert into providers (user_id, npi, first_name, last_name, specialty)
           values (%s, '1234567890', 'Dr', 'Who', 'general') returning id""",
        (ids["dr"],),
    ).fetchone()[0]
    for name in ("ann", "bob"):
        ids[f"{name}_patient"] = patient = conn.execute(
            """insert into patients (user_id, medical_record_number, first_name, last_name, date_of_birth)
               values (%s, %s, %s, 'Doe', '1980-01-01') returning id""",
            (ids[name], f"MRN-{name}", name.title()),
        ).fetchone()[0]
        conn.execute(
            """insert into appointments (patient_id, provider_id, starts_at, ends_at, reason)
               values (%s, %s, now(), now() + interval '30 minutes', %s)""",
            (patient, provider, f"{name}'s visit"),
        )
    ids["provider"] = provider
    return ids


@contextlib.contextmanager
def probe_role(env, *grants: str):
    """A fresh login role, allowed to connect; `grants` run as the admin first. Always dropped."""
    with admin(env) as conn:
        conn.execute(f"create role {PROBE} login password '{PROBE_PASSWORD}'")
        conn.execute(f"grant connect on database healthcare to {PROBE}")
        for grant in grants:
            conn.execute(grant)
    try:
        with psycopg.connect(**service_conninfo(env, PROBE, Secret(PROBE_PASSWORD)), autocommit=True) as probe:
            yield probe
    finally:
        with admin(env) as conn:
            conn.execute(f"drop owned by {PROBE}")
            conn.execute(f"drop role {PROBE}")


def denied(conn, statement, params=()) -> str:
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
        conn.execute(statement, params)
    return str(caught.value)


def test_appointments_show_each_patient_only_their_own(env, invoke):
    assert invoke("deploy", "-i", "test", "--phase", "3").code == 0
    with admin(env) as conn:
        ids = people(conn)
    with connect_as(env, "appointment_svc") as conn:
        assert conn.execute("select count(*) from appointments").fetchone()[0] == 0, "no user set: no rows"
        act_for(conn, ids["ann"])
        assert [r[0] for r in conn.execute("select reason from appointments")] == ["ann's visit"]
        assert [r[0] for r in conn.execute("select first_name from patients")] == ["Ann"]
        assert conn.execute("update appointments set status = 'cancelled'").rowcount == 1, "only Ann's"
        assert "row-level security" in denied(
            conn,
            """insert into appointments (patient_id, provider_id, starts_at, ends_at)
               values (%s, %s, now(), now() + interval '1 hour')""",
            (ids["bob_patient"], ids["provider"]),
        )
        conn.execute(
            """insert into appointments (patient_id, provider_id, starts_at, ends_at)
               values (%s, %s, now() + interval '1 day', now() + interval '25 hours')""",
            (ids["ann_patient"], ids["provider"]),
        )
        act_for(conn, ids["dr"])  # a clinician schedules for everyone
        assert conn.execute("select count(*) from appointments").fetchone()[0] == 3
        assert conn.execute("select count(*) from patients").fetchone()[0] == 2
        denied(conn, "select * from medical_records")
        denied(conn, "select * from users")
    with admin(env) as conn:
        state = conn.execute(
            "select relrowsecurity, relforcerowsecurity from pg_class where oid = 'appointments'::regclass"
        ).fetchone()
        assert state == (True, True)


def test_ml_features_and_predictions_show_each_patient_only_their_own(env, invoke):
    assert invoke("deploy", "-i", "test", "--phase", "4").code == 0
    with admin(env) as conn:
        ids = people(conn)
        model = conn.execute(
            "insert into ml.model_registry (name, version, s3_key, checksum, status)"
            " values ('risk', '1', 'models/risk-1.bin', %s, 'active') returning id",
            (CHECKSUM,),
        ).fetchone()[0]
        for name, vector in (("ann", "[1]"), ("bob", "[2]")):
            conn.execute(
                "insert into ml.features (patient_id, feature_set, vector) values (%s, 'v1', %s)",
                (ids[f"{name}_patient"], vector),
            )
    insert = "insert into ml.predictions (model_id, patient_id, result) values (%s, %s, '{}')"
    with connect_as(env, "ai_svc") as ai:
        assert ai.execute("select count(*) from ml.features").fetchone()[0] == 2, "batch inference: every vector"
        ai.execute(insert, (model, ids["bob_patient"]))
        act_for(ai, ids["ann"])  # acting for Ann, it is held to Ann's rows
        assert [r[0] for r in ai.execute("select vector from ml.features")] == [[1]]
        ai.execute(insert, (model, ids["ann_patient"]))
        assert "row-level security" in denied(ai, insert, (model, ids["bob_patient"]))
        denied(ai, "select * from ml.predictions")  # insert-only, as before
        denied(ai, "select * from patients")
    # a reader of predictions (none exists yet: a fresh role given the table) sees only its user's
    with probe_role(
        env,
        f"grant usage on schema ml to {PROBE}",
        f"grant select on ml.predictions, ml.features, app_session_user, app_session_patients to {PROBE}",
    ) as reader:
        assert reader.execute("select count(*) from ml.predictions").fetchone()[0] == 0, "no user set: no rows"
        assert reader.execute("select count(*) from ml.features").fetchone()[0] == 0, "only ai_svc runs batches"
        act_for(reader, ids["ann"])
        rows = reader.execute("select patient_id from ml.predictions").fetchall()
        assert rows == [(ids["ann_patient"],)]
        act_for(reader, ids["bob"])
        assert reader.execute("select patient_id from ml.features").fetchall() == [(ids["bob_patient"],)]
        act_for(reader, ids["dr"])
        assert reader.execute("select count(*) from ml.predictions").fetchone()[0] == 2
    with admin(env) as conn:
        forced = conn.execute(
            """select relname, relrowsecurity and relforcerowsecurity from pg_class
                where relnamespace = 'ml'::regnamespace and relkind = 'r' order by 1"""
        ).fetchall()
    assert forced == [("features", True), ("model_registry", False), ("predictions", True)]


def test_the_definer_helpers_are_closed_to_roles_that_hold_no_patient_data(env, invoke):
    assert invoke("deploy", "-i", "test", "--phase", "4").code == 0
    with admin(env) as conn:
        ids = people(conn)
    with probe_role(env) as probe:
        act_for(probe, ids["ann"])
        for helper in ("app_user_is_clinical()", "app_user_patient_ids()"):
            assert "permission denied for function" in denied(probe, f"select {helper}")
        assert "permission denied for view app_session_patients" in denied(probe, "select * from app_session_patients")
        assert "permission denied for view app_session_user" in denied(probe, "select * from app_session_user")
        # the policies' own functions run with the caller's rights: nothing it could not read itself
        assert "permission denied for table users" in denied(probe, "select app_session_is_clinical()")
        assert "permission denied for table patients" in denied(probe, "select app_session_patient_ids()")
    with connect_as(env, "gateway_svc") as gateway:  # a service, but one that holds no patient data
        act_for(gateway, ids["ann"])
        assert "permission denied for function" in denied(gateway, "select app_user_patient_ids()")
        denied(gateway, "select * from app_session_patients")
    with admin(env) as conn:
        definers = conn.execute(
            """select proname, coalesce(proacl, acldefault('f', proowner))::text from pg_proc
                where prosecdef and pronamespace = 'public'::regnamespace order by 1"""
        ).fetchall()
        readers = conn.execute(
            """select c.relname, r.rolname from pg_class c, aclexplode(c.relacl) a join pg_roles r on r.oid = a.grantee
                where c.relname like 'app\\_session\\_%%' and a.grantee <> c.relowner order by 1, 2"""
        ).fetchall()
    assert [name for name, _ in definers] == ["app_user_is_clinical", "app_user_patient_ids", "audit_phi_change"]
    assert all(not acl.startswith("{=") and ",=" not in acl for _, acl in definers), definers  # PUBLIC: none
    assert readers == [
        ("app_session_patients", "ai_svc"),
        ("app_session_user", "ai_svc"),
        ("app_session_user", "appointment_svc"),
    ]


def test_audit_finds_a_disabled_audit_trigger_unforced_row_security_and_open_helpers(env, invoke):
    assert invoke("deploy", "-i", "test", "--phase", "4").code == 0
    clean = invoke("security.audit", "-i", "test", "--json")
    assert clean.code == 0 and clean.json["findings"] == [], clean
    with admin(env) as conn:
        conn.execute("alter table ml.predictions disable trigger predictions_audit")
    disabled = invoke("security.audit", "-i", "test", "--json")
    assert disabled.code == 1
    assert disabled.json["findings"] == [
        {
            "resource": "db table ml.predictions",
            "problem": "changes are not audited (its audit trigger `predictions_audit` is disabled)",
            "fix": "ALTER TABLE ml.predictions ENABLE TRIGGER predictions_audit",
        }
    ]
    table = invoke("security.audit", "-i", "test")
    assert table.code == 1 and "ml.predictions" in table.out and "predictions_audit" in table.out, table

    with admin(env) as conn:
        conn.execute("alter table ml.predictions enable trigger predictions_audit")
        conn.execute("alter table appointments enable replica trigger appointments_audit")
        conn.execute("drop trigger users_audit on users")
        conn.execute("alter table ml.features no force row level security")
        conn.execute("grant execute on function app_user_patient_ids() to public")
        # a new table of patient data, granted to a service, without row security
        conn.execute("create table lab_orders (id uuid primary key, patient_id uuid references patients (id))")
        conn.execute("grant select on lab_orders to patient_svc")
    dirty = invoke("security.audit", "-i", "test", "--json")
    assert dirty.code == 1
    found = {(f["resource"], f["problem"]) for f in dirty.json["findings"]}
    assert found == {
        (
            "db table appointments",
            "changes are not audited (its audit trigger `appointments_audit` fires only in replica mode)",
        ),
        ("db table users", "changes are not audited (its audit trigger `users_audit` is missing)"),
        ("db table ml.features", "row-level security is not on and forced"),
        ("db table lab_orders", "row-level security is not on and forced"),
        ("db role patient_svc", "more than it needs on table lab_orders: SELECT"),
        (
            "db function app_user_patient_ids()",
            "SECURITY DEFINER and PUBLIC may execute it: any role runs it with its owner's rights",
        ),
    }
    fixes = {f["resource"]: f["fix"] for f in dirty.json["findings"] if f["resource"] == "db table users"}
    assert fixes == {"db table users": "restore it from templates/sql/migrations/0002_phi_protection.up.sql"}

    with admin(env) as conn:
        conn.execute("alter table appointments enable trigger appointments_audit")
        conn.execute(
            "create trigger users_audit after insert or update or delete on users"
            " for each row execute function audit_phi_change()"
        )
        conn.execute("alter table ml.features force row level security")
        conn.execute("revoke execute on function app_user_patient_ids() from public")
        conn.execute("drop table lab_orders")
    assert invoke("security.audit", "-i", "test").code == 0


def catalog(env) -> dict:
    """What the migrations set, in every schema: row security, policies, functions and their
    effective privileges, views and who may read them, triggers and whether they fire."""
    with admin(env) as conn:
        return {
            "row_security": conn.execute(
                """select n.nspname, c.relname, c.relrowsecurity, c.relforcerowsecurity
                     from pg_class c join pg_namespace n on n.oid = c.relnamespace
                    where c.relkind = 'r' and n.nspname in ('public', 'ml') order by 1, 2"""
            ).fetchall(),
            "policies": conn.execute(
                "select schemaname, tablename, policyname, cmd, roles::text, qual, with_check from pg_policies order by 1, 2, 3"
            ).fetchall(),
            "functions": conn.execute(
                """select p.oid::regprocedure::text, p.prosecdef, p.prosrc,
                          array(select a.grantee::regrole::text || ':' || a.privilege_type
                                  from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a order by 1)::text
                     from pg_proc p where p.pronamespace = 'public'::regnamespace order by 1"""
            ).fetchall(),
            "views": conn.execute(
                """select c.oid::regclass::text, pg_get_viewdef(c.oid), c.reloptions::text,
                          array(select a.grantee::text || ':' || a.privilege_type from aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a order by 1)::text
                     from pg_class c where c.relkind = 'v' and c.relnamespace in ('public'::regnamespace)
                    order by 1"""
            ).fetchall(),
            "triggers": conn.execute(
                "select tgrelid::regclass::text, tgname, tgenabled::text from pg_trigger where not tgisinternal order by 1, 2"
            ).fetchall(),
        }


def test_down_files_are_exact_going_up_to_4_and_down_to_2_and_1(env, invoke):
    assert invoke("deploy", "-i", "test", "--phase", "1").code == 0
    phase1 = (catalog(env), snapshot(env))
    assert invoke("deploy", "-i", "test", "--phase", "2").code == 0
    phase2 = (catalog(env), snapshot(env))
    deployed = invoke("deploy", "-i", "test", "--phase", "4", "--json")
    assert deployed.code == 0, deployed
    changed = {c["resource"] for c in deployed.json["changes"]}
    assert {"pg.migration 0005_appointments_row_security", "pg.migration 0006_ml_row_security"} <= changed
    with admin(env) as conn:  # rows in the tables the downgrade drops (ml) and in those it keeps
        ids = people(conn)
        conn.execute(
            "insert into ml.features (patient_id, feature_set, vector) values (%s, 'v1', '[1]')",
            (ids["ann_patient"],),
        )
    down = invoke("deploy", "-i", "test", "--phase", "2", "--downgrade", "--destroy-data", "--json")
    assert down.code == 0, down
    with admin(env) as conn:  # the tables phase 2 keeps keep their rows
        assert conn.execute("select count(*) from appointments").fetchone()[0] == 2
    assert catalog(env) == phase2[0]
    assert snapshot(env) == phase2[1]
    again = invoke("deploy", "-i", "test", "--phase", "2", "--json")
    assert again.code == 0 and again.json["changed"] == 0, again
    assert invoke("deploy", "-i", "test", "--phase", "1", "--downgrade", "--destroy-data").code == 0
    assert catalog(env) == phase1[0]
    assert snapshot(env) == phase1[1]
