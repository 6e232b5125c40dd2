"""What a run ran: the repository's revision and one digest of everything it read from it.

`current(inventory)` asks git for the checkout's commit and the tracked files that differ
from it (`git status --porcelain --untracked-files=no`), and hashes what a run reads from
the repository: the inventory file, the shared tables beside it (`services.yml`,
`data_types.yml`), the playbooks, and every template (the migrations among them). The
journal keeps it in each run's `run_start`; `history` shows it; promotion compares it.
A checkout that is not a git repository (an unpacked tarball) has no commit: `None`.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .inventory import Inventory

SHARED_TABLES = ("services.yml", "data_types.yml")
READ_FROM_REPOSITORY = ("playbooks", "templates")  # besides the inventory and its shared tables


@dataclass(frozen=True)
class Revision:
    commit: str | None  # the checkout's HEAD, or None outside git
    changed: tuple[str, ...]  # tracked files that differ from it (staged or not)
    digest: str  # sha256 over what a run reads from the repository

    @property
    def clean(self) -> bool:
        return self.commit is not None and not self.changed

    def to_json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "dirty": bool(self.changed),
            "changed": list(self.changed),
            "digest": self.digest,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any] | None) -> Revision | None:
        if not isinstance(document, dict):
            return None
        return cls(document.get("commit"), tuple(document.get("changed") or ()), str(document.get("digest", "")))

    def short(self) -> str:
        if self.commit is None:
            return "no git revision"
        return self.commit[:12] + (f"+{len(self.changed)} changed" if self.changed else "")


def digest_of(files: list[tuple[str, bytes]]) -> str:
    """One sha256 over (name, content) pairs, in name order. Pure."""
    total = hashlib.sha256()
    for name, content in sorted(files):
        total.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    return total.hexdigest()


def read_files(inventory: Inventory, root: Path) -> list[tuple[str, bytes]]:
    """What a run reads from the repository, named as people see it."""
    files = [(f"inventories/{inventory.path.name}", inventory.path.read_bytes())]
    for table in SHARED_TABLES:
        path = inventory.path.parent / table
        if path.exists():
            files.append((f"inventories/{table}", path.read_bytes()))
    for directory in READ_FROM_REPOSITORY:
        for path in sorted((root / directory).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files.append((str(path.relative_to(root)), path.read_bytes()))
    return files


def _git(root: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def current(inventory: Inventory) -> Revision:
    from .inventory import project_root

    root = project_root()
    commit = _git(root, "rev-parse", "--verify", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no") if commit else None
    changed = tuple(sorted(line[3:] for line in (status or "").splitlines() if line.strip()))
    return Revision(commit.strip() if commit else None, changed, digest_of(read_files(inventory, root)))
