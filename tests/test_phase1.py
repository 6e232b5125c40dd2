"""Phase 1 end to end, through the tasks a user types, against the real servers."""

from __future__ import annotations

import psycopg
import pytest

from healthinfra.providers.aws import AwsClients
from healthinfra.secret_store import SecretStore

from .support.catalog import snapshot
from .support.database import admin, connect_as
from .support.environment import inventories_with_services
from .support.invoking import OUTPUTS

CORE_TABLES = {"users", "patients", "providers", "appointments", "medical_records", "audit_log"}


def test_deploy_builds_phase_1_and_a_second_run_changes_nothing(env, invoke):
    first = invoke("deploy", "-i", "test", "--phase", "1", "--json")
    assert first.code == 0, first
    doc = first.json
    assert {k: doc[k] for k in ("inventory", "phase", "failed", "skipped")} == {
        "inventory": "test",
        "phase": 1,
        "failed": 0,
        "skipped": 0,
    }
    assert doc["changed"] == 15 and doc["run_id"]  # 12 + an env file per hosted service
    assert {c["resource"] for c in doc["changes"]} >= {
        "pg.database healthcare",
        "pg.role patient_svc",
        "iam.role hc-local-auth",
    }

    with admin(env) as conn:
        tables = {r[0] for r in conn.execute("select tablename from pg_tables where schemaname = 'public'")}
        fks = conn.execute("select count(*) from pg_constraint where contype = 'f'").fetchone()[0]
    assert CORE_TABLES | {"schema_migrations"} == tables
    assert fks >= 6

    iam = AwsClients(env).client("iam")
    roles = {r["RoleName"]: r for r in iam.list_roles()["Roles"]}
    assert set(roles) == {"hc-local-gateway", "hc-local-auth", "hc-local-patient"}
    tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName="hc-local-patient")["Tags"]}
    assert tags == {"env": "local", "service": "patient", "managed-by": "healthcare-infra"}

    second = invoke("deploy", "-i", "test", "--phase", "1", "--json")
    assert second.code == 0, second
    assert (second.json["changed"], second.json["ok"], second.json["changes"]) == (0, 15, [])


