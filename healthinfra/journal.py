"""The journal: append-only JSON lines, one per event, fsynced before the next change.

Every change is written *before* it is applied (with the state to converge back to),
and its outcome after. A run killed between the two leaves an intent line; undo
is convergence back to the recorded before-state, so replaying it is safe whether
or not the change had happened. Secrets never reach this file: resources carry
secret references, never values.

Events: run_start, change, change_done, run_end, rolled_back.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


class Journal:
    def __init__(self, path: Path):
        self.path = path

    def append(self, event: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(event, sort_keys=True, default=str) + "\n"
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = "\n" + line  # a run killed mid-write left a torn line: end it, never join it
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def events(self) -> Iterator[dict[str, Any]]:
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

    def runs(self) -> list[RunRecord]:
        runs: dict[str, RunRecord] = {}
        for event in self.events():
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


def run_identity() -> dict[str, Any]:
    """Who is running: recorded in the journal and the lock."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (some containers)
        user = str(os.getuid())
    return {"user": user, "host": socket.gethostname(), "pid": os.getpid()}
