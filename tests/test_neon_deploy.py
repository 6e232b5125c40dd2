"""A dev-like environment on Neon (the contract-checked stand-in) and AWS (`aws`, pointed at
moto by AWS_ENDPOINT_URL), end to end through invoke: the first run creates a branch per
developer with everything in it, the second changes nothing, rollback removes it all;
injected throttling and outages are retried, counted, and duplicate nothing."""

from __future__ import annotations

import shutil

import psycopg
import pytest

from healthinfra.inventory import load_inventory
from healthinfra.providers.postgres import service_conninfo
from healthinfra.secret_store import SecretStore

from .support.environment import aws_env, buckets, write_neon_inventory

NAME = "neondev"
SERVICE_ROLES = ["appointment_svc", "auth_svc", "gateway_svc", "patient_svc", "provider_svc"]


@pytest.fixture
def neondev(neon, servers, invoke, monkeypatch):
    """The inventory `neondev` for developer `alice`; everything it made removed afterwards."""
    monkeypatch.setenv("USER", "alice")
    path = write_neon_inventory(servers["inventories"], NAME)
    environment = {**aws_env(servers), "USER": "alice"}
    yield environment
    cleaned = invoke("cleanup-dev", "-i", NAME, "--destroy-data", env_overrides=environment, timeout=600)
    path.unlink()
    shutil.rmtree(servers["state"] / NAME, ignore_errors=True)
    assert cleaned.code == 0, cleaned  # nothing of ours may be left in moto for the other tests
    assert buckets(servers, "hc-dev-") == []


def connect_as(role: str, servers):
    inventory = load_inventory(NAME)
    password = SecretStore(inventory.state_dir / "secrets.json").get(f"pg.{role}")
    return psycopg.connect(**service_conninfo(inventory, role, password), connect_timeout=5)


def test_first_run_creates_second_changes_nothing_rollback_removes(neondev, neon, servers, invoke):
    first = invoke("deploy-dev", "-i", NAME, "--phase", "3", env_overrides=neondev, timeout=600)
    assert first.code == 0, first
    assert "all healthy" in first.out

    # the developer's own branch from main, with its endpoint, owner, database and schema
    assert neon.branch_names("hc-dev") == ["dev-alice", "main"]
    listing = neon.listing("hc-dev", "dev-alice")
    assert listing["databases"] == ["healthcare", "neondb"] and "healthcare_owner" in listing["roles"]
    assert listing["endpoints"] == 1
    assert len(buckets(servers, "hc-dev-")) == 3

    # the services log in over TLS on the URI Neon gave, each with only its own privileges
    with connect_as("patient_svc", servers) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("select count(*) from patients").fetchone() == (0,)
        role = conn.execute(
            "select rolbypassrls, rolcreaterole, pg_has_role('neon_superuser', 'member')"
            " from pg_roles where rolname = current_user"
        ).fetchone()
        assert role == (False, False, False)
    with connect_as("gateway_svc", servers) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("select * from patients")
    with connect_as("auth_svc", servers) as conn:  # phase 3 made pg_stat_statements, as the owner, on Neon
        assert conn.execute("select 1 from pg_extension where extname = 'pg_stat_statements'").fetchone()

    second = invoke("deploy", "-i", NAME, "--phase", "3", "--json", env_overrides=neondev, timeout=600)
    assert second.code == 0 and second.json["changed"] == 0 and second.json["failed"] == 0, second.json["changes"]
    assert neon.locked == 0  # every mutating call waited for the operations before it

    audit = invoke("security.audit", "-i", NAME, "--json", env_overrides=neondev)
    ours = [f for f in audit.json["findings"] if "hc-dev" in f["resource"] or f["resource"].startswith("db ")]
    assert ours == [], audit  # (the audit reads the whole moto account: other tests' buckets are not ours)
    rotated = invoke("security.rotate", "-i", NAME, "--service", "patient", env_overrides=neondev)
    assert rotated.code == 0, rotated
    with connect_as("patient_svc", servers) as conn:  # the new password, from the secrets file, works
        assert conn.execute("select 1").fetchone() == (1,)

    # (the access-log bucket holds the S3 access logs written meanwhile: they go too)
    undo = invoke("rollback", "-i", NAME, "--destroy-data", "--json", env_overrides=neondev, timeout=600)
    assert undo.code == 0 and undo.json["failed"] == 0, undo
    assert neon.branch_names("hc-dev") == ["main"]  # the project stays: it holds every developer's branch
    assert neon.listing("hc-dev", "dev-alice") == {"roles": [], "databases": [], "endpoints": 0}
    with neon.backing.admin() as admin:
        left = admin.execute("select rolname from pg_roles where rolname like '%%\\_svc' order by 1").fetchall()
        assert left == []
        assert not neon.backing.database_exists("healthcare")
    assert buckets(servers, "hc-dev-") == []