def test_each_service_role_can_do_only_what_it_owns(env, invoke):
    assert invoke("deploy", "-i", "test").code == 0
    with connect_as(env, "auth_svc") as conn:
        conn.execute("insert into users (email, password_hash, role) values ('a@example.org', 'x', 'patient')")
        assert conn.execute("select count(*) from users").fetchone()[0] == 1
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from patients")
    with connect_as(env, "patient_svc") as conn:
        user_id = conn.execute("select id from users").fetchone()[0]
        conn.execute(
            """insert into patients (user_id, medical_record_number, first_name, last_name, date_of_birth)
                        values (%s, 'MRN-1', 'Ada', 'Lovelace', '1990-01-01')""",
            (user_id,),
        )
        conn.execute(
            "insert into audit_log (actor, action, table_name, row_key) values ('patient_svc', 'insert', 'patients', '1')"
        )
        for statement in (
            "update users set email = 'b@example.org'",
            "delete from audit_log",
            "select * from audit_log",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with connect_as(env, "gateway_svc") as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from users")
    # the admin can still see everything; a drifted grant is found and revoked
    with admin(env) as conn:
        conn.execute("grant select on patients to gateway_svc")
    plan = invoke("plan", "-i", "test")
    assert plan.code == 0 and "would change: [pg.grants gateway_svc] set table:patients" in plan.out, plan
    assert invoke("deploy", "-i", "test").code == 0
    with connect_as(env, "gateway_svc") as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from patients")
    # cleanup refuses, before changing anything, while tables hold rows
    before = snapshot(env)
    refused = invoke("cleanup-dev", "-i", "test")
    assert refused.code == 1, refused
    assert (
        "refusing to undo migration `0001_core_tables`: it holds data in audit_log (1 rows), patients (1 rows), users (1 rows)"
        in refused.out
    )
    assert "--destroy-data" in refused.out
    assert snapshot(env) == before


def test_check_mode_on_an_empty_environment_lists_everything_and_touches_nothing(env, invoke):
    before = snapshot(env)
    result = invoke("deploy", "-i", "test", "--check", "--diff")
    assert result.code == 0, result
    for line in (
        "would change: [pg.database healthcare] create",
        "would change: [pg.migration 0001_core_tables] create",
        "would change: [pg.role auth_svc] create",
        "would change: [pg.grants patient_svc] set database",
        "would change: [iam.role hc-local-gateway] create",
        '+  "max_session_duration": 3600,',
        "would change: [pg.grants auth_svc] set database, set table:audit_log, set table:users (after apply:"
        " pg.role auth_svc, pg.database healthcare created first)",
        "(check mode: nothing was changed)",
    ):
        assert line in result.out, result
    assert snapshot(env) == before
    assert (
        not (env.state_dir / "journal.jsonl").exists()
        or "run_start" not in (env.state_dir / "journal.jsonl").read_text()
    )
    as_json = invoke("plan", "-i", "test", "--json")
    assert as_json.json["changed"] == 15 and as_json.json["check"] is True


def test_rollback_restores_the_exact_before_state(env, invoke):
    before = snapshot(env)
    assert invoke("deploy", "-i", "test").code == 0
    assert snapshot(env) != before
    result = invoke("rollback", "-i", "test")
    assert result.code == 0, result
    # newest change first: env files, then IAM roles before grants, grants before roles, the database last
    order = [line for line in result.out.splitlines() if line.startswith("changed:")]
    assert order[0].startswith("changed: [local.env_file patient]") and order[3].startswith(
        "changed: [iam.role hc-local-patient]"
    )
    assert order[-1].startswith("changed: [pg.database healthcare]")
    assert snapshot(env) == before
    history = invoke("history", "-i", "test", "--json").json["runs"]
    assert [(r["kind"], r["status"]) for r in history] == [("deploy", "rolled back"), ("rollback", "ok")]
    assert [c["resource"] for c in history[1]["changes"]][3] == "iam.role hc-local-patient"
    again = invoke("rollback", "-i", "test")
    assert again.code == 1 and "no run left to roll back" in again.err


def test_a_failed_run_rolls_itself_back_and_no_rollback_keeps_it(env, invoke, workspace, tmp_path):
    # a services table naming a table no migration creates: the grants step fails mid-run
    broken = inventories_with_services(
        workspace, tmp_path / "inventories", "owns: [patients, medical_records]", "owns: [patients, ghost_records]"
    )
    before = snapshot(env)

    failed = invoke("deploy", "-i", "test", env_overrides={"HEALTHINFRA_INVENTORIES": str(broken)})
    assert failed.code == 1, failed
    assert "table `ghost_records` does not exist" in failed.out
    assert "The run failed: undoing its changes, newest first" in failed.out
    assert "the run failed and its changes were rolled back" in failed.out
    assert snapshot(env) == before
    runs = invoke("history", "-i", "test", "--json").json["runs"]
    assert [(r["kind"], r["status"]) for r in runs] == [("deploy", "rolled back"), ("rollback", "ok")]

    kept = invoke("deploy", "-i", "test", "--no-rollback", env_overrides={"HEALTHINFRA_INVENTORIES": str(broken)})
    assert kept.code == 1 and "rolled back" not in kept.out
    assert snapshot(env)["roles"] != before["roles"]
    # the correct table converges what was kept
    fixed = invoke("deploy", "-i", "test", "--json")
    assert fixed.code == 0 and fixed.json["failed"] == 0
    assert invoke("deploy", "-i", "test", "--json").json["changed"] == 0


def test_cleanup_tears_down_in_reverse_and_setup_works_again(env, invoke):
    before = snapshot(env)
    assert invoke("deploy", "-i", "test").code == 0
    with admin(env) as conn:
        conn.execute("insert into users (email, password_hash, role) values ('c@example.org', 'x', 'admin')")
    result = invoke("cleanup-dev", "-i", "test", "--destroy-data", "--json", "--check")
    assert result.code == 0 and result.json["changed"] == 15 and snapshot(env) != before
    # the real thing, keeping the test's servers running (they are shared by the session)
    from healthinfra import commands
    from playbooks import catalog

    out = []

    class Sink:
        def write(self, text):
            out.append(text)

        def flush(self):
            pass

    assert commands.cleanup("test", catalog=catalog(), destroy_data=True, stop_services=False, out=Sink()) == 0
    assert snapshot(env) == before
    assert SecretStore(env.state_dir / "secrets.json").names() == []
    assert invoke("deploy", "-i", "test").code == 0


def test_health_check_reports_each_probe_and_fails_when_the_database_is_down(env, invoke):
    from healthinfra.local import postgres

    assert invoke("deploy", "-i", "test").code == 0
    healthy = invoke("monitoring.check", "-i", "test", "--json")
    assert healthy.code == 0, healthy
    probes = {(p["probe"], p["target"]): p for p in healthy.json["probes"]}
    assert set(probes) >= {
        ("database", "gateway_svc"),
        ("database", "auth_svc"),
        ("database", "patient_svc"),
        ("iam role", "hc-local-patient"),
    }
    assert all(p["healthy"] for p in probes.values())
    postgres.stop(env)
    try:
        down = invoke("monitoring.check", "-i", "test")
        assert down.code == 1, down
        assert "database   patient_svc" in down.out and "UNHEALTHY" in down.out and "3 unhealthy" in down.out
        before_iam = AwsClients(env).client("iam").list_roles()["Roles"]
        for command in (["deploy"], ["cleanup-dev"], ["rollback"]):
            refused = invoke(*command, "-i", "test")
            assert refused.code == 1, refused
            assert (
                "embedded PostgreSQL for `test` is not running; start it with `invoke local.up -i test`" in refused.err
            )
        assert AwsClients(env).client("iam").list_roles()["Roles"] == before_iam
    finally:
        postgres.start(env)
    back = invoke("monitoring.check", "-i", "test")
    assert back.code == 0 and "all healthy" in back.out, back


def test_local_status_prints_connection_details(servers, invoke):
    result = invoke("local.status", "-i", "test", "--json")
    assert result.code == 0, result
    doc = result.json
    assert doc["postgres"]["running"] and doc["aws"]["running"]
    assert doc["aws"]["endpoint_url"] == f"https://127.0.0.1:{servers['aws_port']}"
    assert "user=postgres" in doc["postgres"]["admin_dsn"] and "password" not in doc["postgres"]["admin_dsn"]
    with psycopg.connect(doc["postgres"]["admin_dsn"]) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "postgres"


def test_no_secret_value_in_any_output_or_the_journal(env, invoke):
    assert invoke("deploy", "-i", "test", "--json").code == 0
    for command in (
        ["deploy", "-i", "test", "--check", "--diff"],
        ["history", "-i", "test", "--json"],
        ["monitoring.check", "-i", "test", "--json"],
        ["local.status", "-i", "test", "--json"],
    ):
        assert invoke(*command).code == 0
    store = SecretStore(env.state_dir / "secrets.json")
    values = [store.get(name).reveal() for name in store.names()]
    assert len(values) == 3 and all(len(v) >= 24 for v in values)
    assert oct(store.path.stat().st_mode & 0o777) == "0o600"
    assert invoke("rollback", "-i", "test").code == 0
    assert invoke("history", "-i", "test").code == 0
    journal = (env.state_dir / "journal.jsonl").read_text()
    logs = [(env.state_dir / "postgres" / "server.log").read_text(), (env.state_dir / "moto.log").read_text()]
    for value in values:
        assert value not in journal
        assert all(value not in log for log in logs)
        assert all(value not in text for text in OUTPUTS)


def test_a_lost_password_is_replaced_and_a_damaged_secrets_file_is_refused(env, invoke):
    assert invoke("deploy", "-i", "test").code == 0
    store = SecretStore(env.state_dir / "secrets.json")
    old = store.get("pg.auth_svc").reveal()
    store.delete("pg.auth_svc")
    plan = invoke("plan", "-i", "test")
    assert "would change: [pg.role auth_svc] set password" in plan.out, plan
    assert '"kept in the secrets file"' in plan.out and old not in plan.out
    assert invoke("deploy", "-i", "test").code == 0
    assert store.get("pg.auth_svc").reveal() != old
    assert invoke("monitoring.check", "-i", "test").code == 0

    text = store.path.read_text()
    store.path.write_text(text[: len(text) // 2])  # torn
    damaged = invoke("deploy", "-i", "test")
    assert damaged.code == 1 and "the secrets file is damaged" in damaged.out and "Traceback" not in damaged.err
    assert "nothing was changed" in damaged.out
    assert all(v not in damaged.err + damaged.out for v in (old, text))
    store.path.write_text(text)


def test_the_composite_tasks_converge_and_check(env, invoke):
    setup = invoke("setup-dev", "-i", "test")
    assert setup.code == 0 and "all healthy" in setup.out, setup
    deploy = invoke("deploy-dev", "-i", "test", "--phase", "2")
    assert deploy.code == 0 and "all healthy" in deploy.out and "probe" in deploy.out, deploy
    again = invoke("deploy-dev", "-i", "test", "--phase", "2")
    assert again.code == 0, again
    # the composite tasks print text only: what their deploys changed is read from the journal
    runs = [r for r in invoke("history", "-i", "test", "--json").json["runs"] if r["kind"] == "deploy"]
    assert [(r["phase"], r["status"]) for r in runs] == [(1, "ok"), (2, "ok"), (2, "ok")], runs
    db = [c["resource"] for c in runs[0]["changes"] if c["playbook"] == "db"]
    assert len(db) == 5, db  # db: database, migration, three roles
    assert runs[-1]["changes"] == [], runs[-1]
    second = invoke("deploy", "-i", "test", "--phase", "2", "--json")
    assert second.code == 0 and (second.json["changed"], second.json["changes"]) == (0, []), second
