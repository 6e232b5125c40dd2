"""Neon's pure parts: the inventory's per-developer branch, the resources' diffs, the
client's error classification and the AWS provider's endpoint, with no server at all."""

from __future__ import annotations

import shutil

import pytest

from healthinfra.errors import InventoryError
from healthinfra.faults import retry_after_seconds
from healthinfra.inventory import load_inventory
from healthinfra.providers.aws import AwsClients
from healthinfra.providers.neon import require_tls, with_credentials
from healthinfra.resource import Action
from healthinfra.resources.neon import NeonBranch, NeonDatabase, NeonEndpoint, NeonProject, NeonRole
from healthinfra.secret_store import Secret
from playbooks.db import create_database

from .support.environment import REPO, write_neon_inventory


@pytest.fixture
def directory(tmp_path):
    for name in ("services.yml", "data_types.yml"):
        shutil.copy(REPO / "inventories" / name, tmp_path / name)
    return tmp_path


def test_the_branch_is_per_developer_from_user(directory, monkeypatch):
    write_neon_inventory(directory, "neondev")
    monkeypatch.setenv("USER", "alice")
    inventory = load_inventory("neondev", directory)
    assert inventory.database["branch"] == "dev-alice"
    assert inventory.database["parent_branch"] == "main" and inventory.database["owner_role"] == "healthcare_owner"
    project, branch, endpoint, owner, database = create_database(inventory, 1)
    assert (branch.name, branch.desired) == ("dev-alice", {"parent": "main"})
    assert (owner.name, database.desired["owner"]) == ("healthcare_owner", "healthcare_owner")


def test_the_shipped_dev_inventory_branches_per_developer(monkeypatch):
    monkeypatch.setenv("USER", "bob")
    dev = load_inventory("dev", REPO / "inventories")
    assert dev.database["branch"] == "dev-bob" and dev.database["branch_template"] == "dev-{user}"
    prod = load_inventory("prod", REPO / "inventories")
    assert prod.database["branch"] == "main"
    assert create_database(prod, 1)[1].desired == {"parent": None}  # the project's default branch


@pytest.mark.parametrize("user", ["Alice", "a b", "-x", "x" * 40, "alice;rm"])
def test_a_user_that_cannot_name_a_branch_is_refused(directory, monkeypatch, user):
    write_neon_inventory(directory, "neondev")
    monkeypatch.setenv("USER", user)
    with pytest.raises(InventoryError) as raised:
        load_inventory("neondev", directory)
    assert raised.value.exit_code == 2
    assert "neondev.yml: `database.branch` is `dev-{user}`, whose `{user}` comes from $USER" in str(raised.value)


def test_without_user_the_login_name_names_the_branch(directory, monkeypatch):
    import os
    import pwd

    write_neon_inventory(directory, "neondev")
    monkeypatch.delenv("USER", raising=False)
    assert load_inventory("neondev", directory).database["branch"] == f"dev-{pwd.getpwuid(os.getuid()).pw_name}"


def test_a_bad_branch_name_is_refused(directory):
    write_neon_inventory(directory, "neondev", branch="Dev_Branch")
    with pytest.raises(InventoryError, match="`database.branch` must be lower-case letters, digits and dashes"):
        load_inventory("neondev", directory)


def test_project_is_found_or_created_never_deleted():
    project = NeonProject("hc-dev", {}, default_branch="main", owner_role="o")
    assert project.diff(None, {}) == [Action("create", after={})]
    assert project.diff({}, {}) == []
    assert project.diff({}, None) == []  # cleanup and rollback keep it
    assert "never deleted" in project.with_desired(None).noop_reason({})


def test_branch_diff():
    branch = NeonBranch("dev-alice", {"parent": "main"}, project="hc-dev", database="healthcare")
    assert branch.diff(None, {"parent": "main"}) == [Action("create", after={"parent": "main"})]
    assert branch.diff({"parent": "main", "default": False}, {"parent": "main"}) == []
    assert branch.diff({"parent": "main", "default": False}, None) == [
        Action("delete", before={"parent": "main", "default": False})
    ]
    assert branch.diff({"parent": "staging", "default": False}, {"parent": "main"}) == [
        Action("set", "parent", "staging", "main")
    ]
    assert branch.diff({"parent": None, "default": True}, None) == []  # Neon keeps the default branch


def test_endpoint_role_and_database_diffs():
    endpoint = NeonEndpoint("dev-alice", {"type": "read_write"}, project="hc-dev")
    assert endpoint.diff(None, {"type": "read_write"})[0].op == "create"
    assert endpoint.diff({"type": "read_write"}, {"type": "read_write"}) == []
    assert endpoint.diff({"type": "read_write"}, None)[0].op == "delete"
    role = NeonRole("healthcare_owner", {}, project="hc-dev", branch="dev-alice")
    assert role.diff(None, {})[0].op == "create" and role.diff({}, None) == []
    database = NeonDatabase("healthcare", {"owner": "o", "public_privileges": []}, project="hc-dev", branch="b")
    assert database.diff(
        {"owner": "o", "public_privileges": ["CONNECT", "TEMPORARY"]}, {"owner": "o", "public_privileges": []}
    ) == [Action("set", "public_privileges", ["CONNECT", "TEMPORARY"], [])]
    assert database.diff({"owner": "o", "public_privileges": []}, None)[0].op == "delete"


def test_uris_always_verify_the_server_and_swap_credentials_safely():
    assert (
        require_tls("postgresql://o:p@ep-x.aws.neon.tech/neondb")
        == "postgresql://o:p@ep-x.aws.neon.tech/neondb?sslmode=verify-full&sslrootcert=system"
    )
    assert (
        require_tls("postgresql://o:p@h/db?sslmode=disable&channel_binding=require&sslrootcert=/x.pem", "/ca.pem")
        == "postgresql://o:p@h/db?channel_binding=require&sslmode=verify-full&sslrootcert=/ca.pem"
    ), "whatever the URI said, verify-full against the inventory's roots"
    uri = with_credentials(
        Secret("postgresql://owner:ownerpw@ep-x.aws.neon.tech/healthcare?sslmode=require"),
        "patient_svc",
        Secret("p@ss:w/rd"),
    )
    assert uri.reveal() == "postgresql://patient_svc:p%40ss%3Aw%2Frd@ep-x.aws.neon.tech/healthcare?sslmode=require"
    assert "ownerpw" not in uri.reveal() and str(uri) == "***"


@pytest.mark.parametrize("header, seconds", [("2", 2.0), ("0.5", 0.5), (None, None), ("soon", None), ("-3", 0.0)])
def test_retry_after(header, seconds):
    assert retry_after_seconds(header) == seconds


def test_the_aws_provider_leaves_the_endpoint_to_boto3(directory, monkeypatch):
    write_neon_inventory(directory, "neondev")
    monkeypatch.setenv("USER", "alice")
    inventory = load_inventory("neondev", directory)
    assert inventory.aws_endpoint_url is None
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert AwsClients(inventory).client("s3").meta.endpoint_url == "http://127.0.0.1:4566"
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    assert AwsClients(inventory).client("s3").meta.endpoint_url == "https://s3.amazonaws.com"
