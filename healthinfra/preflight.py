"""Preflight: resolve, read and diff every item, then guard, before anything changes.

`read_all` reads and diffs everything (AWS and API resources concurrently in a pool;
PostgreSQL ones share the run's connection, so they are read in order meanwhile) and
returns a `Readings` value; nothing is written from the pool's threads but their own
return values. `refusals` turns what was read into the reasons to refuse the run: a
read that failed for good, a saved plan whose facts moved. `guard_all` asks every
planned change whether it would delete data. A run that is refused changes nothing.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .context import RunContext
from .errors import DataLossRefused, HealthInfraError, StalePlan
from .faults import provider_call, with_retries
from .plan import Item, Job
from .resource import Action, normal

READ_WORKERS = 8


class Counter:
    """A count several threads add to (retries)."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self, *_: Any) -> None:
        with self._lock:
            self.value += 1


@dataclass(frozen=True)
class Reading:
    """One item after preflight: resolved, its current state and the actions that converge it."""

    item: Item
    current: Any = None
    actions: tuple[Action, ...] = ()
    error: HealthInfraError | None = None


@dataclass(frozen=True)
class Readings:
    readings: tuple[Reading, ...]
    retries: int = 0

    @property
    def items(self) -> tuple[Item, ...]:
        return tuple(r.item for r in self.readings)

    def keys_with(self, op: str) -> frozenset[str]:
        return frozenset(
            r.item.resource.key for r in self.readings if r.error is None and any(a.op == op for a in r.actions)
        )

    def record(self) -> list[dict[str, Any]]:
        """What `plan --out` saves: every read item, with what it read and would do (and, where
        the resource has one, what a reviewer reads of it: a migration's statements)."""
        entries = []
        for r in self.readings:
            if r.error is not None:
                continue
            entry = {
                "playbook": r.item.playbook,
                "step": r.item.step,
                "resource": r.item.resource.ref(),
                "desired": r.item.resource.desired,
                "current": r.current,
                "actions": [a.to_json() for a in r.actions],
            }
            reviewed = r.item.resource.review(list(r.actions)) if r.actions else []
            if reviewed:
                entry["review"] = reviewed
            entries.append(entry)
        return entries


@dataclass(frozen=True)
class Verdict:
    """What preflight concluded: items that failed alone (hosts), and the refusals of the run."""

    isolated: dict[int, HealthInfraError] = field(default_factory=dict)
    refused: tuple[tuple[int, HealthInfraError], ...] = ()
    retries: int = 0


def current_state(ctx: RunContext, item: Item) -> Any:
    """A resource's current state, read once until something is applied (which forgets all facts)."""
    return ctx.fact(f"current:{item.resource.key}", lambda: item.resource.read(ctx))


def read_all(ctx: RunContext, job: Job) -> Readings:
    retries = Counter()

    def reset_and_count(exc: BaseException, attempt: int) -> None:
        retries.add()
        ctx.reset_connections()

    def read_one(item: Item, on_retry) -> Reading:
        resolved: list[Item] = [item]

        def attempt() -> Reading:
            with provider_call(f"read {item.resource.key}"):
                resource = item.resource.resolve(ctx)
                resolved[0] = Item(item.playbook, item.step, resource)
                current = current_state(ctx, resolved[0])
                return Reading(resolved[0], current, tuple(resource.actions_for(current)))

        try:
            return with_retries(attempt, on_retry)
        except HealthInfraError as exc:
            return Reading(resolved[0], error=exc)

    items = job.items
    results: dict[int, Reading] = {}
    with ThreadPoolExecutor(max_workers=READ_WORKERS) as pool:
        futures = {
            i: pool.submit(read_one, item, retries.add)
            for i, item in enumerate(items)
            if not item.resource.uses_postgres
        }
        for index, item in enumerate(items):
            if item.resource.uses_postgres:
                results[index] = read_one(item, reset_and_count)
                error = results[index].error
                if error is not None and not isinstance(error, DataLossRefused):
                    break  # the database is gone: further reads would only wait on it
        for index, future in futures.items():
            results[index] = future.result()
    readings = tuple(results.get(i, Reading(item, error=None)) for i, item in enumerate(items))
    unread = {i for i in range(len(items)) if i not in results}
    readings = tuple(
        Reading(r.item, error=_NotRead()) if i in unread else r for i, r in enumerate(readings)
    )  # after the database failed: neither read nor run
    return Readings(readings, retries.value)


class _NotRead(HealthInfraError):
    """Not read: an earlier read of the same server failed for good."""


def refusals(readings: Readings, job: Job) -> Verdict:
    """In run order: hosts that could not be read fail alone; the first other read that failed
    for good refuses the run; so does every item a saved plan read differently."""
    isolated: dict[int, HealthInfraError] = {}
    refused: list[tuple[int, HealthInfraError]] = []
    for index, reading in enumerate(readings.readings):
        if isinstance(reading.error, _NotRead):
            continue
        if reading.error is not None and reading.item.resource.isolated:
            isolated[index] = reading.error
            continue
        if reading.error is not None:
            refused.append((index, reading.error))
            break
        if job.expected is not None and normal(reading.current) != normal(job.expected[index]):
            refused.append(
                (
                    index,
                    StalePlan(
                        f"changed since the plan was saved (now {_short(reading.current)}, the plan read"
                        f" {_short(job.expected[index])}); run `invoke plan --out FILE` again"
                    ),
                )
            )
    return Verdict(isolated=isolated, refused=tuple(refused), retries=readings.retries)


def guard_all(ctx: RunContext, readings: Readings, verdict: Verdict) -> Verdict:
    """Every planned change asked whether it deletes data (DataLossRefused), in run order."""
    if verdict.refused:
        return verdict
    retries = Counter()
    refused: list[tuple[int, HealthInfraError]] = []
    for index, reading in enumerate(readings.readings):
        if not reading.actions or index in verdict.isolated:
            continue
        resource, actions = reading.item.resource, list(reading.actions)

        def guard(resource=resource, actions=actions) -> None:
            with provider_call(f"check {resource.key}"):
                resource.guard(ctx, actions)

        def on_retry(exc: BaseException, attempt: int) -> None:
            retries.add()
            ctx.reset_connections()

        try:
            with_retries(guard, on_retry)
        except HealthInfraError as exc:  # data loss, or a read that failed for good
            refused.append((index, exc))
            if not isinstance(exc, DataLossRefused):
                break  # the provider is gone: further reads would only wait on it
    return Verdict(verdict.isolated, tuple(refused), verdict.retries + retries.value)


def _short(value: Any, limit: int = 120) -> str:
    text = normal(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
