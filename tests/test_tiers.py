"""The tiers stay honest: a test is classified by the fixtures it uses, and a test of the fast
tier that starts a server fails, naming what it started, however it started it (a listening
socket, a server program, a daemon, or a command run through the launcher).

Each check is a small test file run by an inner pytest (pytester, in a process of its own) with
the suite's tier plugin; its JUnit report says what happened to each inner test.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import pytest

from .support.environment import REPO
from .support.tiers import GUARD_ENV, server_in

pytest_plugins = ["pytester"]

CONFTEST = """
import pytest

@pytest.fixture
def servers():
    return "pretend"

@pytest.fixture
def env(servers):
    return servers

@pytest.fixture
def ssh_hosts():
    return "pretend"

@pytest.fixture
def chromium():
    return "pretend"

def pytest_collection_finish(session):
    for item in session.items:
        print("MARKERS", item.name, ",".join(sorted({m.name for m in item.iter_markers()})))
"""

STARTS_A_SERVER = """
import socket
import subprocess
import sys

from tests.support.invoking import run_module


def test_listens():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()


def test_spawns_a_daemon():
    subprocess.Popen([sys.executable, "-m", "healthinfra.local.moto_server"])


def test_runs_a_server_program():
    subprocess.run(["/usr/sbin/sshd", "-D"])


def test_swallows_the_refusal():  # still a failure: the guard reports at the test's end
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 0))
            s.listen()
        except Exception:
            pass


def test_through_the_launcher():  # the command's own process has the guard too
    run_module("http.server", "--bind", "127.0.0.1", "0", timeout=20)


def test_pure():
    assert sorted([2, 1]) == [1, 2]


def test_integration_may(servers):
    with socket.create_server(("127.0.0.1", 0)):
        pass
"""


def run(pytester, source: str, *args: str):
    """The inner pytest in a process of its own: this test's own guard (it is a fast-tier test)
    must not see the inner tests' sockets, nor their commands report to it."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_case=source)
    pytester._monkeypatch.delenv(GUARD_ENV, raising=False)
    pytester._monkeypatch.setenv("PYTHONPATH", str(REPO))
    return pytester.runpytest_subprocess("-p", "tests.support.tiers", "-p", "no:cacheprovider", "-s", *args)


def test_a_test_is_marked_by_the_fixtures_it_uses_even_through_another_fixture(pytester):
    source = """
def test_pure():
    pass

def test_direct(servers):
    pass

def test_through_env(env):
    pass

def test_hosts(ssh_hosts):
    pass

def test_page(chromium):
    pass
"""
    result = run(pytester, source, "--collect-only", "-q")
    markers = {}
    for line in result.outlines:
        if line.startswith("MARKERS "):
            _, name, *found = line.split()
            markers[name] = found[0].split(",") if found else []
    assert markers == {
        "test_pure": [],
        "test_direct": ["integration"],
        "test_through_env": ["integration"],
        "test_hosts": ["integration", "ssh"],
        "test_page": ["browser", "integration"],
    }


def test_a_fast_tier_test_that_starts_a_server_fails_naming_it(pytester):
    report = pytester.path / "report.xml"
    result = run(pytester, STARTS_A_SERVER, f"--junitxml={report}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    problems: dict[str, list[str]] = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        problems.setdefault(case.get("name", ""), []).extend(  # a call's failure and a teardown's error
            element.get("message", "") for element in case if element.tag in ("failure", "error")
        )
    assert problems["test_pure"] == [] and problems["test_integration_may"] == []
    named = {
        "test_listens": "a listening socket on ('127.0.0.1',",
        "test_spawns_a_daemon": "the server program",  # a python -m of the daemon module
        "test_runs_a_server_program": "the server program `sshd`",
        "test_swallows_the_refusal": "a listening socket on ('127.0.0.1',",
        "test_through_the_launcher": "a listening socket on ('127.0.0.1',",
    }
    for test, what in named.items():
        messages = " | ".join(problems[test])
        assert "is in the fast tier (no `integration` marker) but started:" in messages, (test, messages)
        assert what in messages, (test, messages)
    assert "`healthinfra.local.moto_server`" in " ".join(problems["test_spawns_a_daemon"])


@pytest.mark.parametrize(
    "argv, found",
    [
        (["/usr/sbin/sshd", "-D", "-f", "x"], "sshd"),
        (["/usr/bin/chromium", "--headless"], "chromium"),
        (["python3", "-m", "healthinfra.local.tls_front", "127.0.0.1"], "healthinfra.local.tls_front"),
        ("postgres -D /tmp/x", "postgres"),
        (["python3", "-m", "invoke", "deploy"], None),
        (["ssh-keygen", "-q"], None),
        ([], None),
    ],
)
def test_server_command_lines(argv, found):
    assert server_in(argv) == found
