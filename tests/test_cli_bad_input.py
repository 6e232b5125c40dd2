"""Bad input never reaches a provider: one line on stderr, exit 2, nothing changed."""

from __future__ import annotations

import pytest

from .support.environment import INVENTORY, write_inventory


@pytest.mark.parametrize(
    "args, expected",
    [
        (["deploy", "-i", "staging"], "no such inventory `staging`; choose one of `dev`, `prod` or `test`"),
        (["deploy", "-i", "test", "--phase", "five"], "--phase: `phase` must be 1, 2, 3 or 4, got `five`"),
        (["deploy", "-i", "test", "--phase", "0"], "--phase: `phase` must be 1, 2, 3 or 4, got `0`"),
        (["plan", "-i", "test", "--phase", "9"], "--phase: `phase` must be 1, 2, 3 or 4, got `9`"),
        (["deploy", "-i", "../etc/passwd"], "--inventory: `../etc/passwd` is not an inventory name"),
        (["deploy", "-i", "dev"], "dev.yml: `hosting.token_env` names `RAILWAY_TOKEN`, which is not set"),
        (["rollback", "-i", "prod"], "prod.yml: `hosting.token_env` names `RAILWAY_TOKEN`, which is not set"),
        (
            ["cleanup-dev", "-i", "prod"],
            "prod.yml: inventory `prod` is protected (`protected: true`); cleanup refuses it outright",
        ),
        (["history", "-i", "test", "--limit", "abc"], "--limit: must be a whole number of runs from 1, got `abc`"),
        (["history", "-i", "test", "--limit", "-5"], "--limit: must be a whole number of runs from 1, got `-5`"),
        (["deploy", "-i", "test", "--tags", "iamm"], "--tags: unknown tag `iamm`; known tags: "),
        (["deploy", "-i", "services"], "no such inventory `services`"),
        (
            ["monitoring.check", "-i", "test", "--watch", "soon"],
            "--watch: must be a number of seconds above 0, got `soon`",
        ),
        (["local.up", "-i", "dev"], "dev.yml: local.* manages embedded services"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(servers, invoke, args, expected):
    journal = servers["state"] / INVENTORY / "journal.jsonl"
    before = journal.read_bytes() if journal.exists() else None
    result = invoke(*args)
    assert result.code == 2, result
    assert result.err.strip().startswith("error: ") and expected in result.err, result
    assert len(result.err.strip().splitlines()) == 1, result
    assert "Traceback" not in result.err + result.out
    assert (journal.read_bytes() if journal.exists() else None) == before, "nothing may be journalled"
    for name in ("staging", "dev", "prod", "services"):
        assert not (servers["state"] / name).exists(), "a rejected inventory leaves no state behind"


@pytest.mark.parametrize(
    "name, old, new, expected",
    [
        ("broken", None, "environment: [local\n", "broken.yml: malformed YAML at line 2"),
        ("typo", "\ndatabase:", "\ndatabse:", "typo.yml: unknown key `databse`; did you mean `database`?"),
        ("wrongtype", "phase: 1", "phase: one", "wrongtype.yml: `phase` must be 1, 2, 3 or 4, got `one`"),
        ("badunicode", "prefix: hc", "prefix: h\u00e9\u200b", "badunicode.yml: `prefix` must be lower-case letters"),
    ],
)
def test_bad_inventory_files_exit_2(workspace, invoke, name, old, new, expected):
    path = write_inventory(workspace["inventories"], name, 1111, 2222)
    path.write_text(new if old is None else path.read_text().replace(old, new, 1))
    try:
        for command in (["deploy"], ["plan"], ["cleanup-dev"], ["monitoring.check"], ["rollback"]):
            result = invoke(*command, "-i", name)
            assert result.code == 2, result
            assert expected in result.err and len(result.err.strip().splitlines()) == 1, result
            assert "Traceback" not in result.err
        assert not (workspace["state"] / name).exists(), "a rejected inventory must leave no state behind"
    finally:
        path.unlink()


def test_protected_inventory_refuses_cleanup_outright(workspace, invoke):
    path = write_inventory(workspace["inventories"], "guarded", 1111, 2222)
    path.write_text(path.read_text().replace("protected: false", "protected: true"))
    try:
        result = invoke("cleanup-dev", "-i", "guarded")
        assert result.code == 2, result
        assert (
            "guarded.yml: inventory `guarded` is protected (`protected: true`); cleanup refuses it outright"
            in result.err
        )
        assert not (workspace["state"] / "guarded" / "journal.jsonl").exists()
    finally:
        path.unlink()


def test_every_argument_is_checked_before_the_servers_are_asked_for(workspace, invoke):
    """Ports 1111/2222: nothing runs there. A typo must still be the error a user sees (exit 2),
    not "PostgreSQL is not running" (exit 1)."""
    path = write_inventory(workspace["inventories"], "nothingup", 1111, 2222)
    try:
        for args, expected in (
            (["deploy", "--tags", "iamm"], "--tags: unknown tag `iamm`"),
            (["deploy", "--limit", "nohost"], "--limit: `nohost` is not a host of nothingup.yml"),
            (["history", "--limit", "x"], "--limit: must be a whole number of runs from 1"),
            (["monitoring.slow-queries", "--limit", "0"], "--limit: must be a whole number from 1"),
            (["monitoring.audit-trail", "--since", "yesterday"], "--since: must look like `30m`"),
        ):
            result = invoke(*args, "-i", "nothingup")
            assert result.code == 2 and expected in result.err, result
        down = invoke("deploy", "-i", "nothingup")  # the same inventory, no bad argument: the servers' turn
        assert down.code == 1 and "not running; start them with `invoke local.up -i nothingup`" in down.err, down
        assert not (workspace["state"] / "nothingup" / "journal.jsonl").exists()
    finally:
        path.unlink()
