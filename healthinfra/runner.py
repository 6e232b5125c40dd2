"""The runner: converge resources in order, journal every change, undo on failure.

For each resource: read, diff (pure), and, unless in check mode, journal the
intent with the before-state, apply, journal the outcome. A transient fault
retries the whole read-diff-apply of that resource (so a retried create never
duplicates). A failure stops the run; unless told otherwise, the run then undoes
its own changes, newest first, by converging each resource back to its journalled
before-state. Rollback of an earlier run and cleanup are the same machinery.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TextIO

from .context import RunContext
from .errors import DataLossRefused, HealthInfraError, NothingToRollBack, ProtectedInventory, StalePlan
from .faults import provider_call, with_retries
from .inventory import Inventory
from .journal import Journal, RunRecord, new_run_id, now_iso, run_identity
from .lock import EnvironmentLock
from .recap import Recap, describe_actions
from .resource import Action, Resource, resource_from_journal
from .step import steps_for


@dataclass
class Item:
    """One resource to converge, with where it came from."""

    playbook: str
    step: str
    resource: Resource


class Output:
    """Progress lines, Ansible-like. In JSON mode they go to stderr, keeping stdout one document."""

    def __init__(self, stream: TextIO | None = None, show_diff: bool = False):
        self.stream = stream or sys.stdout
        self.show_diff = show_diff
        self._step: tuple[str, str] | None = None

    def step(self, item: Item) -> None:
        title = (item.playbook, item.step)
        if title != self._step:
            self._step = title
            self.stream.write(f"\nTASK [{item.playbook} : {item.step}]\n")

    def line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


def plan_items(inventory: Inventory, phase: int, tags=None, playbooks=None, limit: str | None = None) -> list[Item]:
    """Every resource of the chosen steps, in run order. With `limit`, only the host steps,
    and only for that host."""
    items = []
    for step in steps_for(phase, tags, playbooks):
        for resource in step.resources(inventory, phase):
            if limit is not None and getattr(resource, "host_name", None) != limit:
                continue
            items.append(Item(step.playbook, step.name, resource))
    return items


def deploy(
    inventory: Inventory,
    phase: int,
    *,
    check: bool = False,
    output: Output,
    tags=None,
    playbooks=None,
    rollback_on_failure: bool = True,
    destroy_data: bool = False,
    command: str = "deploy",
    record: list | None = None,
    limit: str | None = None,
) -> Recap:
    items = plan_items(inventory, phase, tags, playbooks, limit)
    return _run(
        inventory,
        "deploy",
        phase,
        items,
        check=check,
        output=output,
        destroy_data=destroy_data,
        rollback_on_failure=rollback_on_failure,
        command=command,
        record=record,
    )


def apply_saved_plan(
    inventory: Inventory,
    saved: dict,
    *,
    output: Output,
    rollback_on_failure: bool = True,
    destroy_data: bool = False,
    command: str = "apply",
) -> Recap:
    """Carry out a saved plan exactly, or refuse, changing nothing, if any state it was computed from moved."""
    items, expected = [], {}
    for index, entry in enumerate(saved["items"]):
        resource = resource_from_journal(entry["resource"], entry["desired"])
        items.append(Item(entry["playbook"], entry["step"], resource))
        expected[index] = entry["current"]
    return _run(
        inventory,
        "deploy",
        saved["phase"],
        items,
        check=False,
        output=output,
        destroy_data=destroy_data,
        rollback_on_failure=rollback_on_failure,
        command=command,
        expected=expected,
    )


def cleanup(inventory: Inventory, *, output: Output, destroy_data: bool = False, check: bool = False) -> Recap:
    """Converge every resource of every phase to absent, newest first."""
    refuse_if_protected(inventory)
    items = [Item(i.playbook, i.step, i.resource.with_desired(None)) for i in reversed(plan_items(inventory, 4))]
    return _run(
        inventory,
        "cleanup",
        None,
        items,
        check=check,
        output=output,
        destroy_data=destroy_data,
        rollback_on_failure=False,
        command="cleanup-dev",
    )


def refuse_if_protected(inventory: Inventory) -> None:
    if inventory.protected:
        raise ProtectedInventory(
            f"{inventory.path.name}: inventory `{inventory.name}` is protected (`protected: true`);"
            " cleanup refuses it outright, nothing was changed"
        )


def rollback(
    inventory: Inventory, *, output: Output, run_id: str | None = None, destroy_data: bool = False, check: bool = False
) -> Recap:
    """Undo one run (the latest that changed something) by converging back, newest change first."""
    journal = Journal(inventory.state_dir / "journal.jsonl")
    with EnvironmentLock(inventory.state_dir, inventory.name, "rollback"):
        target = _rollback_target(journal.runs(), run_id, inventory)
        items = _undo_items(target)
        return _run(
            inventory,
            "rollback",
            target.start.get("phase"),
            items,
            check=check,
            output=output,
            destroy_data=destroy_data,
            rollback_on_failure=False,
            command="rollback",
            target=target.run_id,
            locked=True,
        )


def _rollback_target(runs: list[RunRecord], run_id: str | None, inventory: Inventory) -> RunRecord:
    if run_id:
        for run in runs:
            if run.run_id == run_id:
                if run.rolled_back_by:
                    raise NothingToRollBack(f"run `{run_id}` was already rolled back by run `{run.rolled_back_by}`")
                if not run.changes:
                    raise NothingToRollBack(f"run `{run_id}` changed nothing; there is nothing to undo")
                return run
        raise NothingToRollBack(f"no run `{run_id}` in the journal of `{inventory.name}`; see `invoke history`")
    for run in reversed(runs):
        if run.changes and not run.rolled_back_by and run.kind not in ("rollback", "rotate"):
            return run
    raise NothingToRollBack(f"the journal of `{inventory.name}` has no run left to roll back; see `invoke history`")


def _undo_items(run: RunRecord) -> list[Item]:
    items = []
    for change in reversed(run.changes):
        resource = resource_from_journal(change["resource"], change["undo"]["converge_to"])
        items.append(Item(change["playbook"], f"undo: {change['step']}", resource))
    return items


def _run(
    inventory,
    kind,
    phase,
    items,
    *,
    check,
    output,
    destroy_data,
    rollback_on_failure,
    command,
    target=None,
    locked=False,
    record=None,
    expected=None,
) -> Recap:
    journal = Journal(inventory.state_dir / "journal.jsonl")
    run_id = new_run_id()
    recap = Recap(inventory=inventory.name, phase=phase, run_id=run_id, kind=kind, check=check)
    lock = EnvironmentLock(inventory.state_dir, inventory.name, command)
    if not locked:
        lock.acquire()
    ctx = RunContext(inventory, check=check, destroy_data=destroy_data)
    try:
        refusals = _preflight(ctx, items, recap, output, record=record, expected=expected)
        if refusals:
            return recap
        if not check:
            journal.append(
                {
                    "event": "run_start",
                    "run_id": run_id,
                    "kind": kind,
                    "phase": phase,
                    "inventory": inventory.name,
                    "command": command,
                    "target": target,
                    "at": now_iso(),
                    **run_identity(),
                }
            )
        applied: list[dict] = []
        failed_at = None
        index = 0
        while index < len(items):
            batch = _batch(items, index)
            output.step(items[index])
            fatal = _converge_batch(ctx, items, batch, journal, run_id, recap, output, applied)
            if fatal is not None:
                failed_at = fatal
                break
            index = batch[-1] + 1
        if failed_at is not None:
            for item in items[failed_at + 1 :]:
                recap.count(item.playbook, "skipped")
        if not check:
            status = "failed" if failed_at is not None or ctx.isolated_failures else "ok"
            journal.append({"event": "run_end", "run_id": run_id, "status": status, "at": now_iso()})
            if target and failed_at is None and not ctx.isolated_failures:
                journal.append({"event": "rolled_back", "run_id": run_id, "target": target, "at": now_iso()})
        if failed_at is not None and applied and rollback_on_failure and not check:
            _roll_back_own_changes(ctx, inventory, run_id, journal, output, recap)
        return recap
    finally:
        recap.retries += ctx.provider_retries  # made inside a provider's client (Neon's 429/423/503)
        ctx.close()
        if not locked:
            lock.release()


def _batch(items: list[Item], start: int) -> list[int]:
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


def _converge_batch(ctx, items, batch, journal, run_id, recap, output, applied) -> int | None:
    """Converge the batch (at once when it has several members). An isolated resource's
    failure is reported and the others go on; any other failure stops the run: its index."""

    def one(index: int) -> int | None:
        item = items[index]
        if index in ctx.isolated_failures:
            return None  # its read failed in preflight: already reported
        try:
            _converge(ctx, item, journal, run_id, recap, output, applied)
        except HealthInfraError as exc:
            with _LOCK:
                recap.count(item.playbook, "failed")
                recap.errors.append(f"{item.resource.key}: {exc}")
                output.line(f"failed: [{item.resource.key}] {exc}")
                if item.resource.isolated:
                    ctx.isolated_failures.add(index)
                    return None
            return index
        return None

    if len(batch) == 1:
        return one(batch[0])
    with ThreadPoolExecutor(max_workers=min(HOST_WORKERS, len(batch))) as pool:
        outcomes = list(pool.map(one, batch))
    fatal = [index for index in outcomes if index is not None]
    return fatal[0] if fatal else None


HOST_WORKERS = 16
_LOCK = threading.RLock()  # journal sequence, recap and output, shared by a batch's threads


def _preflight(
    ctx: RunContext,
    items: list[Item],
    recap: Recap,
    output: Output,
    record: list | None = None,
    expected: dict | None = None,
) -> bool:
    """Read and diff everything first; refuse the whole run, before any change, if a
    read fails for good or a planned action would delete data. The reads are
    memoised, so the run reuses them."""
    refused = []
    planned: dict[int, list] = {}
    read: dict[int, Any] = {}
    errors: dict[int, HealthInfraError] = {}

    def read_and_diff(index: int, on_retry) -> None:
        item = items[index]
        try:

            def attempt():
                with provider_call(f"read {item.resource.key}"):
                    resource = item.resource.resolve(ctx)
                    items[index] = Item(item.playbook, item.step, resource)
                    read[index] = _current(ctx, resource)
                    planned[index] = resource.diff(read[index], resource.desired)

            with_retries(attempt, on_retry)
        except HealthInfraError as exc:
            errors[index] = exc

    # Independent reads at once: AWS resources in a pool; PostgreSQL ones share the run's
    # connection, so they are read here, in order, meanwhile. Facts load once either way.
    def aws_retry(exc, attempt):
        recap.retries += 1

    with ThreadPoolExecutor(max_workers=READ_WORKERS) as pool:
        futures = [
            pool.submit(read_and_diff, i, aws_retry) for i, item in enumerate(items) if not item.resource.uses_postgres
        ]
        for index, item in enumerate(items):
            if item.resource.uses_postgres:
                read_and_diff(index, lambda exc, attempt: _count_retry(ctx, recap))
                if index in errors and not isinstance(errors[index], DataLossRefused):
                    break
        for future in futures:
            future.result()

    for index, item in enumerate(items):  # in run order: the first failure, every moved resource
        if index in errors and item.resource.isolated:  # a host that cannot be read fails alone
            ctx.isolated_failures.add(index)
            recap.count(item.playbook, "failed")
            recap.errors.append(f"{item.resource.key}: {errors[index]}")
            output.line(f"failed: [{item.resource.key}] {errors[index]}")
            continue
        if index in errors:
            refused.append((item, errors[index]))
            break
        if index not in planned:
            continue
        if record is not None:
            record.append(
                {
                    "playbook": item.playbook,
                    "step": item.step,
                    "resource": item.resource.ref(),
                    "desired": item.resource.desired,
                    "current": read[index],
                    "actions": [a.to_json() for a in planned[index]],
                }
            )
        if expected is not None and _normal(read[index]) != _normal(expected[index]):
            refused.append(
                (
                    item,
                    StalePlan(
                        f"changed since the plan was saved (now {_short(read[index])}, the plan read"
                        f" {_short(expected[index])}); run `invoke plan --out FILE` again"
                    ),
                )
            )
    ctx.planned_deletions = {
        items[i].resource.key for i, actions in planned.items() if any(a.op == "delete" for a in actions)
    }
    ctx.planned_creations = {
        items[i].resource.key for i, actions in planned.items() if any(a.op == "create" for a in actions)
    }
    for index, item in enumerate(items):
        if refused or not planned.get(index) or index in ctx.isolated_failures:
            continue

        def guard(item=item, index=index):
            with provider_call(f"check {item.resource.key}"):
                item.resource.guard(ctx, planned[index])

        try:
            with_retries(guard, lambda exc, attempt: _count_retry(ctx, recap))
        except HealthInfraError as exc:  # data loss, or a read that failed for good
            refused.append((item, exc))
            if not isinstance(exc, DataLossRefused):
                break  # the provider is gone: further reads would only wait on it
    for item, reason in refused:
        recap.count(item.playbook, "failed")
        recap.errors.append(f"{item.resource.key}: {reason}")
        output.line(f"refused: [{item.resource.key}] {reason}")
    if refused:
        for index, item in enumerate(items):
            if item not in [i for i, _ in refused] and index not in ctx.isolated_failures:
                recap.count(item.playbook, "skipped")
        output.line("nothing was changed")
    return bool(refused)


READ_WORKERS = 8


def _current(ctx: RunContext, resource: Resource):
    """A resource's current state, read once until something is applied (which forgets all facts)."""
    return ctx.fact(f"current:{resource.key}", lambda: resource.read(ctx))


