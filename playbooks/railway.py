"""Railway playbook: hosting. The local inventory and Railway providers add their steps here."""

from __future__ import annotations

from healthinfra.step import Step

STEPS: list[Step] = []
