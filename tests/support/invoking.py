"""The CLI as a user types it: `python -m invoke ARGS…` in a process of its own, its exit code,
stdout and stderr kept for the test, and every output remembered for the secret-leak checks.

Commands from the repository's own checkout go through the launcher (tests/support/launcher.py:
the imports paid once per test session, a fresh forked process per command); anything else (a
command in another checkout, whose code is the point) is a plain subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

OUTPUTS: list[str] = []  # every output the tests saw, for the secret-leak checks


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


class Launcher:
    """The preloaded `python -m` of tests/support/launcher.py, started on first use."""

    def __init__(self) -> None:
        self.directory: Path | None = None
        self.process: subprocess.Popen | None = None

    @property
    def socket_path(self) -> Path:
        assert self.directory is not None
        return self.directory / "launcher.sock"

    def start(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="hc-launcher-"))
        log = open(self.directory / "launcher.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.launcher", str(self.socket_path)],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the test launcher exited: {(self.directory / 'launcher.log').read_text()[-2000:]}")
            if self.socket_path.exists():
                return
            time.sleep(0.02)
        raise RuntimeError("the test launcher did not start within 60 s")

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None
        if self.directory is not None:
            for leftover in self.directory.iterdir():
                leftover.unlink(missing_ok=True)
            self.directory.rmdir()
            self.directory = None

    def run(self, argv: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
        """`python -m argv…` from the repository's root, as subprocess.run(capture_output=True) gives it."""
        if self.process is None or self.process.poll() is not None:
            self.start()
        assert self.directory is not None
        fd_out, out_path = tempfile.mkstemp(dir=self.directory, suffix=".out")
        fd_err, err_path = tempfile.mkstemp(dir=self.directory, suffix=".err")
        os.close(fd_out)
        os.close(fd_err)
        request = {
            "argv": argv,
            "env": env,
            "cwd": str(REPO),
            "stdin": os.devnull,
            "stdout": out_path,
            "stderr": err_path,
        }
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
                connection.connect(str(self.socket_path))
                connection.sendall(json.dumps(request).encode() + b"\n")
                reader = connection.makefile("r")
                pid = json.loads(reader.readline())["pid"]
                connection.settimeout(timeout)
                try:
                    line = reader.readline()
                except TimeoutError:
                    os.kill(pid, signal.SIGKILL)
                    raise subprocess.TimeoutExpired(argv, timeout) from None
            if not line:
                raise RuntimeError(f"the test launcher lost `{' '.join(argv)}`")
            status = json.loads(line)["status"]
            out = Path(out_path).read_text(errors="replace")
            err = Path(err_path).read_text(errors="replace")
        finally:
            Path(out_path).unlink(missing_ok=True)
            Path(err_path).unlink(missing_ok=True)
        return subprocess.CompletedProcess([sys.executable, "-m", *argv], status, out, err)


LAUNCHER = Launcher()


def run_module(module: str, *args: str, env_overrides: dict | None = None, timeout: float = 300) -> Invoked:
    """`python -m module args…` from the repository's root, in a process of its own."""
    env = dict(os.environ, **(env_overrides or {}))
    result = LAUNCHER.run([module, *args], env, timeout)
    OUTPUTS.extend([result.stdout, result.stderr])
    return Invoked(result)


def run_invoke(*args: str, env_overrides: dict | None = None, timeout: float = 300) -> Invoked:
    """`invoke args…` as a user types it at the repository's root."""
    return run_module("invoke", *args, env_overrides=env_overrides, timeout=timeout)
