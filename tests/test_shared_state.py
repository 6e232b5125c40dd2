"""A team shares an environment: two checkouts, one history, one lock, one set of secrets.

Two laptops are two state directories (HEALTHINFRA_STATE) on one machine. They share the
session's moto server (S3 for the state bucket, Secrets Manager, KMS, IAM…, reached by the
`aws` provider through AWS_ENDPOINT_URL) and its PostgreSQL server (the embedded one, reached
by its TCP/TLS URL through the `postgres` provider). Nothing of the environment's state may
stay on either laptop: no journal, no secrets file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import psycopg
import pytest
from psycopg import sql

from .support.environment import INVENTORY, REPO, aws_env

LEASE = 10


def team_inventory(bucket: str, state: str = "s3", secrets: str = "secretsmanager") -> str:
    text = """description: an environment a team shares
environment: team
prefix: hc
phase: 1
providers:
  database: postgres
  aws: aws
  hosting: local
database:
  name: teamdb
  admin_url_env: TEAM_ADMIN_URL
aws:
  region: us-east-1
  account_id: "123456789012"
"""
    if state == "s3":
        text += f"state:\n  backend: s3\n  bucket: {bucket}\n  prefix: team/\n  lease_seconds: {LEASE}\n"
    if secrets == "secretsmanager":
        text += "secrets:\n  backend: secretsmanager\n"
    return text


def remove_state(bucket: str) -> None:
    """What the product never removes (the change history), removed for the next test: the state
    bucket with every version, and the state key's alias (the key scheduled for deletion)."""
    from healthinfra.inventory import load_inventory
    from healthinfra.providers.aws import AwsClients

    clients = AwsClients(load_inventory(INVENTORY))
    s3, kms = clients.client("s3"), clients.client("kms")
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
    s3.delete_bucket(Bucket=bucket)
    for alias in kms.list_aliases()["Aliases"]:
        if alias["AliasName"] == "alias/hc-team-state":
            kms.delete_alias(AliasName=alias["AliasName"])
            kms.schedule_key_deletion(KeyId=alias["TargetKeyId"], PendingWindowInDays=7)


@pytest.fixture
def team(env, servers, invoke):
    """The team inventory, an admin role for it on the shared PostgreSQL, and two laptops."""
    from healthinfra.inventory import load_inventory
    from healthinfra.providers.postgres import admin_conninfo

    local = load_inventory(INVENTORY)
    password = uuid.uuid4().hex
    admin = "team_admin"
    with psycopg.connect(**admin_conninfo(local), autocommit=True) as conn:
        conn.execute(
            sql.SQL("create role {} login createrole createdb password {}").format(
                sql.Identifier(admin), sql.Literal(password)
            )
        )
    cert = servers["state"] / INVENTORY / "tls" / "server.crt"
    url = f"postgresql://{admin}:{password}@127.0.0.1:{servers['pg_port']}/postgres?sslrootcert={cert}"
    bucket = f"hc-team-state-{uuid.uuid4().hex[:8]}"
    path = servers["inventories"] / "team.yml"
    path.write_text(team_inventory(bucket))
    laptops = {}
    for name in ("a", "b"):
        directory = servers["base"] / f"laptop-{name}-{bucket[-8:]}"
        directory.mkdir()
        laptops[name] = {**aws_env(servers), "TEAM_ADMIN_URL": url, "HEALTHINFRA_STATE": str(directory)}
    try:
        assert invoke("state.init", "-i", "team", env_overrides=laptops["a"]).code == 0
        yield {"laptops": laptops, "path": path, "bucket": bucket, "password": password, "url": url}
    finally:
        cleaned = invoke("cleanup-dev", "-i", "team", "--destroy-data", env_overrides=laptops["a"], timeout=600)
        path.write_text(team_inventory(bucket))
        with psycopg.connect(**admin_conninfo(local), autocommit=True) as conn:
            conn.execute("drop database if exists teamdb with (force)")
            conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(admin)))
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(admin)))
        path.unlink()
        remove_state(bucket)
        for laptop in laptops.values():
            shutil.rmtree(laptop["HEALTHINFRA_STATE"], ignore_errors=True)
        assert cleaned.code == 0, cleaned


