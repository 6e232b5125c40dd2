"""A scratch checkout of the repository with migrations of a test's own added to the playbook,
run as a user runs it (`python -m invoke` at its root) against the test environment's servers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .environment import REPO
from .invoking import OUTPUTS, Invoked


def scratch_checkout(root: Path, migrations: dict[str, tuple[int, str, str]]) -> Path:
    """The repository's tracked and unignored files copied to `root`, with `migrations` (name ->
    phase, up SQL, down SQL) added to templates/sql/migrations and to playbooks/db.py's list."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    directory = root / "templates" / "sql" / "migrations"
    for name, (_, up, down) in migrations.items():
        (directory / f"{name}.up.sql").write_text(up)
        (directory / f"{name}.down.sql").write_text(down)
    added = ", ".join(f"({name!r}, {phase})" for name, (phase, _, _) in migrations.items())
    with open(root / "playbooks" / "db.py", "a") as f:
        f.write(f"\nMIGRATIONS = MIGRATIONS + ({added},)\n")
    for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-q", "-m", "scratch")):
        subprocess.run(
            ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
            capture_output=True,
            check=True,
        )
    return root


def run_in(root: Path, *args: str, timeout: float = 300, env_overrides: dict[str, str] | None = None) -> Invoked:
    """`invoke args…` at the scratch checkout's root (its own code, so a plain subprocess)."""
    result = subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=root,
        env={**os.environ, **(env_overrides or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    OUTPUTS.extend([result.stdout, result.stderr])
    return Invoked(result)
