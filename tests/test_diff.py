"""Pure diffs and pure decisions, as tables: current + desired -> actions. No server."""

from __future__ import annotations

import pytest

from healthinfra.inventory import Service
from healthinfra.resource import Action, diff_attributes
from healthinfra.resources.postgres import PgGrants, PgMigration
from playbooks.security import table_privileges

ROLE = {"login": True, "connection_limit": 20}


@pytest.mark.parametrize(
    "current, desired, expected",
    [
        (None, None, []),
        (None, ROLE, [Action("create", after=ROLE)]),
        (ROLE, None, [Action("delete", before=ROLE)]),
        (ROLE, dict(ROLE), []),
        ({"login": False, "connection_limit": 20}, ROLE, [Action("set", "login", False, True)]),
        ({"login": True, "connection_limit": 5}, ROLE, [Action("set", "connection_limit", 5, 20)]),
        # an attribute the resource does not manage (not in desired) is not diffed
        ({**ROLE, "valid_until": "2030"}, ROLE, []),
        # documents compare by content, not key order
        ({"policy": {"b": 1, "a": [1, 2]}}, {"policy": {"a": [1, 2], "b": 1}}, []),
        ({"policy": {"a": [1, 2]}}, {"policy": {"a": [2, 1]}}, [Action("set", "policy", {"a": [1, 2]}, {"a": [2, 1]})]),
    ],
)
def test_diff_attributes(current, desired, expected):
    assert diff_attributes(current, desired) == expected


GRANTS = {"database": ["CONNECT"], "table:users": ["SELECT"]}


@pytest.mark.parametrize(
    "current, desired, expected",
    [
        ({}, GRANTS, [Action("set", "database", [], ["CONNECT"]), Action("set", "table:users", [], ["SELECT"])]),
        (GRANTS, GRANTS, []),
        # a privilege nobody asked for is revoked: the diff is open
        ({**GRANTS, "table:patients": ["SELECT"]}, GRANTS, [Action("set", "table:patients", ["SELECT"], [])]),
        (
            {"database": ["CONNECT"], "table:users": ["SELECT", "UPDATE"]},
            GRANTS,
            [Action("set", "table:users", ["SELECT", "UPDATE"], ["SELECT"])],
        ),
        # absent means no privileges at all
        (GRANTS, None, [Action("set", "database", ["CONNECT"], []), Action("set", "table:users", ["SELECT"], [])]),
        ({}, None, []),
    ],
)
def test_grants_diff(current, desired, expected):
    assert PgGrants("auth_svc", None, database="healthcare").diff(current, desired) == expected


@pytest.mark.parametrize(
    "service, expected",
    [
        (Service("gateway", 8000, 1, "railway", appends=("audit_log",)), {"table:audit_log": ["INSERT"]}),
        (
            Service("patient", 8002, 1, "railway", owns=("patients",), reads=("users",), appends=("audit_log",)),
            {
                "table:audit_log": ["INSERT"],
                "table:patients": ["DELETE", "INSERT", "SELECT", "UPDATE"],
                "table:users": ["SELECT"],
            },
        ),
        # owning a table it also reads gives read-write, once
        (
            Service("x", 9000, 1, "railway", owns=("users",), reads=("users",)),
            {"table:users": ["DELETE", "INSERT", "SELECT", "UPDATE"]},
        ),
    ],
)
def test_table_privileges_follow_the_services_table(service, expected):
    assert table_privileges(service) == expected


def test_edited_migration_is_a_change_of_checksum():
    migration = PgMigration("0001_core_tables", {"checksum": "new"}, database="healthcare", directory="/nowhere")
    assert migration.diff({"checksum": "old"}, {"checksum": "new"}) == [Action("set", "checksum", "old", "new")]
    assert migration.diff(None, {"checksum": "new"}) == [Action("create", after={"checksum": "new"})]


def test_an_applied_migration_that_changed_is_refused_before_any_change():
    from healthinfra.errors import MigrationChanged

    migration = PgMigration(
        "0001_core_tables", {"checksum": "new"}, database="healthcare", directory="templates/sql/migrations"
    )
    with pytest.raises(MigrationChanged, match=r"changed after it was applied \(checksum old in the database"):
        migration.guard(None, [Action("set", "checksum", "old", "new")])
