"""The environment knows its phase: recorded by the runs that set it, never gone below by
accident, exactly gone below with --downgrade. From the command line, on the real servers."""

from __future__ import annotations

import os
import subprocess

import psycopg
import pytest

from healthinfra.providers.postgres import admin_conninfo

from .support.catalog import snapshot
from .support.environment import INVENTORY, REPO
from .support.invoking import run_invoke


def deployed(invoke) -> int | None:
    status = invoke("local.status", "-i", INVENTORY, "--json")
    assert status.code == 0, status
    return status.json["deployed_phase"]


def run_count(invoke) -> int:
    history = invoke("history", "-i", INVENTORY, "--json")
    assert history.code == 0, history
    return len(history.json["runs"])


def test_the_deployed_phase_is_recorded_shown_and_the_default_of_what_reads(env, invoke, tmp_path):
    assert deployed(invoke) is None, "nothing deployed yet"
    assert invoke("deploy", "-i", INVENTORY, "--phase", "2").code == 0
    assert deployed(invoke) == 2

    history = invoke("history", "-i", INVENTORY, "--json")
    assert history.json["deployed_phase"] == 2
    assert history.json["runs"][-1]["deployed_phase"] == 2
    text = invoke("history", "-i", INVENTORY)
    assert text.out.startswith(f"deployed phase: 2 (set by run {history.json['runs'][-1]['run_id']})"), text

    check = invoke("monitoring.check", "-i", INVENTORY, "--json")
    assert check.json["phase"] == 2, "monitoring.check looks at the deployed phase, not the inventory's `phase: 1`"
    assert any(p["probe"] == "bucket" for p in check.json["probes"]), "phase 2's buckets are probed"

    page = tmp_path / "report.html"
    report = invoke("monitoring.report", "-i", INVENTORY, "--out", str(page))
    assert report.code == 0, report
    html = page.read_text()
    assert "phase 2</span>" in html and "Deployed at phase 2" in html
    assert "from phase 2" not in html, "the log groups are shown as there, not as a later phase's"

    # a --check run and a partial run record nothing; a rollback restores the phase its run replaced
    assert invoke("deploy", "-i", INVENTORY, "--phase", "3", "--check").code == 0
    assert invoke("deploy", "-i", INVENTORY, "--phase", "3", "--tags", "schema").code == 0
    assert deployed(invoke) == 2
    assert invoke("deploy", "-i", INVENTORY, "--phase", "3").code == 0
    assert deployed(invoke) == 3
    undone = invoke("rollback", "-i", INVENTORY)
    assert undone.code == 0, undone
    assert deployed(invoke) == 2


def test_below_the_deployed_phase_nothing_changes_and_exit_2(env, invoke):
    assert invoke("deploy", "-i", INVENTORY, "--phase", "2").code == 0
    before, runs = snapshot(env), run_count(invoke)
    attempts = {
        "deploy (defaulted)": invoke("deploy", "-i", INVENTORY),
        "deploy --phase 1": invoke("deploy", "-i", INVENTORY, "--phase", "1"),
        "plan --phase 1": invoke("plan", "-i", INVENTORY, "--phase", "1"),
        "setup-dev": invoke("setup-dev", "-i", INVENTORY),
        "deploy-dev": invoke("deploy-dev", "-i", INVENTORY),
        "db.deploy": invoke("db.deploy", "-i", INVENTORY),
    }
    for what, result in attempts.items():
        assert result.code == 2, (what, result)
        assert "deployed at phase 2" in result.err and "phase 1" in result.err and "--downgrade" in result.err, (
            what,
            result,
        )
    assert "the default: `phase: 1` in test.yml" in attempts["deploy (defaulted)"].err

    made = subprocess.run(
        ["make", "deploy", f"INVENTORY={INVENTORY}"], cwd=REPO, env=dict(os.environ), capture_output=True, text=True
    )
    assert made.returncode == 2 and "deployed at phase 2" in made.stderr, made
    passed = subprocess.run(
        ["make", "plan", f"INVENTORY={INVENTORY}", "PHASE=2"], cwd=REPO, capture_output=True, text=True
    )
    assert passed.returncode == 0 and "would change" not in passed.stdout, passed
    assert snapshot(env) == before and run_count(invoke) == runs, "nothing was changed, nothing journalled"
    assert deployed(invoke) == 2


@pytest.fixture
def phase4(env, invoke):
    deployed4 = invoke("deploy", "-i", INVENTORY, "--phase", "4", "--json", timeout=600)
    assert deployed4.code == 0, deployed4
    return env


def ml_tables(inventory) -> list[str]:
    with psycopg.connect(**admin_conninfo(inventory, inventory.database["name"])) as conn:
        rows = conn.execute("select table_name from information_schema.tables where table_schema = 'ml'").fetchall()
    return sorted(r[0] for r in rows)


