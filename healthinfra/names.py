"""Every name the runner gives a cloud, database, host or log object, in one place.

The design's rule is `{prefix}-{env}-{purpose}` for cloud resources (bucket
`hc-dev-medical-documents`, IAM role `hc-dev-patient`, alarm `hc-dev-patient-errors`),
`/{prefix}/{env}/{name}` for log groups, `{prefix}/{env}` for metric namespaces and
`{service}_svc` for database login roles. A playbook, a probe, the report and the
audit all call these functions, so a name can never be spelled two ways. Each takes
the inventory (its `prefix`, `environment` and `aws` settings) and is pure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .inventory import Inventory

MANAGED_BY = "healthcare-infra"
SYSTEM_USER_MAX = 32  # useradd's limit on a login name


def resource(inv: Inventory, purpose: str) -> str:
    """`{prefix}-{env}-{purpose}`: the name of a cloud resource. `resource(inv, "")` is the
    prefix every resource of the environment shares (for list-by-prefix calls)."""
    return f"{inv.prefix}-{inv.environment}-{purpose}"


def db_role(service_name: str) -> str:
    """The database login role of a service."""
    return f"{service_name}_svc"


# --- AWS: S3 and KMS -----------------------------------------------------------------------


def bucket(inv: Inventory, purpose: str) -> str:
    """The bucket a data type row names (`medical-documents` → `hc-dev-medical-documents`)."""
    return resource(inv, purpose)


def access_log_bucket(inv: Inventory) -> str:
    return resource(inv, "access-logs")


def phi_key_alias(inv: Inventory) -> str:
    return f"alias/{resource(inv, 'phi')}"


def phi_key_arn(inv: Inventory) -> str:
    """The PHI key by its alias ARN: S3 resolves it at each encryption."""
    return f"arn:aws:kms:{inv.aws['region']}:{inv.aws_account_id}:{phi_key_alias(inv)}"


# --- AWS: IAM ------------------------------------------------------------------------------


def iam_role(inv: Inventory, service_name: str) -> str:
    return resource(inv, service_name)


def boundary_policy(inv: Inventory) -> str:
    return resource(inv, "service-boundary")


def boundary_arn(inv: Inventory) -> str:
    return f"arn:aws:iam::{inv.aws_account_id}:policy/{boundary_policy(inv)}"


# --- monitoring ----------------------------------------------------------------------------


def log_group(inv: Inventory, name: str) -> str:
    """`/{prefix}/{env}/{name}`; `log_group(inv, "")` is the prefix of all of them."""
    return f"/{inv.prefix}/{inv.environment}/{name}"


def metric_namespace(inv: Inventory) -> str:
    return f"{inv.prefix}/{inv.environment}"


def ml_metric_namespace(prefix: str, environment: str) -> str:
    """The default of `monitoring.ml_namespace` (worked out while the inventory loads)."""
    return f"{prefix}/{environment}/ml"


def alert_topic(inv: Inventory) -> str:
    return resource(inv, "alerts")


def alert_topic_arn(inv: Inventory) -> str:
    return f"arn:aws:sns:{inv.aws['region']}:{inv.aws_account_id}:{alert_topic(inv)}"


def alarm(inv: Inventory, what: str) -> str:
    """An alarm: `hc-dev-patient-errors`, `hc-dev-database-connections`."""
    return resource(inv, what)


def service_alarm_prefix(inv: Inventory, service_name: str) -> str:
    """What every alarm of one service starts with."""
    return resource(inv, f"{service_name}-")


def dashboard(inv: Inventory) -> str:
    return resource(inv, "overview")


# --- hosts ---------------------------------------------------------------------------------


def host_base_dir(prefix: str, environment: str, service_name: str) -> str:
    """The default `base_dir` of a service host (worked out while the inventory loads)."""
    return f"/opt/{prefix}-{environment}-{service_name}"


def host_system_user(inv: Inventory, service_name: str) -> str:
    """The system user a service runs as on its host."""
    return resource(inv, service_name)[:SYSTEM_USER_MAX]


def host_unit(inv: Inventory, service_name: str) -> str:
    """The systemd unit of a service on its host."""
    return f"{resource(inv, service_name)}.service"


# --- the environment's state -----------------------------------------------------------------


def state_key_alias(inv: Inventory) -> str:
    """The KMS key of the state bucket and the Secrets Manager secrets."""
    return f"alias/{resource(inv, 'state')}"


def secret_prefix(inv: Inventory) -> str:
    """What every secret of the environment is named under in Secrets Manager: `{prefix}/{env}/`."""
    return f"{inv.prefix}/{inv.environment}/"
