"""Crash consistency: a deploy killed with SIGKILL at seeded random moments, 20 times.

After each kill: every complete journal line parses (a torn last line may exist and is
ignored); a re-run converges; a second re-run changes nothing; and undoing both runs
(the re-run, then the killed run's recorded intents) restores the before-state exactly,
compared as a full snapshot (catalog, buckets with every setting, IAM, KMS aliases,
logs, alarms, topics, dashboards).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

from .catalog import snapshot
from .conftest import REPO

TRIALS = 20
SEED = 2026


def test_deploys_killed_at_random_moments_recover_exactly(env, invoke):
    journal = env.state_dir / "journal.jsonl"
    before = snapshot(env)
    rng = random.Random(SEED)
    killed_with_changes = 0
    for trial in range(TRIALS):
        delay = rng.uniform(0.0, 1.6)  # into the apply window: a cold phase-4 apply takes about 1.5 s here
        run = subprocess.Popen(
            [sys.executable, "-m", "invoke", "deploy", "-i", "test", "--phase", "4"],
            cwd=REPO,
            env=dict(os.environ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and run.poll() is None:  # the preflight is over when the run starts
            if journal.exists() and '"event": "run_start"' in journal.read_text():
                break
            time.sleep(0.01)
        time.sleep(delay)
        run.send_signal(signal.SIGKILL)
        run.wait()

        lines = journal.read_text().splitlines(keepends=True) if journal.exists() else []
        for number, line in enumerate(lines):
            try:
                json.loads(line)
            except ValueError:
                assert number == len(lines) - 1 and not line.endswith("\n"), f"trial {trial}: line {number} is broken"

        rerun = invoke("deploy", "-i", "test", "--phase", "4", "--json")
        assert rerun.code == 0, (trial, delay, rerun)
        again = invoke("deploy", "-i", "test", "--phase", "4", "--json")
        assert again.code == 0 and again.json["changed"] == 0, (trial, delay, again)

        history = invoke("history", "-i", "test", "--json").json["runs"]
        killed = [r for r in history if r["status"] == "interrupted"]
        killed_with_changes += bool(killed and killed[-1]["changes"])
        for _ in range(2 if killed and killed[-1]["changes"] else 1):
            undone = invoke("rollback", "-i", "test", "--destroy-data")
            assert undone.code == 0 or "no run left to roll back" in undone.err, (trial, delay, undone)
        assert snapshot(env) == before, f"trial {trial} (killed after {delay:.2f} s) did not restore the before-state"
        journal.unlink(missing_ok=True)
    assert killed_with_changes >= TRIALS // 2, "most kills must land mid-run, or the test proves little"
    print(f"\ncrash consistency: {TRIALS} trials, {killed_with_changes} killed mid-apply, all restored exactly")
