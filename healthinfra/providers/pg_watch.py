"""Who blocks a waiting statement: a watcher that names the sessions holding its lock.

When a statement hits `lock_timeout` its transaction is gone and PostgreSQL no longer
says what it waited for, so the naming must happen while it waits. Every statement an
admin connection runs registers its backend pid here; a thread (started on first use,
one per run) looks every tenth of a second at the statements running for longer than
`SAMPLE_AFTER` and asks, on a connection of its own, `pg_blocking_pids` and
`pg_stat_activity` who holds what they wait for. A fast statement costs a dict entry
and nothing else. The sampling connection is opened only when a statement is slow.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from ..lock_waits import Blocked, Blocker

SAMPLE_AFTER = 0.15  # seconds a statement runs before the watcher asks who blocks it
INTERVAL = 0.1  # the watcher's tick: a dict read, unless a statement is slow

BLOCKERS_QUERY = """
select w.pid,
       array(select distinct l.relation::regclass::text from pg_locks l
              where l.pid = w.pid and not l.granted and l.relation is not null order by 1),
       b.pid, coalesce(b.usename, ''), coalesce(b.application_name, ''), coalesce(b.state, ''),
       extract(epoch from now() - b.xact_start)::float8, coalesce(b.query, '')
  from unnest(%s::int[]) as w(pid)
       join pg_stat_activity wa on wa.pid = w.pid and wa.wait_event_type = 'Lock'  -- only who waits: cheap
       cross join lateral unnest(pg_blocking_pids(w.pid)) as h(pid)
       join pg_stat_activity b on b.pid = h.pid
 order by w.pid, b.pid
"""


def parse_blockers(rows) -> dict[int, Blocked]:
    """Rows of BLOCKERS_QUERY -> per waiting pid, what it waits on and who holds it. Pure."""
    found: dict[int, tuple[tuple[str, ...], list[Blocker]]] = {}
    for waiting, relations, pid, user, application, state, seconds, query in rows:
        entry = found.setdefault(waiting, (tuple(r.removeprefix("public.") for r in relations or ()), []))
        entry[1].append(Blocker(pid, user, application, state, seconds, query))
    return {pid: Blocked(relations, tuple(blockers)) for pid, (relations, blockers) in found.items()}


class BlockerWatch:
    """Watches the statements of one run's admin connections (`statement`), naming what a slow
    one waits for. Sampled from the waiting statement's own database, where PostgreSQL can name
    the relation. `close` stops it; the next statement starts it again (after a fault's reset)."""

    def __init__(self, connect: Callable[[str], Any]):
        self._connect = connect  # dbname -> a new autocommit connection for sampling
        self._running: dict[int, tuple[float, str]] = {}  # backend pid -> when its statement started, database
        self._seen: dict[int, Blocked] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def statement(self, pid: int, dbname: str) -> Iterator[None]:
        with self._lock:
            self._running[pid] = (time.monotonic(), dbname)
            self._seen.pop(pid, None)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, args=(self._stop,), name="pg-blocker-watch", daemon=True
                )
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._running.pop(pid, None)

    def blocked(self, pid: int) -> Blocked | None:
        """What the statement of `pid` was last seen waiting for (None: never seen waiting)."""
        with self._lock:
            return self._seen.get(pid)

    def _loop(self, stop: threading.Event) -> None:
        conns: dict[str, Any] = {}  # the sampler's own, one per database; closed when it stops
        while not stop.wait(INTERVAL):
            now = time.monotonic()
            due: dict[str, list[int]] = {}
            with self._lock:
                for pid, (started, dbname) in self._running.items():
                    if now - started >= SAMPLE_AFTER:
                        due.setdefault(dbname, []).append(pid)
            for dbname, pids in due.items():
                try:
                    conn = conns.get(dbname)
                    if conn is None or conn.closed:
                        conn = conns[dbname] = self._connect(dbname)
                    found = parse_blockers(conn.execute(BLOCKERS_QUERY, (pids,)).fetchall())
                except Exception:  # sampling is best effort: a statement's own error is what counts
                    _close(conns.pop(dbname, None))
                    continue
                with self._lock:
                    for pid, blocked in found.items():
                        if pid in self._running:
                            self._seen[pid] = blocked
        for conn in conns.values():
            _close(conn)

    def close(self) -> None:
        """Stop sampling and close its connections (a later statement starts it again)."""
        with self._lock:
            thread, stop = self._thread, self._stop
            self._thread, self._stop = None, threading.Event()
        stop.set()
        if thread is not None:
            thread.join(timeout=5)


def _close(conn: Any) -> None:
    if conn is not None:
        with suppress(Exception):  # already broken
            conn.close()
