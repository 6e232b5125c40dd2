"""One versioned migration: applied with its up SQL, undone with its down SQL, never edited.

Its state is a row in `schema_migrations` with the checksum of the SQL that was applied (the
`-- lint: accept …` lines left out, so accepting a finding never changes an applied migration).

A migration runs in one transaction, under the session's `database.lock_timeout` and its own
`database.statement_timeout`: a lock wait that hits the bound rolls it all back, and the run
tries it again (faults.with_retries). A migration whose first line is
`-- migration: no-transaction` runs statement by statement instead (`create index
concurrently` cannot run in a transaction): each statement that ran is recorded in
`schema_migration_steps`, so a run interrupted halfway goes on where it stopped, and an
index left invalid by an interrupted or cancelled build (`pg_index.indisvalid = false`) is
dropped and built again, which the run says. A migration marked `-- migration: contract`
(drops, renames, type changes) is a contract change: only `deploy --contract` applies it.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

from ..errors import MigrationChanged
from ..inventory import project_root
from ..migration_sql import migration_markers, without_acceptances
from ..resource import Resource
from .pg_facts import MIGRATIONS_TABLE, _sql, migrations_fact, refuse_data_loss, rows_held, rows_held_locked

if TYPE_CHECKING:
    from ..migration_sql import Migration, Statement

STEPS_TABLE = "schema_migration_steps"  # statements of a no-transaction migration that ran


def bound_statements(ctx, conn, *, local: bool = True) -> None:
    """No statement runs longer than `database.statement_timeout` (inside a transaction, for it
    alone: `local`); the session's `lock_timeout` bounds its lock waits."""
    conn.execute("select set_config('statement_timeout', %s, %s)", (ctx.pg.statement_timeout, local))


