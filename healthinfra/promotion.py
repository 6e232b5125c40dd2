"""Promotion: prod gets only what dev ran successfully. The decisions, pure.

An inventory names the environment it is promoted from (`promotes_from: dev`). What the
source "ran" is its journal: the last successful whole deploy at its deployed phase, with
the revision (commit, and whether tracked files differed) and digest it recorded. A
promotion plans the target at that phase from a clean checkout at that very commit; its
plan says so (`promotion` in the plan file), and `apply` checks it again against the
source's journal before anything changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .deployed import deployed_phase
from .journal import RunRecord
from .revision import Revision


@dataclass(frozen=True)
class SourceRun:
    """The source environment's run a promotion takes: its id, phase and revision."""

    run_id: str
    phase: int
    revision: Revision
    at: str

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "phase": self.phase, "revision": self.revision.to_json(), "at": self.at}


def successful_runs(runs: Iterable[RunRecord]) -> list[RunRecord]:
    """Whole deploys that ended well and were not rolled back, oldest first."""
    return [
        r
        for r in runs
        if r.kind == "deploy"
        and r.status == "ok"
        and r.start.get("scope", "whole") == "whole"
        and isinstance(r.start.get("phase"), int)
    ]


def last_source_run(runs: list[RunRecord]) -> SourceRun | None:
    """The source's last successful whole deploy at the phase it is deployed at."""
    phase = deployed_phase(runs)
    if phase is None:
        return None
    for run in reversed(successful_runs(runs)):
        if run.start["phase"] == phase:
            revision = Revision.from_json(run.start.get("revision")) or Revision(None, (), "")
            return SourceRun(run.run_id, phase, revision, run.start.get("at", ""))
    return None


def ran_successfully(runs: list[RunRecord], commit: str, phase: int) -> bool:
    """Did the source ever run `commit`, clean, successfully, as a whole deploy at `phase`?"""
    for run in successful_runs(runs):
        revision = Revision.from_json(run.start.get("revision"))
        if revision is not None and revision.clean and revision.commit == commit and run.start["phase"] == phase:
            return True
    return False


def refusal(source: str, target: str, found: SourceRun | None, here: Revision) -> str | None:
    """Why `invoke promote --to TARGET` may not go on now, or None. Pure."""
    if here.commit is None:
        return "this checkout is not a git repository: a promotion is of a commit; run it from a clone"
    if here.changed:
        shown = ", ".join(here.changed[:10]) + (f" and {len(here.changed) - 10} more" if len(here.changed) > 10 else "")
        return (
            f"this checkout has changes to tracked files ({shown}); a promotion is of a commit"
            f" `{source}` ran: commit them, deploy them to `{source}` first, or `git stash`"
        )
    if found is None:
        return (
            f"`{source}` has no successful whole deploy at its deployed phase to promote;"
            f" run `invoke deploy -i {source}` first"
        )
    if found.revision.commit is None:
        return (
            f"`{source}`'s last successful run ({found.run_id}, phase {found.phase}) recorded no git revision;"
            f" deploy `{source}` again from a clone"
        )
    if found.revision.changed:
        return (
            f"`{source}`'s last successful run ({found.run_id}) ran {found.revision.commit[:12]} with changes"
            f" ({', '.join(found.revision.changed[:5])}): it is not a commit that can be promoted; commit them"
            f" and deploy `{source}` again"
        )
    if here.commit != found.revision.commit:
        return (
            f"this checkout is at {here.commit[:12]}, but `{source}` last ran {found.revision.commit[:12]}"
            f" successfully (run {found.run_id}, phase {found.phase}): check out {found.revision.commit[:12]}"
            f" to promote what `{source}` runs, or deploy {here.commit[:12]} to `{source}` first"
        )
    return None


def settings_diff(source: dict[str, Any], target: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Where two inventories' settings differ, as (dotted key, source value, target value). Pure."""
    flat_source, flat_target = _flatten(source), _flatten(target)
    missing = object()
    rows = []
    for key in sorted(set(flat_source) | set(flat_target)):
        a, b = flat_source.get(key, missing), flat_target.get(key, missing)
        if a != b:
            rows.append((key, None if a is missing else a, None if b is missing else b))
    return rows


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}
