"""Creating a secret is serialised per name: however many threads or processes ask for one name at
once (two AI hosts resolved in parallel, two checkouts deploying), exactly one value is created and
every caller gets it.

Every creator here is slowed down between "it is not there" and "write mine" (the password
generator sleeps), so an unserialised get-or-create would hand out several values every time.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time
import uuid

import pytest

from healthinfra import secret_store
from healthinfra.secret_store import SecretStore

from .support.environment import INVENTORY, REPO, aws_env

CALLERS = 16


def slow_generator(monkeypatch, seconds: float = 0.05) -> None:
    real = secret_store.generate_password

    def slow():
        time.sleep(seconds)
        return real()

    monkeypatch.setattr(secret_store, "generate_password", slow)


def at_once(fn, callers: int = CALLERS) -> list:
    """`fn(i)` in `callers` threads released together; their results (an exception fails the test)."""
    barrier = threading.Barrier(callers)
    results: list = [None] * callers
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


def test_sixteen_threads_get_or_create_one_name_in_the_file_store_get_one_value(tmp_path, monkeypatch):
    slow_generator(monkeypatch)
    path = tmp_path / "secrets.json"
    shared = SecretStore(path)
    # half of them share one store object (a run's hosts), half have their own (another context)
    values = at_once(lambda i: (shared if i % 2 else SecretStore(path)).get_or_create("pg.ai_svc").reveal())
    assert len(set(values)) == 1, f"{len(set(values))} different passwords were handed out"
    assert SecretStore(path).get("pg.ai_svc").reveal() == values[0], "the one stored is the one every caller got"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_concurrent_writes_of_different_names_lose_none_and_leave_no_temporary_file(tmp_path):
    path = tmp_path / "secrets.json"
    at_once(lambda i: SecretStore(path).get_or_create(f"name-{i}"))
    assert SecretStore(path).names() == sorted(f"name-{i}" for i in range(CALLERS))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".secrets.json.lock", "secrets.json"]


CREATE_IN_A_PROCESS = """
import hashlib, sys, time
from pathlib import Path
from healthinfra import secret_store
real = secret_store.generate_password
def slow():
    time.sleep(0.3)
    return real()
secret_store.generate_password = slow
path, start = Path(sys.argv[1]), float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
value = secret_store.SecretStore(path).get_or_create("pg.ai_svc").reveal()
print(hashlib.sha256(value.encode()).hexdigest(), flush=True)
"""


def test_processes_creating_one_name_at_once_in_the_file_store_get_one_value(tmp_path):
    path = tmp_path / "secrets.json"
    start = time.time() + 2.0  # every process is up and waiting by then
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE_IN_A_PROCESS, str(path), str(start)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    digests = [child.communicate(timeout=60)[0].strip() for child in children]
    assert all(child.returncode == 0 for child in children)
    assert len(set(digests)) == 1, f"{len(set(digests))} different passwords were handed out"
    stored = SecretStore(path).get("pg.ai_svc").reveal()
    assert hashlib.sha256(stored.encode()).hexdigest() == digests[0]


@pytest.fixture
def manager(servers, monkeypatch):
    """Secrets Manager stores on the session's moto server, and a fresh name to create."""
    from healthinfra.aws_secret_store import SecretsManagerStore
    from healthinfra.inventory import load_inventory
    from healthinfra.providers.aws import AwsClients

    for key, value in aws_env(servers).items():
        monkeypatch.setenv(key, value)
    inventory = load_inventory(INVENTORY)
    name = f"pg.ai_svc-{uuid.uuid4().hex[:8]}"
    stores = []

    def store():
        made = SecretsManagerStore(inventory, AwsClients(inventory))
        stores.append(made)
        return made

    yield store, name
    stores[0].delete(name)


def test_sixteen_threads_get_or_create_one_name_in_secrets_manager_get_one_value(manager, monkeypatch):
    store, name = manager
    slow_generator(monkeypatch)
    shared = store()
    own = [store() for _ in range(CALLERS)]
    values = at_once(lambda i: (shared if i % 2 else own[i]).get_or_create(name).reveal())
    assert len(set(values)) == 1, f"{len(set(values))} different passwords were handed out"
    assert store().get(name).reveal() == values[0]


def test_the_loser_of_create_secret_reads_the_winners_value(manager, monkeypatch):
    """Another process (outside this one's per-name lock) creates the name between our read and our
    CreateSecret: ResourceExistsException, and we return theirs."""
    from healthinfra.secret_store import Secret

    store, name = manager
    ours, theirs = store(), store()
    real_create = ours._create
    winner = Secret("the-other-run-" + uuid.uuid4().hex)

    def raced(secret_name, value):
        assert theirs._create(secret_name, winner)  # the other run wins the race
        return real_create(secret_name, value)

    monkeypatch.setattr(ours, "_create", raced)
    assert ours.get_or_create(name) == winner
    assert store().get(name) == winner
