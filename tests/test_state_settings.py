"""The inventory's `state:` and `secrets:` keys, and the plain `postgres` provider's URL, as tables."""

from __future__ import annotations

import pytest

from healthinfra.errors import InventoryError
from healthinfra.providers import PROVIDERS
from healthinfra.secret_store import Secret
from healthinfra.state import secrets_settings, state_settings


@pytest.mark.parametrize(
    "raw, expected",
    [
        (None, {"backend": "local"}),
        ({"backend": "local"}, {"backend": "local"}),
        (
            {"backend": "s3", "bucket": "hc-state-dev"},
            {"backend": "s3", "bucket": "hc-state-dev", "prefix": "dev/", "lease_seconds": 60},
        ),
        (
            {"backend": "s3", "bucket": "b.example-1", "prefix": "teams/dev/", "lease_seconds": 15},
            {"backend": "s3", "bucket": "b.example-1", "prefix": "teams/dev/", "lease_seconds": 15},
        ),
    ],
)
def test_state_settings_are_made_concrete(raw, expected):
    assert state_settings(raw, "dev.yml", "dev") == expected


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"backend": "dynamo"}, "dev.yml: `state.backend` must be one of `local` or `s3`, got `dynamo`"),
        ({"backend": "s3"}, "dev.yml: `state.bucket` must name the state bucket"),
        ({"backend": "s3", "bucket": "Bad_Bucket"}, "`state.bucket` must name the state bucket"),
        ({"backend": "s3", "bucket": "hc-state", "prefix": "/abs"}, "`state.prefix` must look like `dev/`"),
        ({"backend": "s3", "bucket": "hc-state", "lease_seconds": 5}, "`state.lease_seconds` must be between 10"),
        ({"backend": "local", "bucket": "hc-state"}, "`state.bucket` is for `state.backend: s3`"),
        ({"backend": "s3", "buckt": "x"}, "unknown key `state.buckt`; did you mean `state.bucket`?"),
        ({"bucket": "x"}, "missing key `state.backend`"),
    ],
)
def test_bad_state_settings_name_the_key(raw, message):
    with pytest.raises(InventoryError) as refused:
        state_settings(raw, "dev.yml", "dev")
    assert message in str(refused.value) and refused.value.exit_code == 2


@pytest.mark.parametrize(
    "raw, expected",
    [
        (None, {"backend": "file"}),
        ({"backend": "file"}, {"backend": "file"}),
        ({"backend": "secretsmanager"}, {"backend": "secretsmanager"}),
    ],
)
def test_secrets_settings(raw, expected):
    assert secrets_settings(raw, "dev.yml") == expected


def test_a_bad_secrets_backend_is_refused():
    with pytest.raises(
        InventoryError, match="`secrets.backend` must be one of `file` or `secretsmanager`, got `vault`"
    ):
        secrets_settings({"backend": "vault"}, "dev.yml")


class Inv:
    class path:
        name = "own.yml"

    database = {"name": "healthcare", "admin_url_env": "OWN_ADMIN_URL"}


def server():
    return PROVIDERS["database"]["postgres"](dict(Inv.database))


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "which is not set; export the admin role's URL there"),
        ("mysql://root:pw@db.example:3306/x", "does not hold a `postgresql://` URL"),
        ("postgresql://admin:s3cr3t-pw@/postgres?host=/var/run/postgresql", "names no TCP host"),
        ("postgresql://db.example:5432/postgres", "names no user"),
    ],
)
def test_a_bad_admin_url_is_refused_without_echoing_it(monkeypatch, value, message):
    monkeypatch.setenv("OWN_ADMIN_URL", value)
    with pytest.raises(InventoryError) as refused:
        server().check_credentials(Inv)
    text = str(refused.value)
    assert message in text and "own.yml: `database.admin_url_env` names $OWN_ADMIN_URL" in text
    assert "s3cr3t-pw" not in text and refused.value.exit_code == 2


@pytest.mark.parametrize(
    "url, root",
    [
        ("postgresql://admin:pw@db.example:6432/postgres?sslmode=disable", "system"),  # verify-full, whatever it says
        ("postgresql://admin:pw@db.example/postgres?sslrootcert=/etc/rds-ca.pem&sslmode=require", "/etc/rds-ca.pem"),
    ],
)
def test_every_connection_verifies_the_server(monkeypatch, url, root):
    monkeypatch.setenv("OWN_ADMIN_URL", url)
    provider = server()
    admin = provider.admin_conninfo(Inv, "postgres")
    assert (admin["sslmode"], admin["sslrootcert"], admin["user"], admin["password"]) == (
        "verify-full",
        root,
        "admin",
        "pw",
    )
    role = provider.role_conninfo(Inv, "auth_svc", Secret("p@ss w/rd"))
    assert (role["dbname"], role["sslmode"], role["sslrootcert"], role["host"]) == (
        "healthcare",
        "verify-full",
        root,
        "db.example",
    )
    service_url = provider.role_url(Inv, "auth_svc", Secret("p@ss w/rd"))
    assert str(service_url) == "***"
    assert service_url.reveal().startswith("postgresql://auth_svc:p%40ss%20w%2Frd@db.example:")
    assert "sslmode=verify-full" in service_url.reveal() and f"sslrootcert={root}" in service_url.reveal()
    assert provider.admin_role(Inv) == "admin"
