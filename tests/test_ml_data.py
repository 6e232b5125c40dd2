"""Phase 4's database: the `ml` schema, the AI role's narrow access, and its undo."""

from __future__ import annotations

import hashlib

import psycopg
import pytest

from .support.database import admin, connect_as

CHECKSUM = hashlib.sha256(b"weights").hexdigest()


def refused(conn, statement, params=()):
    try:
        conn.execute(statement, params)
    except psycopg.errors.InsufficientPrivilege:
        return True
    return False


def test_ai_reads_the_registry_and_features_and_only_inserts_predictions(env, invoke):
    assert invoke("deploy", "-i", "test", "--phase", "3").code == 0
    deployed = invoke("deploy", "-i", "test", "--phase", "4", "--json")
    assert deployed.code == 0, deployed
    changed = {c["resource"] for c in deployed.json["changes"]}
    assert {"pg.migration 0003_ml", "pg.role ai_svc", "pg.grants ai_svc"} <= changed
    with admin(env) as conn:
        user = conn.execute(
            "insert into users (email, password_hash, role) values ('p@example.org', 'x', 'patient') returning id"
        ).fetchone()[0]
        patient = conn.execute(
            "insert into patients (user_id, medical_record_number, first_name, last_name,"
            " date_of_birth) values (%s, 'MRN-1', 'Ann', 'Lee', '1980-01-01') returning id",
            (user,),
        ).fetchone()[0]
        model = conn.execute(
            "insert into ml.model_registry (name, version, s3_key, checksum, status)"
            " values ('risk', '1', 'models/risk-1.bin', %s, 'active') returning id",
            (CHECKSUM,),
        ).fetchone()[0]
        conn.execute(
            "insert into ml.features (patient_id, feature_set, vector) values (%s, 'v1', '[1, 2]')", (patient,)
        )
        with pytest.raises(psycopg.errors.UniqueViolation):  # one active version per model
            conn.execute(
                "insert into ml.model_registry (name, version, s3_key, checksum, status)"
                " values ('risk', '2', 'models/risk-2.bin', %s, 'active')",
                (CHECKSUM,),
            )

    with connect_as(env, "ai_svc") as ai:
        assert ai.execute("select name, checksum from ml.model_registry").fetchall() == [("risk", CHECKSUM)]
        assert ai.execute("select vector from ml.features").fetchone()[0] == [1, 2]
        ai.execute(
            "insert into ml.predictions (model_id, patient_id, result) values (%s, %s, '{\"risk\": 0.2}')",
            (model, patient),
        )
        assert refused(ai, "select * from ml.predictions")  # write-only: it never reads others' predictions back
        assert refused(ai, "select * from patients")
        assert refused(ai, "select * from appointments")
        assert refused(ai, "select * from ml.appointment_volume")
        assert refused(ai, "update ml.model_registry set status = 'retired'")
        assert refused(ai, "delete from ml.features")
        assert refused(ai, "create table ml.mine (x int)")

    with admin(env) as conn:
        audit = conn.execute("select actor, action from audit_log where table_name = 'predictions'").fetchall()
        assert audit == [("ai_svc", "insert")]
        volume = conn.execute("select model, version, predictions, patients from ml.prediction_volume").fetchall()
        assert volume == [("risk", "1", 1, 1)]

    again = invoke("deploy", "-i", "test", "--phase", "4", "--json")
    assert again.code == 0 and again.json["changed"] == 0, again


def test_rolling_back_phase_4_keeps_predictions_unless_told_and_then_drops_the_schema(env, invoke):
    assert invoke("deploy", "-i", "test", "--phase", "3").code == 0
    assert invoke("deploy", "-i", "test", "--phase", "4", "--tags", "db,grants").code == 0
    with admin(env) as conn:
        conn.execute(
            "insert into ml.model_registry (name, version, s3_key, checksum)"
            " values ('risk', '1', 'models/risk-1.bin', %s)",
            (CHECKSUM,),
        )
    refused_run = invoke("rollback", "-i", "test")
    assert refused_run.code == 1, refused_run
    assert "refusing to undo migration `0003_ml`: it holds data in ml.model_registry (1 rows)" in refused_run.out
    with admin(env) as conn:
        assert conn.execute("select to_regnamespace('ml') is not null").fetchone()[0]
    done = invoke("rollback", "-i", "test", "--destroy-data")
    assert done.code == 0, done
    with admin(env) as conn:
        assert not conn.execute("select to_regnamespace('ml') is not null").fetchone()[0]
        assert conn.execute("select count(*) from pg_roles where rolname = 'ai_svc'").fetchone()[0] == 0
