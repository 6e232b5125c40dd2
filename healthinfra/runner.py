"""The run, as a sequence of small steps: preflight → converge → undo on failure.

    job ──read_all──▶ readings ──refusals, guard_all──▶ verdict ──converge_all──▶ outcome ──undo_own──▶ recap

Each step is a function taking the previous result and the run's context (which holds
its options); none changes its arguments. A refused preflight ends the run before any
change; a failed converge undoes the run's own changes, newest first, by converging
each resource back to its journalled before-state, unless `--no-rollback`. Rollback of
an earlier run and cleanup are the same pipeline over other items. The caller holds
the environment's lock and the context (see commands/run.py).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import journal as events
from .context import RunContext
from .converge import ChangeLog, Converged, converge_item, report, report_failure
from .errors import DataLossRefused, HealthInfraError, NothingToRollBack, ProtectedInventory
from .journal import Journal, RunRecord, new_run_id
from .output import Output
from .plan import Item, Job, undo_items
from .preflight import Counter, Readings, Verdict, guard_all, read_all, refusals
from .recap import Recap
from .revision import current as current_revision

HOST_WORKERS = 16
NEVER_UNDONE = {"rotate": "cannot be undone: a rotation keeps no old password (rotate again instead)"}
NOT_PICKED = ("rollback", "rotate", "railway-rollback")  # kinds `rollback` without --run never picks


@dataclass(frozen=True)
class Outcome:
    """What converging did: where it stopped (None: it did not), what failed alone, what it changed."""

    failed_at: int | None
    isolated_failures: frozenset[int]
    applied: tuple[dict, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Result:
    recap: Recap
    readings: Readings  # what preflight read (a saved plan is made of them)


def execute(ctx: RunContext, job: Job, output: Output, journal: Journal) -> Result:
    """Run a job to its end and say how it went. The whole pipeline, in order."""
    recap = Recap(inventory=ctx.inventory.name, phase=job.phase, run_id=new_run_id(), kind=job.kind, check=ctx.check)
    readings = Readings(())
    try:
        readings = read_all(ctx, job)
        verdict = refusals(readings, job)
        ctx.planned_deletions = readings.keys_with("delete")  # what the data guards may count on going away
        verdict = guard_all(ctx, readings, verdict)
        if report_preflight(readings, verdict, recap, output):
            return Result(recap, readings)
        confirm_deletions(ctx, readings, output)
        outcome = converge_all(ctx, job, readings, verdict, journal, str(recap.run_id), recap, output)
        if outcome.failed_at is not None and outcome.applied and ctx.options.rollback_on_failure and not ctx.check:
            undo_own(ctx, str(recap.run_id), journal, output, recap)
        return Result(recap, readings)
    finally:
        recap.retries += ctx.provider_retries  # made inside a provider's client (Neon's 429/423/503)


def report_preflight(readings: Readings, verdict: Verdict, recap: Recap, output: Output) -> bool:
    """Show hosts that failed alone and every refusal; True when the run is refused."""
    recap.retries += verdict.retries
    items = readings.items
    for index, error in verdict.isolated.items():
        report_failure(items[index], error, recap, output)
    for index, error in verdict.refused:
        report_failure(items[index], error, recap, output, verb="refused")
    if not verdict.refused:
        return False
    refused = {index for index, _ in verdict.refused}
    for index, item in enumerate(items):
        if index not in refused and index not in verdict.isolated:
            recap.count(item.playbook, "skipped")
    protected = [items[index].resource.key for index, error in verdict.refused if isinstance(error, DataLossRefused)]
    if protected:  # every resource the guards kept, in one message (the reasons are above)
        summary = (
            f"refused to delete {len(protected)} resource{'s' if len(protected) > 1 else ''} holding data:"
            f" {', '.join(protected)}; back them up, then re-run with --destroy-data to delete them"
        )
        recap.errors.insert(0, summary)
        output.line(summary)
    output.line("nothing was changed")
    return True


def confirm_deletions(ctx: RunContext, readings: Readings, output: Output) -> None:
    """A run that deletes on a protected inventory (or, for apply and rollback there, that changes
    anything) shows what it does and goes on only when confirmed (`--yes`, or a typed yes at a
    terminal); otherwise it changes nothing, exit 2."""
    confirm = ctx.options.confirm
    op_wanted = None if ctx.options.confirm_every_change else "delete"
    listed = [r for r in readings.readings if r.error is None and r.actions]
    listed = [r for r in listed if op_wanted is None or any(a.op == op_wanted for a in r.actions)]
    if ctx.check or confirm is None or not listed:
        return
    what = "changes" if op_wanted is None else "deletes"
    output.line(f"This run {what} {len(listed)} resources of protected `{ctx.inventory.name}`:")
    for reading in listed:
        output.line(f"  {', '.join(a.describe() for a in reading.actions)}: [{reading.item.resource.key}]")
    keys = [r.item.resource.key for r in listed]
    if not confirm(keys):
        raise ProtectedInventory(
            f"{ctx.inventory.path.name}: `{ctx.inventory.name}` is protected (`protected: true`) and this run {what}"
            f" {len(listed)} resources (listed above); nothing was changed. Check them, then re-run with --yes"
        )


def converge_all(
    ctx: RunContext,
    job: Job,
    readings: Readings,
    verdict: Verdict,
    journal: Journal,
    run_id: str,
    recap: Recap,
    output: Output,
) -> Outcome:
    items = readings.items  # resolved in preflight
    creations = readings.keys_with("create")
    log = ChangeLog(journal, run_id)
    retries = Counter()
    isolated = set(verdict.isolated)
    if not ctx.check:
        journal.append(
            events.run_start(
                run_id,
                kind=job.kind,
                phase=job.phase,
                inventory=ctx.inventory.name,
                command=ctx.options.command,
                target=job.target,
                scope="partial" if job.partial else "whole",
                revision=current_revision(ctx.inventory).to_json(),
            )
        )
    failed_at = None
    index = 0
    while index < len(items):
        batch = [i for i in _batch(items, index) if i not in verdict.isolated]
        output.step(items[index])
        for position, result in zip(batch, _converge_batch(ctx, items, batch, log, output, retries), strict=True):
            if isinstance(result, Converged):
                report(ctx, result, recap, output, creations)
                continue
            report_failure(items[position], result, recap, output)
            if items[position].resource.isolated:
                isolated.add(position)  # a host fails alone: the rest of the run goes on
            elif failed_at is None:
                failed_at = position
        if failed_at is not None:
            break
        index = (_batch(items, index)[-1]) + 1
    recap.retries += retries.value
    if failed_at is not None:
        for item in items[failed_at + 1 :]:
            recap.count(item.playbook, "skipped")
    if not ctx.check:
        ok = failed_at is None and not isolated
        # the deployed phase moves once the run reached its end (a host that failed alone does not stop it)
        details = job.phase_change.details() if job.phase_change is not None and failed_at is None else {}
        journal.append(events.run_end(run_id, ok=ok, **details))
        if job.target and ok:
            journal.append(events.rolled_back(run_id, target=job.target))
    return Outcome(failed_at, frozenset(isolated), tuple(log.applied))


def _batch(items: tuple[Item, ...], start: int) -> list[int]:
    """The indexes converged together from `start`: one resource, or the consecutive run of
    one parallel group (the hosts of a service)."""
    group = items[start].resource.parallel_group
    end = start + 1
    while (
        group
        and end < len(items)
        and items[end].resource.parallel_group == group
        and items[end].step == items[start].step
    ):
        end += 1
    return list(range(start, end))


def _converge_batch(
    ctx: RunContext, items: tuple[Item, ...], batch: list[int], log: ChangeLog, output: Output, retries: Counter
) -> list[Converged | HealthInfraError]:
    """Each member's result, in order (at once when the batch has several members)."""

    def one(index: int) -> Converged | HealthInfraError:
        try:
            return converge_item(ctx, items[index], log, output, retries)
        except HealthInfraError as exc:
            return exc

    if len(batch) <= 1:
        return [one(i) for i in batch]
    with ThreadPoolExecutor(max_workers=min(HOST_WORKERS, len(batch))) as pool:
        return list(pool.map(one, batch))


