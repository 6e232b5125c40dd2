"""Security playbook: each service may touch only its own data, in the database and in AWS."""

from __future__ import annotations

from healthinfra.inventory import Inventory, Service
from healthinfra.resources.iam import IamRole, trust_policy
from healthinfra.resources.postgres import PgGrants
from healthinfra.step import Step

READ_WRITE = ["DELETE", "INSERT", "SELECT", "UPDATE"]


def table_privileges(service: Service) -> dict[str, list[str]]:
    """What a service's row in the services table allows, per table (pure)."""
    grants: dict[str, set[str]] = {}
    for table in service.owns:
        grants.setdefault(table, set()).update(READ_WRITE)
    for table in service.reads:
        grants.setdefault(table, set()).add("SELECT")
    for table in service.appends:
        grants.setdefault(table, set()).add("INSERT")
    return {f"table:{t}": sorted(p) for t, p in sorted(grants.items())}


def grant_service_tables(inv: Inventory, phase: int):
    return [
        PgGrants(s.db_role, {"database": ["CONNECT"], **table_privileges(s)}, database=inv.database["name"])
        for s in inv.services_at(phase)
    ]


def create_service_iam_roles(inv: Inventory, phase: int):
    resources = []
    for s in inv.services_at(phase):
        desired = {
            "assume_role_policy": trust_policy(inv.aws_account_id),
            "description": f"{s.name} service ({inv.environment}), managed by healthcare-infra",
            "max_session_duration": 3600,
            "tags": {"env": inv.environment, "service": s.name, "managed-by": "healthcare-infra"},
        }
        resources.append(IamRole(inv.resource_name(s.name), desired))
    return resources


STEPS = [
    Step("grant each service only its tables", "security", 1, grant_service_tables, tags=("grants", "database")),
    Step("create an IAM role per service", "security", 1, create_service_iam_roles, tags=("iam",)),
]
