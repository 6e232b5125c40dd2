"""`db.lint [FILE…]`: every migration (or the given files) through squawk and the project's own
checks; each finding with its file, line, rule and help; exit 1 while any is not accepted."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

from ..errors import UsageError
from ..inventory import project_root


def db_lint(files: str = "", *, directory: str, out: TextIO | None = None) -> int:
    """`files`: paths separated by commas or spaces (invoke takes one positional value), relative
    to the current directory; none: every up and down migration of `directory` (project-relative)."""
    from ..migration_lint import lint_migrations, migration_files, render

    out = out or sys.stdout
    migrations = project_root() / directory
    given = [Path(name) for name in files.replace(",", " ").split()]
    missing = [str(path) for path in given if not path.is_file()]
    if missing:
        raise UsageError(
            f"db.lint: no file {', '.join(f'`{m}`' for m in missing)}; give migration files"
            f" (like {directory}/0001_core_tables.up.sql), or nothing to lint every migration"
        )
    wrong = [str(p) for p in given if not p.name.endswith((".up.sql", ".down.sql"))]
    if wrong:
        raise UsageError(
            f"db.lint: `{wrong[0]}` is not a migration file (NAME.up.sql or NAME.down.sql): a down file is held"
            " to the lock rules only, so the linter must know which it is"
        )
    paths = given or [Path(os.path.relpath(path)) for path in migration_files(migrations)]
    text, code = render(lint_migrations(migrations, paths), files=len(paths))
    out.write(text)
    return code
