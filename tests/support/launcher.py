"""`python -m MODULE ARGS…` for the tests, each command a process of its own, without paying
Python's imports every time.

Most tests run the CLI as a user types it (`invoke deploy -i test --json`), and a fresh
interpreter spends about 0.6 s importing invoke, boto3, psycopg, fabric and the engine before it
does anything: over the suite's few hundred commands that was minutes. The launcher is one
process that imports all of that once and then forks per command. The fork is still a new
process with its own pid, environment, working directory, stdin, stdout and stderr files, exit
code and signals (a test may SIGKILL it, or it may kill itself), so what a test sees is what
`subprocess.run([sys.executable, "-m", …])` shows, nothing shared between commands: every
command starts from the same freshly imported, never-used modules.

Protocol, over a unix socket: the client sends one JSON line `{"argv", "env", "cwd", "stdin",
"stdout", "stderr"}` (the three streams as file paths); the launcher forks a supervisor for the
connection, which forks the command, answers `{"pid": N}` at once and `{"status": S}` when it
ends (S as subprocess's returncode: negative for a signal). The launcher itself stays
single-threaded, so forking it is safe.

Run as `python -m tests.support.launcher SOCKET`: SOCKET appears once the launcher accepts
connections; it exits when SIGTERM arrives or its parent (the test session) is gone.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import signal
import socket
import sys
import threading
import traceback

# What the commands import, imported once here. The engine's own packages are walked whole.
PRELOADED = (
    "invoke",
    "invoke.main",
    "boto3",
    "botocore.session",
    "botocore.client",
    "botocore.httpsession",
    "psycopg",
    "psycopg.rows",
    "psycopg.sql",
    "fabric",
    "paramiko",
    "jinja2",
    "yaml",
    "httpx",
    "tenacity",
    "cryptography.hazmat.primitives.hashes",
    "cryptography.x509",
)
PACKAGES = ("healthinfra", "playbooks")
GUARD_ENV = "HC_TESTS_SERVER_GUARD"  # tiers.GUARD_ENV, spelled here so the launcher imports no pytest


def preload() -> None:
    for name in PRELOADED:
        importlib.import_module(name)
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.walk_packages(package.__path__, package_name + "."):
            importlib.import_module(module.name)


def exit_code(exc: SystemExit) -> int:
    """What the interpreter makes of `sys.exit(value)`, printing a message as it does."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def run_command(request: dict) -> None:
    """In the forked child: become the command, run it as `python -m` would, never return."""
    code = 1
    try:
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        for fd, path, mode in ((0, request["stdin"], os.O_RDONLY), (1, request["stdout"], os.O_WRONLY)):
            target = os.open(path, mode)
            os.dup2(target, fd)
            os.close(target)
        target = os.open(request["stderr"], os.O_WRONLY)
        os.dup2(target, 2)
        os.close(target)
        sys.argv = list(request["argv"])
        sys.path[0] = request["cwd"]  # `python -m` puts the working directory first
        if os.environ.get(GUARD_ENV):  # a fast-tier test's command: no server may start here either
            from .tiers import guard_this_process

            guard_this_process()
        import runpy

        try:
            runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = exit_code(exc)
        except BaseException:
            traceback.print_exc()
            code = 1
        for thread in threading.enumerate():  # as the interpreter does at exit: wait for non-daemon threads
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join()
        import atexit

        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # a closed or broken pipe: nothing more can be said
                pass
        os._exit(code)


def supervise(connection: socket.socket) -> None:
    """In the forked supervisor: read one request, fork the command, report its pid and status."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    reader = connection.makefile("r")
    request = json.loads(reader.readline())
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        connection.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        run_command(request)
    connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    _, status = os.waitpid(pid, 0)
    returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    try:
        connection.sendall(json.dumps({"status": returncode}).encode() + b"\n")
    except OSError:  # the client gave up waiting (its timeout): nobody to tell
        pass
    os._exit(0)


def serve(path: str) -> None:
    preload()
    parent = os.getppid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".binding")
    listener.listen(64)
    os.rename(path + ".binding", path)  # the path appears only once it accepts connections
    listener.settimeout(1.0)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped by the kernel
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while os.getppid() == parent:
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            connection.settimeout(None)
            sys.stdout.flush()
            sys.stderr.flush()
            if os.fork() == 0:
                listener.close()
                supervise(connection)
            connection.close()
    finally:
        listener.close()
        os.unlink(path)


if __name__ == "__main__":
    serve(sys.argv[1])
