"""The tiers stay honest: a test is classified by the fixtures it uses, and a test of the fast
tier that starts a server fails, naming what it started, however it started it (a listening
socket, a server program, a daemon, or a command run through the launcher).

Each case is a small test file run by an inner pytest (pytester) with the suite's tier plugin.
"""

from __future__ import annotations

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
"""


def run(pytester, source: str, *args: str):
    """The inner pytest in a process of its own: this test's own guard (it is a fast-tier test)
    must not see the inner tests' sockets, nor their commands report to it."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_case=source)
    pytester._monkeypatch.delenv(GUARD_ENV, raising=False)
    pytester._monkeypatch.setenv("PYTHONPATH", str(REPO))
    return pytester.runpytest_subprocess("-p", "tests.support.tiers", "-p", "no:cacheprovider", *args)


def test_a_test_using_a_server_fixture_is_marked_by_it_even_through_another_fixture(pytester):
    source = """
def test_pure():
    pass

def test_direct(servers):
    pass

def test_through_env(env):
    pass

def test_hosts(ssh_hosts):
    pass
"""
    integration = run(pytester, source, "--collect-only", "-q", "-m", "integration")
    assert sorted(line for line in integration.outlines if "::" in line) == [
        "test_case.py::test_direct",
        "test_case.py::test_hosts",
        "test_case.py::test_through_env",
    ]
    fast = run(pytester, source, "--collect-only", "-q", "-m", "not integration")
    assert [line for line in fast.outlines if "::" in line] == ["test_case.py::test_pure"]
    ssh = run(pytester, source, "--collect-only", "-q", "-m", "ssh")
    assert [line for line in ssh.outlines if "::" in line] == ["test_case.py::test_hosts"]


@pytest.mark.parametrize(
    "body, named",
    [
        (
            "import socket\n    with socket.socket() as s:\n        s.bind(('127.0.0.1', 0))\n        s.listen()",
            "a listening socket on ('127.0.0.1',",
        ),
        (
            "import subprocess, sys\n    subprocess.Popen([sys.executable, '-m', 'healthinfra.local.moto_server'])",
            "`healthinfra.local.moto_server`",
        ),
        ("import subprocess\n    subprocess.run(['/usr/sbin/sshd', '-D'])", "the server program `sshd`"),
        (
            # caught by the test itself: still a failure, since the guard reports at the test's end
            "import socket\n    with socket.socket() as s:\n        try:\n            s.bind(('127.0.0.1', 0))\n            s.listen()\n        except Exception:\n            pass",
            "a listening socket",
        ),
        (
            "from tests.support.invoking import run_module\n    run_module('http.server', '--bind', '127.0.0.1', '0', timeout=20)",
            "a listening socket",
        ),
    ],
    ids=["socket", "daemon", "program", "swallowed", "through-the-launcher"],
)
def test_a_fast_tier_test_that_starts_a_server_fails_naming_it(pytester, body, named):
    result = run(pytester, f"def test_starts_a_server():\n    {body}\n")
    outcomes = result.parseoutcomes()
    assert result.ret == pytest.ExitCode.TESTS_FAILED and outcomes.get("failed", 0) + outcomes.get("errors", 0) >= 1
    assert "is in the fast tier (no `integration` marker) but started:" in result.stdout.str()
    assert named in result.stdout.str()


def test_an_integration_test_may_start_servers(pytester):
    result = run(
        pytester,
        "def test_listens(servers):\n    import socket\n    with socket.create_server(('127.0.0.1', 0)):\n        pass\n",
    )
    result.assert_outcomes(passed=1)


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
