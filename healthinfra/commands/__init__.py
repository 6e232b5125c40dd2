"""What each invoke task does, apart from invoke: load, validate, run, print, exit code.

Split by area — run (deploy, plan, apply, rollback, cleanup), history, local, security,
monitoring, railway — each validating all input before it touches a provider and
returning the process exit code. Commands that need the playbooks' steps take them as
`catalog` (tasks.py passes `playbooks.catalog()`); the engine never imports them.
"""

from .common import load, require_credentials, require_local_services, resolve_phase
from .history import history
from .lint import db_lint
from .local import local_down, local_status, local_up
from .monitoring import (
    monitoring_audit_trail,
    monitoring_check,
    monitoring_report,
    monitoring_slow_queries,
    storage_usage,
)
from .promote import promote
from .railway import railway_rollback
from .run import PLAN_FORMAT, apply_plan, cleanup, deploy, refuse_if_protected, rollback
from .security import security_audit, security_rotate
from .state import state_init, state_migrate, state_unlock

__all__ = [
    "PLAN_FORMAT",
    "apply_plan",
    "cleanup",
    "db_lint",
    "deploy",
    "history",
    "load",
    "local_down",
    "local_status",
    "local_up",
    "monitoring_audit_trail",
    "monitoring_check",
    "monitoring_report",
    "monitoring_slow_queries",
    "promote",
    "railway_rollback",
    "refuse_if_protected",
    "require_credentials",
    "require_local_services",
    "resolve_phase",
    "rollback",
    "security_audit",
    "security_rotate",
    "state_init",
    "state_migrate",
    "state_unlock",
    "storage_usage",
]
