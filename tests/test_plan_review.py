"""What the reviewer of a plan sees of a pending migration, by the CLI against the real embedded
server: each statement (as PostgreSQL's parser splits them) with the lock it takes, where it is,
and its lint findings, in the text plan, the JSON plan and a saved plan alike."""

from __future__ import annotations

import json

MIGRATION = "pg.migration 0002_phi_protection"
STATEMENT = "alter table patients enable row level security"


def test_a_pending_migration_is_shown_statement_by_statement_with_its_locks(env, invoke, tmp_path):
    assert invoke("deploy", "-i", "test", "--phase", "1").code == 0
    path = tmp_path / "phase2.json"
    plan = invoke("plan", "-i", "test", "--phase", "2", "--out", str(path))
    assert plan.code == 0, plan
    shown = plan.out.split(f"would change: [{MIGRATION}] create", 1)[1].split("would change: [", 1)[0]
    assert (
        "3. ALTER TABLE: takes ACCESS EXCLUSIVE on patients (templates/sql/migrations/0002_phi_protection.up.sql:21)"
        in shown
    ), shown
    assert f"        {STATEMENT}\n" in shown
    assert "CREATE TRIGGER: takes SHARE ROW EXCLUSIVE on appointments" in shown
    assert "$$\n" in shown, "a function body is one statement, not split on its semicolons"

    as_json = invoke("plan", "-i", "test", "--phase", "2", "--json")
    change = next(c for c in as_json.json["changes"] if c["resource"] == MIGRATION)
    third = change["review"][2]
    assert third["sql"] == STATEMENT and "ACCESS EXCLUSIVE on patients" in third["summary"], third
    assert third["findings"] == []

    saved = json.loads(path.read_text())
    item = next(i for i in saved["items"] if f"{i['resource']['kind']} {i['resource']['name']}" == MIGRATION)
    assert item["review"] == change["review"], "a saved plan carries what the reviewer read"


def test_a_finding_of_the_lint_is_shown_on_its_statement_in_the_plan(env, invoke, tmp_path):
    from .support.checkout import run_in, scratch_checkout

    name = "0101_patients_last_name"
    up = "create index patients_last_name_idx on patients (last_name);\n"
    root = scratch_checkout(tmp_path / "checkout", {name: (1, up, "drop index patients_last_name_idx;\n")})
    plan = run_in(root, "plan", "-i", "test", "--phase", "1", "--json")
    assert plan.code == 0, plan
    change = next(c for c in plan.json["changes"] if c["resource"] == f"pg.migration {name}")
    (statement,) = change["review"]
    assert "takes SHARE on patients" in statement["summary"], statement
    rules = {f["rule"]: f for f in statement["findings"]}
    assert "require-concurrent-index-creation" in rules, rules
    assert rules["require-concurrent-index-creation"]["line"] == 1 and not rules[
        "require-concurrent-index-creation"
    ].get("accepted")
    text = run_in(root, "plan", "-i", "test", "--phase", "1")
    assert (
        "! require-concurrent-index-creation (line 1): " in text.out and "[not accepted (invoke db.lint)]" in text.out
    )