def _normal(value) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)


def _short(value, limit: int = 120) -> str:
    text = _normal(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _count_retry(ctx: RunContext, recap: Recap) -> None:
    recap.retries += 1
    ctx.reset_connections()


def _converge(
    ctx: RunContext, item: Item, journal: Journal, run_id: str, recap: Recap, output: Output, applied: list[dict]
) -> None:
    resource = item.resource
    journalled: list[Action] = []  # what an earlier attempt journalled, if it failed transiently

    def on_retry(exc, attempt):
        recap.retries += 1
        output.line(f"retry {attempt}: [{resource.key}] {exc}")
        ctx.reset_connections()

    def attempt():
        with provider_call(f"read {resource.key}"):
            current = _current(ctx, resource)
        actions = resource.diff(current, resource.desired)
        if not actions:
            return current, actions
        if ctx.check:
            return current, actions
        with _LOCK:
            seq = len(applied) + 1
            change = {
                "event": "change",
                "run_id": run_id,
                "seq": seq,
                "playbook": item.playbook,
                "step": item.step,
                "resource": resource.ref(),
                "actions": [a.to_json() for a in actions],
                "undo": {"converge_to": current},
                "at": now_iso(),
            }
            journal.append(change)
            applied.append(change)
        journalled[:] = actions
        try:
            with provider_call(f"apply {resource.key}"):
                resource.apply(ctx, actions)
        except HealthInfraError as exc:
            with _LOCK:
                journal.append(
                    {"event": "change_done", "run_id": run_id, "seq": seq, "status": "failed", "error": str(exc)}
                )
            raise
        finally:
            ctx.forget_all()
        with _LOCK:
            journal.append({"event": "change_done", "run_id": run_id, "seq": seq, "status": "ok"})
        return current, actions

    current, actions = with_retries(attempt, on_retry)
    if not actions and journalled:
        actions = list(journalled)  # an attempt that failed after applying: its change stands
    with _LOCK:
        _report(ctx, item, current, actions, recap, output)


def _report(ctx, item: Item, current, actions: list[Action], recap: Recap, output: Output) -> None:
    resource = item.resource
    if not actions:
        recap.count(item.playbook, "ok")
        output.line(f"ok: [{resource.key}] {resource.noop_reason(current)}")
        return
    recap.count(item.playbook, "changed")
    recap.changes.append(
        {
            "playbook": item.playbook,
            "step": item.step,
            "resource": resource.key,
            "actions": [a.to_json() for a in actions],
        }
    )
    verb = "would change" if ctx.check else "changed"
    pending = [key for key in resource.depends_on() if key in ctx.planned_creations]
    after = f" (after apply: {', '.join(pending)} created first)" if ctx.check and pending else ""
    output.line(f"{verb}: [{resource.key}] " + ", ".join(a.describe() for a in actions) + after)
    if output.show_diff:
        for line in describe_actions(actions, show_diff=True):
            output.line(line)


def _roll_back_own_changes(ctx, inventory, run_id, journal, output, recap) -> None:
    output.line("\nThe run failed: undoing its changes, newest first (--no-rollback keeps them)")
    run = next(r for r in journal.runs() if r.run_id == run_id)
    undo = Recap(inventory=inventory.name, phase=recap.phase, run_id=new_run_id(), kind="rollback")
    journal.append(
        {
            "event": "run_start",
            "run_id": undo.run_id,
            "kind": "rollback",
            "phase": recap.phase,
            "inventory": inventory.name,
            "command": "automatic rollback",
            "target": run_id,
            "at": now_iso(),
            **run_identity(),
        }
    )
    applied: list[dict] = []
    ok = True
    for item in _undo_items(run):
        output.step(item)
        try:
            _converge(ctx, item, journal, str(undo.run_id), undo, output, applied)
        except DataLossRefused as exc:
            ok = False
            recap.errors.append(f"rollback kept {item.resource.key}: {exc}")
            output.line(f"kept: [{item.resource.key}] {exc}")
        except HealthInfraError as exc:
            ok = False
            recap.errors.append(f"rollback failed at {item.resource.key}: {exc}")
            output.line(f"failed: [{item.resource.key}] {exc}")
    journal.append({"event": "run_end", "run_id": undo.run_id, "status": "ok" if ok else "failed", "at": now_iso()})
    if ok:
        journal.append({"event": "rolled_back", "run_id": undo.run_id, "target": run_id, "at": now_iso()})
    recap.rolled_back = ok
    recap.retries += undo.retries
