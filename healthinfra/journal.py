"""The journal: an append-only record of runs and changes, durable before each change.

Every change is written *before* it is applied (with the state to converge back to),
and its outcome after. A run killed between the two leaves an intent line; undo
is convergence back to the recorded before-state, so replaying it is safe whether
or not the change had happened. Secrets never reach it: resources carry secret
references, never values.

Events are built by the constructors below, one per kind (run_start, change,
change_done, run_end, rolled_back), so every writer spells them the same way. Where
they are kept is a `JournalBackend` (`append`, `events`); `FileJournal` (JSON lines,
fsynced) is the first, chosen by the environment's state backend (`state.py`).
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from .errors import JournalWriteError

Event = dict[str, Any]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def run_identity() -> dict[str, Any]:
    """Who is running: recorded in the journal and the lock."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (some containers)
        user = str(os.getuid())
    return {"user": user, "host": socket.gethostname(), "pid": os.getpid()}


# --- the events -------------------------------------------------------------------------------


def run_start(
    run_id: str,
    *,
    kind: str,
    phase: int | None,
    inventory: str,
    command: str,
    target: str | None = None,
    scope: str = "whole",
    revision: dict[str, Any] | None = None,
) -> Event:
    """A run begins: what it is, who runs it, the run it undoes (`target`), if any, whether it
    covers the whole environment (`scope`: whole, or partial for --tags/--playbooks/--limit),
    and what it runs (`revision`: the commit, changed files and digest, see revision.py)."""
    return {
        "event": "run_start",
        "run_id": run_id,
        "kind": kind,
        "phase": phase,
        "scope": scope,
        "revision": revision,
        "inventory": inventory,
        "command": command,
        "target": target,
        "at": now_iso(),
        **run_identity(),
    }


def change(
    run_id: str, *, seq: int, playbook: str, step: str, resource: dict, actions: list[dict], converge_to: Any
) -> Event:
    """A change about to be applied, with the state that undoes it (`converge_to`)."""
    return {
        "event": "change",
        "run_id": run_id,
        "seq": seq,
        "playbook": playbook,
        "step": step,
        "resource": resource,
        "actions": actions,
        "undo": {"converge_to": converge_to},
        "at": now_iso(),
    }


def change_done(run_id: str, *, seq: int, error: str | None = None) -> Event:
    """The outcome of change `seq`: ok, or failed with its error (never a secret)."""
    event: Event = {"event": "change_done", "run_id": run_id, "seq": seq, "status": "failed" if error else "ok"}
    if error:
        event["error"] = error
    return event


def lock_wait(run_id: str, *, resource: str, attempt: int, relations: list[str], blockers: list[dict]) -> Event:
    """A DDL statement of `resource` hit `database.lock_timeout` and is tried again: on what it
    waited and who held it (pid, user, application, state, transaction age; never their query,
    which may hold patient data). Informational: undo and history read past it."""
    return {
        "event": "lock_wait",
        "run_id": run_id,
        "resource": resource,
        "attempt": attempt,
        "relations": relations,
        "blockers": blockers,
        "at": now_iso(),
    }


def run_end(run_id: str, *, ok: bool, **details: Any) -> Event:
    """A run ends. `details` are the few facts a run of its kind adds (a rotated role…)."""
    return {"event": "run_end", "run_id": run_id, "status": "ok" if ok else "failed", "at": now_iso(), **details}


def rolled_back(run_id: str, *, target: str) -> Event:
    """Run `run_id` undid run `target` completely."""
    return {"event": "rolled_back", "run_id": run_id, "target": target, "at": now_iso()}


# --- where events are kept ------------------------------------------------------------------


class JournalBackend(Protocol):
    """Where an environment's events are kept: appended durably, read back in order."""

    location: str  # shown to people: a path, a bucket URL

    def append(self, event: Event) -> None: ...

    def events(self) -> Iterator[Event]: ...


class FileJournal:
    """JSON lines in one file, each fsynced before `append` returns."""

    def __init__(self, path: Path):
        self.path = path
        self.location = str(path)

    def append(self, event: Event) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(event, sort_keys=True, default=str) + "\n"
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = "\n" + line  # a run killed mid-write left a torn line: end it, never join it
            data = line.encode("utf-8")
            written = os.write(fd, data)
            if written != len(data):  # O_APPEND: a continued write could interleave; refuse instead
                raise JournalWriteError(
                    f"{self.path}: only {written} of {len(data)} bytes of a journal line were written (disk full?);"
                    " free space and run again, the change was not applied"
                )
            os.fsync(fd)
        finally:
            os.close(fd)

    def events(self) -> Iterator[Event]:
        """Every complete line; a line torn by a kill mid-write is skipped (it was never fsynced
        whole, so the change it announced had not started)."""
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as f:
            for raw in f:
                try:
                    yield json.loads(raw)
                except json.JSONDecodeError:
                    continue


class Journal:
    """An environment's journal: typed appends and its runs, over any backend."""

    def __init__(self, backend: JournalBackend | Path):
        self.backend: JournalBackend = FileJournal(backend) if isinstance(backend, Path) else backend

    @property
    def location(self) -> str:
        return self.backend.location

    @property
    def path(self) -> Path:
        """The file, for a file-backed journal (the local default)."""
        return self.backend.path  # type: ignore[attr-defined]

    def append(self, event: Event) -> None:
        self.backend.append(event)

    def events(self) -> Iterator[Event]:
        return self.backend.events()

    def runs(self) -> list[RunRecord]:
        return runs_of(self.events())


def runs_of(events: Iterable[Event]) -> list[RunRecord]:
    """The runs a sequence of events describes, oldest first (pure)."""
    runs: dict[str, RunRecord] = {}
    for event in events:
        kind = event.get("event")
        if kind == "run_start":
            runs[event["run_id"]] = RunRecord(start=event)
        elif event.get("run_id") in runs:
            record = runs[event["run_id"]]
            if kind == "change":
                record.changes.append(event)
            elif kind == "change_done":
                record.outcomes[event["seq"]] = event
            elif kind == "run_end":
                record.end = event
        if kind == "rolled_back" and event.get("target") in runs:
            runs[event["target"]].rolled_back_by = event["run_id"]
    return list(runs.values())


@dataclass
class RunRecord:
    start: dict[str, Any]
    end: dict[str, Any] | None = None
    changes: list[dict[str, Any]] = field(default_factory=list)
    outcomes: dict[int, dict[str, Any]] = field(default_factory=dict)
    rolled_back_by: str | None = None

    @property
    def run_id(self) -> str:
        return self.start["run_id"]

    @property
    def kind(self) -> str:
        return self.start.get("kind", "deploy")

    @property
    def status(self) -> str:
        if self.rolled_back_by:
            return "rolled back"
        if self.end is None:
            return "interrupted"
        return self.end.get("status", "?")
