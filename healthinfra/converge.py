"""Converging one item: read, diff, journal the intent, apply, journal the outcome.

A transient fault retries the whole read-diff-apply of that resource (so a retried
create never duplicates: the second read finds what the first apply made). Every
change is journalled before it is applied, with the state that undoes it, by a
`ChangeLog`, the one place a run's journal sequence lives (its threads share it).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from . import journal as events
from .context import RunContext
from .errors import HealthInfraError, LockWaitTimeout
from .faults import provider_call, with_retries
from .journal import Journal
from .lock_waits import Blocked, waiting_line
from .output import Output
from .plan import Item
from .preflight import Counter, current_state
from .recap import Recap, describe_actions, review_lines
from .resource import Action


class ChangeLog:
    """A run's changes, journalled in order: `intent` before an apply, `done` after."""

    def __init__(self, journal: Journal, run_id: str):
        self.journal = journal
        self.run_id = run_id
        self.applied: list[dict[str, Any]] = []  # the change events written, in order
        self._lock = threading.Lock()

    def intent(self, item: Item, actions: list[Action], current: Any) -> int:
        with self._lock:
            seq = len(self.applied) + 1
            event = events.change(
                self.run_id,
                seq=seq,
                playbook=item.playbook,
                step=item.step,
                resource=item.resource.ref(),
                actions=[a.to_json() for a in actions],
                converge_to=current,
            )
            self.journal.append(event)
            self.applied.append(event)
            return seq

    def lock_wait(self, item: Item, blocked: Blocked | None, attempt: int) -> None:
        relations = list(blocked.relations) if blocked else []
        blockers = [b.journalled() for b in blocked.blockers] if blocked else []
        with self._lock:
            self.journal.append(
                events.lock_wait(
                    self.run_id, resource=item.resource.key, attempt=attempt, relations=relations, blockers=blockers
                )
            )

    def done(self, seq: int, error: str | None = None) -> None:
        with self._lock:
            self.journal.append(events.change_done(self.run_id, seq=seq, error=error))


def journalled_error(exc: HealthInfraError) -> str:
    """An error as the journal keeps it: a lock wait's without the blockers' queries (they may
    hold patient data; the terminal shows them, the journal never)."""
    return getattr(exc, "journal_message", None) or str(exc)


@dataclass(frozen=True)
class Converged:
    item: Item
    current: Any
    actions: tuple[Action, ...]
    retries: int = 0


def converge_item(
    ctx: RunContext, item: Item, log: ChangeLog, output: Output, retries: Counter | None = None
) -> Converged:
    """Converge one item (in check mode: read and diff only). Raises HealthInfraError. Retries
    are counted in `retries` when given (so a failed item's count is not lost), else in the result."""
    resource = item.resource
    journalled: list[Action] = []  # what an earlier attempt journalled, if it failed transiently
    counted = retries or Counter()

    def on_retry(exc: BaseException, attempt: int) -> None:
        counted.add()
        for text in ctx.take_notices(resource.key):
            output.line(f"note: [{resource.key}] {text}")
        if isinstance(exc, LockWaitTimeout):  # the services had the table meanwhile: say who held it
            output.line(f"retry {attempt}: [{resource.key}] {waiting_line(exc.blocked, attempt)}")
            log.lock_wait(item, exc.blocked, attempt)
        else:
            output.line(f"retry {attempt}: [{resource.key}] {exc}")
        ctx.reset_connections()

    def attempt() -> tuple[Any, list[Action]]:
        with provider_call(f"read {resource.key}"):
            current = current_state(ctx, item)
        actions = resource.actions_for(current)
        if not actions or ctx.check:
            return current, actions
        seq = log.intent(item, actions, current)
        journalled[:] = actions
        try:
            with provider_call(f"apply {resource.key}"):
                resource.apply(ctx, actions)
        except HealthInfraError as exc:
            log.done(seq, error=journalled_error(exc))
            raise
        finally:
            ctx.forget_all()
        log.done(seq)
        return current, actions

    try:
        current, actions = with_retries(attempt, on_retry)
    finally:
        for text in ctx.take_notices(resource.key):
            output.line(f"note: [{resource.key}] {text}")
    if not actions and journalled:
        actions = list(journalled)  # an attempt that failed after applying: its change stands
    return Converged(item, current, tuple(actions), 0 if retries is not None else counted.value)


def report(ctx: RunContext, done: Converged, recap: Recap, output: Output, pending_creations=frozenset()) -> None:
    """One item's outcome, counted in the recap and shown."""
    item, resource = done.item, done.item.resource
    recap.retries += done.retries
    if not done.actions:
        recap.count(item.playbook, "ok")
        output.line(f"ok: [{resource.key}] {resource.noop_reason(done.current)}")
        return
    recap.count(item.playbook, "changed")
    reviewed = resource.review(list(done.actions)) if ctx.check or output.show_diff else []
    change = {
        "playbook": item.playbook,
        "step": item.step,
        "resource": resource.key,
        "actions": [a.to_json() for a in done.actions],
    }
    if reviewed:
        change["review"] = reviewed
    recap.changes.append(change)
    verb = "would change" if ctx.check else "changed"
    pending = [key for key in resource.depends_on() if key in pending_creations]
    after = f" (after apply: {', '.join(pending)} created first)" if ctx.check and pending else ""
    output.line(f"{verb}: [{resource.key}] " + ", ".join(a.describe() for a in done.actions) + after)
    if output.show_diff:
        for line in describe_actions(list(done.actions), show_diff=True):
            output.line(line)
    for line in review_lines(reviewed):
        output.line(line)


def report_failure(item: Item, error: HealthInfraError, recap: Recap, output: Output, verb: str = "failed") -> None:
    recap.count(item.playbook, "failed")
    recap.errors.append(f"{item.resource.key}: {error}")
    output.line(f"{verb}: [{item.resource.key}] {error}")
