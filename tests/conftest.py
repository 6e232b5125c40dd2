"""Shared fixtures: a test environment of its own, on real servers on loopback.

The tests never touch the developer's `local` environment: they write their own
inventories (`test.yml` with free ports) into a temporary directory, keep their
state in another, and start their own embedded PostgreSQL and moto server there.
Commands run through invoke in a subprocess, exactly as a user types them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
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


@pytest.fixture(scope="session")
def workspace():
    """Inventories and state directories of the test environment, set in os.environ.

    Not under pytest's own temporary tree: pytest makes /tmp/pytest-of-USER private (0700)
    whenever a session starts, which would lock the server's system user out of its data."""
    base = Path(tempfile.mkdtemp(prefix="hc-tests-"))
    inventories = base / "inventories"
    inventories.mkdir()
    for name in ("services.yml", "data_types.yml", "dev.yml", "prod.yml"):
        shutil.copy(REPO / "inventories" / name, inventories / name)
    ports = {"pg_port": free_port(), "aws_port": free_port()}
    write_inventory(inventories, INVENTORY, **ports)
    with open(inventories / f"{INVENTORY}.yml", "a") as f:  # the alert topic gets a subscription to manage
        f.write("monitoring:\n  alert_subscriptions:\n    - {protocol: email, endpoint: oncall@example.org}\n")
    state = base / "state"
    state.mkdir()
    saved = {k: os.environ.get(k) for k in ("HEALTHINFRA_INVENTORIES", "HEALTHINFRA_STATE")}
    os.environ["HEALTHINFRA_INVENTORIES"] = str(inventories)
    os.environ["HEALTHINFRA_STATE"] = str(state)
    yield {"inventories": inventories, "state": state, "base": base, **ports}
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def servers(workspace):
    """Embedded PostgreSQL and a moto server for the test inventory, for the whole session."""
    from healthinfra import commands

    with open(os.devnull, "w") as quiet:
        commands.local_up(INVENTORY, out=quiet)
    yield workspace
    with open(os.devnull, "w") as quiet:
        commands.local_down(INVENTORY, out=quiet)


@pytest.fixture
def env(servers):
    """An empty test environment: everything of ours removed, journal and secrets gone."""
    from healthinfra import commands
    from healthinfra.inventory import load_inventory
    from playbooks import catalog

    inventory = load_inventory(INVENTORY)
    with open(os.devnull, "w") as quiet:
        if commands.local_status(INVENTORY, out=quiet) != 0:  # a test ran cleanup-dev, which stops them
            commands.local_up(INVENTORY, out=quiet)
        code = commands.cleanup(INVENTORY, catalog=catalog(), destroy_data=True, stop_services=False, out=quiet)
    assert code == 0, "could not empty the test environment"
    for name in ("journal.jsonl", "secrets.json"):
        (inventory.state_dir / name).unlink(missing_ok=True)
    return inventory


class Invoked:
    def __init__(self, result: subprocess.CompletedProcess):
        self.code = result.returncode
        self.out = result.stdout
        self.err = result.stderr

    @property
    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


OUTPUTS: list[str] = []  # every output the tests saw, for the secret-leak check


def run_invoke(*args: str, env_overrides: dict | None = None, timeout: int = 300) -> Invoked:
    env = dict(os.environ, **(env_overrides or {}))
    result = subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    OUTPUTS.extend([result.stdout, result.stderr])
    return Invoked(result)


@pytest.fixture
def invoke():
    return run_invoke


# --- Neon: the stand-in API and the PostgreSQL underneath it ------------------------------
# The stand-in (tests/fakes/neon_server.py) validates every request and response against
# Neon's OpenAPI document; `neon` hands a test a fresh one, with NEON_API_URL and
# NEON_API_KEY set in os.environ (subprocesses inherit them), and fails the test if any
# request or response broke the contract.
#
# The document is not in the repository (its licence is proprietary): it is found through
# HEALTHINFRA_CONTRACTS (see `contract_candidates`). Without it every test that needs the
# stand-in is skipped with one line saying so, unless HEALTHINFRA_REQUIRE_CONTRACTS=1 (.ci/run
# sets it), which makes the absence an error instead.

REQUIRE_CONTRACTS_ENV = "HEALTHINFRA_REQUIRE_CONTRACTS"


@pytest.fixture(scope="session")
def neon_contract() -> Path:
    """Neon's OpenAPI document; skips (or, when required, fails) every test that needs it if absent."""
    from .fakes.neon_server import find_contract, missing_contract

    path = find_contract()
    if path is None:
        if os.environ.get(REQUIRE_CONTRACTS_ENV, "") not in ("", "0"):
            pytest.fail(
                f"{REQUIRE_CONTRACTS_ENV}={os.environ[REQUIRE_CONTRACTS_ENV]}: {missing_contract()}", pytrace=False
            )
        pytest.skip(missing_contract())
    return path


@pytest.fixture(scope="session")
def neon_api(neon_contract, workspace):
    from .fakes.neon_server import BackingPostgres, NeonStandIn

    backing = BackingPostgres(workspace["base"] / "neon", free_port())
    try:  # a start that fails half-way stops what it started too
        backing.start()
        api = NeonStandIn(api_key="neon-test-key-" + os.urandom(8).hex(), backing=backing)
        api.serve()
    except BaseException:
        backing.stop()
        raise
    try:
        yield api
    finally:
        api.close()
        backing.stop()


@pytest.fixture
def neon(neon_api):
    saved = {k: os.environ.get(k) for k in ("NEON_API_URL", "NEON_API_KEY")}
    neon_api.reset()
    os.environ["NEON_API_URL"] = neon_api.url
    os.environ["NEON_API_KEY"] = neon_api.api_key
    yield neon_api
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    violations = list(neon_api.violations)
    neon_api.reset()
    assert violations == [], "requests or responses outside Neon's OpenAPI contract:\n" + "\n".join(violations)


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
