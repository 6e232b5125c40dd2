"""What a run was asked to do: its options, fixed before it starts and never changed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RunOptions:
    check: bool = False  # read and diff only; change nothing
    show_diff: bool = False  # print documents as unified diffs
    destroy_data: bool = False  # allow deleting what holds data (rows, objects)
    rollback_on_failure: bool = True  # a failed run undoes its own changes
    command: str = "deploy"  # as the journal and the lock show it
    # on a protected inventory without --yes: asked, with the resources a run would delete, whether
    # to go on (None: no question; the run deletes what its plan says)
    confirm: Callable[[list[str]], bool] | None = None
    confirm_every_change: bool = False  # ask about every change, not only deletions (apply, rollback on prod)
