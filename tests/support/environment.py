"""The test environment's inventories: the `test` inventory on free ports, copies with another
services table, a dev-like Neon inventory, and the AWS settings that point a client at the
suite's moto server."""

from __future__ import annotations

import os
import socket
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INVENTORY = "test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_inventory(directory: Path, name: str, pg_port: int, aws_port: int, **overrides) -> Path:
    text = (REPO / "inventories" / "local.yml").read_text()
    text = text.replace("port: 54329", f"port: {pg_port}").replace("port: 54330", f"port: {aws_port}")
    for key, value in overrides.items():
        text += f"{key}: {value}\n"
    path = directory / f"{name}.yml"
    path.write_text(text)
    return path


def inventories_with_services(workspace: dict, directory: Path, old: str, new: str) -> Path:
    """A copy of the test inventories whose services table has `old` replaced by `new`."""
    directory.mkdir()
    for name in (f"{INVENTORY}.yml", "data_types.yml"):
        (directory / name).write_text((workspace["inventories"] / name).read_text())
    services = (workspace["inventories"] / "services.yml").read_text()
    assert old in services
    (directory / "services.yml").write_text(services.replace(old, new))
    return directory


def neon_standin_certificate() -> Path:
    """The certificate of the stand-in's PostgreSQL (its TLS front on 127.0.0.1), which a Neon
    inventory's `database.sslrootcert` names so that verify-full holds against the stand-in, as
    the system's roots do against Neon itself (`neon_api` keeps its server under the workspace)."""
    return Path(os.environ["HEALTHINFRA_STATE"]).parent / "neon" / "state" / "tls" / "server.crt"


def write_neon_inventory(
    directory: Path, name: str, *, branch: str = "dev-{user}", phase: int = 3, hosting: str = "local"
) -> Path:
    """A dev-like inventory: Neon (the stand-in, by NEON_API_URL) and AWS (`aws`, which a test
    points at moto with AWS_ENDPOINT_URL), under moto's account id."""
    text = f"""description: dev-like inventory on the Neon stand-in and moto
environment: dev
prefix: hc
phase: {phase}
protected: false
providers:
  database: neon
  aws: aws
  hosting: {hosting}
database:
  name: healthcare
  project: hc-dev
  branch: {branch}
  api_key_env: NEON_API_KEY
  sslrootcert: {neon_standin_certificate() if "HEALTHINFRA_STATE" in os.environ else "system"}
aws:
  region: us-east-1
  account_id: "123456789012"
"""
    path = directory / f"{name}.yml"
    path.write_text(text)
    return path


def aws_env(servers) -> dict:
    """Environment for the `aws` provider pointed at the test moto server (boto3 reads
    AWS_ENDPOINT_URL and AWS_CA_BUNDLE itself: the local endpoint speaks TLS with its own
    certificate); moto accepts any key."""
    return {
        "AWS_ENDPOINT_URL": f"https://127.0.0.1:{servers['aws_port']}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CA_BUNDLE": str(servers["state"] / INVENTORY / "tls" / "server.crt"),
    }


def buckets(servers, prefix: str) -> list[str]:
    """The buckets on the suite's moto server whose names start with `prefix` (`hc-dev-`: a dev
    inventory's), by a client of the test's own."""
    import boto3

    aws = aws_env(servers)
    s3 = boto3.client(
        "s3",
        endpoint_url=aws["AWS_ENDPOINT_URL"],
        verify=aws["AWS_CA_BUNDLE"],
        region_name="us-east-1",
        aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
    )
    return sorted(b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith("hc-dev-"))
