"""Storage playbook. Phase 1 has no storage resources; later phases add their steps here."""

from __future__ import annotations

from healthinfra.step import Step

STEPS: list[Step] = []
