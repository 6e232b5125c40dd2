"""The lock-wait bench: what one long report costs the patient service while a migration needs
its table, with the runner's bounded waits and without them (the seed's way), in one run.

A session of `patient_svc` holds ACCESS SHARE on `patients` (a read transaction left open, as a
long report keeps it) for HOLD seconds. Meanwhile a probe, also `patient_svc`, reads `patients`
every 20 ms and keeps its longest wait and its errors. Unbounded: the admin runs phase 2's
`alter table patients enable row level security` with no lock_timeout (rolled back after).
Bounded: `deploy --phase 2`, which waits `database.lock_timeout` at a time and retries.
"""

from __future__ import annotations

import threading
import time

HOLD = 12.0  # seconds the report keeps its transaction open
EVERY = 0.02


class Probe:
    def __init__(self, inventory, role: str):
        import psycopg

        from healthinfra.providers.postgres import service_conninfo
        from healthinfra.secret_store import SecretStore

        password = SecretStore(inventory.state_dir / "secrets.json").get(f"pg.{role}")
        self.connect = lambda: psycopg.connect(**service_conninfo(inventory, role, password), autocommit=True)
        self.longest, self.queries, self.errors = 0.0, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        conn = self.connect()
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                conn.execute("select count(*) from patients").fetchone()
                self.queries += 1
            except Exception:  # counted: what a service would see as a failed request
                self.errors += 1
                conn.close()
                conn = self.connect()
            self.longest = max(self.longest, time.monotonic() - started)
            self._stop.wait(EVERY)
        conn.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)


def hold_patients(inventory, seconds: float) -> threading.Thread:
    """A report of patient_svc: a read transaction on patients, open for `seconds`."""
    import psycopg

    from healthinfra.providers.postgres import service_conninfo
    from healthinfra.secret_store import SecretStore

    password = SecretStore(inventory.state_dir / "secrets.json").get("pg.patient_svc")
    ready = threading.Event()

    def report() -> None:
        with psycopg.connect(**service_conninfo(inventory, "patient_svc", password)) as conn:
            conn.execute("select count(*) from patients").fetchone()  # psycopg opened a transaction
            ready.set()
            time.sleep(seconds)
            conn.rollback()

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    ready.wait(10)
    return thread


def measure(inventory, deploy_phase_2) -> dict:
    """Both ways on a phase-1 environment; returns the figures (the environment ends at phase 2)."""
    import psycopg

    from healthinfra.providers.postgres import admin_conninfo

    figures = {}
    with Probe(inventory, "patient_svc") as probe:
        report = hold_patients(inventory, HOLD)
        with psycopg.connect(**admin_conninfo(inventory, inventory.database["name"])) as admin:
            started = time.monotonic()
            admin.execute("alter table patients enable row level security")  # waits for the report
            figures["unbounded: the ALTER waited"] = time.monotonic() - started
            admin.rollback()
        report.join()
    figures["unbounded: longest probe wait"] = probe.longest
    figures["unbounded: failed probe queries"] = probe.errors
    with Probe(inventory, "patient_svc") as probe:
        report = hold_patients(inventory, HOLD)
        started = time.monotonic()
        assert deploy_phase_2() == 0
        figures["bounded: deploy --phase 2 took"] = time.monotonic() - started
        report.join()
    figures["bounded: longest probe wait"] = probe.longest
    figures["bounded: failed probe queries"] = probe.errors
    return figures


def report_lines(figures: dict, lock_timeout: float) -> list[str]:
    ratio = figures["unbounded: longest probe wait"] / max(figures["bounded: longest probe wait"], 1e-3)
    lines = [f"\nlock waits: a report holds patients for {HOLD:.0f} s, a probe queries it every 20 ms"]
    lines += [f"{name:<40} {value:>8.3f}" for name, value in figures.items()]
    lines.append(
        f"longest wait of the service, unbounded / bounded: {ratio:.1f}x"
        f" (bounded must stay <= lock_timeout + 0.5 s = {lock_timeout + 0.5:.1f} s)"
    )
    return lines


__all__ = ["measure", "report_lines"]
