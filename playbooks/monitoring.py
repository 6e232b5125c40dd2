"""Monitoring playbook. Phase 1 monitoring is the health check (`invoke monitoring.check`),
which reads and changes nothing; log groups, alarms and dashboards (phases 2-4) add steps here."""

from __future__ import annotations

from healthinfra.step import Step

STEPS: list[Step] = []
