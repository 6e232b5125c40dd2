"""Steps and the catalog of them: the ordered units of the playbooks, handed to the engine.

A step belongs to one playbook and one phase (the first phase that has it), has
tags, and yields the resources it wants for a target phase. Steps never talk to a
server: `resources(inventory, phase)` only describes desired state (reading the
project's own template files at most). The engine never imports the playbooks: it
is given a `Catalog` of their steps (by tasks.py, from `playbooks.catalog()`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .inventory import Inventory
    from .resource import Resource


@dataclass(frozen=True)
class Step:
    name: str
    playbook: str
    phase: int
    build: Callable[[Inventory, int], list[Resource]]
    tags: tuple[str, ...] = field(default_factory=tuple)

    def resources(self, inventory: Inventory, phase: int) -> list[Resource]:
        return self.build(inventory, phase)

    def matches(self, tags: set[str], playbooks: set[str]) -> bool:
        if playbooks and self.playbook not in playbooks:
            return False
        return not tags or bool(tags & (set(self.tags) | {self.playbook}))


@dataclass(frozen=True)
class Catalog:
    """Every playbook's steps, the playbooks in run order (within a phase)."""

    playbooks: tuple[tuple[str, tuple[Step, ...]], ...]

    @classmethod
    def of(cls, playbooks: Iterable[tuple[str, Sequence[Step]]]) -> Catalog:
        return cls(tuple((name, tuple(steps)) for name, steps in playbooks))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.playbooks)

    def steps(self) -> list[Step]:
        """Every step, in run order: by phase, then playbook order, then each playbook's own."""
        order = {name: i for i, name in enumerate(self.names)}
        every = [step for _, steps in self.playbooks for step in steps]
        return sorted(every, key=lambda s: (s.phase, order[s.playbook]))

    def steps_for(self, phase: int, tags: set[str] | None = None, playbooks: set[str] | None = None) -> list[Step]:
        return [s for s in self.steps() if s.phase <= phase and s.matches(tags or set(), playbooks or set())]

    @property
    def tags(self) -> set[str]:
        """What `--tags` accepts: every step's tags and every playbook's name."""
        return set(self.names) | {t for s in self.steps() for t in s.tags}
