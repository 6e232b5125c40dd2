"""Security playbook: each service may touch only its own data, in the database and in AWS.

Everything derives from the two shared tables: a service's database grants from
its row in services.yml, its S3 and KMS access from the rows of data_types.yml
that name it in `read` or `write`. A new service is a new row; its role, boundary
and policy follow. All functions here are pure.
"""

from __future__ import annotations

from healthinfra import names
from healthinfra.inventory import Inventory, Service
from healthinfra.privileges import table_privileges
from healthinfra.resources.iam import IamManagedPolicy, IamRole, IamRolePolicy, trust_policy
from healthinfra.resources.postgres import PgGrants
from healthinfra.step import Step
from healthinfra.templates import render_json

SERVICE_POLICY = "data-access"


def grant_service_tables(inv: Inventory, phase: int):
    return [
        PgGrants(s.db_role, {"database": ["CONNECT"], **table_privileges(s)}, database=inv.database["name"])
        for s in inv.services_at(phase)
    ]


# --- AWS ----------------------------------------------------------------------


def boundary_document(inv: Inventory) -> dict:
    return render_json(
        "iam/boundary.json.j2",
        prefix=inv.prefix,
        env=inv.environment,
        region=inv.aws["region"],
        account=inv.aws_account_id,
        key_alias=names.phi_key_alias(inv),
    )


def service_policy(inv: Inventory, service: Service, phase: int) -> dict | None:
    """The service's own S3/KMS policy at this phase, or None when it may touch no data."""
    reads, writes, kms = [], [], set()
    for data_type in inv.data_types_at(phase):
        grant = {
            "sid": data_type.name.title().replace("_", ""),
            "bucket": names.bucket(inv, data_type.bucket),
            "prefix": data_type.prefix,
        }
        encrypted = data_type.data_class != "logs"
        if service.name in data_type.read:
            reads.append(grant)
            if encrypted:
                kms.add("kms:Decrypt")
        if service.name in data_type.write:
            writes.append(grant)
            if encrypted:
                kms.update({"kms:GenerateDataKey", "kms:Decrypt"})  # multipart puts decrypt too
    if not reads and not writes:
        return None
    return render_json(
        "iam/service-policy.json.j2",
        reads=reads,
        writes=writes,
        kms=sorted(kms),
        region=inv.aws["region"],
        account=inv.aws_account_id,
        key_alias=names.phi_key_alias(inv),
    )


def create_service_boundary(inv: Inventory, phase: int):
    return [
        IamManagedPolicy(
            names.boundary_policy(inv),
            {"document": boundary_document(inv)},
            account=inv.aws_account_id,
            description=f"the most any {inv.environment} service may do; managed by healthcare-infra",
        )
    ]


def create_service_iam_roles(inv: Inventory, phase: int):
    resources = []
    for s in inv.services_at(phase):
        desired = {
            "assume_role_policy": trust_policy(inv.aws_account_id),
            "description": f"{s.name} service ({inv.environment}), managed by healthcare-infra",
            "max_session_duration": 3600,
            "permissions_boundary": names.boundary_arn(inv),
            "tags": {"env": inv.environment, "service": s.name, "managed-by": "healthcare-infra"},
        }
        resources.append(IamRole(names.iam_role(inv, s.name), desired))
    return resources


def grant_service_data_access(inv: Inventory, phase: int):
    resources = []
    for s in inv.services_at(phase):
        role = names.iam_role(inv, s.name)
        document = service_policy(inv, s, phase)
        resources.append(
            IamRolePolicy(
                f"{role}/{SERVICE_POLICY}",
                {"document": document} if document else None,
                role=role,
                policy=SERVICE_POLICY,
            )
        )
    return resources


STEPS = [
    Step("grant each service only its tables", "security", 1, grant_service_tables, tags=("grants", "database")),
    Step(
        "create the permissions boundary for service roles",
        "security",
        1,
        create_service_boundary,
        tags=("iam", "boundary"),
    ),
    Step("create an IAM role per service", "security", 1, create_service_iam_roles, tags=("iam",)),
    Step(
        "grant each service only its data in S3 and KMS",
        "security",
        2,
        grant_service_data_access,
        tags=("iam", "policies"),
    ),
]
