"""Contract changes in the engine, pure: a plain run leaves them waiting (made nowhere, kept where
they exist), `--contract` makes them after everything else; and what a plan shows a reviewer."""

from __future__ import annotations

import pytest

from healthinfra.plan import Item, with_contracts
from healthinfra.recap import SQL_LINES_SHOWN, review_lines
from healthinfra.resources.pg_migration import PgMigration


def migration(name: str, contract: bool = False) -> PgMigration:
    marks = {"contract": True} if contract else {}
    return PgMigration(name, {"checksum": name}, database="healthcare", directory="templates/sql/migrations", **marks)


ITEMS = [
    Item("db", "apply the schema migrations", migration("0007_expand")),
    Item("db", "apply the schema migrations", migration("0008_contract", contract=True)),
    Item("db", "apply the schema migrations", migration("0009_next")),
]


def test_without_contract_a_contract_change_waits_in_its_place():
    items = with_contracts(ITEMS, contract=False)
    assert [i.resource.name for i in items] == ["0007_expand", "0008_contract", "0009_next"]
    assert [i.resource.is_waiting for i in items] == [False, True, False]


def test_with_contract_the_contract_changes_come_last():
    items = with_contracts(ITEMS, contract=True)
    assert [i.resource.name for i in items] == ["0007_expand", "0009_next", "0008_contract"]
    assert not any(i.resource.is_waiting for i in items)


@pytest.mark.parametrize(
    ("current", "ops"),
    [
        (None, []),  # missing: waits, nothing is made
        ({"checksum": "0008_contract"}, []),  # already made: kept, as any other
        ({"checksum": "edited"}, ["set"]),  # and checked, as any other (an edited file is refused)
    ],
)
def test_a_waiting_contract_change_makes_nothing_missing(current, ops):
    waiting = migration("0008_contract", contract=True).waiting()
    assert [a.op for a in waiting.actions_for(current)] == ops


def test_a_waiting_change_says_why_and_a_plain_one_does_not_wait():
    waiting = migration("0008_contract", contract=True).waiting()
    assert waiting.noop_reason(None).startswith("waiting: a contract change, made only by `deploy --contract`")
    assert [a.op for a in migration("0007_expand").actions_for(None)] == ["create"]
    assert waiting.ref()["params"]["waiting"] is True and waiting.contract


def test_review_lines_show_each_statement_its_sql_and_findings():
    long_sql = "\n".join(f"line {n}" for n in range(SQL_LINES_SHOWN + 3))
    lines = review_lines(
        [
            {
                "summary": "1. ALTER TABLE: takes ACCESS EXCLUSIVE on patients (x.up.sql:3)",
                "where": "x.up.sql:3",
                "sql": "alter table patients enable row level security",
                "findings": [],
            },
            {
                "summary": "2. CREATE TABLE: takes no table lock (x.up.sql:5)",
                "where": "x.up.sql:5",
                "sql": long_sql,
                "findings": [
                    {"rule": "ban-char-field", "line": 7, "message": "char is a mistake", "accepted": "ten digits"},
                    {"rule": "adding-required-field", "line": 9, "message": "breaks inserts", "accepted": None},
                ],
            },
        ]
    )
    assert lines[0] == "    1. ALTER TABLE: takes ACCESS EXCLUSIVE on patients (x.up.sql:3)"
    assert lines[1] == "        alter table patients enable row level security"
    assert "        … 3 more lines (x.up.sql:5)" in lines
    assert "      ! ban-char-field (line 7): char is a mistake [accepted: ten digits]" in lines
    assert lines[-1] == "      ! adding-required-field (line 9): breaks inserts [not accepted (invoke db.lint)]"
