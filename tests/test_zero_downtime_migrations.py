"""Migrations that never stop the services, on the real embedded server, driven by the CLI of a
scratch checkout whose playbook has migrations of the test's own:

- the worked example of docs/zero-downtime.md (docs/examples/migrations): `patients.phone`
  renamed to `phone_number` by an expand (new column, a trigger keeping both in step, a batched
  backfill) that old and new instances of the patient service live through, and a contract that
  a plain deploy leaves waiting and `deploy --contract` applies;
- a no-transaction migration (`create index concurrently`) stopped halfway by a failed build:
  which statements ran is recorded, the invalid index is found, dropped and built again."""

from __future__ import annotations

import uuid
from pathlib import Path

from .support.checkout import run_in, scratch_checkout
from .support.database import admin
from .support.environment import REPO
from .support.probes import probing

EXAMPLES = REPO / "docs" / "examples" / "migrations"
EXPAND, CONTRACT = "0101_patients_phone_number_expand", "0102_patients_phone_number_contract"


def example(name: str) -> tuple[int, str, str]:
    return 1, (EXAMPLES / f"{name}.up.sql").read_text(), (EXAMPLES / f"{name}.down.sql").read_text()


def add_patients(conn, count: int, phone=lambda i: f"+1-555-{i:07d}") -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "insert into patients (medical_record_number, first_name, last_name, date_of_birth, phone)"
            " values (%s, 'Pat', %s, '1980-01-01', %s)",
            [(f"MRN-{uuid.uuid4()}", f"Doe{i}", phone(i)) for i in range(count)],
        )


def columns(env) -> set[str]:
    with admin(env) as conn:
        rows = conn.execute(
            "select column_name from information_schema.columns where table_name = 'patients'"
        ).fetchall()
    return {r[0] for r in rows}


def old_instance(conn) -> None:
    """The patient service before the rename: writes and reads `phone`."""
    mrn = f"MRN-{uuid.uuid4()}"
    conn.execute(
        "insert into patients (medical_record_number, first_name, last_name, date_of_birth, phone)"
        " values (%s, 'Old', 'Instance', '1970-01-01', '+1-555-0000001')",
        (mrn,),
    )
    assert conn.execute("select phone from patients where medical_record_number = %s", (mrn,)).fetchone() == (
        "+1-555-0000001",
    )


def new_instance(conn) -> None:
    """The patient service after the rename: writes and reads `phone_number` only."""
    mrn = f"MRN-{uuid.uuid4()}"
    conn.execute(
        "insert into patients (medical_record_number, first_name, last_name, date_of_birth, phone_number)"
        " values (%s, 'New', 'Instance', '1990-01-01', '+1-555-0000002')",
        (mrn,),
    )
    row = conn.execute("select phone_number from patients where medical_record_number = %s", (mrn,)).fetchone()
    assert row == ("+1-555-0000002",)


def test_a_column_rename_by_expand_then_contract_fails_no_request_of_old_or_new_instances(env, invoke, tmp_path):
    root = scratch_checkout(tmp_path / "checkout", {EXPAND: example(EXPAND), CONTRACT: example(CONTRACT)})
    assert invoke("deploy", "-i", "test", "--phase", "1").code == 0  # the repository's own phase 1
    with admin(env) as conn:
        add_patients(conn, 2500)  # three batches of the backfill

    plan = run_in(root, "plan", "-i", "test", "--phase", "1")
    assert plan.code == 0, plan
    assert f"would change: [pg.migration {EXPAND}] create" in plan.out
    assert f"ok: [pg.migration {CONTRACT}] waiting: a contract change" in plan.out, plan.out

    with probing(env, "patient_svc", old_instance, every=0.02) as old:
        expand = run_in(root, "deploy", "-i", "test", "--phase", "1")
        assert expand.code == 0, expand
        with probing(env, "patient_svc", new_instance, every=0.02) as new:
            with admin(env) as conn:  # both versions at once: each sees what the other wrote
                left = conn.execute(
                    "select count(*) from patients where phone is distinct from phone_number"
                ).fetchone()[0]
    assert left == 0, "the backfill and the trigger keep both columns in step"
    assert old.queries > 10 and not old.errors, old.errors[:3]
    assert new.queries > 0 and not new.errors, new.errors[:3]
    assert columns(env) >= {"phone", "phone_number"}, "a plain deploy leaves the contract waiting"

    again = run_in(root, "deploy", "-i", "test", "--phase", "1")
    assert again.code == 0 and f"ok: [pg.migration {CONTRACT}] waiting" in again.out, again

    # every instance runs the new version: the contract goes, with the new instances still probing
    with probing(env, "patient_svc", new_instance, every=0.02) as new:
        contract = run_in(root, "deploy", "-i", "test", "--phase", "1", "--contract")
    assert contract.code == 0, contract
    assert f"changed: [pg.migration {CONTRACT}] create" in contract.out
    reported = [line for line in contract.out.splitlines() if line.startswith(("ok: [", "changed: ["))]
    assert reported[-1] == f"changed: [pg.migration {CONTRACT}] create", "applied after everything else"
    assert "phone" not in columns(env) and "phone_number" in columns(env)
    assert new.queries > 10 and not new.errors, new.errors[:3]
    with admin(env) as conn:
        assert conn.execute("select count(*) from patients where phone_number is null").fetchone()[0] == 0

    after = run_in(root, "deploy", "-i", "test", "--phase", "1")  # a plain deploy keeps what the contract did
    assert after.code == 0 and f"ok: [pg.migration {CONTRACT}] up to date" in after.out, after
    assert "phone" not in columns(env)


