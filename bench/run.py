"""Benchmarks: the runner against the floor, measured in one run on loopback.

Starts its own embedded PostgreSQL and moto server (free ports, a temporary
state directory), then times, in this one process:

- cold: `deploy` of phase 1 on an empty environment;
- no-op: `deploy` again on the converged environment;
- check: `deploy --check` on the converged environment;
- floor: a plain script doing only the reads needed to verify the converged state
  (one catalog query per family on one connection, one IAM list, one tag call per role).

Prints medians and the ratios to the floor. Not a test: timings never fail a build.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REPEAT = 7


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def floor_reads(inventory) -> int:
    """The minimum a verifier must read; returns the number of objects seen."""
    import psycopg

    from healthinfra.providers.aws import AwsClients
    from healthinfra.providers.postgres import admin_conninfo

    seen = 0
    with psycopg.connect(**admin_conninfo(inventory), autocommit=True) as conn:
        seen += len(conn.execute("select datname, datacl from pg_database").fetchall())
        seen += len(conn.execute("select rolname, rolcanlogin, rolconnlimit from pg_roles").fetchall())
    with psycopg.connect(**admin_conninfo(inventory, inventory.database["name"]), autocommit=True) as conn:
        seen += len(conn.execute("select version, checksum from schema_migrations").fetchall())
        seen += len(conn.execute("select relname, relacl from pg_class where relnamespace = 'public'::regnamespace").fetchall())
    iam = AwsClients(inventory).client("iam")
    for role in iam.list_roles()["Roles"]:
        iam.list_role_tags(RoleName=role["RoleName"])
        seen += 1
    return seen


def timed(fn, repeat=REPEAT) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> int:
    base = Path(tempfile.mkdtemp(prefix="hc-bench-"))
    inventories = base / "inventories"
    inventories.mkdir()
    for table in ("services.yml", "data_types.yml"):
        shutil.copy(REPO / "inventories" / table, inventories)
    text = (REPO / "inventories" / "local.yml").read_text()
    text = text.replace("port: 54329", f"port: {free_port()}").replace("port: 54330", f"port: {free_port()}")
    (inventories / "bench.yml").write_text(text)
    os.environ["HEALTHINFRA_INVENTORIES"] = str(inventories)
    os.environ["HEALTHINFRA_STATE"] = str(base / "state")

    from healthinfra import commands
    from healthinfra.inventory import load_inventory

    quiet = io.StringIO()
    inventory = load_inventory("bench")
    commands.local_up("bench", out=quiet)
    try:
        def cold():
            assert commands.deploy("bench", 1, out=quiet) == 0

        def clean():
            assert commands.cleanup("bench", destroy_data=True, stop_services=False, out=quiet) == 0

        cold_samples = []
        for _ in range(3):
            clean()
            started = time.perf_counter()
            cold()
            cold_samples.append(time.perf_counter() - started)
        results = {
            "cold apply, phase 1": statistics.median(cold_samples),
            "no-op converge, phase 1": timed(lambda: commands.deploy("bench", 1, out=quiet)),
            "check, phase 1": timed(lambda: commands.deploy("bench", 1, check=True, out=quiet)),
        }
        objects = floor_reads(inventory)
        floor = timed(lambda: floor_reads(inventory))
        print(f"workload: phase 1 on the embedded services, {objects} objects read by the floor; median of runs")
        print(f"{'measure':<28} {'seconds':>8} {'x floor':>8}")
        print(f"{'floor (plain reads)':<28} {floor:>8.3f} {1.0:>8.2f}")
        for name, seconds in results.items():
            print(f"{name:<28} {seconds:>8.3f} {seconds / floor:>8.2f}")
        clean()
    finally:
        commands.local_down("bench", out=quiet)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
