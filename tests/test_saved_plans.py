"""Saved plans: `plan --out` then `apply FILE` does exactly the plan, or refuses if the world moved."""

from __future__ import annotations

import json
import re

import psycopg

from healthinfra.providers.aws import AwsClients
from healthinfra.providers.postgres import admin_conninfo

from .support.catalog import snapshot


def normalise(text: str) -> str:
    return re.sub(r"run=\S+", "run=…", text)


def test_plan_and_apply_agree_and_a_used_plan_is_refused(env, invoke, tmp_path):
    path = tmp_path / "phase1.json"
    check = invoke("deploy", "-i", "test", "--check", "--diff")
    plan = invoke("plan", "-i", "test", "--out", str(path))
    assert plan.code == 0, plan
    assert normalise(plan.out).startswith(normalise(check.out)), "plan and --check --diff print the same thing"
    saved = json.loads(path.read_text())
    assert saved["inventory"] == "test" and saved["phase"] == 1 and saved["changes"] == 15
    assert oct(path.stat().st_mode & 0o777) == "0o600"

    applied = invoke("apply", str(path), "--json")
    assert applied.code == 0, applied
    planned = sorted(
        (i["resource"]["kind"] + " " + i["resource"]["name"], json.dumps(i["actions"], sort_keys=True))
        for i in saved["items"]
        if i["actions"]
    )
    done = sorted((c["resource"], json.dumps(c["actions"], sort_keys=True)) for c in applied.json["changes"])
    assert done == planned, "the apply carried out exactly the saved actions"

    before = snapshot(env)
    again = invoke("apply", str(path))
    assert again.code == 1 and "changed since the plan was saved" in again.out and "nothing was changed" in again.out
    assert snapshot(env) == before


def test_out_of_band_drift_after_the_plan_refuses_the_apply(env, invoke, tmp_path):
    assert invoke("deploy", "-i", "test").code == 0
    with psycopg.connect(**admin_conninfo(env, "healthcare"), autocommit=True) as conn:
        conn.execute("grant select on patients to gateway_svc")
    path = tmp_path / "fix.json"
    assert invoke("plan", "-i", "test", "--out", str(path)).code == 0
    assert json.loads(path.read_text())["changes"] == 1
    AwsClients(env).client("iam").tag_role(RoleName="hc-local-auth", Tags=[{"Key": "owner", "Value": "someone"}])
    before = snapshot(env)
    refused = invoke("apply", str(path))
    assert refused.code == 1, refused
    assert "iam.role hc-local-auth: changed since the plan was saved" in refused.out
    assert "run `invoke plan --out FILE` again" in refused.out
    assert snapshot(env) == before, "nothing changed, not even the planned revoke"


def test_a_bad_plan_file_is_refused_cleanly(workspace, invoke, tmp_path):
    missing = invoke("apply", str(tmp_path / "nope.json"))
    assert missing.code == 2 and "cannot read the plan" in missing.err
    (tmp_path / "bad.json").write_text("{not json")
    bad = invoke("apply", str(tmp_path / "bad.json"))
    assert bad.code == 2 and "not a saved plan" in bad.err and "Traceback" not in bad.err


def test_a_saved_plan_carries_its_format_selection_and_digest(env, invoke, tmp_path):
    from healthinfra.plan_file import PLAN_FORMAT, digest

    path = tmp_path / "phase1.json"
    assert invoke("plan", "-i", "test", "--out", str(path)).code == 0
    saved = json.loads(path.read_text())
    assert saved["format"] == PLAN_FORMAT == 2
    assert (saved["tags"], saved["playbooks"], saved["limit"], saved["partial"]) == ([], [], None, False)
    assert saved["digest"] == digest(saved), "the digest covers everything else in the document"


def test_a_downgrade_plan_applies_after_phase_2(env, invoke, tmp_path):
    assert invoke("deploy", "-i", "test", "--phase", "2").code == 0
    path = tmp_path / "down.json"
    made = invoke("plan", "-i", "test", "--phase", "1", "--downgrade", "--destroy-data", "--out", str(path))
    assert made.code == 0, made
    saved = json.loads(path.read_text())
    assert saved["downgrade"] is True and saved["phase"] == 1 and saved["partial"] is False
    removed = [e for e in saved["items"] if e["step"].startswith("downgrade: ")]
    assert removed and all(e["desired"] is None for e in removed)

    applied = invoke("apply", str(path), "--destroy-data", "--json")
    assert applied.code == 0, applied
    assert any(c["resource"].startswith("s3.bucket ") for c in applied.json["changes"])
    assert invoke("local.status", "-i", "test", "--json").json["deployed_phase"] == 1
    assert snapshot(env)["buckets"] == {}, "phase 2's buckets are gone"
    again = invoke("deploy", "-i", "test", "--phase", "1", "--check", "--json")
    assert again.code == 0 and again.json["changed"] == 0, again
