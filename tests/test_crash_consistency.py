"""Crash consistency: a deploy killed with SIGKILL right after its N-th journal line, for N
spread over the whole run.

A reference run first: a cold phase-4 deploy, complete, whose journal gives the run's layout
(run_start, a `change` intent and its `change_done` per change, run_end); it is rolled back to
the before-state. Then each trial runs the same deploy through tests/support/crashing_invoke.py, which
kills the process right after line N is fsynced: N = 1 (right after run_start), an intent whose
`change_done` is not written yet, a `change_done`, the last two lines (the last `change_done`,
run_end), and the rest evenly spread between, so most kills land mid-apply.

After each kill: the journal holds exactly N complete lines, all of that run, the N-th of the
kind aimed at; a re-run converges; a second re-run changes nothing; and undoing both runs (the
re-run, then the killed run's recorded intents) restores the before-state exactly, compared as
a full snapshot (catalog, buckets with every setting, IAM, KMS aliases, logs, alarms, topics,
dashboards).
"""

from __future__ import annotations

import itertools
import json
import signal

import pytest

from .support.catalog import snapshot
from .support.invoking import Invoked, run_module

TRIALS = 20
DEPLOY = ("deploy", "-i", "test", "--phase", "4")


def crashing_deploy(n: int) -> Invoked:
    """The phase-4 deploy, killing itself right after its n-th journal line (n = 0: never)."""
    return run_module("tests.support.crashing_invoke", str(n), *DEPLOY)


def journal_lines(journal) -> list[dict]:
    """Every line of the journal, each of which must be complete JSON."""
    lines = journal.read_text().splitlines(keepends=True) if journal.exists() else []
    events = []
    for number, line in enumerate(lines, start=1):
        assert line.endswith("\n"), f"line {number} is torn, though the kill came after its fsync"
        events.append(json.loads(line))
    return events


def chosen_lines(kinds: list[str], trials: int) -> list[int]:
    """The lines to die after: the landmarks of the run's layout, then spread evenly between."""
    total = len(kinds)
    assert kinds[0] == "run_start" and kinds[-1] == "run_end" and "change_done" in kinds, kinds
    intents = [n for n, kind in enumerate(kinds, start=1) if kind == "change"]
    dones = [n for n, kind in enumerate(kinds, start=1) if kind == "change_done"]
    chosen = {1, intents[0], dones[0], intents[len(intents) // 2], total - 1, total}
    wanted = itertools.cycle(("change", "change_done"))  # intents and outcomes in turn
    while len(chosen) < min(trials, total):  # then halve the widest gap left, again and again
        gap, start = max((b - a, a) for a, b in itertools.pairwise(sorted(chosen)))
        n, kind = start + gap // 2, next(wanted)
        if kinds[n - 1] != kind and n + 1 < start + gap and kinds[n] == kind:
            n += 1
        chosen.add(n)
    return sorted(chosen)


@pytest.mark.slow  # minutes of real work: a phase-4 deploy per trial, or through injected stalls
def test_deploys_killed_at_chosen_journal_lines_recover_exactly(env, invoke):
    journal = env.state_dir / "journal.jsonl"
    before = snapshot(env)

    reference = crashing_deploy(0)
    assert reference.code == 0, reference
    kinds = [event["event"] for event in journal_lines(journal)]
    undone = invoke("rollback", "-i", "test", "--destroy-data")
    assert undone.code == 0 and snapshot(env) == before, undone
    journal.unlink()
    chosen = chosen_lines(kinds, TRIALS)
    assert len(chosen) == min(TRIALS, len(kinds)), chosen

    killed_with_changes = 0
    for n in chosen:
        aim = f"killed after line {n} of {len(kinds)} ({kinds[n - 1]})"
        run = crashing_deploy(n)
        assert run.code == -signal.SIGKILL, (aim, run)

        lines = journal_lines(journal)
        assert len(lines) == n, f"{aim}: the journal holds {len(lines)} lines"
        assert lines[0]["event"] == "run_start" and {e["run_id"] for e in lines} == {lines[0]["run_id"]}, aim
        assert [e["event"] for e in lines] == kinds[:n], f"{aim}: not the reference run's layout"
        if kinds[n - 1] == "change":  # the intent is durable, its outcome is not
            assert not any(e["event"] == "change_done" and e["seq"] == lines[-1]["seq"] for e in lines), aim

        rerun = invoke(*DEPLOY, "--json")
        assert rerun.code == 0, (aim, rerun)
        again = invoke(*DEPLOY, "--json")
        assert again.code == 0 and again.json["changed"] == 0, (aim, again)

        history = invoke("history", "-i", "test", "--json").json["runs"]
        killed = [r for r in history if r["status"] == "interrupted"]
        killed_with_changes += bool(killed and killed[-1]["changes"])
        for _ in range(2 if killed and killed[-1]["changes"] else 1):
            undone = invoke("rollback", "-i", "test", "--destroy-data")
            assert undone.code == 0 or "no run left to roll back" in undone.err, (aim, undone)
        assert snapshot(env) == before, f"{aim}: the before-state was not restored"
        journal.unlink(missing_ok=True)
    assert killed_with_changes >= len(chosen) // 2, "most kills must land mid-apply, or the test proves little"
    print(
        f"\ncrash consistency: killed after lines {chosen} of {len(kinds)};"
        f" {killed_with_changes} mid-apply, all restored exactly"
    )
