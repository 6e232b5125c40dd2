"""The local hosting provider: an env file per Railway-hosted service, private, exact, undone by rollback."""

from __future__ import annotations

import os
import stat

import psycopg

from healthinfra.resources.local_env import parse_env_file
from healthinfra.secret_store import SecretStore

from .support.invoking import OUTPUTS


def env_files(env):
    directory = env.state_dir / "services"
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_env_files_are_private_exact_idempotent_and_rolled_back(env, invoke):
    first = invoke("deploy", "-i", "test", "--phase", "2", "--json")
    assert first.code == 0, first
    changed = {c["resource"] for c in first.json["changes"]}
    assert {
        "local.env_file gateway",
        "local.env_file auth",
        "local.env_file patient",
        "local.env_file provider",
    } <= changed
    assert env_files(env) == ["auth.env", "gateway.env", "patient.env", "provider.env"]  # not ai: it runs on a host

    path = env.state_dir / "services" / "patient.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    variables = parse_env_file(path.read_text())
    assert variables == {
        "AWS_ENDPOINT_URL": f"https://127.0.0.1:{env.aws['port']}",
        "AWS_REGION": "us-east-1",
        "AWS_CA_BUNDLE": str(env.state_dir / "tls" / "server.crt"),
        "DATABASE_URL": variables["DATABASE_URL"],
        "LOG_GROUP": "/hc/local/patient",
        "PORT": "8002",
        "MEDICAL_DOCUMENTS_BUCKET": "hc-local-medical-documents",
        "MEDICAL_IMAGES_BUCKET": "hc-local-medical-images",
    }
    # the URL is the service's own role, and it works: a developer can start the service with this file
    with psycopg.connect(variables["DATABASE_URL"], autocommit=True) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "patient_svc"
        assert conn.execute("select count(*) from patients").fetchone()[0] == 0
    password = SecretStore(env.state_dir / "secrets.json").get("pg.patient_svc").reveal()
    assert password in variables["DATABASE_URL"]
    journal = (env.state_dir / "journal.jsonl").read_text()
    assert password not in journal and all(password not in text for text in OUTPUTS)
    assert "***database URL of the service's role" in journal

    again = invoke("deploy", "-i", "test", "--phase", "2", "--json")
    assert again.code == 0 and again.json["changed"] == 0, again

    # drift: a looser mode and an edited port are put back, and the plan says so without the password
    os.chmod(path, 0o644)
    path.write_text(path.read_text().replace("PORT=8002", "PORT=9999"))
    plan = invoke("plan", "-i", "test", "--phase", "2")
    assert "would change: [local.env_file patient] set variables, set mode" in plan.out, plan
    assert '"PORT": "9999"' in plan.out and password not in plan.out
    assert invoke("deploy", "-i", "test", "--phase", "2").code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and parse_env_file(path.read_text())["PORT"] == "8002"

    # rollback of that run restores the drifted file as it was (password included), then of the first run removes all
    undone = invoke("rollback", "-i", "test")
    assert undone.code == 0, undone
    assert parse_env_file(path.read_text())["PORT"] == "9999"
    assert parse_env_file(path.read_text())["DATABASE_URL"] == variables["DATABASE_URL"]
    assert (
        invoke("rollback", "-i", "test", "--destroy-data").code == 0
    )  # the first run: the S3 access logs hold objects
    assert env_files(env) == []


def test_a_rotated_password_reaches_the_env_file_and_the_old_one_is_kept_nowhere(env, invoke):
    assert invoke("deploy", "-i", "test", "--phase", "1").code == 0
    path = env.state_dir / "services" / "auth.env"
    before = parse_env_file(path.read_text())["DATABASE_URL"]
    assert invoke("security.rotate", "-i", "test", "--service", "auth").code == 0
    plan = invoke("plan", "-i", "test", "--phase", "1")
    assert "would change: [local.env_file auth] set variables" in plan.out, plan
    assert invoke("deploy", "-i", "test", "--phase", "1").code == 0
    after = parse_env_file(path.read_text())["DATABASE_URL"]
    assert after != before
    with psycopg.connect(after, autocommit=True) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "auth_svc"
    journal = (env.state_dir / "journal.jsonl").read_text()
    assert before not in journal and after not in journal
    # undoing it cannot bring back a password the role no longer has (a rotation keeps none):
    # the file keeps the role's working URL, and no copy of the old one exists anywhere
    assert invoke("rollback", "-i", "test").code == 0
    assert parse_env_file(path.read_text())["DATABASE_URL"] == after
    assert before not in (env.state_dir / "secrets.json").read_text()


def test_cleanup_removes_the_env_files(env, invoke):
    assert invoke("deploy", "-i", "test", "--phase", "1").code == 0
    assert env_files(env) == ["auth.env", "gateway.env", "patient.env"]
    assert invoke("cleanup-dev", "-i", "test", "--destroy-data").code == 0
    assert env_files(env) == []


def test_a_rotation_is_a_journalled_change_that_rollback_refuses_to_undo(env, invoke):
    assert invoke("deploy", "-i", "test", "--phase", "1").code == 0
    rotated = invoke("security.rotate", "-i", "test", "--service", "auth")
    assert rotated.code == 0 and "rotated the password of `auth_svc`" in rotated.out, rotated
    run = invoke("history", "-i", "test", "--json").json["runs"][-1]
    assert (run["kind"], run["status"], run["command"]) == ("rotate", "ok", "security.rotate --service auth")
    assert [(c["resource"], c["actions"]) for c in run["changes"]] == [("pg.role auth_svc", ["set password"])]
    refused = invoke("rollback", "-i", "test", "--run", run["run_id"])
    assert refused.code == 1 and "is a rotate run, which cannot be undone" in refused.err, refused
    assert invoke("history", "-i", "test", "--json").json["runs"][-1]["status"] == "ok"
