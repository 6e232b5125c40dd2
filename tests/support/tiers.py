"""The suite's tiers, told from the fixtures a test uses, and a guard that keeps them honest.

A test that uses a fixture which starts a server (the session's embedded PostgreSQL and moto,
the Neon stand-in's PostgreSQL, the sshd hosts, Chromium) is marked `integration` and the
fixture's own marker, by the collection hook below: nobody has to remember to mark a new test.
`slow` is given by hand to the few tests that take minutes even when everything is fast.

The rest is the fast tier (`make test-fast`: `-m "not integration and not slow"`). It must
stay so: in a test without the `integration` marker, opening a listening socket, or spawning a
server program or one of the runner's local daemons, is recorded and fails the test at its
end, naming what was started. Commands the test runs through the launcher carry the same guard
into their own process (`GUARD_ENV` names the file where their violations are written).

Tests of the hosts (`ssh`) share one machine's users and processes: the `ai_hosts` fixture holds
a machine-wide lock, so under pytest-xdist they take turns (tests/support/locks.py).
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
from pathlib import Path

import pytest

# fixture -> the markers a test that uses it (directly or through another fixture) is given
FIXTURE_MARKERS: dict[str, tuple[str, ...]] = {
    "servers": ("integration",),  # the session's embedded PostgreSQL and moto server
    "neon_api": ("integration", "neon"),  # the Neon stand-in and its own PostgreSQL
    "ssh_hosts": ("integration", "ssh"),  # two real sshd playing the AI hosts
    "chromium": ("integration", "browser"),  # Debian's headless Chromium
}

SERVER_PROGRAMS = {"sshd", "postgres", "pg_ctl", "initdb", "chromium", "chromium-browser", "moto_server"}
SERVER_MODULES = ("healthinfra.local.moto_server", "healthinfra.local.tls_front", "moto.server")
GUARD_ENV = "HC_TESTS_SERVER_GUARD"  # set in a fast-tier test: the file its commands report violations to


def pytest_collection_modifyitems(config, items):
    """Marks each test by its fixtures, then puts the slow ones first: under pytest-xdist a
    test of minutes started last would be the whole run's tail."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for fixture, markers in FIXTURE_MARKERS.items():
            if fixture in names:
                for marker in markers:
                    item.add_marker(marker)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def server_in(argv) -> str | None:
    """What in a command line starts a server, or None (pure: a program name or a daemon module)."""
    words = [argv] if isinstance(argv, str | bytes | os.PathLike) else list(argv)
    words = [os.fsdecode(w) for w in words]
    if len(words) == 1 and " " in words[0]:
        words = shlex.split(words[0])
    if not words:
        return None
    if Path(words[0]).name in SERVER_PROGRAMS:
        return Path(words[0]).name
    for module in SERVER_MODULES:
        if module in words:
            return module
    return None


class ServerGuard:
    """Patches what starts a server so that each start is recorded (in `report`, a file) and refused."""

    def __init__(self, report: Path, monkeypatch: pytest.MonkeyPatch):
        self.report = report
        self.monkeypatch = monkeypatch

    def refuse(self, what: str):
        with open(self.report, "a") as f:
            f.write(what + "\n")
        raise ServerStarted(what)

    def install(self) -> None:
        guard = self
        original_listen = socket.socket.listen
        original_popen = subprocess.Popen.__init__
        original_spawn = os.posix_spawn

        def listen(sock, *args):
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                guard.refuse(f"a listening socket on {sock.getsockname()}")
            return original_listen(sock, *args)

        def popen(self, args, *rest, **kwargs):
            found = server_in(args)
            if found:
                guard.refuse(f"the server program `{found}` ({args!r})")
            return original_popen(self, args, *rest, **kwargs)

        def posix_spawn(path, argv, *rest, **kwargs):
            found = server_in(argv)
            if found:
                guard.refuse(f"the daemon `{found}`")
            return original_spawn(path, argv, *rest, **kwargs)

        self.monkeypatch.setattr(socket.socket, "listen", listen)
        self.monkeypatch.setattr(subprocess.Popen, "__init__", popen)
        self.monkeypatch.setattr(os, "posix_spawn", posix_spawn)


class ServerStarted(BaseException):
    """A fast-tier test started a server (BaseException: a test's `except Exception` cannot hide it)."""


@pytest.fixture(autouse=True)
def _servers_only_in_integration_tests(request, tmp_path_factory):
    """The guard, in every fast-tier test (its own MonkeyPatch, not the `monkeypatch` fixture: an
    autouse fixture requesting that would set it up before, and undo it after, the test's own
    fixtures, whose teardowns would then still see the test's patched environment)."""
    if request.node.get_closest_marker("integration") is not None:
        yield
        return
    report = tmp_path_factory.mktemp("server-guard") / "started"
    report.touch()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(GUARD_ENV, str(report))
        ServerGuard(report, patch).install()
        yield
    started = report.read_text().splitlines()
    if started:
        pytest.fail(
            f"{request.node.nodeid} is in the fast tier (no `integration` marker) but started: "
            + "; ".join(started)
            + ". Start servers through a fixture of tests/support/tiers.py FIXTURE_MARKERS (or add one there).",
            pytrace=False,
        )


def guard_this_process() -> None:
    """In a command the launcher runs for a fast-tier test: the same guard, reporting to its file."""
    path = os.environ.get(GUARD_ENV)
    if path:
        ServerGuard(Path(path), pytest.MonkeyPatch()).install()
