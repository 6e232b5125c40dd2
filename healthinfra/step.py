"""Steps: the ordered units of a playbook.

A step belongs to one playbook and one phase (the first phase that has it), has
tags, and yields the resources it wants for a target phase. Steps never talk to a
server: `resources(inventory, phase)` only describes desired state (reading the
project's own template files at most).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .inventory import Inventory
from .resource import Resource

PLAYBOOK_ORDER = ("db", "storage", "security", "monitoring", "railway", "hosts")


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


def all_steps() -> list[Step]:
    """Every step of every playbook, in run order: by phase, then playbook order."""
    from playbooks import db, hosts, monitoring, railway, security, storage

    modules = {
        "db": db,
        "storage": storage,
        "security": security,
        "monitoring": monitoring,
        "railway": railway,
        "hosts": hosts,
    }
    steps: list[Step] = []
    for name in PLAYBOOK_ORDER:
        steps.extend(modules[name].STEPS)
    order = {name: i for i, name in enumerate(PLAYBOOK_ORDER)}
    # stable sort keeps each playbook's own order within a phase
    return sorted(steps, key=lambda s: (s.phase, order[s.playbook]))


def steps_for(phase: int, tags: set[str] | None = None, playbooks: set[str] | None = None) -> list[Step]:
    return [s for s in all_steps() if s.phase <= phase and s.matches(tags or set(), playbooks or set())]