def state_objects(servers, bucket: str) -> dict[str, str]:
    from healthinfra.inventory import load_inventory
    from healthinfra.providers.aws import AwsClients

    s3 = AwsClients(load_inventory(INVENTORY)).client("s3")
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            found[item["Key"]] = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
    return found


def team_secrets(servers) -> list[str]:
    from healthinfra.inventory import load_inventory
    from healthinfra.providers.aws import AwsClients

    manager = AwsClients(load_inventory(INVENTORY)).client("secretsmanager")
    listed = manager.list_secrets(Filters=[{"Key": "name", "Values": ["hc/team/"]}])["SecretList"]
    return [manager.get_secret_value(SecretId=s["Name"])["SecretString"] for s in listed]


def local_state_files(laptop: dict) -> list[str]:
    """Journal, secrets and run-state files a laptop holds for the team environment."""
    directory = os.path.join(laptop["HEALTHINFRA_STATE"], "team")
    if not os.path.isdir(directory):
        return []
    return sorted(
        f"team/{f}" for f in os.listdir(directory) if f in ("journal.jsonl", "secrets.json") or f.endswith(".json")
    )


def test_a_second_checkout_shares_the_history_the_secrets_and_the_rollback(team, servers, invoke):
    a, b = team["laptops"]["a"], team["laptops"]["b"]
    first = invoke("deploy", "-i", "team", "--phase", "1", "--json", env_overrides=a)
    assert first.code == 0 and first.json["changed"] > 0, first
    again = invoke("deploy", "-i", "team", "--phase", "1", "--json", env_overrides=b)
    # b found a's passwords and runs: nothing of the shared environment changes. What it does
    # write are its own env files (hosting: local writes them for the services run on a laptop).
    assert again.code == 0, again
    assert {c["resource"].split()[0] for c in again.json["changes"]} == {"local.env_file"}, again
    third = invoke("deploy", "-i", "team", "--phase", "1", "--json", env_overrides=b)
    assert third.json["changed"] == 0, third

    seen_by_a = invoke("history", "-i", "team", "--json", env_overrides=a).json["runs"]
    seen_by_b = invoke("history", "-i", "team", "--json", env_overrides=b).json["runs"]
    ids = [first.json["run_id"], again.json["run_id"], third.json["run_id"]]
    assert [r["run_id"] for r in seen_by_a] == [r["run_id"] for r in seen_by_b] == ids
    undone = invoke("rollback", "-i", "team", "--run", ids[0], env_overrides=b)  # b undoes a's run
    assert undone.code == 0, undone
    runs = invoke("history", "-i", "team", "--json", env_overrides=a).json["runs"]
    assert runs[0]["status"] == "rolled back" and runs[-1]["kind"] == "rollback" and runs[-1]["target"] == ids[0]

    for laptop in (a, b):
        assert local_state_files(laptop) == [], "the environment's state lives in its bucket, not on a laptop"
    objects = state_objects(servers, team["bucket"])
    assert "team/lock.json" not in objects, "a finished run leaves no lock behind"
    assert any(key.startswith("team/journal/") for key in objects)
    secrets = team_secrets(servers) + [team["password"]]
    texts = list(objects.values()) + [r.out + r.err for r in (first, again, undone)]
    for secret in secrets:
        assert all(secret not in text for text in texts)


