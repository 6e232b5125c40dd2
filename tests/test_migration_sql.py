"""healthinfra.migration_sql: statements, their text, lines and locks, markers and acceptances,
read by PostgreSQL's parser (pglast). Pure: no server, no subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest

from healthinfra.errors import InventoryError
from healthinfra.migration_sql import (
    LOCK_MODES,
    Acceptance,
    Markers,
    migration_markers,
    parse_migration,
    without_acceptances,
)

MIGRATIONS = Path(__file__).resolve().parent.parent / "templates" / "sql" / "migrations"


def only(sql: str):
    statements = parse_migration(sql).statements
    assert len(statements) == 1, statements
    return statements[0]


@pytest.mark.parametrize(
    "sql, kind, lock, relations",
    [
        ("create table t (id uuid primary key)", "CREATE TABLE", "none", ()),
        (
            "create table t (id uuid primary key, u uuid references users (id), foreign key (id) references ml.x)",
            "CREATE TABLE",
            "SHARE ROW EXCLUSIVE",
            ("users", "ml.x"),
        ),
        ("create table t (id uuid primary key, parent uuid references t (id))", "CREATE TABLE", "none", ()),
        ("alter table patients enable row level security", "ALTER TABLE", "ACCESS EXCLUSIVE", ("patients",)),
        ("alter table public.patients force row level security", "ALTER TABLE", "ACCESS EXCLUSIVE", ("patients",)),
        (
            "alter table ml.features add constraint f foreign key (patient_id) references public.patients (id) not valid",
            "ALTER TABLE",
            "SHARE ROW EXCLUSIVE",
            ("ml.features", "patients"),
        ),
        ("alter table patients validate constraint f", "ALTER TABLE", "SHARE UPDATE EXCLUSIVE", ("patients",)),
        ("alter table patients add column nickname text", "ALTER TABLE", "ACCESS EXCLUSIVE", ("patients",)),
        (
            "alter table patients validate constraint f, add column x text",
            "ALTER TABLE",
            "ACCESS EXCLUSIVE",
            ("patients",),
        ),
        ("alter table patients set (fillfactor = 70)", "ALTER TABLE", "SHARE UPDATE EXCLUSIVE", ("patients",)),
        ("alter table patients disable trigger patients_audit", "ALTER TABLE", "SHARE ROW EXCLUSIVE", ("patients",)),
        ("create index i on patients (last_name)", "CREATE INDEX", "SHARE", ("patients",)),
        (
            "create index concurrently i on ml.features (patient_id)",
            "CREATE INDEX CONCURRENTLY",
            "SHARE UPDATE EXCLUSIVE",
            ("ml.features",),
        ),
        ("drop table if exists ml.features", "DROP TABLE", "ACCESS EXCLUSIVE", ("ml.features",)),
        ("drop index i", "DROP INDEX", "ACCESS EXCLUSIVE", ("i",)),
        ("drop index concurrently i", "DROP INDEX CONCURRENTLY", "SHARE UPDATE EXCLUSIVE", ("i",)),
        ("create policy p on patients using (true)", "CREATE POLICY", "ACCESS EXCLUSIVE", ("patients",)),
        ("alter policy p on ml.features using (false)", "ALTER POLICY", "ACCESS EXCLUSIVE", ("ml.features",)),
        ("drop policy if exists p on patients", "DROP POLICY", "ACCESS EXCLUSIVE", ("patients",)),
        ("drop trigger t on patients", "DROP TRIGGER", "ACCESS EXCLUSIVE", ("patients",)),
        ("grant select on patients to patient_svc", "GRANT", "none", ()),
        ("revoke all on function f() from public", "REVOKE", "none", ()),
        (
            "create function f() returns int language plpgsql as $$ begin update patients set x = 1; return 1; end $$",
            "CREATE FUNCTION",
            "none",
            (),
        ),
        (
            "create trigger a after insert on patients for each row execute function f()",
            "CREATE TRIGGER",
            "SHARE ROW EXCLUSIVE",
            ("patients",),
        ),
        ("update patients set phone = null where id = $1", "UPDATE", "ROW EXCLUSIVE", ("patients",)),
        ("delete from ml.features", "DELETE", "ROW EXCLUSIVE", ("ml.features",)),
        ("insert into audit_log (actor) select actor from other", "INSERT", "ROW EXCLUSIVE", ("audit_log", "other")),
        ("comment on table patients is 'who is treated'", "COMMENT", "SHARE UPDATE EXCLUSIVE", ("patients",)),
        ("comment on column ml.features.vector is 'x'", "COMMENT", "SHARE UPDATE EXCLUSIVE", ("ml.features",)),
        ("comment on function f() is 'x'", "COMMENT", "none", ()),
        ("create extension if not exists pgcrypto", "CREATE EXTENSION", "none", ()),
        ("create schema ml", "CREATE SCHEMA", "none", ()),
        ("create view v as select count(*) from public.appointments", "CREATE VIEW", "ACCESS SHARE", ("appointments",)),
        (
            "alter table patients rename column phone to mobile",
            "ALTER TABLE RENAME COLUMN",
            "ACCESS EXCLUSIVE",
            ("patients",),
        ),
        ("alter index i rename to j", "ALTER INDEX RENAME", "SHARE UPDATE EXCLUSIVE", ("i",)),
        ("lock table patients in share mode", "LOCK", "SHARE", ("patients",)),
        ("truncate audit_log", "TRUNCATE", "ACCESS EXCLUSIVE", ("audit_log",)),
        ("do $$ begin perform 1; end $$", "DO", "ACCESS EXCLUSIVE", ()),
        ("begin", "BEGIN", "none", ()),
        ("select set_config('x.y', 'z', true)", "SELECT", "none", ()),
    ],
)
def test_kind_and_lock(sql, kind, lock, relations):
    statement = only(sql)
    assert (statement.kind, statement.lock, statement.relations) == (kind, lock, relations)
    assert statement.lock in LOCK_MODES


def test_facts_of_create_index_update_and_create_table():
    index = only("create index concurrently ix on patients (a)")
    assert (index.index_name, index.concurrently, index.refused_in_transaction) == ("ix", True, True)
    assert only("create index on patients (a)").index_name is None
    assert only("create index ix on ml.features (a)").index_name == "ml.ix"  # an index is in its table's schema
    assert only("create index ix on public.patients (a)").index_name == "ix"
    assert only("update ml.features set vector = '{}'").table_written == "ml.features"
    assert only("create table ml.t (id int)").tables_created == ("ml.t",)
    assert only("create table public.t (id int)").tables_created == ("t",)
    refresh = only("refresh materialized view concurrently m")
    assert refresh.concurrently and not refresh.refused_in_transaction
    fk = only("alter table a add column b uuid references c (id)")
    assert fk.locks == (("a", "ACCESS EXCLUSIVE"), ("c", "SHARE ROW EXCLUSIVE"))


def test_statement_text_and_lines_across_a_function_body_and_non_ascii():
    text = (
        "-- héllo — a comment with non-ASCII\n"  # 1
        "create table t (id int);\n"  # 2
        "\n"  # 3
        "-- the function — below has semicolons in its body\n"  # 4
        "create function f() returns int\n"  # 5
        "    language plpgsql as $$\n"  # 6
        "begin\n"  # 7
        "    update t set id = 1; -- ‘quoted’\n"  # 8
        "    return 1;\n"  # 9
        "end\n"  # 10
        "$$;\n"  # 11
        "select 'é' -- trailing\n"  # 12
        ";\n"  # 13
        "update t set id = 2"  # 14: no final `;`, no newline
    )
    statements = parse_migration(text).statements
    assert [s.position for s in statements] == [1, 2, 3, 4]
    assert [(s.first_line, s.last_line) for s in statements] == [(2, 2), (5, 11), (12, 12), (14, 14)]
    assert statements[0].sql == "create table t (id int)"
    assert statements[1].sql.startswith("create function f()") and statements[1].sql.endswith("end\n$$")
    assert "update t set id = 1; -- ‘quoted’" in statements[1].sql
    assert statements[2].sql == "select 'é'"
    assert statements[3].sql == "update t set id = 2"
    for statement in statements:
        assert statement.sql in text


@pytest.mark.parametrize(
    "head, no_transaction, contract",
    [
        ("-- migration: no-transaction\n", True, False),
        ("\n  --   Migration:No-Transaction  \n", True, False),
        ("-- migration: contract\n", False, True),
        ("-- 0007 drops the old column\n-- migration: contract\n", False, True),
        ("-- migration: no-transaction\n-- migration: contract\n", True, True),
        ("-- a migration: no-transaction is not a marker\n", False, False),
        ("", False, False),
    ],
)
def test_markers(head, no_transaction, contract):
    text = head + "select 1;\n-- migration: contract (after a statement: only a comment)\n"
    migration = parse_migration(text)
    assert (migration.no_transaction, migration.contract) == (no_transaction, contract)
    assert migration_markers(text) == Markers(no_transaction, contract)


def test_a_misplaced_or_unknown_marker_is_refused():
    with pytest.raises(InventoryError, match=r"m\.sql:2: .*must be the file's first line"):
        parse_migration("-- migration: contract\n-- migration: no-transaction\nselect 1;", "m.sql")
    with pytest.raises(InventoryError, match=r"m\.sql:1: unknown marker"):
        parse_migration("-- migration: no-transactions\nselect 1;", "m.sql")
    with pytest.raises(InventoryError, match=r"m\.sql:1: unknown marker"):
        migration_markers("-- migration: no-transactions\nselect 1;", "m.sql")


def test_acceptances_belong_to_the_statement_above_or_inside():
    text = (
        "create table a (id int);\n"  # 1
        "-- lint: accept require-concurrent-index-creation because the table is empty: created above\n"  # 2
        "create index on a (id);\n"  # 3
        "create table b (\n"  # 4
        "    id int,\n"  # 5
        "    -- LINT: Accept ban-char-field because NPIs are exactly ten digits\n"  # 6
        "    npi char(10)\n"  # 7
        ");\n"  # 8
        "-- lint: accept some-rule because nothing follows\n"  # 9
    )
    migration = parse_migration(text, "x.up.sql")
    first, index, table = migration.statements
    assert first.accepts == ()
    assert index.accepts == (Acceptance("require-concurrent-index-creation", "the table is empty: created above", 2),)
    assert table.accepts == (Acceptance("ban-char-field", "NPIs are exactly ten digits", 6),)
    assert [a.line for a in migration.acceptances] == [2, 6, 9]
    assert migration.statement_at(6) is table and migration.statement_at(2) is index


@pytest.mark.parametrize(
    "line", ["-- lint: accept ban-char-field", "-- lint: accept ban-char-field because   ", "-- lint: accept"]
)
def test_an_acceptance_without_a_reason_is_an_error_naming_the_line(line):
    with pytest.raises(InventoryError) as caught:
        parse_migration(f"select 1;\n{line}\nselect 2;\n", "0009_x.up.sql")
    message = str(caught.value)
    assert message.startswith("0009_x.up.sql:2: ")
    assert "needs a reason" in message and "because REASON" in message
    assert caught.value.exit_code == 2


def test_without_acceptances_removes_only_acceptance_lines():
    original = "-- a comment\ncreate index on a (id);\n  -- lint is good\nselect 1; -- lint: accept x because inline\n"
    accepted = (
        "-- a comment\n"
        "-- lint: accept require-concurrent-index-creation because empty\n"
        "create index on a (id);\n"
        "  -- lint is good\n"
        "   -- lint: accept x because y   \n"
        "select 1; -- lint: accept x because inline\n"
    )
    assert without_acceptances(accepted) == original
    assert without_acceptances(original) == original
    assert without_acceptances("select 1;\n-- lint: accept x because y") == "select 1;\n"


def test_a_parse_error_names_the_file_and_line():
    with pytest.raises(InventoryError) as caught:
        parse_migration("-- é\nselect 1;\ncreate tabel x (a int);\n", "0042_broken.up.sql")
    message = str(caught.value)
    assert message.startswith("0042_broken.up.sql:3: the SQL does not parse")
    assert "syntax error" in message


def test_a_file_of_comments_only_has_no_statements():
    assert parse_migration("-- nothing yet\n\n").statements == ()


@pytest.mark.parametrize("path", sorted(MIGRATIONS.glob("*.sql")), ids=lambda p: p.name)
def test_every_real_migration_parses(path):
    migration = parse_migration(path.read_text(encoding="utf-8"), str(path))
    assert len(migration.statements) > 0
    assert all(s.lock in LOCK_MODES for s in migration.statements)
    assert not migration.no_transaction
