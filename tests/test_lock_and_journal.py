"""The lock refuses a second run and is taken over from a dead holder; the journal survives torn writes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from healthinfra.errors import LockHeld
from healthinfra.journal import Journal
from healthinfra.lock import EnvironmentLock

HOLD_LOCK = """
import sys, time
from pathlib import Path
from healthinfra.lock import EnvironmentLock
EnvironmentLock(Path(sys.argv[1]), "test", "deploy --phase 1").acquire()
print("held", flush=True)
time.sleep(60)
"""


@contextlib.contextmanager
def held_by_child(state_dir):
    """A separate process holding the lock; killed (SIGKILL) on exit."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(state_dir)], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout.readline().strip() == "held"
        try:
            yield child
        finally:
            child.kill()


def test_second_holder_is_refused_with_the_holders_identity(tmp_path):
    with held_by_child(tmp_path) as child:
        with pytest.raises(LockHeld) as caught:
            EnvironmentLock(tmp_path, "test", "deploy").acquire()
        message = str(caught.value)
        assert f"locked by pid {child.pid} on {socket.gethostname()}" in message
        assert "`deploy --phase 1`" in message and "since 20" in message


def test_lock_of_a_killed_holder_is_taken_over(tmp_path):
    with held_by_child(tmp_path) as child:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    lock = EnvironmentLock(tmp_path, "test", "deploy").acquire()
    holder = json.loads((tmp_path / "lock").read_text())
    assert holder["pid"] == os.getpid()
    lock.release()


def test_journal_skips_a_torn_last_line(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append({"event": "run_start", "run_id": "r1", "kind": "deploy"})
    journal.append(
        {
            "event": "change",
            "run_id": "r1",
            "seq": 1,
            "playbook": "db",
            "step": "s",
            "resource": {"kind": "pg.role", "name": "x", "params": {}},
            "actions": [],
            "undo": {"converge_to": None},
        }
    )
    with open(journal.path, "a") as f:
        f.write('{"event": "change_done", "run_id": "r1", "se')  # killed mid-write
    runs = journal.runs()
    assert [r.run_id for r in runs] == ["r1"]
    assert len(runs[0].changes) == 1 and runs[0].status == "interrupted"
    assert oct(journal.path.stat().st_mode & 0o777) == "0o600"
    # the next run's first line is not glued onto the torn one
    journal.append({"event": "run_start", "run_id": "r2", "kind": "deploy"})
    journal.append({"event": "run_end", "run_id": "r2", "status": "ok"})
    assert [(r.run_id, r.status) for r in journal.runs()] == [("r1", "interrupted"), ("r2", "ok")]


def test_concurrent_deploy_is_refused_naming_the_holder(env, invoke):
    with held_by_child(env.state_dir) as child:
        result = invoke("deploy", "-i", "test")
        assert result.code == 3, result
        assert f"locked by pid {child.pid}" in result.err and "nothing was changed" in result.err
    assert invoke("deploy", "-i", "test").code == 0


def test_several_runs_at_once_exactly_one_proceeds(env, invoke):
    import os as _os
    import subprocess as _subprocess
    import sys as _sys

    from .support.environment import REPO

    runs = [
        _subprocess.Popen(
            [_sys.executable, "-m", "invoke", "deploy", "-i", "test", "--json"],
            cwd=REPO,
            env=dict(_os.environ),
            stdout=_subprocess.PIPE,
            stderr=_subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [(run.pid, *run.communicate(timeout=300), run.returncode) for run in runs]
    winners = [r for r in results if r[3] == 0]
    losers = [r for r in results if r[3] != 0]
    assert len(winners) == 1, results
    assert json.loads(winners[0][1])["changed"] == 15
    for _pid, _out, err, code in losers:
        assert code == 3, err
        assert f"locked by pid {winners[0][0]} on {socket.gethostname()}" in err and "since 20" in err, err


def test_a_short_write_to_the_journal_is_refused_and_never_joined_to_the_next_line(tmp_path, monkeypatch):
    """A full disk lets `os.write` write part of a line: the append refuses (the change it announces
    is not applied), and the part written is a torn line the next append ends, never joins."""
    from healthinfra import journal as journal_module
    from healthinfra.errors import JournalWriteError

    journal = Journal(tmp_path / "journal.jsonl")
    journal.append({"event": "run_start", "run_id": "r1", "kind": "deploy"})
    real_write = os.write

    class HalfWrites:  # the journal module's `os`, with a write that stops halfway
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def write(fd, data):
            return real_write(fd, data[: len(data) // 2])

    monkeypatch.setattr(journal_module, "os", HalfWrites())
    change = {"event": "change", "run_id": "r1", "seq": 1, "resource": {}, "actions": [], "undo": {}}
    with pytest.raises(JournalWriteError, match=r"only \d+ of \d+ bytes") as refused:
        journal.append(change)
    assert "the change was not applied" in str(refused.value)
    monkeypatch.setattr(journal_module, "os", os)

    journal.append({"event": "run_end", "run_id": "r1", "status": "failed"})
    lines = journal.path.read_text().splitlines()
    assert len(lines) == 3 and not lines[1].endswith("}"), "the torn half stands alone on its line"
    assert [e["event"] for e in journal.events()] == ["run_start", "run_end"]
    assert journal.runs()[0].changes == [], "a change whose intent was not written whole is not in the journal"