def test_concurrent_runs_from_two_checkouts_exactly_one_proceeds(team, servers):
    a, b = team["laptops"]["a"], team["laptops"]["b"]
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "invoke", "deploy", "-i", "team", "--phase", "2", "--json"],
            cwd=REPO,
            env=dict(os.environ, **(a if i % 2 else b)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    results = [(run.wait(timeout=600), *run.communicate()) for run in runs]
    codes = sorted(code for code, _, _ in results)
    assert codes[0] == 0 and all(code in (0, 3) for code in codes), results
    assert codes.count(0) >= 1 and codes.count(3) >= 1, "the runs overlapped, so all but one must be refused"
    for code, _out, err in results:
        if code == 3:
            assert "is locked by" in err and "lock id" in err and "its lease ends" in err, err
            assert "invoke state.unlock -i team --id" in err
    history = json.loads(
        subprocess.run(
            [sys.executable, "-m", "invoke", "history", "-i", "team", "--json"],
            cwd=REPO,
            env=dict(os.environ, **a),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )["runs"]
    assert len([r for r in history if r["changes"]]) == 1, "one run made the changes; the refused made none"


HOLD = """
import sys, time
from healthinfra.inventory import load_inventory
from healthinfra.state import open_state
lock = open_state(load_inventory("team")).lock("held by a test").acquire()
print(lock.id, flush=True)
time.sleep(300)
"""


def hold_lock(laptop: dict) -> tuple[subprocess.Popen, str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD], cwd=REPO, env=dict(os.environ, **laptop), stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    return holder, holder.stdout.readline().strip()


def stop(holder: subprocess.Popen) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    if holder.stdout is not None:
        holder.stdout.close()


def test_a_killed_holder_blocks_until_its_lease_ends_then_the_other_checkout_converges(team, invoke):
    a, b = team["laptops"]["a"], team["laptops"]["b"]
    holder, lock_id = hold_lock(a)
    stop(holder)  # SIGKILL: the holder never releases its lock
    killed_at = time.monotonic()
    refused = invoke("deploy", "-i", "team", "--phase", "1", env_overrides=b)
    assert refused.code == 3 and lock_id in refused.err and "held by a test" in refused.err, refused
    time.sleep(max(0.0, LEASE + 1 - (time.monotonic() - killed_at)))
    taken_over = invoke("deploy", "-i", "team", "--phase", "1", "--json", env_overrides=b)
    assert taken_over.code == 0 and taken_over.json["changed"] > 0, taken_over


def test_force_unlock_by_id_refuses_a_wrong_id(team, invoke):
    a, b = team["laptops"]["a"], team["laptops"]["b"]
    holder, lock_id = hold_lock(a)
    try:
        wrong = invoke("state.unlock", "-i", "team", "--id", "0123456789ab", env_overrides=b)
        assert wrong.code == 2 and f"has id `{lock_id}`" in wrong.err and "nothing was removed" in wrong.err, wrong
        assert invoke("deploy", "-i", "team", env_overrides=b).code == 3
        removed = invoke("state.unlock", "-i", "team", "--id", lock_id, env_overrides=b)
        assert removed.code == 0 and f"removed lock {lock_id}" in removed.out, removed
        assert invoke("deploy", "-i", "team", "--phase", "1", env_overrides=b).code == 0
    finally:
        stop(holder)


def test_a_file_backed_environment_migrates_and_every_checkout_then_sees_its_runs(team, servers, invoke):
    a, b = team["laptops"]["a"], team["laptops"]["b"]
    team["path"].write_text(team_inventory(team["bucket"], state="local", secrets="file"))
    before = invoke("deploy", "-i", "team", "--phase", "1", "--json", env_overrides=a)
    assert before.code == 0 and before.json["changed"] > 0, before
    assert local_state_files(a) == ["team/journal.jsonl", "team/secrets.json"]

    team["path"].write_text(team_inventory(team["bucket"]))
    moved = invoke("state.migrate", "-i", "team", "--from", "local", env_overrides=a)
    assert moved.code == 0 and "events copied" in moved.out and "secrets:" in moved.out, moved
    assert local_state_files(a) == [], "journal and secrets moved aside, out of the state directory's top"
    after = invoke("deploy", "-i", "team", "--phase", "1", "--json", env_overrides=a)
    assert after.code == 0 and after.json["changed"] == 0, after
    runs = invoke("history", "-i", "team", "--json", env_overrides=b).json["runs"]
    assert runs[0]["run_id"] == before.json["run_id"]


def test_a_run_whose_lock_was_taken_over_stops_before_its_next_change(team, monkeypatch):
    from healthinfra import journal as events
    from healthinfra.errors import LeaseLost
    from healthinfra.inventory import load_inventory
    from healthinfra.state import open_state
    from healthinfra.state_s3 import LeaseLock

    for key, value in team["laptops"]["a"].items():
        monkeypatch.setenv(key, value)
    state = open_state(load_inventory("team"))
    lock = state.lock("a slow run").acquire()
    journal = state.journal()
    try:
        journal.append(events.run_start("r-slow", kind="deploy", phase=1, inventory="team", command="deploy"))
        # what a taker does after an expiry (this holder stalled): the lock object is another run's now
        state.bucket.put(LeaseLock.KEY, {"id": "another", "holder": "bob@laptop-b", "lease_expires": "2999-01-01"})
        time.sleep(LEASE / 3 + 1.5)  # the holder's next renewal finds it
        written = state.bucket.keys("journal/")
        with pytest.raises(LeaseLost, match="stopped before its next change") as lost:
            journal.append(
                events.change("r-slow", seq=1, playbook="db", step="s", resource={}, actions=[], converge_to=None)
            )
        assert lost.value.exit_code == 3
        assert state.bucket.keys("journal/") == written, "nothing written once the lock is lost"
    finally:
        lock.release()
        found = state.bucket.get(LeaseLock.KEY)
        assert found is not None and found[0]["id"] == "another", "a lost lock is never deleted by its old holder"
        state.bucket.delete(LeaseLock.KEY, if_match=found[1])


def test_faults_on_the_state_backend_are_retried_and_nothing_is_written_twice(team, servers, invoke):
    """Throttling (503 SlowDown), 503s, dropped connections and stalls between the runner and the
    state bucket and Secrets Manager, seeded: the run completes, each event is in the journal once."""
    from .support.faultproxy import FaultProxy

    proxy = FaultProxy(servers["aws_port"], seed=11, tls_dir=servers["state"] / INVENTORY / "tls", stall_rate=0.05)
    faulty = {**team["laptops"]["a"], "AWS_ENDPOINT_URL": f"https://127.0.0.1:{proxy.port}"}
    try:
        result = invoke("deploy", "-i", "team", "--phase", "1", "--json", env_overrides=faulty, timeout=900)
    finally:
        proxy.close()
    assert result.code == 0 and result.json["failed"] == 0, result
    assert proxy.counts["503"] + proxy.counts["slowdown"] + proxy.counts["reset"] > 0, proxy.counts
    a = team["laptops"]["a"]
    runs = invoke("history", "-i", "team", "--json", env_overrides=a).json["runs"]
    assert [(r["run_id"], r["status"]) for r in runs] == [(result.json["run_id"], "ok")]
    changes = runs[0]["changes"]
    assert [c["seq"] for c in changes] == list(range(1, len(changes) + 1)) == list(range(1, result.json["changed"] + 1))
    assert all(c["outcome"] == "ok" for c in changes)
    journal = [k for k in state_objects(servers, team["bucket"]) if k.startswith("team/journal/")]
    assert len(journal) == 2 + 2 * len(changes), "run_start, an intent and an outcome per change, run_end: once each"
    again = invoke("deploy", "-i", "team", "--phase", "1", "--json", env_overrides=a)
    assert again.code == 0 and again.json["changed"] == 0, again


def test_every_phase_builds_on_a_plain_postgresql_server(team, servers, invoke):
    """What phases 1-4 build on the embedded server, built through the `postgres` provider. Phase 3's
    pg_stat_statements is not a trusted extension: the server lets this admin (no superuser: the
    local server's TLS front lets none in) create it, as RDS does its master user."""
    from healthinfra.inventory import load_inventory
    from healthinfra.providers.postgres import admin_conninfo

    from .support.database import trusted_pg_stat_statements

    path = trusted_pg_stat_statements(servers["base"] / "team-ext")
    with psycopg.connect(**admin_conninfo(load_inventory(INVENTORY)), autocommit=True) as conn:
        conn.execute(sql.SQL("alter role team_admin set extension_control_path = {}").format(sql.Literal(path)))
    a = team["laptops"]["a"]
    built = invoke("deploy", "-i", "team", "--phase", "4", "--json", env_overrides=a, timeout=900)
    assert built.code == 0 and built.json["failed"] == 0, built.json["errors"]
    again = invoke("deploy", "-i", "team", "--phase", "4", "--json", env_overrides=a, timeout=900)
    assert again.code == 0 and again.json["changed"] == 0, again
    healthy = invoke("monitoring.check", "-i", "team", "--phase", "4", "--json", env_overrides=a)
    assert healthy.code == 0, healthy
    probes = [p for p in healthy.json["probes"] if p["probe"] == "database"]
    assert probes and all("over TLS" in p["detail"] for p in probes)
