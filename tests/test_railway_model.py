"""Pure parts of the Railway provider: its diffs, the inventory's hosting keys, Retry-After."""

from __future__ import annotations

from pathlib import Path

import pytest

from healthinfra.errors import InventoryError
from healthinfra.faults import retry_after_seconds
from healthinfra.inventory import load_inventory
from healthinfra.resources.railway import (
    RailwayDeployment,
    RailwayInstance,
    RailwayProject,
    RailwayService,
    RailwayVariables,
)
from playbooks.railway import configuration, instance_settings

WHERE = {"project": "healthcare-infra", "environment": "dev"}

REPO_INVENTORIES = Path(__file__).resolve().parent.parent / "inventories"  # not the session's copy


def ops(actions):
    return [(a.op, a.attribute) for a in actions]


@pytest.mark.parametrize(
    "current, desired, expected",
    [
        (None, {}, [("create", None)]),
        ({"environments": ["dev"]}, {}, []),
        ({"environments": ["dev"]}, None, [("delete", None)]),
        ({"environments": ["dev", "production"]}, None, []),  # another inventory's environment lives there: kept
        ({"environments": []}, None, [("delete", None)]),
        (None, None, []),
    ],
)
def test_a_project_is_deleted_only_when_it_holds_nothing_else(current, desired, expected):
    assert ops(RailwayProject("healthcare-infra", desired, **WHERE).diff(current, desired)) == expected


@pytest.mark.parametrize(
    "current, desired, expected",
    [
        (None, {}, [("create", None)]),
        ({"shared_with": []}, None, [("delete", None)]),
        ({"shared_with": ["production"]}, None, []),  # Railway would delete it in production too
        ({"shared_with": ["production"]}, {}, []),
    ],
)
def test_a_service_that_also_runs_elsewhere_is_kept(current, desired, expected):
    assert ops(RailwayService("auth", desired, **WHERE).diff(current, desired)) == expected


def test_variables_diff_sets_changed_and_removes_managed_leftovers():
    resource = RailwayVariables(
        "auth",
        {"PORT": "8001", "DATABASE_URL": "***database URL of the service's role"},
        managed=["PORT", "DATABASE_URL", "LOG_GROUP"],
        **WHERE,
    )
    current = {"PORT": "8001", "DATABASE_URL": "***sha256:0123456789abcdef", "LOG_GROUP": "/hc/dev/auth"}
    assert ops(resource.diff(current, resource.desired)) == [("set", "DATABASE_URL"), ("set", "LOG_GROUP")]
    assert ops(resource.diff(None, resource.desired)) == [("create", None)]
    assert sorted(ops(resource.diff(current, None))) == [("set", "DATABASE_URL"), ("set", "LOG_GROUP"), ("set", "PORT")]
    assert resource.diff(None, None) == []


@pytest.mark.parametrize(
    "current, desired, expected",
    [
        (None, {"config": "a"}, [("set", "config")]),
        ({"deployment": "d1", "config": None}, {"config": "a"}, [("set", "config")]),  # not ours, or unknown
        ({"deployment": "d1", "config": "a"}, {"config": "a"}, []),
        ({"deployment": "d2", "config": "b"}, {"config": "a"}, [("set", "config")]),
        ({"deployment": "d2", "config": "b"}, {"deployment": "d1", "config": "a"}, [("set", "deployment")]),  # undo
        ({"deployment": "d3", "config": "a"}, {"deployment": "d1", "config": "a"}, []),  # already rolled back
        ({"deployment": "d1", "config": None}, {"deployment": "d1", "config": None}, []),
        ({"deployment": "d1", "config": "a"}, None, []),
    ],
)
def test_a_deployment_follows_the_configuration_and_undo_rolls_back(current, desired, expected):
    assert ops(RailwayDeployment("auth", desired, **WHERE).diff(current, desired)) == expected


def test_instance_settings_come_from_the_inventory_and_any_change_changes_the_fingerprint():
    dev = load_inventory("dev", REPO_INVENTORIES)
    gateway = next(s for s in dev.services if s.name == "gateway")
    assert instance_settings(dev, gateway) == {
        "source": {"image": "ghcr.io/healthcare-infra/gateway:1.0.0"},
        "healthcheckPath": "/health",
        "numReplicas": 1,
    }
    assert configuration(dev, gateway, 1) == configuration(dev, gateway, 4)  # the gateway touches no bucket
    patient = next(s for s in dev.services if s.name == "patient")
    assert configuration(dev, patient, 1) != configuration(dev, patient, 2)  # its buckets arrive in phase 2
    assert RailwayInstance("gateway", None, **WHERE).diff({"numReplicas": 1}, None) == []


def write(tmp_path, hosting: str):
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent / "inventories"
    for name in ("services.yml", "data_types.yml"):
        (tmp_path / name).write_text((repo / name).read_text())
    text = (repo / "dev.yml").read_text().split("\nhosting:\n")[0] + "\n"
    (tmp_path / "x.yml").write_text(text + hosting)


FULL = "".join(f"    {s}: {{image: ghcr.io/o/{s}:1}}\n" for s in ("gateway", "auth", "patient", "provider"))


@pytest.mark.parametrize(
    "services, message",
    [
        (FULL, "missing key `hosting.services.appointment`; add `appointment: {image: REGISTRY/IMAGE:TAG}`"),
        (FULL + "    appointment: {image: a, repo: b/c}\n", "`hosting.services.appointment` needs exactly one source"),
        (FULL + "    appointment: {}\n", "it has neither"),
        (FULL + "    appointment: {repo: not a repo}\n", "must be one word"),
        (FULL + "    appointment: {repo: nothing}\n", "must be a GitHub `OWNER/REPO`"),
        (
            FULL + "    appointment: {image: i, replicas: 0}\n",
            "`hosting.services.appointment.replicas` must be between 1 and 50",
        ),
        (FULL + "    appointment: {image: i, replica: 2}\n", "did you mean `hosting.services.appointment.replicas`?"),
        (
            FULL + "    appointment: {image: i}\n    ai: {image: i}\n",
            "`hosting.services.ai` is not a service services.yml runs on Railway",
        ),
    ],
)
def test_hosting_services_are_validated_naming_file_key_and_fix(tmp_path, services, message):
    write(tmp_path, f"hosting:\n  project: p\n  environment: dev\n  token_env: RAILWAY_TOKEN\n  services:\n{services}")
    with pytest.raises(InventoryError, match="x.yml: .*" + __import__("re").escape(message)):
        load_inventory("x", tmp_path)


def test_retry_after_is_seconds_or_a_date():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: at once


def test_errors_that_quote_their_input_are_redacted_before_anyone_sees_them():
    import graphql

    from healthinfra.providers.railway import redact
    from tests.support.fakes.railway_server import load_schema

    url = "postgresql://patient_svc:Zq8-secret-pw@ep-x.neon.tech/healthcare?sslmode=require"
    variables = {
        "input": {
            "projectId": "p",
            "environmentId": "e",
            "serviceId": "s",
            "variables": {"DATABASE_URL": url},
            "bogus": True,
        }
    }
    document = graphql.parse(
        "mutation VariableCollectionUpsert($input: VariableCollectionUpsertInput!) {"
        " variableCollectionUpsert(input: $input) }"
    )
    result = graphql.execute(load_schema(), document, variable_values=variables)
    message = "; ".join(e.message for e in result.errors)
    assert "Zq8-secret-pw" in message, "graphql-core quotes the refused input, secrets included"
    assert "Zq8-secret-pw" not in redact(message, variables) and "***" in redact(message, variables)
