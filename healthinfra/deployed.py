"""The deployed phase: which phase an environment is at, as its journal records it.

A run that sets the phase says so in its `run_end` event (`deployed_phase`, and the
`previous_phase` it replaced): a whole deploy (or applied plan, or downgrade) that
reached its end, a cleanup (None: nothing deployed), and the rollback of a run that
had set it (back to that run's `previous_phase`). A deploy limited by `--tags`,
`--playbooks` or `--limit` does not: the environment as a whole is not at its phase.
Runs written before the phase was recorded (their `run_start` has no `scope`) count
a successful deploy as having set its phase. All of it is pure: events in, a phase out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .journal import RunRecord

TOP_PHASE = 4


@dataclass(frozen=True)
class PhaseChange:
    """What a run records when it ends well: the phase it leaves, the phase it found."""

    before: int | None
    after: int | None

    def details(self) -> dict[str, int | None]:
        return {"deployed_phase": self.after, "previous_phase": self.before}


def phase_set_by(run: RunRecord) -> tuple[bool, int | None]:
    """(True, phase) when the run set the deployed phase, else (False, None)."""
    if run.end is None:
        return False, None
    if "deployed_phase" in run.end:
        return True, run.end["deployed_phase"]
    legacy = "scope" not in run.start  # written before runs said whether they cover the environment
    if legacy and run.kind == "deploy" and run.status == "ok" and isinstance(run.start.get("phase"), int):
        return True, run.start["phase"]
    return False, None


def deployed_phase(runs: Iterable[RunRecord]) -> int | None:
    """The phase the latest phase-setting run left (None: never deployed, or cleaned up)."""
    phase = None
    for run in runs:
        sets, value = phase_set_by(run)
        if sets:
            phase = value
    return phase


def phase_run(runs: Iterable[RunRecord]) -> str | None:
    """The id of the run that set the deployed phase, for people to look up in `history`."""
    found = None
    for run in runs:
        if phase_set_by(run)[0]:
            found = run.run_id
    return found


def phase_after_rollback(target: RunRecord, current: int | None) -> PhaseChange | None:
    """Undoing `target` restores the phase it replaced, if it set one."""
    if target.end is not None and "deployed_phase" in target.end:
        return PhaseChange(before=current, after=target.end.get("previous_phase"))
    return None  # it did not set one (or an old journal's deploy: what came before it is not known)
