"""From dev to prod: prod gets only what dev ran successfully, through a reviewed plan.

Two inventories on this machine stand for them: `test` (the session's servers) is the source,
`testprod` (`protected: true`, `promotes_from: test`, embedded servers of its own on its own
ports) the target. Both are committed in a scratch checkout: this checkout's files as they are
(tracked, and new ones not ignored), in a git repository of its own, from which every command runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from .support.environment import INVENTORY, REPO, free_port
from .support.invoking import OUTPUTS, Invoked

TARGET = "testprod"


def git(root, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True)
    return result.stdout.strip()


@pytest.fixture
def checkout(env, servers, tmp_path):
    """A scratch checkout with both inventories committed; testprod's servers up, and down after."""
    root = tmp_path / "checkout"
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    inventories = root / "inventories"
    (inventories / f"{INVENTORY}.yml").write_text((servers["inventories"] / f"{INVENTORY}.yml").read_text())
    prod = (REPO / "inventories" / "local.yml").read_text()
    for old, new in (
        ("port: 54329", f"port: {free_port()}"),
        ("port: 54330", f"port: {free_port()}"),
        ("environment: local", f"environment: {TARGET}"),
        ("protected: false", f"protected: true\npromotes_from: {INVENTORY}"),
    ):
        assert old in prod
        prod = prod.replace(old, new)
    (inventories / f"{TARGET}.yml").write_text(prod)
    git(root, "init", "-q", "-b", "main")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.org", "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "base")

    def run(*args: str, timeout: int = 600) -> Invoked:
        environment = dict(os.environ, HEALTHINFRA_INVENTORIES=str(inventories))
        result = subprocess.run(
            [sys.executable, "-m", "invoke", *args],
            cwd=root,
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        OUTPUTS.extend([result.stdout, result.stderr])
        return Invoked(result)

    up = run("local.up", "-i", TARGET)
    assert up.code == 0, up
    try:
        yield {"root": root, "run": run}
    finally:
        run("local.down", "-i", TARGET)
        shutil.rmtree(servers["state"] / TARGET, ignore_errors=True)


def commit(root, path: str, text: str) -> str:
    with open(root / path, "a", encoding="utf-8") as f:
        f.write(text)
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-am", f"change {path}")
    return git(root, "rev-parse", "HEAD")


def test_prod_gets_only_what_dev_ran_through_a_reviewed_plan(checkout, tmp_path):
    run, root = checkout["run"], checkout["root"]
    base = git(root, "rev-parse", "HEAD")

    direct = run("deploy", "-i", TARGET)
    assert direct.code == 2 and f"invoke promote --to {TARGET}" in direct.err, direct

    early = run("promote", "--to", TARGET)
    assert early.code == 2 and "no successful whole deploy" in early.err, early

    ran = run("deploy", "-i", INVENTORY, "--phase", "2", "--json")
    assert ran.code == 0, ran
    history = run("history", "-i", INVENTORY, "--json").json["runs"][-1]
    assert history["revision"]["commit"] == base and history["revision"]["dirty"] is False
    assert len(history["revision"]["digest"]) == 64

    plan = tmp_path / "promote.json"
    promoted = run("promote", "--to", TARGET, "--out", str(plan))
    assert promoted.code == 0, promoted
    assert f"Promoting {base} to `{TARGET}` at phase 2" in promoted.out
    assert f'environment: "local" -> "{TARGET}"' in promoted.out and "protected: false -> true" in promoted.out
    assert "would change" in promoted.out, "the plan is printed"
    saved = json.loads(plan.read_text())
    assert saved["phase"] == 2 and saved["promotion"]["from"] == INVENTORY
    assert saved["promotion"]["source_run"]["revision"]["commit"] == base

    unconfirmed = run("apply", str(plan))
    assert unconfirmed.code == 2 and "--yes" in unconfirmed.err, unconfirmed
    assert run("history", "-i", TARGET, "--json").json["runs"] == [], "nothing was changed"

    other = tmp_path / "plain.json"
    assert run("plan", "-i", TARGET, "--phase", "2", "--out", str(other)).code == 0
    unpromoted = run("apply", str(other), "--yes")
    assert unpromoted.code == 2 and "only a plan made by `invoke promote" in unpromoted.err, unpromoted

    applied = run("apply", str(plan), "--yes", "--json")
    assert applied.code == 0, applied
    status = run("local.status", "-i", TARGET, "--json").json
    assert status["deployed_phase"] == 2, "prod is at dev's phase"
    target_run = run("history", "-i", TARGET, "--json").json["runs"][-1]
    assert target_run["revision"]["commit"] == base and target_run["deployed_phase"] == 2

    # a new commit dev has not run yet is not promoted
    newer = commit(root, "README.md", "\nA line dev never ran.\n")
    refused = run("promote", "--to", TARGET)
    assert refused.code == 2 and f"this checkout is at {newer[:12]}" in refused.err, refused
    assert f"last ran {base[:12]}" in refused.err

    # a dirty tree is refused naming the files
    with open(root / "tasks.py", "a", encoding="utf-8") as f:
        f.write("# an edit\n")
    dirty = run("promote", "--to", TARGET)
    assert dirty.code == 2 and "tasks.py" in dirty.err and "changes to tracked files" in dirty.err, dirty

    rollback = run("rollback", "-i", TARGET, "--destroy-data")
    assert rollback.code == 2 and "needs --yes" in rollback.err, "deleting data on prod is confirmed too"
