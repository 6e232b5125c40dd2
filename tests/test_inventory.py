"""Inventory validation: every bad input is one line naming the file, the key and the fix."""

from __future__ import annotations

import pytest

from healthinfra.errors import InventoryError
from healthinfra.inventory import load_inventory, parse_phase

from .support.environment import REPO

GOOD = (REPO / "inventories" / "local.yml").read_text()


@pytest.fixture
def inventories(tmp_path):
    (tmp_path / "services.yml").write_text((REPO / "inventories" / "services.yml").read_text())
    return tmp_path


def load_text(inventories, text):
    (inventories / "x.yml").write_text(text)
    return load_inventory("x", inventories)


def test_shipped_inventories_load_and_name_resources():
    local = load_inventory("local", REPO / "inventories")
    assert local.phase == 1 and local.embedded and not local.protected
    assert [s.db_role for s in local.services_at(1)] == ["gateway_svc", "auth_svc", "patient_svc"]
    assert local.resource_name("patient") == "hc-local-patient"
    assert local.aws_endpoint_url == "https://127.0.0.1:54330"
    assert load_inventory("prod", REPO / "inventories").protected
    assert [s.name for s in load_inventory("dev", REPO / "inventories").services_at(4)][-1] == "ai"


@pytest.mark.parametrize(
    "text, expected",
    [
        (GOOD.replace("database:", "databse:"), "x.yml: unknown key `databse`; did you mean `database`?"),
        (
            GOOD.replace("  name: healthcare", "  nmae: healthcare"),
            "x.yml: unknown key `database.nmae`; did you mean `database.name`?",
        ),
        (GOOD.replace("phase: 1", "phase: five"), "x.yml: `phase` must be 1, 2, 3 or 4, got `five`"),
        (GOOD.replace("phase: 1", "phase: 7"), "x.yml: `phase` must be 1, 2, 3 or 4, got `7`"),
        (GOOD.replace("phase: 1", "phase: true"), "x.yml: `phase` must be 1, 2, 3 or 4, got `True`"),
        (GOOD.replace("port: 54329", "port: '54329'"), "x.yml: `database.port` must be a number, got `54329`"),
        (GOOD.replace("port: 54329", "port: 80"), "x.yml: `database.port` must be between 1024 and 65535, got `80`"),
        (GOOD.replace("prefix: hc\n", ""), "x.yml: missing key `prefix`; add it (text)"),
        (
            GOOD.replace("database: embedded", "database: oracle"),
            "x.yml: `providers.database` must be one of `embedded`, `neon` or `postgres`, got `oracle`",
        ),
        (
            GOOD.replace("environment: local", "environment: Local Env"),
            "x.yml: `environment` must be lower-case letters, digits and dashes (it names cloud resources), got `Local Env`",
        ),
        (GOOD.replace("protected: false", "protected: nope"), "x.yml: `protected` must be true or false, got text"),
        (
            GOOD.replace("region: us-east-1", "region: us-east-1; touch /tmp/x"),
            "x.yml: `aws.region` must be an AWS region name like `us-east-1`, got `us-east-1; touch /tmp/x`",
        ),
        (
            GOOD.replace("protected: false", "protected: false\npromotes_from: ../dev"),
            "x.yml: `promotes_from` must name another inventory",
        ),
        ("phase: [1\n", "x.yml: malformed YAML at line 2, column 1"),
        ("- just\n- a list\n", "x.yml: must be a mapping of keys at the top level, got a list"),
    ],
)
def test_bad_inventory_is_one_clear_line(inventories, text, expected):
    with pytest.raises(InventoryError) as caught:
        load_text(inventories, text)
    message = str(caught.value)
    assert message.startswith(str(inventories)) and expected in message
    assert "\n" not in message
    assert caught.value.exit_code == 2


def test_secret_written_instead_of_its_variable_name_is_refused(inventories):
    dev = (
        (REPO / "inventories" / "dev.yml")
        .read_text()
        .replace("api_key_env: NEON_API_KEY", "api_key_env: napi_abc123secret")
    )
    with pytest.raises(InventoryError) as caught:
        load_text(inventories, dev)
    assert "`database.api_key_env` names an environment variable" in str(caught.value)
    assert "napi_abc123secret" not in str(caught.value)


def test_unknown_inventory_lists_the_choices(inventories):
    (inventories / "local.yml").write_text(GOOD)
    with pytest.raises(InventoryError, match=r"no such inventory `staging`; choose one of `local`"):
        load_inventory("staging", inventories)


def test_services_table_is_validated(inventories):
    (inventories / "services.yml").write_text(
        "services:\n  billing:\n    port: 9000\n    phase: 2\n    runs_on: lambda\n"
    )
    with pytest.raises(
        InventoryError, match=r"`services.billing.runs_on` must be one of `railway` or `host`, got `lambda`"
    ):
        load_text(inventories, GOOD)


@pytest.mark.parametrize("value, expected", [("1", 1), (4, 4), (" 3 ", 3)])
def test_parse_phase_accepts(value, expected):
    assert parse_phase(value) == expected


@pytest.mark.parametrize("value", ["0", "5", "five", "", "2.5", None, -1, "१"])
def test_parse_phase_refuses(value):
    with pytest.raises(InventoryError, match=r"^--phase: `phase` must be 1, 2, 3 or 4"):
        parse_phase(value)