class PgMigration(Resource):
    """One versioned migration, applied with its up SQL and undone with its down SQL.

    A migration edited after it was applied is an error, not a diff: write a new migration instead.
    """

    kind = "pg.migration"
    uses_postgres = True

    def __init__(self, name, desired, *, database: str, directory: str, **marks: Any):
        # `directory` is relative to the project root, so a journal replays from any checkout;
        # `marks`: contract=True for a contract migration, waiting=True while it waits (resource.py)
        super().__init__(name, desired, database=database, directory=directory, **marks)

    @classmethod
    def from_files(cls, name: str, *, database: str, directory: str) -> PgMigration:
        """The migration NAME in `directory` (relative to the project root), wanted applied."""
        up, down = (project_root() / directory / f"{name}.{d}.sql" for d in ("up", "down"))
        up_text, down_text = up.read_text(encoding="utf-8"), down.read_text(encoding="utf-8")
        marks = {"contract": True} if migration_markers(up_text, f"{directory}/{name}.up.sql").contract else {}
        desired = {"checksum": cls.checksum_of(up_text, down_text)}
        return cls(name, desired, database=database, directory=directory, **marks)

    def depends_on(self):
        return [f"pg.database {self.params['database']}"]

    def path(self, direction: str) -> str:
        return f"{self.params['directory']}/{self.name}.{direction}.sql"

    def sql_text(self, direction: str) -> str:
        return (project_root() / self.path(direction)).read_text(encoding="utf-8")

    def parsed(self, direction: str) -> Migration:
        from ..migration_sql import parse_migration

        return parse_migration(self.sql_text(direction), self.path(direction))

    @staticmethod
    def checksum_of(up: str, down: str) -> str:
        """Of the SQL as it runs: lines that only accept a lint finding are not part of it."""
        up, down = without_acceptances(up), without_acceptances(down)
        return hashlib.sha256((up + "\0" + down).encode()).hexdigest()[:16]

    def files_checksum(self) -> str:
        return self.checksum_of(self.sql_text("up"), self.sql_text("down"))

    def read(self, ctx):
        checksum = migrations_fact(ctx, self.params["database"]).get(self.name)
        return None if checksum is None else {"checksum": checksum}

    def changed_files(self, recorded: str) -> MigrationChanged:
        return MigrationChanged(
            f"{self.params['directory']}/{self.name}.up.sql or .down.sql changed after it was applied"
            f" (checksum {recorded} in the database, {self.files_checksum()} on disk);"
            " restore the files and add a new migration for the change"
        )

    def dropped_tables(self) -> list[str]:
        """Tables the down SQL drops, schema-qualified outside `public` (as rows_held names them)."""
        names = re.findall(r"drop\s+table\s+(?:if\s+exists\s+)?([a-z_][a-z0-9_.]*)", self.sql_text("down"), re.I)
        return [name.lower().removeprefix("public.") for name in names]

    def review(self, actions) -> list[dict[str, Any]]:
        """What a reviewer reads of this change: the statements that will run (up for a create,
        down for a delete), each with the lock it takes and its lint findings."""
        from ..migration_review import review_statements

        for action in actions:
            if action.op in ("create", "delete"):
                return review_statements(self, "up" if action.op == "create" else "down")
        return []

    def guard(self, ctx, actions):
        """Preflight: an edited migration is an error, one that does not parse too, and its undo
        is refused while a table its down SQL drops holds rows (counted again under lock by the
        undo itself: `apply`)."""
        for action in actions:
            if action.op == "set":  # an applied migration is never re-applied differently
                raise self.changed_files(action.before)
            if action.op == "create":  # SQL that does not parse, or a bad marker: refused before any change
                self.parsed("up")
            if action.op == "delete":
                if action.before["checksum"] != self.files_checksum():  # undo only with the SQL that was applied
                    raise self.changed_files(action.before["checksum"])
                conn = ctx.pg.admin(self.params["database"])
                refuse_data_loss(ctx, rows_held(conn, self.dropped_tables()), f"undo migration `{self.name}`")

    def apply(self, ctx, actions):
        conn = ctx.pg.admin(self.params["database"])
        for action in actions:
            if action.op == "create":
                migration = self.parsed("up")
                if migration.no_transaction:
                    self._up_statement_by_statement(ctx, conn, migration, action.after["checksum"])
                else:
                    with conn.transaction():
                        bound_statements(ctx, conn)
                        _ensure_migrations_table(conn)
                        conn.execute(self.sql_text("up"))
                        _record(conn, self.name, action.after["checksum"])
            elif action.op == "delete":
                self.guard(ctx, [action])  # an obvious refusal, before any lock is taken
                self._down(ctx, conn)
            else:
                raise self.changed_files(action.before)

    def _down(self, ctx, conn) -> None:
        sql = _sql()
        table = sql.Identifier(MIGRATIONS_TABLE)
        migration = self.parsed("down")
        if migration.no_transaction:  # e.g. `drop index concurrently`: one statement at a time
            bound_statements(ctx, conn, local=False)
            done = 0
            try:
                for statement in migration.statements:
                    conn.execute(statement.sql)
                    done += 1
            except Exception as exc:
                if done:  # the lint holds no-transaction down files to prefer-robust-stmts: they run again
                    exc.applied = (  # type: ignore[attr-defined]
                        f"the first {done} statements of this no-transaction down migration ran and stay;"
                        " the next run runs them all again"
                    )
                raise
            finally:
                _reset_statement_timeout(conn)
        with conn.transaction():
            bound_statements(ctx, conn)
            if not migration.no_transaction:
                # the tables it drops are locked, counted and dropped in this one transaction:
                # a row written since preflight is counted (refused, rolled back) or waits
                # for the drop and finds its table gone
                if not ctx.destroy_data:
                    held = rows_held_locked(conn, self.dropped_tables())
                    refuse_data_loss(ctx, held, f"undo migration `{self.name}`")
                conn.execute(self.sql_text("down"))
            conn.execute(sql.SQL("delete from {} where version = %s").format(table), (self.name,))
            left = conn.execute(sql.SQL("select count(*) from {}").format(table)).fetchone()[0]
            if left == 0:  # the table came with the first migration; leave nothing behind
                conn.execute(sql.SQL("drop table {}").format(table))

    def _up_statement_by_statement(self, ctx, conn, migration: Migration, checksum: str) -> None:
        """Each statement on its own (autocommit), recorded once it ran; what ran before an
        interruption is not run again, and an index it left invalid is rebuilt."""
        sql = _sql()
        _ensure_migrations_table(conn)
        conn.execute(
            sql.SQL(
                "create table if not exists {} (version text not null, position int not null, checksum text not null,"
                " ran_at timestamptz not null default now(), primary key (version, position))"
            ).format(_steps_table())
        )
        ran = {
            position: recorded
            for position, recorded in conn.execute(
                sql.SQL("select position, checksum from {} where version = %s").format(_steps_table()), (self.name,)
            ).fetchall()
        }
        if any(recorded != checksum for recorded in ran.values()):
            raise self.changed_files(next(r for r in ran.values() if r != checksum))
        if ran:
            shown = ", ".join(str(p) for p in sorted(ran))
            ctx.notice(self.key, f"statements {shown} ran in an interrupted run: going on from there")
        bound_statements(ctx, conn, local=False)
        done = set(ran)
        try:
            for statement in migration.statements:
                if statement.position in done:
                    continue
                if statement.index_name and self._index_already_built(ctx, conn, statement):
                    pass
                else:
                    conn.execute(statement.sql)
                conn.execute(
                    sql.SQL("insert into {} (version, position, checksum) values (%s, %s, %s)").format(_steps_table()),
                    (self.name, statement.position, checksum),
                )
                done.add(statement.position)
        except Exception as exc:
            if done:  # what the error says stays: these statements are committed
                shown = ", ".join(str(p) for p in sorted(done))
                exc.applied = (  # type: ignore[attr-defined]
                    f"statements {shown} of this no-transaction migration ran and stay (schema_migration_steps);"
                    " the next run goes on from there"
                )
            raise
        finally:
            _reset_statement_timeout(conn)
        with conn.transaction():
            _record(conn, self.name, checksum)
            conn.execute(sql.SQL("delete from {} where version = %s").format(_steps_table()), (self.name,))
            _drop_steps_table_if_empty(conn)

    def _index_already_built(self, ctx, conn, statement: Statement) -> bool:
        """Before a statement that builds a named index: if a build of it was interrupted, the
        index is there but invalid (it takes writes, serves no reads): drop it, so it is built
        again. A valid one means the statement ran but was not recorded: it counts as run."""
        schema, _, name = (statement.index_name or "").rpartition(".")
        row = conn.execute(
            """select i.indisvalid from pg_index i
                 join pg_class c on c.oid = i.indexrelid
                 join pg_namespace n on n.oid = c.relnamespace
                where c.relname = %s and n.nspname = %s""",
            (name, schema or "public"),
        ).fetchone()
        if row is None:
            return False
        if row[0]:
            ctx.notice(
                self.key,
                f"index {statement.index_name} is already built and valid: statement {statement.position} counts as run",
            )
            return True
        sql = _sql()
        target = sql.Identifier(schema, name) if schema else sql.Identifier(name)
        concurrently = sql.SQL(" concurrently") if statement.concurrently else sql.SQL("")
        conn.execute(sql.SQL("drop index{} if exists {}").format(concurrently, target))
        ctx.notice(
            self.key,
            f"index {statement.index_name} was left invalid by an interrupted or cancelled build"
            " (pg_index.indisvalid = false): dropped it, building it again",
        )
        return False


def _steps_table():
    return _sql().Identifier(STEPS_TABLE)


def _ensure_migrations_table(conn) -> None:
    sql = _sql()
    conn.execute(
        sql.SQL(
            "create table if not exists {} (version text primary key, checksum text not null,"
            " applied_at timestamptz not null default now())"
        ).format(sql.Identifier(MIGRATIONS_TABLE))
    )


def _drop_steps_table_if_empty(conn) -> None:
    """The steps table exists only while a no-transaction migration is halfway."""
    sql = _sql()
    if not conn.execute(sql.SQL("select exists (select from {})").format(_steps_table())).fetchone()[0]:
        conn.execute(sql.SQL("drop table {}").format(_steps_table()))


def _reset_statement_timeout(conn) -> None:
    if not conn.closed and not conn.broken:  # a broken connection's error is the one to report
        conn.execute("reset statement_timeout")


def _record(conn, name: str, checksum: str) -> None:
    sql = _sql()
    conn.execute(
        sql.SQL("insert into {} (version, checksum) values (%s, %s)").format(sql.Identifier(MIGRATIONS_TABLE)),
        (name, checksum),
    )
