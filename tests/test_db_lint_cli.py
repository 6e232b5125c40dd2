"""`invoke db.lint` as a user runs it, with squawk's own binary: every migration of the project
passes (findings fixed or accepted with a reason); a dangerous migration fails naming the file,
line, rule and squawk's help; bad input exits 2."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration  # runs squawk, a program of its own


def test_the_projects_migrations_pass_and_say_what_was_accepted(invoke):
    result = invoke("db.lint")
    assert result.code == 0, result
    assert "accepted templates/sql/migrations/0001_core_tables.up.sql:33 ban-char-field because" in result.out
    assert result.out.rstrip().endswith("db.lint: 12 files, 0 findings not accepted, 1 accepted")


def test_a_dangerous_migration_fails_with_file_line_rule_and_help(invoke, tmp_path):
    bad = tmp_path / "0099_nickname.up.sql"
    bad.write_text(
        "-- a new required column, and an index built under a write lock\n"
        "alter table patients add column nickname text not null;\n"
        "create index on patients (nickname);\n"
    )
    result = invoke("db.lint", "--files", str(bad))
    assert result.code == 1, result
    assert f"{bad}:2: adding-required-field:" in result.out, result.out
    assert f"{bad}:3: require-concurrent-index-creation:" in result.out
    assert "    help: " in result.out
    accepted = tmp_path / "0099_accepted.up.sql"
    accepted.write_text(
        "-- lint: accept require-concurrent-index-creation because the table is empty at this phase\n"
        "create index on patients (nickname);\n"
    )
    result = invoke("db.lint", "--files", str(accepted))
    assert result.code == 0, result
    assert "because the table is empty at this phase" in result.out


@pytest.mark.parametrize(
    ("content", "name", "expected"),
    [
        (None, "missing.up.sql", "db.lint: no file"),
        ("select 1;\n", "plain.sql", "is not a migration file (NAME.up.sql or NAME.down.sql)"),
        ("-- lint: accept ban-char-field\ncreate table t (c char(2));\n", "0001_x.up.sql", "needs a reason"),
        ("create tabel t (id int);\n", "0001_y.up.sql", "the SQL does not parse"),
    ],
)
def test_bad_input_exits_2_saying_what_to_do(invoke, tmp_path, content, name, expected):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    result = invoke("db.lint", "--files", str(path))
    assert result.code == 2, result
    assert expected in result.err, result.err
