"""The AI service's hosts over SSH: two real sshd on 127.0.0.1 play a group of two.

Checked from outside the runner: the files on the hosts, their modes and bytes, the
sftp server's own log of uploads, the service's /health, and the database.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import stat
import subprocess
import urllib.request
from pathlib import Path

import pytest

from healthinfra.providers.aws import AwsClients

from .support.database import admin
from .support.hosts import failures, health

REPO = Path(__file__).resolve().parent.parent
MODELS = "hc-local-ml-models"
USER = "hc-local-ai"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put_model(env, key: str, data: bytes) -> None:
    AwsClients(env).client("s3").put_object(Bucket=MODELS, Key=key, Body=data, ServerSideEncryption="aws:kms")


def register(env, name: str, version: str, key: str, data: bytes, status: str = "active") -> None:
    with admin(env) as conn:
        conn.execute(
            "insert into ml.model_registry (name, version, s3_key, checksum, status)"
            " values (%s, %s, %s, %s, %s) on conflict (name, version)"
            " do update set checksum = excluded.checksum, s3_key = excluded.s3_key",
            (name, version, key, sha(data), status),
        )


def uploads(ai_env) -> dict[str, list[str]]:
    return {name: [p.rsplit("/", 1)[-1] for p in h["server"].uploads()] for name, h in ai_env["hosts"].items()}


def host_changes(result) -> list[str]:
    return sorted(c["resource"] for c in result.json["changes"] if c["playbook"] == "hosts")


def test_hosts_are_prepared_in_parallel_synced_by_checksum_and_idempotent(env, invoke, ai_env):
    plan = invoke("plan", "-i", "test", "--phase", "4", "--json")
    assert plan.code == 0, failures(plan)
    assert host_changes(plan) == ["host.service ai@ai-1", "host.service ai@ai-2"]
    assert not any(h["base_dir"].exists() for h in ai_env["hosts"].values()), "a plan touches no host"
    first = invoke("deploy", "-i", "test", "--phase", "4", "--json")
    assert first.code == 0, failures(first)
    assert host_changes(first) == ["host.service ai@ai-1", "host.service ai@ai-2"]
    uid = pwd.getpwnam(USER).pw_uid
    for host in ai_env["hosts"].values():
        base = host["base_dir"]
        env_file = base / "ai.env"
        mode = os.stat(env_file)
        assert stat.S_IMODE(mode.st_mode) == 0o600 and mode.st_uid == 0, "the env file is root's alone"
        settings = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
        assert settings["DATABASE_URL"].startswith("postgresql://ai_svc:")
        where = settings["DATABASE_URL"].split("@")[-1]
        certificate = env.state_dir / "tls" / "server.crt"
        assert where == f"127.0.0.1:{env.database['port']}/healthcare?sslmode=verify-full&sslrootcert={certificate}"
        assert settings["MODEL_BUCKET"] == MODELS and settings["PORT"] == str(host["service_port"])
        assert settings["MODELS"] == ""
        assert stat.S_IMODE(os.stat(base).st_mode) == 0o750 and os.stat(base).st_gid == pwd.getpwnam(USER).pw_gid
        assert health(host) == (
            200,
            {
                "status": "ok",
                "models": [],
                "missing": [],
                "database": where,
                "argv": [],
            },
        )
        pid = int((base / "run" / "ai.pid").read_text())
        assert os.stat(f"/proc/{pid}").st_uid == uid, "the service runs as its own user, not root"
    # the AI role's password on the hosts is the one the database accepts
    import psycopg

    url = dict(
        line.split("=", 1)
        for line in (ai_env["hosts"]["ai-1"]["base_dir"] / "ai.env").read_text().splitlines()
        if "=" in line
    )["DATABASE_URL"]
    with psycopg.connect(url) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "ai_svc"

    risk, triage = b"risk weights v1", b"triage weights v1"
    put_model(env, "models/risk/1/model.onnx", risk)
    put_model(env, "models/triage/3/model.onnx", triage)
    register(env, "risk", "1", "models/risk/1/model.onnx", risk)
    register(env, "triage", "3", "models/triage/3/model.onnx", triage)
    before = uploads(ai_env)
    synced = invoke("deploy", "-i", "test", "--phase", "4", "--json")
    assert synced.code == 0, failures(synced)
    assert host_changes(synced) == ["host.service ai@ai-1", "host.service ai@ai-2"]
    sent = {name: files[len(before[name]) :] for name, files in uploads(ai_env).items()}
    for name, host in ai_env["hosts"].items():
        assert sorted(sent[name]) == ["ai.env", "risk-1.onnx", "triage-3.onnx"], sent
        models = host["base_dir"] / "models"
        assert (models / "risk-1.onnx").read_bytes() == risk and (models / "triage-3.onnx").read_bytes() == triage
        status, body = health(host)
        assert status == 200 and body["models"] == ["risk-1.onnx", "triage-3.onnx"], "restarted with the new list"

    quiet_before = uploads(ai_env)
    again = invoke("deploy", "-i", "test", "--phase", "4", "--json")
    assert again.code == 0 and again.json["changed"] == 0, again
    assert uploads(ai_env) == quiet_before, "a converged host gets no upload at all"

    pids = {name: (h["base_dir"] / "run" / "ai.pid").read_text() for name, h in ai_env["hosts"].items()}
    risk2 = b"risk weights v1, retrained"
    put_model(env, "models/risk/1/model.onnx", risk2)
    register(env, "risk", "1", "models/risk/1/model.onnx", risk2)
    before = uploads(ai_env)
    changed = invoke("deploy", "-i", "test", "--phase", "4", "--json")
    assert changed.code == 0, failures(changed)
    sent = {name: files[len(before[name]) :] for name, files in uploads(ai_env).items()}
    assert sent == {"ai-1": ["risk-1.onnx"], "ai-2": ["risk-1.onnx"]}, "only the changed model travels"
    for name, host in ai_env["hosts"].items():
        assert (host["base_dir"] / "models" / "risk-1.onnx").read_bytes() == risk2
        assert (host["base_dir"] / "run" / "ai.pid").read_text() != pids[name], "its input changed: restarted"

    # undoing that run puts the previous bytes back from the host's own copy: nothing travels
    before = uploads(ai_env)
    undone = invoke("rollback", "-i", "test")
    assert undone.code == 0, failures(undone)
    assert uploads(ai_env) == before
    for host in ai_env["hosts"].values():
        assert (host["base_dir"] / "models" / "risk-1.onnx").read_bytes() == risk
        assert health(host)[0] == 200

    # a model whose bytes are not what the registry says is installed nowhere
    put_model(env, "models/triage/3/model.onnx", b"tampered")
    register(env, "triage", "4", "models/triage/3/model.onnx", b"what the registry expects", status="staged")
    with admin(env) as conn:
        conn.execute("update ml.model_registry set status = 'retired' where name = 'triage' and version = '3'")
        conn.execute("update ml.model_registry set status = 'active' where name = 'triage' and version = '4'")
    bad = invoke("deploy", "-i", "test", "--phase", "4", "--json")
    assert bad.code == 1, bad
    assert f"s3://{MODELS}/models/triage/3/model.onnx has sha256:{sha(b'tampered')}, the model registry says" in bad.err
    for host in ai_env["hosts"].values():
        assert not (host["base_dir"] / "models" / "triage-4.onnx").exists()

    check = invoke("monitoring.check", "-i", "test", "--phase", "4", "--json")
    probes = (
        {p["target"]: p for p in check.json["probes"]}
        if "probes" in check.json
        else {p["target"]: p for p in check.json}
    )
    for name, host in ai_env["hosts"].items():
        probe = probes[f"ai@{name} http://127.0.0.1:{host['service_port']}/health"]
        assert probe["healthy"], probe


def test_a_host_that_is_down_fails_alone_and_limit_targets_one_host(env, invoke, ai_env):
    down = ai_env["hosts"]["ai-2"]["server"]
    down.stop()
    result = invoke("deploy", "-i", "test", "--phase", "4", "--json")
    assert result.code == 1, result
    assert host_changes(result) == ["host.service ai@ai-1"], "the reachable host is prepared all the same"
    failure = next(line for line in result.err.splitlines() if line.startswith("failed: [host.service ai@ai-2]"))
    assert f"host ai-2 (root@127.0.0.1:{down.port}): unreachable" in failure and "sshd" in failure, failure
    assert result.json["failed"] == 1 and result.json["rolled_back"] is False
    assert (ai_env["hosts"]["ai-1"]["base_dir"] / "ai.env").exists()
    assert not ai_env["hosts"]["ai-2"]["base_dir"].exists()

    down.start()
    limited = invoke("deploy", "-i", "test", "--phase", "4", "--limit", "ai-2", "--json")
    assert limited.code == 0, failures(limited)
    assert [c["resource"] for c in limited.json["changes"]] == ["host.service ai@ai-2"]
    unknown = invoke("deploy", "-i", "test", "--phase", "4", "--limit", "ai-9")
    assert unknown.code == 2 and "`ai-9` is not a host of test.yml (hosts: ai-1, ai-2)" in unknown.err, unknown


def test_rolling_back_phase_4_removes_it_from_the_hosts_and_the_database(env, invoke, ai_env):
    assert invoke("deploy", "-i", "test", "--phase", "3").code == 0
    deployed = invoke("deploy", "-i", "test", "--phase", "4")
    assert deployed.code == 0, failures(deployed)
    pids = [int((h["base_dir"] / "run" / "ai.pid").read_text()) for h in ai_env["hosts"].values()]
    undone = invoke("rollback", "-i", "test")
    assert undone.code == 0, failures(undone)
    for host in ai_env["hosts"].values():
        assert not host["base_dir"].exists()
        assert health_down(host)
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), "the service was stopped"
    with pytest.raises(KeyError):
        pwd.getpwnam(USER)
    with admin(env) as conn:
        assert not conn.execute("select to_regnamespace('ml') is not null").fetchone()[0]


def health_down(host) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{host['service_port']}/health", timeout=2)
    except OSError:
        return True
    return False


def test_a_downgrade_to_phase_3_takes_the_service_off_its_hosts(env, invoke, ai_env):
    assert invoke("deploy", "-i", "test", "--phase", "4").code == 0
    pids = [int((h["base_dir"] / "run" / "ai.pid").read_text()) for h in ai_env["hosts"].values()]
    account = pwd.getpwnam(USER)  # a process left running as the service's user must not keep it
    stray = subprocess.Popen(
        ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups", "sleep", "600"]
    )
    try:
        down = invoke("deploy", "-i", "test", "--phase", "3", "--downgrade", "--json")
    finally:
        stopped = stray.poll() is not None
        stray.kill()
        stray.wait(timeout=10)
    assert down.code == 0, failures(down)
    removed = {c["resource"] for c in down.json["changes"]}
    assert {f"host.service ai@{name}" for name in ai_env["hosts"]} <= removed
    for host in ai_env["hosts"].values():
        assert not host["base_dir"].exists()
        assert health_down(host)
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), "the service was stopped"
    with pytest.raises(KeyError):
        pwd.getpwnam(USER)
    with admin(env) as conn:
        assert not conn.execute("select to_regnamespace('ml') is not null").fetchone()[0]
    assert stopped, "a process left running as the service's user was stopped with the service"
    status = invoke("local.status", "-i", "test", "--json")
    assert status.json["deployed_phase"] == 3
    again = invoke("deploy", "-i", "test", "--phase", "3", "--json")
    assert again.code == 0 and again.json["changes"] == [], failures(again)
