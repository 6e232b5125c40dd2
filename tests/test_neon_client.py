"""The Neon client against the contract-checked stand-in: it waits on operations, retries
what Neon says is safe to retry (honouring Retry-After), never repeats a POST that may have
been carried out, and its errors carry Neon's message, code and request id."""

from __future__ import annotations

import shutil

import pytest

from healthinfra.errors import InventoryError, TransientProviderError
from healthinfra.inventory import load_inventory
from healthinfra.providers.neon import NeonClient, NeonError, role_connection_uri
from healthinfra.secret_store import Secret

from .support.environment import REPO, write_neon_inventory


@pytest.fixture
def inventory(tmp_path, monkeypatch):
    for name in ("services.yml", "data_types.yml"):
        shutil.copy(REPO / "inventories" / name, tmp_path / name)
    write_neon_inventory(tmp_path, "neondev")
    monkeypatch.setenv("USER", "alice")
    return load_inventory("neondev", tmp_path)


def create_project(client) -> dict:
    return client.request(
        "POST",
        "/projects",
        what="create project",
        json={"project": {"name": "hc-dev", "branch": {"name": "main", "role_name": "healthcare_owner"}}},
    )


def test_creating_a_project_waits_for_its_operations(neon, inventory):
    client = NeonClient(inventory)
    created = create_project(client)
    assert [op["status"] for op in created["operations"]] == ["running", "running"]  # as returned
    # the client polled them to the end: a mutating call now meets no operation in progress
    branches = client.branches(created["project"]["id"])
    client.request(
        "POST",
        f"/projects/{created['project']['id']}/branches",
        what="branch",
        json={"branch": {"name": "dev-alice", "parent_id": branches["main"]["id"]}},
    )
    assert neon.locked == 0
    assert any("/operations/" in line for line in neon.requests)
    assert client.find_project("hc-dev")["id"] == created["project"]["id"]
    assert client.find_project("hc-prod") is None


def test_throttling_is_retried_after_the_servers_retry_after(neon, inventory):
    client = NeonClient(inventory)
    neon.inject(429, count=2, retry_after=0.3, match="GET /api/v2/projects")
    assert client.find_project("hc-dev") is None
    assert client.retries == 2 and neon.faults_served == {429: 2}
    gets = [line for line in neon.requests if line.startswith("GET /api/v2/projects ")]
    assert gets == ["GET /api/v2/projects 429", "GET /api/v2/projects 429", "GET /api/v2/projects 200"]


def test_locked_and_unavailable_posts_are_retried_without_a_duplicate(neon, inventory):
    client = NeonClient(inventory)
    neon.inject(503, count=1, match="POST /api/v2/projects")
    neon.inject(423, count=1, match="POST /api/v2/projects")
    create_project(client)
    assert client.retries == 2
    assert len(neon.branch_names("hc-dev")) == 1  # one project, with its one default branch
    assert [p for p in neon.requests if p.startswith("POST /api/v2/projects ")][-1].endswith(" 201")


def test_a_post_that_failed_with_500_is_not_repeated_by_the_client(neon, inventory):
    client = NeonClient(inventory)
    neon.inject(500, count=1, match="POST /api/v2/projects")
    with pytest.raises(TransientProviderError) as raised:
        create_project(client)
    # transient (the runner re-reads, then retries), but never sent twice here: it may have been done
    assert sum(line.startswith("POST /api/v2/projects") for line in neon.requests) == 1
    assert "Neon HTTP 500 injected" in str(raised.value)


def test_errors_carry_neons_message_code_and_request_id_but_never_the_key(neon, inventory, monkeypatch):
    monkeypatch.setenv("NEON_API_KEY", "not-the-right-key")
    client = NeonClient(inventory)
    with pytest.raises(NeonError) as raised:
        client.find_project("hc-dev")
    error = raised.value
    assert (error.status, error.code) == (401, "unauthorized")
    assert error.request_id in neon.request_ids  # Neon echoes the X-Request-ID the client sent
    assert "authentication failed" in str(error) and error.request_id in str(error)
    assert "not-the-right-key" not in str(error) and "not-the-right-key" not in repr(error)


def test_a_missing_api_key_is_refused_before_any_request(neon, inventory, monkeypatch):
    monkeypatch.delenv("NEON_API_KEY")
    with pytest.raises(InventoryError) as raised:
        NeonClient(inventory).find_project("hc-dev")
    assert "`database.api_key_env` names $NEON_API_KEY, which is not set" in str(raised.value)
    assert neon.requests == []


def test_a_request_outside_the_contract_fails(neon, inventory):
    client = NeonClient(inventory)
    project = create_project(client)["project"]
    with pytest.raises(NeonError) as raised:  # `type` must be read_write or read_only
        client.request(
            "POST",
            f"/projects/{project['id']}/endpoints",
            what="endpoint",
            json={"endpoint": {"branch_id": "br-x", "type": "read_sometimes"}},
        )
    assert raised.value.status == 400
    assert len(neon.violations) == 1 and "read_sometimes" in neon.violations[0]
    neon.violations.clear()  # seen, and asserted: the fixture checks the rest


def test_a_service_uri_names_the_endpoint_the_role_and_tls(neon, inventory):
    client = NeonClient(inventory)
    project = create_project(client)["project"]
    main = client.branches(project["id"])["main"]
    client.request(
        "POST",
        f"/projects/{project['id']}/branches/{main['id']}/databases",
        what="database",
        json={"database": {"name": "healthcare", "owner_name": "healthcare_owner"}},
    )
    inventory.database["branch"] = "main"
    uri = role_connection_uri(inventory, "patient_svc", Secret("s3cret/pw"))
    assert str(uri) == "***"
    text = uri.reveal()
    assert text.startswith("postgresql://patient_svc:s3cret%2Fpw@127.0.0.1:") and "/healthcare?" in text
    assert text.endswith("sslmode=verify-full&sslrootcert=" + inventory.database["sslrootcert"])


def test_the_wait_follows_retry_after_within_the_cap(neon, inventory, monkeypatch):
    import time

    waits, real_sleep = [], time.sleep
    monkeypatch.setattr(time, "sleep", lambda seconds: (waits.append(seconds), real_sleep(0.001)))
    client = NeonClient(inventory)
    neon.inject(429, count=1, retry_after=7, match="GET /api/v2/projects")
    neon.inject(503, count=1, retry_after=999, match="GET /api/v2/projects")
    assert client.find_project("hc-dev") is None
    assert waits == [7.0, 30]  # what the server asked; a day-long Retry-After is held to the bound's cap


def test_lookups_are_asked_once_per_run_until_something_changes(neon, inventory):
    client = NeonClient(inventory)
    created = create_project(client)
    project = created["project"]["id"]

    def asked(path: str) -> int:
        return sum(1 for line in neon.requests if line.startswith(f"GET /api/v2{path}"))

    before = asked("/projects "), asked(f"/projects/{project}/branches ")
    for _ in range(3):  # what a run's URL lookups repeat: the project, then its branches
        assert client.find_project("hc-dev")["id"] == project
        assert "main" in client.branches(project)
    assert (asked("/projects "), asked(f"/projects/{project}/branches ")) == (before[0] + 1, before[1] + 1)
    client.request(  # a change: what was looked up may no longer hold
        "POST",
        f"/projects/{project}/branches",
        what="branch",
        json={"branch": {"name": "dev-alice", "parent_id": client.branches(project)["main"]["id"]}},
    )
    assert "dev-alice" in client.branches(project)
    assert asked(f"/projects/{project}/branches ") == before[1] + 2
