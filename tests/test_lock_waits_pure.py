"""Bounded lock waits, the pure part: durations, the inventory keys, who blocks and how it is said."""

from __future__ import annotations

import random

import pytest

from healthinfra.errors import InventoryError
from healthinfra.lock_waits import (
    Blocked,
    Blocker,
    backoff_seconds,
    check_wait_settings,
    parse_duration,
    timeout_message,
    waiting_line,
)
from healthinfra.providers.pg_watch import parse_blockers

REPORT = Blocker(4711, "patient_svc", "nightly-report", "idle in transaction", 9.4, "select * from patients " * 10)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2s", 2.0), ("500ms", 0.5), ("5min", 300.0), ("1h", 3600.0), ("1500", 1.5), (" 3 s ", 3.0), ("1d", 86400.0)],
)
def test_durations_read_as_postgresql_reads_them(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "two seconds", "2 sec", "-1s", "2s5"])
def test_what_is_not_a_duration(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"lock_timeout": "soon"}, "database.lock_timeout"),
        ({"lock_timeout": "0"}, "database.lock_timeout"),
        ({"statement_timeout": "0s"}, "database.statement_timeout"),
        ({"statement_timeout": "5 minutes"}, "database.statement_timeout"),
        ({"lock_timeout": "100us"}, "database.lock_timeout"),
        ({"lock_timeout": "0.4"}, "database.lock_timeout"),
        ({"statement_timeout": "30d"}, "database.statement_timeout"),
        ({"lock_retry_seconds": -1}, "database.lock_retry_seconds"),
        ({"lock_retry_seconds": 100000}, "database.lock_retry_seconds"),
    ],
)
def test_a_bad_wait_setting_names_the_file_and_key(settings, key):
    with pytest.raises(InventoryError) as caught:
        check_wait_settings(settings, "dev.yml")
    assert str(caught.value).startswith(f"dev.yml: `{key}`"), caught.value


def test_good_wait_settings_pass():
    check_wait_settings({"lock_timeout": "500ms", "statement_timeout": "10min", "lock_retry_seconds": 0}, "x.yml")
    check_wait_settings({}, "x.yml")


def test_the_progress_line_names_the_table_the_holder_and_the_try():
    line = waiting_line(Blocked(("patients",), (REPORT,)), attempt=2)
    assert line == "waiting for a lock on patients held by pid 4711 (patient_svc, idle in transaction for 9 s), try 3"
    assert "try 2" in waiting_line(None, 1)


def test_the_error_names_each_blocker_with_the_start_of_its_query_and_what_to_do():
    other = Blocker(4712, "provider_svc", "", "active", None, "update patients set phone = null")
    message = timeout_message("apply pg.migration 0002", Blocked(("patients",), (REPORT, other)), "2s", 120)
    assert "pid 4711 (patient_svc, idle in transaction for 9 s, application `nightly-report`, query `select" in message
    shown = message.split("query `", 1)[1].split("`", 1)[0]
    assert len(shown) == 81 and shown.endswith("…"), "the first 80 characters of the query"
    assert "pid 4712 (provider_svc, active, query `update patients set phone = null`)" in message
    assert "pg_terminate_backend" in message and "4711, 4712" in message
    assert "database.lock_retry_seconds" in message and "nothing of this change was applied" in message


def test_the_journalled_error_keeps_no_query_text():
    message = timeout_message("x", Blocked(("patients",), (REPORT,)), "2s", 120, with_queries=False)
    assert "from patients" not in message and "pid 4711 (patient_svc" in message
    assert "query" not in str(REPORT.journalled())


def test_backoff_is_jittered_within_a_doubling_bound():
    rng = random.Random(7)
    waits = [backoff_seconds(attempt, rng) for attempt in range(1, 9)]
    for attempt, wait in enumerate(waits, start=1):
        ceiling = min(4.0, 0.25 * 2 ** (attempt - 1))
        assert ceiling / 2 <= wait <= ceiling
    assert len({round(backoff_seconds(3, rng), 6) for _ in range(20)}) > 1, "two runs do not retry in step"


def test_blocker_rows_group_by_waiting_statement():
    rows = [
        (10, ["patients"], 4711, "patient_svc", "report", "idle in transaction", 9.0, "select 1"),
        (10, ["patients"], 4712, "ai_svc", "", "active", 1.0, "select 2"),
        (11, ["ml.features"], 4713, "ai_svc", "", "active", None, "select 3"),
    ]
    found = parse_blockers(rows)
    assert [b.pid for b in found[10].blockers] == [4711, 4712] and found[10].relations == ("patients",)
    assert found[11].relations == ("ml.features",) and found[11].blockers[0].transaction_seconds is None
    assert parse_blockers([(12, ["public.patients"], 1, "u", "", "", 0.0, "")])[12].relations == ("patients",)


def test_a_blocker_whose_activity_the_admin_may_not_see_is_named_and_the_fix_said():
    hidden = Blocker(27100, "patient_svc", "nightly-report", "", None, "<insufficient privilege>")
    line = waiting_line(Blocked(("patients",), (hidden,)), attempt=1)
    assert (
        line
        == "waiting for a lock on patients held by pid 27100 (patient_svc, its state hidden from the admin role), try 2"
    )
    message = timeout_message("apply pg.migration 0002", Blocked(("patients",), (hidden,)), "2s", 120)
    assert (
        "pid 27100 (patient_svc, application `nightly-report`, its state and query hidden from the admin role"
        in message
    )
    assert "pg_read_all_stats" in message and "insufficient privilege" not in message


def test_a_wait_whose_holder_was_not_seen_says_so_without_guessing():
    assert "(its holder not named: it ended, or the wait ended before the watcher looked), try 2" in waiting_line(
        None, 1
    )
    assert "held by a session not named" in timeout_message("x", None, "2s", 120)
