"""Database playbook: the application database, its schema, one login role per service.

Embedded: the database is created with SQL. Neon: the project, the environment's
branch, its compute endpoint, the owner role and the database through Neon's API;
everything after that (migrations, service roles, grants, extensions) is the same
SQL, run as the branch's owner on the URI Neon returns, verifying the server (sslmode=verify-full).
"""

from __future__ import annotations

from healthinfra.inventory import Inventory
from healthinfra.resources.neon import NeonBranch, neon_database_resources
from healthinfra.resources.postgres import PASSWORD_KEPT, PgDatabase, PgMigration, PgRole
from healthinfra.step import Step

# Versioned migrations, in order, with the phase that introduces each. Files live in
# templates/sql/migrations/NAME.up.sql and NAME.down.sql.
MIGRATIONS = (
    ("0001_core_tables", 1),
    ("0002_phi_protection", 2),
    ("0003_ml", 4),
    ("0004_row_security_identity", 2),
    ("0005_appointments_row_security", 3),
    ("0006_ml_row_security", 4),
)
CONNECTION_LIMIT = 20


MIGRATIONS_DIR = "templates/sql/migrations"  # relative to the project root


def create_database(inv: Inventory, phase: int):
    if inv.provider("database").offers(NeonBranch.kind):  # the database is a branch of a Neon project
        return neon_database_resources(inv)
    desired = {"owner": inv.provider("database").admin_role(inv), "encoding": "UTF8", "public_privileges": []}
    return [PgDatabase(inv.database["name"], desired)]


def apply_migrations(inv: Inventory, phase: int):
    return [
        PgMigration.from_files(name, database=inv.database["name"], directory=MIGRATIONS_DIR)
        for name, introduced in MIGRATIONS
        if introduced <= phase
    ]


def create_service_roles(inv: Inventory, phase: int):
    desired = {
        "login": True,
        "superuser": False,
        "createdb": False,
        "createrole": False,
        "bypassrls": False,
        "replication": False,
        "connection_limit": CONNECTION_LIMIT,
        "password": PASSWORD_KEPT,
    }
    return [PgRole(s.db_role, dict(desired), database=inv.database["name"]) for s in inv.services_at(phase)]


STEPS = [
    Step("create the application database", "db", 1, create_database, tags=("database",)),
    Step("apply the schema migrations", "db", 1, apply_migrations, tags=("schema", "migrations")),
    Step("create a login role per service", "db", 1, create_service_roles, tags=("roles",)),
]