INDEXES = (
    "-- migration: no-transaction\n"
    "create index concurrently if not exists patients_last_name_idx on patients (last_name);\n"
    "create unique index concurrently if not exists patients_phone_key on patients (phone);\n",
    "drop index concurrently if exists patients_phone_key;\ndrop index concurrently if exists patients_last_name_idx;\n",
)


def index_validity(env) -> dict[str, bool]:
    with admin(env) as conn:
        rows = conn.execute(
            """select c.relname, i.indisvalid from pg_index i join pg_class c on c.oid = i.indexrelid
                where c.relname in ('patients_last_name_idx', 'patients_phone_key')"""
        ).fetchall()
    return dict(rows)


def test_a_no_transaction_migration_stopped_by_a_failed_build_goes_on_and_rebuilds_the_invalid_index(
    env, invoke, tmp_path: Path
):
    name = "0101_patients_indexes"
    root = scratch_checkout(tmp_path / "checkout", {name: (1, *INDEXES)})
    assert invoke("deploy", "-i", "test", "--phase", "1").code == 0
    with admin(env) as conn:
        add_patients(conn, 3, phone=lambda i: "+1-555-0000099")  # the unique build will fail

    failed = run_in(root, "deploy", "-i", "test", "--phase", "1")
    assert failed.code == 1, failed
    assert index_validity(env) == {"patients_last_name_idx": True, "patients_phone_key": False}
    with admin(env) as conn:
        ran = conn.execute("select version, position from schema_migration_steps").fetchall()
        applied = {r[0] for r in conn.execute("select version from schema_migrations")}
        conn.execute("update patients set phone = '+1-555-' || id where phone = '+1-555-0000099'")
    assert ran == [(name, 1)], "the statement that ran is recorded"
    assert name not in applied

    again = run_in(root, "deploy", "-i", "test", "--phase", "1")
    assert again.code == 0, again
    assert "statements 1 ran in an interrupted run: going on from there" in again.out, again.out
    assert "index patients_phone_key was left invalid by an interrupted or cancelled build" in again.out
    assert index_validity(env) == {"patients_last_name_idx": True, "patients_phone_key": True}
    with admin(env) as conn:
        assert name in {r[0] for r in conn.execute("select version from schema_migrations")}
        assert conn.execute("select to_regclass('schema_migration_steps')").fetchone()[0] is None


def test_a_migration_that_does_not_parse_is_refused_by_the_plan_and_the_deploy_before_any_change(env, invoke, tmp_path):
    name = "0101_broken"
    root = scratch_checkout(tmp_path / "checkout", {name: (1, "alter tabel patients add column x text;\n", "")})
    refusal = f"refused: [pg.migration {name}] templates/sql/migrations/{name}.up.sql:1: the SQL does not parse"
    for command in ("plan", "deploy"):
        result = run_in(root, command, "-i", "test", "--phase", "1")
        assert result.code == 1 and refusal in result.out, result
        assert 'syntax error at or near "tabel"' in result.out and "changed: [" not in result.out
    with admin(env, "postgres") as conn:
        databases = {row[0] for row in conn.execute("select datname from pg_database")}
    assert env.database["name"] not in databases, "nothing was created"


def test_a_no_transaction_migration_stopped_by_a_lock_wait_says_which_statements_stay(env, invoke, workspace, tmp_path):
    from .test_lock_waits import inventories_with_database

    name = "0101_two_steps"
    up = (
        "-- migration: no-transaction\n"
        "create table if not exists visit_notes (id bigint generated always as identity primary key);\n"
        "alter table appointments add column if not exists room text;\n"
    )
    root = scratch_checkout(tmp_path / "checkout", {name: (1, up, "drop table if exists visit_notes;\n")})
    bounds = "  lock_timeout: 300ms\n  lock_retry_seconds: 1\n"
    overrides = {"HEALTHINFRA_INVENTORIES": str(inventories_with_database(workspace, tmp_path / "inventories", bounds))}
    assert invoke("deploy", "-i", "test", "--phase", "1").code == 0
    with admin(env) as holder:
        holder.execute("begin")
        holder.execute("lock table appointments in access share mode")  # a report's read lock
        failed = run_in(root, "deploy", "-i", "test", "--phase", "1", env_overrides=overrides)
        holder.execute("rollback")
    assert failed.code == 1, failed
    assert (
        "statements 1 of this no-transaction migration ran and stay (schema_migration_steps);"
        " the next run goes on from there" in failed.out
    ), failed.out
    assert "nothing of this change was applied" not in failed.out

    again = run_in(root, "deploy", "-i", "test", "--phase", "1", env_overrides=overrides)
    assert again.code == 0 and "statements 1 ran in an interrupted run: going on from there" in again.out, again
    with admin(env) as conn:
        assert conn.execute("select to_regclass('visit_notes')").fetchone()[0] == "visit_notes"
        assert name in {r[0] for r in conn.execute("select version from schema_migrations")}
