"""A migration file's statements, read by PostgreSQL's own parser (pglast), and what each locks.

Why a parser and not regular expressions: a function body (`$$ … $$`) holds semicolons, a
comment can mention `drop table`, and which lock a statement takes depends on its grammar
(`create index` takes SHARE, `create index concurrently` SHARE UPDATE EXCLUSIVE, an
`alter table` the strongest lock of its subcommands). pglast embeds PostgreSQL's parser, so a
file that parses here parses on the server, and statement boundaries are the server's.

The lock levels are those of PostgreSQL's documentation ("Explicit Locking" and each command's
page) and of `AlterTableGetLockLevel` in tablecmds.c: the strongest *table* lock a statement
takes, named as the docs name them, or `none` for statements that touch only the catalog
(functions, schemas, extensions, grants). What cannot be known without the catalog is left
out: `drop index` locks its table too (the table is not named in the statement), and
`drop table` of a table with foreign keys locks the referenced tables as well.

The same file carries the linter's inputs: markers in its leading comments
(`-- migration: no-transaction`, `-- migration: contract`) and acceptances
(`-- lint: accept RULE because REASON`) on the lines above or inside a statement.

pglast is imported inside the functions: `invoke --list` imports every task module and must
stay instant.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from .errors import InventoryError
from .migration_locks import LOCK_MODES, describe

NO_TRANSACTION_MARKER = "-- migration: no-transaction"
CONTRACT_MARKER = "-- migration: contract"
ACCEPT_SYNTAX = "-- lint: accept RULE because REASON"

_MARKER = re.compile(r"--\s*migration\s*:\s*(?P<what>.*?)\s*", re.IGNORECASE)
_ACCEPT = re.compile(r"--\s*lint\s*:\s*accept\b(?P<rest>.*)", re.IGNORECASE)
_ACCEPT_REST = re.compile(r"\s+(?P<rule>[A-Za-z0-9_.-]+)(?:\s+(?P<because>because)\b(?P<reason>.*))?\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Acceptance:
    """`-- lint: accept RULE because REASON`: a finding of RULE on this statement is known and
    judged safe here. The reason is required: the next reader must learn why, not only that."""

    rule: str
    reason: str
    line: int


@dataclass(frozen=True)
class Statement:
    """One statement of a migration, where it is in the file and what it locks.

    `lock` is the strongest table lock it takes (one of LOCK_MODES), `locks` the lock per
    relation (tables, views, indexes, sequences it names, schema-qualified only outside
    `public`), `relations` those relations in order. `accepts` are the acceptances written
    between the end of the previous statement and this statement's last line."""

    position: int
    sql: str
    first_line: int
    last_line: int
    kind: str
    node: str  # the parse node's name (`AlterTableStmt`, `TransactionStmt`, …)
    lock: str
    locks: tuple[tuple[str, str], ...] = ()
    tables_created: tuple[str, ...] = ()
    table_written: str | None = None  # UPDATE / DELETE / MERGE: the target
    index_name: str | None = None  # CREATE INDEX: its name, in its table's schema (None when unnamed)
    concurrently: bool = False
    accepts: tuple[Acceptance, ...] = ()

    @property
    def relations(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.locks)

    @property
    def refused_in_transaction(self) -> bool:
        """PostgreSQL refuses it inside a transaction block (CREATE/DROP INDEX CONCURRENTLY,
        REINDEX CONCURRENTLY, DETACH PARTITION CONCURRENTLY; REFRESH … CONCURRENTLY is allowed)."""
        return self.concurrently and self.node != "RefreshMatViewStmt"


@dataclass(frozen=True)
class Markers:
    """What the leading comment lines of a migration say about how it runs."""

    no_transaction: bool = False  # first line `-- migration: no-transaction`: statement by statement
    contract: bool = False  # `-- migration: contract`: drops, renames, type changes (breaks old code)


@dataclass(frozen=True)
class Migration:
    """A parsed migration file: its statements and the markers of its leading comments."""

    statements: tuple[Statement, ...]
    no_transaction: bool = False
    contract: bool = False
    acceptances: tuple[Acceptance, ...] = ()
    file: str = ""

    def statement_at(self, line: int) -> Statement | None:
        """The statement whose text spans `line`, else the next one after it (a finding on a
        comment belongs to what follows), else the last one."""
        for statement in self.statements:
            if statement.first_line <= line <= statement.last_line:
                return statement
        for statement in self.statements:
            if statement.first_line > line:
                return statement
        return self.statements[-1] if self.statements else None


# --- the file ---------------------------------------------------------------