def test_downgrade_4_to_3_is_a_fresh_phase_3(phase4, invoke, tmp_path):
    refused = invoke("deploy", "-i", INVENTORY, "--phase", "3")
    assert refused.code == 2 and "--downgrade" in refused.err, refused
    assert ml_tables(phase4), "the ml schema is there at phase 4"

    plan = invoke("plan", "-i", INVENTORY, "--phase", "3", "--downgrade", "--json")
    assert plan.code == 0, plan
    planned = {c["resource"] for c in plan.json["changes"] if any(a["op"] == "delete" for a in c["actions"])}
    for expected in ("pg.migration 0003_ml", "pg.role ai_svc", "iam.role hc-local-ai"):
        assert expected in planned, (expected, sorted(planned))
    assert any(k.startswith("s3.bucket") for k in planned) and any(k.startswith("cloudwatch.") for k in planned)
    assert deployed(invoke) == 4, "a plan changes nothing"

    down = invoke("deploy", "-i", INVENTORY, "--phase", "3", "--downgrade", "--json", timeout=600)
    assert down.code == 0, down
    assert deployed(invoke) == 3
    assert ml_tables(phase4) == []
    again = invoke("deploy", "-i", INVENTORY, "--phase", "3", "--json")
    assert again.code == 0 and again.json["changes"] == [], again
    downgraded = snapshot(phase4)

    from healthinfra import commands
    from playbooks import catalog

    with open(os.devnull, "w") as quiet:
        assert commands.cleanup(INVENTORY, catalog=catalog(), destroy_data=True, stop_services=False, out=quiet) == 0
    fresh = invoke("deploy", "-i", INVENTORY, "--phase", "3", "--json", timeout=600)
    assert fresh.code == 0, fresh
    assert snapshot(phase4) == downgraded, "the downgraded environment is a fresh phase 3, resource for resource"


def test_a_downgrade_keeps_data_unless_told(phase4, invoke):
    with psycopg.connect(**admin_conninfo(phase4, phase4.database["name"]), autocommit=True) as conn:
        conn.execute(
            "insert into ml.model_registry (name, version, s3_key, checksum)"
            " values ('triage', '1', 'models/triage/1/model.onnx', repeat('a', 64))"
        )
    before = snapshot(phase4)
    refused = invoke("deploy", "-i", INVENTORY, "--phase", "3", "--downgrade")
    assert refused.code == 1, refused
    assert (
        "ml.model_registry (1 rows)" in refused.out
        and "--destroy-data" in refused.out
        and "nothing was changed" in refused.out
    )
    assert snapshot(phase4) == before and deployed(invoke) == 4
    forced = invoke("deploy", "-i", INVENTORY, "--phase", "3", "--downgrade", "--destroy-data", timeout=600)
    assert forced.code == 0, forced
    assert ml_tables(phase4) == [] and deployed(invoke) == 3


@pytest.fixture
def protected(env, servers):
    """Makes the test inventory `protected: true` when called, until the test ends."""
    path = servers["inventories"] / f"{INVENTORY}.yml"
    text = path.read_text()

    def protect():
        path.write_text(text.replace("protected: false", "protected: true"))

    try:
        yield protect
    finally:
        path.write_text(text)


def test_protected_means_reviewed_plans_and_confirmed_deletions(env, protected, invoke, tmp_path):
    assert invoke("deploy", "-i", INVENTORY, "--phase", "2").code == 0
    protected()
    before, runs = snapshot(env), run_count(invoke)

    direct = invoke("deploy", "-i", INVENTORY, "--phase", "2")
    assert direct.code == 2 and "reviewed plan" in direct.err and "invoke apply plan.json --yes" in direct.err, direct
    assert invoke("plan", "-i", INVENTORY, "--phase", "2").code == 0, "a plan is how a change is reviewed"

    asked = run_invoke("rollback", "-i", INVENTORY, "--destroy-data")  # the access-log bucket holds logs
    assert asked.code == 2 and "--destroy-data there needs --yes" in asked.err, asked
    unconfirmed = run_invoke("rollback", "-i", INVENTORY)
    assert unconfirmed.code in (1, 2), unconfirmed  # refused for the logs (1) or for the missing --yes (2)
    assert snapshot(env) == before and run_count(invoke) == runs

    plan = tmp_path / "down.json"
    saved = invoke("plan", "-i", INVENTORY, "--phase", "1", "--downgrade", "--destroy-data", "--out", str(plan))
    assert saved.code == 0, saved
    shown = invoke("apply", str(plan), "--destroy-data")
    assert shown.code == 2 and "--yes" in shown.err, shown
    assert snapshot(env) == before and run_count(invoke) == runs
    applied = invoke("apply", str(plan), "--destroy-data", "--yes")
    assert applied.code == 0, applied
    assert deployed(invoke) == 1

    undo_plan = invoke("rollback", "-i", INVENTORY)
    assert undo_plan.code == 2 and "create: [s3.bucket" in undo_plan.out, "a rollback shows its undo plan first"
    rolled = invoke("rollback", "-i", INVENTORY, "--yes")
    assert rolled.code == 0, rolled
    assert deployed(invoke) == 2, "undoing the downgrade brings the phase it replaced back"
