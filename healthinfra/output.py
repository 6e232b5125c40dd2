"""Progress lines, Ansible-like. In JSON mode they go to stderr, keeping stdout one document."""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from .plan import Item


class Output:
    def __init__(self, stream: TextIO | None = None, show_diff: bool = False):
        self.stream = stream or sys.stdout
        self.show_diff = show_diff
        self._step: tuple[str, str] | None = None
        self._lock = threading.Lock()

    def step(self, item: Item) -> None:
        title = (item.playbook, item.step)
        with self._lock:
            if title != self._step:
                self._step = title
                self.stream.write(f"\nTASK [{item.playbook} : {item.step}]\n")

    def line(self, text: str) -> None:
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()
