"""The variables a hosted service gets: one pure function for both hosting providers."""

from __future__ import annotations

from pathlib import Path

import pytest

from healthinfra.errors import ProviderError
from healthinfra.inventory import load_inventory
from healthinfra.secret_store import Secret, SecretStore
from healthinfra.service_env import (
    DATABASE_URL_REF,
    database_url,
    desired_variables,
    digest,
    managed_names,
    needs_keeping,
    observed,
    resolve,
    service_variables,
    stash,
)

REPO_INVENTORIES = Path(__file__).resolve().parent.parent / "inventories"  # not the session's copy


@pytest.fixture(scope="module")
def local():
    return load_inventory("local", REPO_INVENTORIES)


def service(inv, name):
    return next(s for s in inv.services if s.name == name)


def test_a_service_gets_its_own_database_url_region_log_group_and_port(local):
    # a password no path can hold by chance (`pw` was found in a random temporary directory's name)
    url = Secret("postgresql://patient_svc:Pw-7dQ2-never-shown@127.0.0.1:54329/healthcare?sslmode=require")
    variables = service_variables(local, service(local, "patient"), 1, url)
    assert variables == {
        "DATABASE_URL": url,
        "AWS_REGION": "us-east-1",
        "LOG_GROUP": "/hc/local/patient",
        "PORT": "8002",
        "AWS_ENDPOINT_URL": "https://127.0.0.1:54330",
        "AWS_CA_BUNDLE": str(local.state_dir / "tls" / "server.crt"),
    }
    assert "Pw-7dQ2-never-shown" not in repr(variables)


@pytest.mark.parametrize(
    "name, phase, buckets",
    [
        ("gateway", 4, {}),  # holds no PHI: no bucket at any phase
        ("patient", 1, {}),  # buckets come with phase 2
        (
            "patient",
            2,
            {
                "MEDICAL_DOCUMENTS_BUCKET": "hc-local-medical-documents",
                "MEDICAL_IMAGES_BUCKET": "hc-local-medical-images",
            },
        ),
        (
            "appointment",
            3,
            {
                "APPOINTMENT_ATTACHMENTS_BUCKET": "hc-local-medical-documents",
                "APPOINTMENT_ATTACHMENTS_PREFIX": "appointments/",
            },
        ),
        (
            "provider",
            3,
            {
                "MEDICAL_DOCUMENTS_BUCKET": "hc-local-medical-documents",
                "MEDICAL_IMAGES_BUCKET": "hc-local-medical-images",
                "APPOINTMENT_ATTACHMENTS_BUCKET": "hc-local-medical-documents",
                "APPOINTMENT_ATTACHMENTS_PREFIX": "appointments/",
            },
        ),
        ("ai", 4, {"ML_MODELS_BUCKET": "hc-local-ml-models", "ANALYTICS_EXPORTS_BUCKET": "hc-local-analytics-exports"}),
    ],
)
def test_buckets_are_those_the_data_types_table_lets_the_service_touch(local, name, phase, buckets):
    variables = desired_variables(local, service(local, name), phase)
    assert {k: v for k, v in variables.items() if k.endswith(("_BUCKET", "_PREFIX"))} == buckets
    assert variables["DATABASE_URL"] == DATABASE_URL_REF


def test_names_the_runner_manages_cover_every_phase(local):
    names = managed_names(local, service(local, "provider"))
    assert {"DATABASE_URL", "PORT", "MEDICAL_IMAGES_BUCKET", "APPOINTMENT_ATTACHMENTS_PREFIX"} <= set(names)
    assert "ML_MODELS_BUCKET" not in names


def test_a_cloud_inventory_gets_no_endpoint_override():
    dev = load_inventory("dev", REPO_INVENTORIES)
    variables = desired_variables(dev, service(dev, "auth"), 4)
    assert "AWS_ENDPOINT_URL" not in variables and variables["LOG_GROUP"] == "/hc/dev/auth"


def test_secret_values_appear_only_as_reference_or_digest(tmp_path):
    store = SecretStore(tmp_path / "secrets.json")
    wanted = Secret("postgresql://a:new@h/db")
    assert observed("PORT", "8000", wanted) == "8000"
    assert observed("DATABASE_URL", "postgresql://a:new@h/db", wanted) == DATABASE_URL_REF
    old = observed("DATABASE_URL", "postgresql://a:old@h/db", wanted)
    assert old == "***database URL of the service's role, with a password it no longer has"
    other = observed("DATABASE_URL", "postgresql://b:old@h/db", wanted)
    assert other == digest("postgresql://b:old@h/db") and "old" not in other
    assert resolve(old, store, lambda: wanted) == "postgresql://a:new@h/db"  # an old password of ours is gone
    assert not needs_keeping("DATABASE_URL", "postgresql://a:old@h/db", wanted)
    assert needs_keeping("DATABASE_URL", "postgresql://b:old@h/db", wanted)
    with pytest.raises(ProviderError, match="not in .*secrets.json"):
        resolve(other, store, lambda: wanted)
    stash(store, "postgresql://b:old@h/db")
    assert resolve(other, store, lambda: wanted) == "postgresql://b:old@h/db"
    assert resolve(DATABASE_URL_REF, store, lambda: wanted) == "postgresql://a:new@h/db"
    assert resolve("8000", store, lambda: wanted) == "8000"


def test_the_embedded_url_uses_the_role_password_on_the_tls_front(local, tmp_path):
    store = SecretStore(tmp_path / "secrets.json")
    with pytest.raises(ProviderError, match="no password for database role `auth_svc`.*invoke db.deploy -i local"):
        database_url(local, service(local, "auth"), store)
    store.put("pg.auth_svc", Secret("s3cret-Pw_1"))
    url = database_url(local, service(local, "auth"), store)
    certificate = local.state_dir / "tls" / "server.crt"
    assert url.reveal() == (
        f"postgresql://auth_svc:s3cret-Pw_1@127.0.0.1:54329/healthcare?sslmode=verify-full&sslrootcert={certificate}"
    )
    assert str(url) == "***"
