"""System programs some tests need beyond what the README asks for (Python and git).

A test that needs one the machine lacks is skipped with one line naming the program and how
to install it, so `make setup-dev && make test` passes on a fresh machine. CI must run them
all: `.ci/run` installs them and sets HEALTHINFRA_REQUIRE_SYSTEM_PROGRAMS=1, which turns each
such skip into a failure.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_ENV = "HEALTHINFRA_REQUIRE_SYSTEM_PROGRAMS"
# programs that live outside a normal user's PATH
SBIN = {"sshd": "/usr/sbin/sshd"}


def find_program(program: str) -> str | None:
    found = shutil.which(program)
    if found is None and program in SBIN and os.access(SBIN[program], os.X_OK):
        found = SBIN[program]
    return found


def require_program(program: str, package: str) -> str:
    """The program's path; else skip (or, with HEALTHINFRA_REQUIRE_SYSTEM_PROGRAMS=1, fail)."""
    found = find_program(program)
    if found is not None:
        return found
    message = f"`{program}` is not installed: `sudo apt-get install {package}` (.ci/run installs it)"
    if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
        pytest.fail(f"{REQUIRE_ENV}={os.environ[REQUIRE_ENV]}: {message}", pytrace=False)
    pytest.skip(message)
