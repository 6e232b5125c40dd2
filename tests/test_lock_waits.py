"""Bounded lock waits against the real embedded server: a report of the patient service holds
a read lock on `patients` while `deploy --phase 2` alters it. The service's own queries, every
20 ms, never wait more than `lock_timeout` + 0.5 s and never fail; the deploy names the report
as it waits, and fails naming it (nothing applied) when the report outlives
`database.lock_retry_seconds`."""

from __future__ import annotations

import shutil
import threading
import time

from healthinfra.journal import FileJournal

from .support.database import admin
from .support.environment import INVENTORY
from .support.probes import holding_lock, probing

LOCK_TIMEOUT = 2.0  # the default database.lock_timeout
PROBE = "select count(*) from patients"


def inventories_with_database(workspace, directory, extra: str):
    """A copy of the test inventories whose `database` section has `extra` lines added."""
    directory.mkdir()
    for name in ("services.yml", "data_types.yml"):
        shutil.copy(workspace["inventories"] / name, directory / name)
    text = (workspace["inventories"] / f"{INVENTORY}.yml").read_text()
    assert "\n  name: healthcare\n" in text
    (directory / f"{INVENTORY}.yml").write_text(
        text.replace("\n  name: healthcare\n", f"\n  name: healthcare\n{extra}")
    )
    return directory


def applied_migrations(env) -> set[str]:
    with admin(env) as conn:
        return {row[0] for row in conn.execute("select version from schema_migrations")}


def patients_row_security(env) -> bool:
    with admin(env) as conn:
        return conn.execute("select relrowsecurity from pg_class where oid = 'patients'::regclass").fetchone()[0]


def lock_wait_events(env) -> list[dict]:
    return [e for e in FileJournal(env.state_dir / "journal.jsonl").events() if e.get("event") == "lock_wait"]


def test_a_long_report_slows_no_request_and_the_deploy_waits_its_turn(env, invoke):
    assert invoke("deploy", "-i", "test", "--phase", "1").code == 0
    outcome = {}
    with probing(env, "patient_svc", PROBE) as probe:
        with holding_lock(env, "patient_svc", "patients") as report_pid:
            deploy = threading.Thread(target=lambda: outcome.update(r=invoke("deploy", "-i", "test", "--phase", "2")))
            deploy.start()
            time.sleep(12)  # the report runs for 12 s
        deploy.join(timeout=240)
        deploy_ended = time.monotonic()
        time.sleep(0.5)
    result = outcome["r"]
    assert result.code == 0, result
    assert not probe.errors, probe.errors[:3]
    assert probe.queries > 100 and probe.last_success > deploy_ended, "the probe ran all along"
    assert probe.longest <= LOCK_TIMEOUT + 0.5, f"a query of the service waited {probe.longest:.2f} s"
    waits = [line for line in result.out.splitlines() if "waiting for a lock on patients held by" in line]
    assert waits, result.out
    assert f"pid {report_pid} (patient_svc, idle in transaction for" in waits[0] and waits[0].endswith("try 2")
    events = lock_wait_events(env)
    assert len(events) == len(waits), "every retry is one journal event"
    assert events[0]["relations"] == ["patients"]
    assert events[0]["blockers"][0]["pid"] == report_pid and events[0]["blockers"][0]["user"] == "patient_svc"
    assert "count(*)" not in str(events), "the journal keeps no query text"
    assert patients_row_security(env) and "0002_phi_protection" in applied_migrations(env)


def test_a_report_that_outlives_the_retries_fails_the_deploy_naming_it_then_the_next_run_succeeds(
    env, invoke, workspace, tmp_path
):
    inventories = inventories_with_database(workspace, tmp_path / "inventories", "  lock_retry_seconds: 4\n")
    overrides = {"HEALTHINFRA_INVENTORIES": str(inventories)}
    assert invoke("deploy", "-i", "test", "--phase", "1", env_overrides=overrides).code == 0
    before = applied_migrations(env)
    with probing(env, "patient_svc", PROBE) as probe:
        with holding_lock(env, "patient_svc", "patients") as report_pid:
            failed = invoke("deploy", "-i", "test", "--phase", "2", env_overrides=overrides)
    assert failed.code == 1, failed
    text = failed.out + failed.err
    assert f"pid {report_pid} (patient_svc, idle in transaction for" in text, failed
    assert "application `nightly-report`, query `select count(*) from patients`" in text, failed
    assert "pg_terminate_backend" in text and "database.lock_retry_seconds" in text
    assert applied_migrations(env) == before and not patients_row_security(env), "nothing of the migration applied"
    assert not probe.errors and probe.longest <= LOCK_TIMEOUT + 0.5, (probe.errors[:3], probe.longest)
    again = invoke("deploy", "-i", "test", "--phase", "2", env_overrides=overrides)
    assert again.code == 0, again
    assert patients_row_security(env)


def test_a_bad_lock_timeout_is_refused_at_load_naming_the_key(env, invoke, workspace, tmp_path):
    inventories = inventories_with_database(workspace, tmp_path / "inventories", "  lock_timeout: forever\n")
    result = invoke("plan", "-i", "test", env_overrides={"HEALTHINFRA_INVENTORIES": str(inventories)})
    assert result.code == 2, result
    assert "test.yml: `database.lock_timeout` must be a PostgreSQL duration like `2s`" in result.err, result


def test_the_walk_up_to_phase_4_and_down_to_2_fails_no_query_of_the_services(env, invoke):
    assert invoke("deploy", "-i", "test", "--phase", "1").code == 0
    with probing(env, "patient_svc", "select count(*) from patients, medical_records") as patient:
        assert invoke("deploy", "-i", "test", "--phase", "2").code == 0
        with probing(env, "provider_svc", "select count(*) from providers") as provider:
            for args in (("--phase", "3"), ("--phase", "4"), ("--phase", "2", "--downgrade", "--yes")):
                result = invoke("deploy", "-i", "test", *args, timeout=600)
                assert result.code == 0, result
    for name, probe in (("patient_svc", patient), ("provider_svc", provider)):
        assert probe.queries > 100 and not probe.errors, (name, probe.errors[:3])
        assert probe.longest <= LOCK_TIMEOUT + 0.5, f"{name} waited {probe.longest:.2f} s"


def test_after_the_deletion_guard_counts_a_down_migration_waits_no_longer_than_the_sessions_bound(env, invoke):
    """The guard locks the tables it counts with its own 30 s bound; what the down migration runs
    next in that transaction (its other statements) is bounded by database.lock_timeout again."""
    from healthinfra.resources.pg_facts import rows_held_locked

    assert invoke("deploy", "-i", "test", "--phase", "1").code == 0
    with admin(env) as conn:
        conn.execute("set lock_timeout = '2s'")
        with conn.transaction():
            assert rows_held_locked(conn, ["patients"]) == {}
            inside = conn.execute("select current_setting('lock_timeout')").fetchone()[0]
        after = conn.execute("select current_setting('lock_timeout')").fetchone()[0]
    assert (inside, after) == ("2s", "2s")
