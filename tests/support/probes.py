"""Probes that act as a service does: its own login role, a query every few milliseconds,
every error counted and the longest wait kept. And a blocker: a session of the service
that holds a lock on a table (a long report), until told to end."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from .database import connect_as


@dataclass
class ProbeResult:
    queries: int = 0
    errors: list[str] = field(default_factory=list)
    longest: float = 0.0
    last_success: float = 0.0  # time.monotonic() when the last query returned


@contextmanager
def probing(env, role: str, query, every: float = 0.02):
    """Query as `role` every `every` seconds on one connection (reconnecting after an error,
    which is counted) until the block ends. Yields the result, filled in as it runs. `query`
    is SQL, or a function given the connection (a service's write-then-read)."""
    result = ProbeResult()
    stop = threading.Event()

    def loop() -> None:
        conn = None
        while not stop.is_set():
            started = time.monotonic()
            try:
                if conn is None:
                    conn = connect_as(env, role)
                    conn.execute("set application_name = 'probe'")
                if callable(query):
                    query(conn)
                else:
                    conn.execute(query).fetchall()
                result.queries += 1
                result.last_success = time.monotonic()
            except Exception as exc:  # every failure is what the test counts
                result.errors.append(f"{type(exc).__name__}: {exc}")
                if conn is not None:
                    conn.close()
                conn = None
            result.longest = max(result.longest, time.monotonic() - started)
            stop.wait(every)
        if conn is not None:
            conn.close()

    thread = threading.Thread(target=loop, name=f"probe-{role}", daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join(timeout=30)


@contextmanager
def holding_lock(env, role: str, table: str, application: str = "nightly-report"):
    """A session of `role` with a read transaction open on `table` (ACCESS SHARE), as a
    long report keeps one, until the block ends. Yields its backend pid."""
    conn = connect_as(env, role)
    try:
        conn.execute("select set_config('application_name', %s, false)", (application,))
        conn.execute("begin")
        conn.execute(f"select count(*) from {table}").fetchone()
        yield conn.info.backend_pid
    finally:
        conn.close()
