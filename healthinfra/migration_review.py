"""What a reviewer reads of a pending migration: each statement that will run, the lock it
takes, and its lint findings (squawk's and the project's), as plans show it and JSON and saved
plans carry it. The SQL is parsed with pglast (migration_sql.py), never split on `;`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .inventory import project_root

if TYPE_CHECKING:
    from .migration_lint import Finding
    from .migration_sql import Migration, Statement
    from .resources.pg_migration import PgMigration


def review_statements(migration: PgMigration, direction: str) -> list[dict[str, Any]]:
    """The statements of `migration`'s up or down file, each reviewed (Resource.review's shape)."""
    from .errors import InventoryError

    path = project_root() / migration.path(direction)
    try:
        reviewed = _reviewed(str(path), migration.path(direction), path.read_text(encoding="utf-8"))
    except InventoryError as exc:  # shown, never raised: a review must not stop a run halfway
        return [{"summary": f"not reviewed: {exc} (`invoke db.lint` says the same)", "findings": []}]
    return [dict(entry) for entry in reviewed]


@lru_cache(maxsize=64)
def _reviewed(path: str, shown: str, text: str) -> tuple[dict[str, Any], ...]:
    """Cached by the file's text: a plan shows and saves the same review, squawk runs once."""
    from .migration_sql import parse_migration

    parsed = parse_migration(text, shown)
    findings, lint_error = _findings(Path(path))
    return tuple(
        statement_review(parsed, statement, shown, [f for f in findings if _within(f, statement)], lint_error)
        for statement in parsed.statements
    )


def _findings(path: Path) -> tuple[list[Finding], str]:
    from .migration_lint import LintToolError, lint_migrations

    try:
        return lint_migrations(path.parent, [path]), ""
    except LintToolError as exc:  # a plan still shows the SQL; the lint's absence is said
        return [], str(exc)


def _within(finding: Finding, statement: Statement) -> bool:
    return statement.first_line <= finding.line <= statement.last_line or (
        finding.accepted is not None and statement.first_line <= finding.accepted.line <= statement.last_line
    )


def statement_review(
    migration: Migration, statement: Statement, shown: str, findings: list[Finding], lint_error: str = ""
) -> dict[str, Any]:
    """One statement as a reviewer reads it (pure)."""
    if statement.locks:
        takes = ", ".join(f"{mode} on {relation}" for relation, mode in statement.locks)
    else:
        takes = "no table lock" if statement.lock == "none" else statement.lock
    mode = "no-transaction, " if migration.no_transaction else ""
    where = f"{shown}:{statement.first_line}"
    entry: dict[str, Any] = {
        "summary": f"{statement.position}. {statement.kind}: {mode}takes {takes} ({where})",
        "where": where,
        "position": statement.position,
        "kind": statement.kind,
        "lock": statement.lock,
        "locks": [list(pair) for pair in statement.locks],
        "sql": statement.sql,
        "first_line": statement.first_line,
        "last_line": statement.last_line,
        "no_transaction": migration.no_transaction,
        "contract": migration.contract,
        "findings": [
            {
                "rule": f.rule,
                "line": f.line,
                "message": f.message,
                "help": f.help,
                "accepted": f.accepted.reason if f.accepted else None,
            }
            for f in findings
        ],
    }
    if lint_error and statement.position == 1:
        entry["findings"].append(
            {"rule": "lint-not-run", "line": statement.first_line, "message": lint_error, "help": "", "accepted": None}
        )
    return entry