def undo_own(ctx: RunContext, run_id: str, journal: Journal, output: Output, recap: Recap) -> None:
    """The run failed: converge back what it changed, newest first, as a rollback run of its own."""
    output.line("\nThe run failed: undoing its changes, newest first (--no-rollback keeps them)")
    run = next(r for r in journal.runs() if r.run_id == run_id)
    undo_id = new_run_id()
    journal.append(
        events.run_start(
            undo_id,
            kind="rollback",
            phase=recap.phase,
            inventory=ctx.inventory.name,
            command="automatic rollback",
            target=run_id,
            revision=current_revision(ctx.inventory).to_json(),
        )
    )
    undo = Recap(inventory=ctx.inventory.name, phase=recap.phase, run_id=undo_id, kind="rollback")
    log = ChangeLog(journal, undo_id)
    retries = Counter()
    ok = True
    for item in undo_items(run):
        output.step(item)
        try:
            report(ctx, converge_item(ctx, item, log, output, retries), undo, output)
        except DataLossRefused as exc:
            ok = False
            recap.errors.append(f"rollback kept {item.resource.key}: {exc}")
            output.line(f"kept: [{item.resource.key}] {exc}")
        except HealthInfraError as exc:
            ok = False
            recap.errors.append(f"rollback failed at {item.resource.key}: {exc}")
            output.line(f"failed: [{item.resource.key}] {exc}")
    journal.append(events.run_end(undo_id, ok=ok))
    if ok:
        journal.append(events.rolled_back(undo_id, target=run_id))
    recap.rolled_back = ok
    recap.retries += undo.retries + retries.value


def rollback_target(runs: list[RunRecord], run_id: str | None, inventory_name: str) -> RunRecord:
    """The run to undo: `run_id`, else the latest that changed something and is not undone."""
    if run_id:
        for run in runs:
            if run.run_id == run_id:
                if run.kind in NEVER_UNDONE:
                    raise NothingToRollBack(f"run `{run_id}` is a {run.kind} run, which {NEVER_UNDONE[run.kind]}")
                if run.rolled_back_by:
                    raise NothingToRollBack(f"run `{run_id}` was already rolled back by run `{run.rolled_back_by}`")
                if not run.changes:
                    raise NothingToRollBack(f"run `{run_id}` changed nothing; there is nothing to undo")
                return run
        raise NothingToRollBack(f"no run `{run_id}` in the journal of `{inventory_name}`; see `invoke history`")
    for run in reversed(runs):
        if run.changes and not run.rolled_back_by and run.kind not in NOT_PICKED:
            return run
    raise NothingToRollBack(f"the journal of `{inventory_name}` has no run left to roll back; see `invoke history`")