def parse_migration(text: str, file: str = "") -> Migration:
    """Parses a migration's SQL; an unparsable file, a misplaced marker or an acceptance
    without a reason is an InventoryError naming the file and line."""
    from pglast import parse_sql
    from pglast.parser import ParseError, scan

    where = file or "<migration>"
    line_starts = _line_starts(text)
    try:
        raw = parse_sql(text)
        tokens = [t for t in scan(text) if not t.name.endswith("COMMENT")]
    except ParseError as exc:
        index = exc.args[1] if len(exc.args) > 1 else None
        at = f":{_line_of(line_starts, index)}" if isinstance(index, int) else ""
        raise InventoryError(
            f"{where}{at}: the SQL does not parse: {exc.args[0]} (PostgreSQL's parser); fix the statement"
        ) from None
    no_transaction, contract = _markers(text, where)
    acceptances = _acceptances(text, where)
    token_starts = [t.start for t in tokens]

    statements: list[Statement] = []
    previous_end = 0  # line of the previous statement's end
    for position, stmt in enumerate(raw, start=1):
        begin = stmt.stmt_location or 0
        end = begin + stmt.stmt_len if stmt.stmt_len else len(text)
        own = tokens[bisect.bisect_left(token_starts, begin) : bisect.bisect_left(token_starts, end)]
        while own and own[-1].name == "ASCII_59":  # `;`
            own.pop()
        if not own:
            continue
        start, stop = own[0].start, own[-1].end + 1  # token ends are inclusive
        first_line, last_line = _line_of(line_starts, start), _line_of(line_starts, stop - 1)
        facts = describe(stmt.stmt)
        accepts = tuple(a for a in acceptances if previous_end < a.line <= last_line)
        statements.append(
            Statement(
                position=position,
                sql=text[start:stop],
                first_line=first_line,
                last_line=last_line,
                accepts=accepts,
                **facts,
            )
        )
        previous_end = last_line
    return Migration(tuple(statements), no_transaction, contract, tuple(acceptances), file)


def migration_markers(text: str, file: str = "") -> Markers:
    """The markers alone, without parsing the SQL (and without importing pglast): what the
    runner needs to know of every migration before it runs any. A misplaced or unknown marker
    is an InventoryError, as in parse_migration."""
    return Markers(*_markers(text, file or "<migration>"))


def without_acceptances(text: str) -> str:
    """The text without its acceptance lines: adding `-- lint: accept …` to a migration that is
    already applied must not change the checksum recorded for it. Only whole lines that are
    an acceptance comment go; everything else stays byte for byte."""
    return "".join(line for line in _lines_with_ends(text) if not _ACCEPT.fullmatch(line.strip()))


def _lines_with_ends(text: str) -> list[str]:
    """Lines split on `\\n` only (as PostgreSQL counts them), each with its line end."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def _line_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in re.finditer("\n", text)]


def _line_of(line_starts: list[int], index: int) -> int:
    return bisect.bisect_right(line_starts, index)


def _markers(text: str, where: str) -> tuple[bool, bool]:
    """The markers of the leading comment lines (before the first statement). no-transaction
    must be the very first non-blank line (that is what makes the runner skip its transaction,
    so a marker elsewhere would be a silent no-op: refused); contract may be on any of them."""
    no_transaction = contract = False
    first = True
    for number, raw_line in enumerate(text.split("\n"), start=1):
        line = raw_line.strip()
        if not line:
            continue
        if not line.startswith("--"):
            break
        marker = _MARKER.fullmatch(line)
        if marker:
            what = marker["what"].lower()
            if what == "no-transaction":
                if not first:
                    raise InventoryError(
                        f"{where}:{number}: `{NO_TRANSACTION_MARKER}` must be the file's first line; move it there"
                    )
                no_transaction = True
            elif what == "contract":
                contract = True
            else:
                raise InventoryError(
                    f"{where}:{number}: unknown marker `{line}`: write `{NO_TRANSACTION_MARKER}` (first line)"
                    f" or `{CONTRACT_MARKER}`, one per line"
                )
        first = False
    return no_transaction, contract


def _acceptances(text: str, where: str) -> list[Acceptance]:
    found = []
    for number, raw_line in enumerate(text.split("\n"), start=1):
        match = _ACCEPT.fullmatch(raw_line.strip())
        if not match:
            continue
        rest = _ACCEPT_REST.fullmatch(match["rest"])
        rule = rest["rule"] if rest else "RULE"
        reason = (rest["reason"] or "").strip() if rest else ""
        if not rest or not reason:
            raise InventoryError(
                f"{where}:{number}: `{raw_line.strip()}` needs a reason:"
                f" write `-- lint: accept {rule} because REASON` (why it is safe here)"
            )
        found.append(Acceptance(rule, reason, number))
    return found


__all__ = [
    "ACCEPT_SYNTAX",
    "CONTRACT_MARKER",
    "LOCK_MODES",
    "NO_TRANSACTION_MARKER",
    "Acceptance",
    "Markers",
    "Migration",
    "Statement",
    "migration_markers",
    "parse_migration",
    "without_acceptances",
]
