"""The whole chain on the `dev` inventory: Neon, AWS and Railway, each a local stand-in.

`invoke deploy-dev -i dev` runs exactly as against the real accounts; environment
variables point it at the Neon stand-in (NEON_API_URL), the moto endpoint
(AWS_ENDPOINT_URL, AWS_CA_BUNDLE) and the Railway stand-in (RAILWAY_API_URL). Both
stand-ins check every request against the vendors' published descriptions and fail
the test on any violation. The dev inventory's AWS account id is swapped for moto's, and
its `database.sslrootcert` names the stand-in's certificate (Neon's own chains to the
system's roots): the only changes made to it.
"""

from __future__ import annotations

import shutil

import pytest

from healthinfra.inventory import load_inventory
from healthinfra.state import open_state

from .support.environment import aws_env, buckets, neon_standin_certificate
from .support.fakes.railway_server import RailwayStandIn
from .support.railway import deployments_of, services, variables_of

TOKEN = "rw-dev-chain-token-51c2"


@pytest.fixture
def railway():
    stand_in = RailwayStandIn(token=TOKEN).start()
    yield stand_in
    stand_in.stop()
    assert stand_in.violations == [], "requests Railway's schema refuses"


@pytest.fixture
def dev(neon, railway, servers, invoke, monkeypatch):
    path = servers["inventories"] / "dev.yml"
    original = path.read_text()
    assert 'account_id: "111111111111"' in original
    path.write_text(
        original.replace('account_id: "111111111111"', 'account_id: "123456789012"').replace(
            "  api_key_env: NEON_API_KEY\n",
            f"  api_key_env: NEON_API_KEY\n  sslrootcert: {neon_standin_certificate()}\n",
        )
    )
    monkeypatch.setenv("USER", "alice")
    for key, value in aws_env(servers).items():  # this process reads dev's secrets too: from moto, never AWS
        monkeypatch.setenv(key, value)
    environment = {**aws_env(servers), "USER": "alice", "RAILWAY_API_URL": railway.url, "RAILWAY_TOKEN": TOKEN}
    try:
        # dev keeps its state in its own bucket and Secrets Manager: a team's first step
        initialised = invoke("state.init", "-i", "dev", env_overrides=environment)
        assert initialised.code == 0, initialised
        yield environment
    finally:
        cleaned = invoke("cleanup-dev", "-i", "dev", "--destroy-data", env_overrides=environment, timeout=900)
        path.write_text(original)
        shutil.rmtree(servers["state"] / "dev", ignore_errors=True)
        assert cleaned.code == 0, cleaned


def test_deploy_dev_creates_then_changes_nothing_and_rollback_removes_it_all(dev, neon, railway, servers, invoke):
    first = invoke("deploy-dev", "-i", "dev", "--phase", "4", env_overrides=dev, timeout=900)
    assert first.code == 0, first
    assert "all healthy" in first.out

    # Neon: the developer's branch; AWS: the phase-4 buckets; Railway: the five hosted services
    assert neon.branch_names("hc-dev") == ["dev-alice", "main"]
    assert buckets(servers, "hc-dev-") == [
        "hc-dev-access-logs",
        "hc-dev-analytics-exports",
        "hc-dev-medical-documents",
        "hc-dev-medical-images",
        "hc-dev-ml-models",
    ]
    assert [p["name"] for p in railway.projects.values()] == ["healthcare-infra"]
    assert [e["name"] for e in railway.environments.values()] == ["dev"]
    assert sorted(services(railway)) == ["appointment", "auth", "gateway", "patient", "provider"]

    # each service's DATABASE_URL is its own Neon role's URI; its bucket variables name the S3 buckets
    inventory = load_inventory("dev")
    from healthinfra.providers.neon import role_connection_uri

    secrets = open_state(inventory).secrets()  # dev keeps them in Secrets Manager
    for name in ("patient", "appointment"):
        variables = variables_of(railway, name)
        expected = role_connection_uri(inventory, f"{name}_svc", secrets.get(f"pg.{name}_svc")).reveal()
        assert variables["DATABASE_URL"] == expected
        assert expected.startswith(f"postgresql://{name}_svc:")
        assert expected.endswith(f"/healthcare?sslmode=verify-full&sslrootcert={neon_standin_certificate()}")
        assert variables["LOG_GROUP"] == f"/hc/dev/{name}" and "AWS_ENDPOINT_URL" not in variables
    assert variables_of(railway, "patient")["MEDICAL_DOCUMENTS_BUCKET"] == "hc-dev-medical-documents"
    assert variables_of(railway, "appointment")["APPOINTMENT_ATTACHMENTS_BUCKET"] == "hc-dev-medical-documents"
    assert all([d["status"] for d in deployments_of(railway, s)] == ["SUCCESS"] for s in services(railway))

    sent = list(railway.mutations)
    neon_calls = len(neon.requests)
    second = invoke("deploy", "-i", "dev", "--phase", "4", "--json", env_overrides=dev, timeout=900)
    assert second.code == 0 and second.json["changed"] == 0 and second.json["failed"] == 0, second
    assert railway.mutations == sent, "a converged environment gets no Railway mutation"
    assert all(not line.startswith(("POST", "PATCH", "DELETE")) for line in neon.requests[neon_calls:])

    undone = invoke("rollback", "-i", "dev", "--destroy-data", "--json", env_overrides=dev, timeout=900)
    assert undone.code == 0 and undone.json["failed"] == 0, undone
    assert neon.branch_names("hc-dev") == ["main"]
    assert buckets(servers, "hc-dev-") == []
    assert (railway.projects, railway.services, railway.deployments) == ({}, {}, {})