def test_a_plan_on_an_empty_account_changes_nothing(neondev, neon, invoke):
    plan = invoke("plan", "-i", NAME, "--phase", "1", "--json", env_overrides=neondev)
    assert plan.code == 0, plan
    created = {c["resource"] for c in plan.json["changes"] if c["actions"][0]["op"] == "create"}
    assert {
        "neon.project hc-dev",
        "neon.branch dev-alice",
        "neon.endpoint dev-alice",
        "neon.database healthcare",
        "pg.migration 0001_core_tables",
        "pg.role patient_svc",
    } <= created
    assert all(line.startswith("GET ") for line in neon.requests)
    assert neon.branch_names("hc-dev") == []


def test_throttling_and_outages_are_retried_counted_and_duplicate_nothing(neondev, neon, servers, invoke):
    neon.inject(429, count=2, retry_after=0.5, match="GET /api/v2/projects")
    neon.inject(503, count=1, match="POST /api/v2/projects/")  # the branch's creation
    neon.inject(None, count=1, delay=1.0, match="GET /api/v2/projects/")  # and one slow answer
    result = invoke("deploy", "-i", NAME, "--phase", "1", "--json", env_overrides=neondev, timeout=600)
    assert result.code == 0, result
    assert neon.faults_served == {429: 2, 503: 1, "slow": 1}
    assert result.json["retries"] >= 3
    assert neon.branch_names("hc-dev") == ["dev-alice", "main"]
    assert neon.listing("hc-dev", "dev-alice")["endpoints"] == 1
    again = invoke("deploy", "-i", NAME, "--phase", "1", "--json", env_overrides=neondev, timeout=600)
    assert again.code == 0 and again.json["changed"] == 0, again


def test_a_bad_user_for_the_branch_is_refused_naming_the_key(neondev, neon, invoke):
    result = invoke("deploy", "-i", NAME, env_overrides={**neondev, "USER": "Bad User!"})
    assert result.code == 2, result
    assert "`database.branch` is `dev-{user}`, whose `{user}` comes from $USER" in result.err
    assert neon.requests == []


def test_a_missing_api_key_is_refused_before_any_call(neondev, neon, invoke):
    result = invoke("deploy", "-i", NAME, env_overrides={**neondev, "NEON_API_KEY": ""})
    assert result.code == 2, result
    assert "`database.api_key_env` names $NEON_API_KEY, which is not set" in result.err
    assert neon.requests == []


def test_a_branch_holding_rows_or_another_users_branch_is_never_deleted_blind(neondev, neon, invoke):
    assert invoke("deploy", "-i", NAME, "--phase", "1", env_overrides=neondev, timeout=600).code == 0
    with connect_as("auth_svc", None) as conn:
        conn.execute("insert into users (email, password_hash, role) values ('a@example.org', 'x', 'patient')")
    as_bob = invoke("rollback", "-i", NAME, "--json", env_overrides={**neondev, "USER": "bob"}, timeout=600)
    assert as_bob.code == 1 and "nothing was changed" in as_bob.err, as_bob
    assert "it is on branch `dev-alice`, not this run's `dev-bob`" in as_bob.err, as_bob.err[-2000:]
    assert neon.branch_names("hc-dev") == ["dev-alice", "main"]
    as_alice = invoke("rollback", "-i", NAME, env_overrides=neondev, timeout=600)
    assert as_alice.code == 1 and "it holds data in users (1 rows)" in as_alice.out, as_alice
    assert neon.branch_names("hc-dev") == ["dev-alice", "main"]
    journal = (load_inventory(NAME).state_dir / "journal.jsonl").read_text()
    secrets = SecretStore(load_inventory(NAME).state_dir / "secrets.json")
    for role in ("auth_svc", "patient_svc"):
        assert secrets.get(f"pg.{role}").reveal() not in journal
