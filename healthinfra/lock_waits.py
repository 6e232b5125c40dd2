"""Bounded waits for the locks DDL takes: durations, who blocks, and how it is said. Pure.

Every DDL statement the runner sends waits at most `database.lock_timeout` for a lock
(PostgreSQL's `lock_timeout`); while it waits, every other query on that table queues
behind it, so a short bound is what keeps the services answering. A statement that hits
the bound is retried, the whole change again, with jittered backoff, until
`database.lock_retry_seconds` have passed. What is said meanwhile and at the end names
the sessions holding the lock (`pg_blocking_pids`), so a person can end or wait for them.
The journal keeps who blocked, never their query text: it may hold patient data.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from .errors import InventoryError

DEFAULT_LOCK_TIMEOUT = "2s"
DEFAULT_STATEMENT_TIMEOUT = "5min"
DEFAULT_LOCK_RETRY_SECONDS = 120
QUERY_SHOWN = 80  # characters of a blocker's query a message shows

# PostgreSQL's table lock modes, weakest first (its own numbering: LOCK's mode 1..8)
LOCK_MODES = (
    "none",
    "ACCESS SHARE",
    "ROW SHARE",
    "ROW EXCLUSIVE",
    "SHARE UPDATE EXCLUSIVE",
    "SHARE",
    "SHARE ROW EXCLUSIVE",
    "EXCLUSIVE",
    "ACCESS EXCLUSIVE",
)
(
    NONE,
    ACCESS_SHARE,
    ROW_SHARE,
    ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    EXCLUSIVE,
    ACCESS_EXCLUSIVE,
) = LOCK_MODES

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$")


def parse_duration(text: str) -> float:
    """A PostgreSQL time setting (`2s`, `500ms`, `5min`, `1h`; a bare number is milliseconds,
    as PostgreSQL reads it) as seconds. ValueError when it is not one."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(text)
    number, unit = match.groups()
    return float(number) * _UNITS[unit or "ms"]


MAX_DURATION_SECONDS = 2_147_483.647  # PostgreSQL's largest timeout: INT_MAX milliseconds (about 24.8 days)


def check_wait_settings(settings: dict, file: str) -> None:
    """The `database` section's bounded-wait keys, when given (InventoryError naming the key)."""
    for key in ("lock_timeout", "statement_timeout"):
        value = settings.get(key)
        if value is None:
            continue
        try:
            seconds = parse_duration(value)
        except ValueError:
            seconds = -1.0
        # PostgreSQL rounds below a millisecond to 0 (wait forever) and stops at INT_MAX milliseconds
        if not 0.001 <= seconds <= MAX_DURATION_SECONDS:
            raise InventoryError(
                f"{file}: `database.{key}` must be a PostgreSQL duration like `2s`, `500ms` or `5min`, from 1ms"
                f" to 24d (0 would mean wait forever), got `{value}`"
            )
    retry = settings.get("lock_retry_seconds")
    if retry is not None and not 0 <= retry <= 86400:
        raise InventoryError(
            f"{file}: `database.lock_retry_seconds` must be a number of seconds from 0 (never retry) to 86400,"
            f" got `{retry}`"
        )


HIDDEN_QUERY = "<insufficient privilege>"  # pg_stat_activity.query of a session the viewer may not see


@dataclass(frozen=True)
class Blocker:
    """A session holding a lock another statement waits for (one row of pg_stat_activity)."""

    pid: int
    user: str
    application: str
    state: str
    transaction_seconds: float | None  # how long its transaction has been open
    query: str

    @property
    def hidden(self) -> bool:
        """pg_stat_activity hides another role's state and query from an admin that is neither a
        superuser nor a member of pg_read_all_stats (a server of one's own, often)."""
        return self.query == HIDDEN_QUERY

    def short(self) -> str:
        """`pid 4711 (patient_svc, idle in transaction for 9 s)`"""
        if self.hidden:
            return f"pid {self.pid} ({self.user}, its state hidden from the admin role)"
        open_for = "" if self.transaction_seconds is None else f" for {round(self.transaction_seconds)} s"
        return f"pid {self.pid} ({self.user}, {self.state or 'unknown state'}{open_for})"

    def full(self) -> str:
        app = f", application `{self.application}`" if self.application else ""
        if self.hidden:
            return (
                f"pid {self.pid} ({self.user}{app}, its state and query hidden from the admin role:"
                " an admin in pg_read_all_stats or pg_monitor sees them)"
            )
        query = " ".join(self.query.split())
        shown = query[:QUERY_SHOWN] + ("…" if len(query) > QUERY_SHOWN else "")
        return f"{self.short()[:-1]}{app}, query `{shown}`)"

    def journalled(self) -> dict:
        """What the journal keeps: never the query text (it may hold patient data)."""
        return {
            "pid": self.pid,
            "user": self.user,
            "application": self.application,
            "state": self.state,
            "transaction_seconds": None if self.transaction_seconds is None else round(self.transaction_seconds, 1),
        }


@dataclass(frozen=True)
class Blocked:
    """What a waiting statement waited for: the relations it asked to lock and who held them."""

    relations: tuple[str, ...]
    blockers: tuple[Blocker, ...]

    def on(self) -> str:
        return ", ".join(self.relations) if self.relations else "a table"


def waiting_line(blocked: Blocked | None, attempt: int) -> str:
    """The progress line of one retry:
    `waiting for a lock on patients held by pid 4711 (patient_svc, idle in transaction for 9 s), try 3`"""
    if blocked is None or not blocked.blockers:
        return f"waiting for a lock on {blocked.on() if blocked else 'a table'} (its holder not named: it ended, or the wait ended before the watcher looked), try {attempt + 1}"
    held = ", ".join(b.short() for b in blocked.blockers)
    return f"waiting for a lock on {blocked.on()} held by {held}, try {attempt + 1}"


NOTHING_APPLIED = "nothing of this change was applied"


def timeout_message(
    what: str,
    blocked: Blocked | None,
    lock_timeout: str,
    retry_for: float,
    *,
    with_queries: bool = True,
    applied: str = NOTHING_APPLIED,
) -> str:
    """The error of a statement that hit lock_timeout: who holds the lock and what to do.
    `with_queries=False`: as the journal keeps it, without the blockers' query text. `applied`:
    what of the change stays (a no-transaction migration's statements that ran)."""
    if blocked is None or not blocked.blockers:
        held = "held by a session not named (it ended, or the wait ended before the watcher looked)"
        ends = ""
    else:
        held = "held by " + "; ".join(b.full() if with_queries else b.short() for b in blocked.blockers)
        pids = ", ".join(str(b.pid) for b in blocked.blockers)
        ends = f" (`select pg_terminate_backend(pid)` for {pids} ends it)"
    on = blocked.on() if blocked else "a table"
    return (
        f"{what}: waited {lock_timeout} for a lock on {on}, {held};"
        f" retried for up to {round(retry_for)} s (database.lock_retry_seconds); end or wait for that session{ends},"
        f" then run again; {applied}"
    )


def backoff_seconds(attempt: int, rng: random.Random | None = None) -> float:
    """Jittered exponential backoff between lock retries: 0.25 s doubling to at most 4 s, each
    wait drawn from its upper half so retries of several runs do not line up."""
    ceiling = min(4.0, 0.25 * 2 ** max(0, attempt - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)
