"""Benchmarks: the runner against the floor, measured in one run, on loopback.

Starts its own embedded PostgreSQL and moto server (free ports, a temporary state
directory) and times, in this one process tree:

- cold apply of phase 4 on empty services; no-op converge of phase 4; `--check` of phase 4;
- the floor: a plain script doing only the reads needed to verify the converged state
  (one catalog query per family on one connection; per bucket, one call per setting;
  per IAM role, its role and policy; the key; per log group, its filters and tags; the
  alarms, the dashboard, the topic), timed the same way;
- scale: generated services tables giving about 70, 150 and 1,050 resources (the smallest is
  the shipped table at phase 3): the no-op check's time and peak memory, in a fresh process
  after the cold apply;
- `invoke --list` start-up;
- lock waits (bench/lock_wait.py): the longest wait of the patient service while a report holds
  `patients` and phase 2 alters it, with the runner's bounded waits and without.

Prints medians and ratios. Not a test: timings never fail a build. `bench/README.md`
keeps the last figures and the machine they came from.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REPEAT = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_inventories(directory: Path, name: str, extra_services: int = 0) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "inventories" / "data_types.yml", directory)
    services = (REPO / "inventories" / "services.yml").read_text()
    for i in range(extra_services):  # a billing-like service per row: role, grants, IAM, logs, alarms
        services += (
            f"  extra{i:04d}:\n    port: {9000 + i}\n    phase: 3\n    runs_on: railway\n"
            f"    reads: [users]\n    appends: [audit_log]\n"
        )
    (directory / "services.yml").write_text(services)
    text = (REPO / "inventories" / "local.yml").read_text()
    text = text.replace("port: 54329", f"port: {free_port()}").replace("port: 54330", f"port: {free_port()}")
    (directory / f"{name}.yml").write_text(text)


def floor_reads(inventory) -> int:
    """The minimum a verifier must read for the converged phase-4 state; returns objects read."""
    import psycopg

    from healthinfra import names
    from healthinfra.providers.aws import AwsClients
    from healthinfra.providers.postgres import admin_conninfo
    from playbooks.storage import bucket_designs

    seen = 0
    with psycopg.connect(**admin_conninfo(inventory), autocommit=True) as conn:
        seen += len(conn.execute("select datname, datacl from pg_database").fetchall())
        seen += len(conn.execute("select rolname, rolcanlogin, rolconnlimit from pg_roles").fetchall())
    with psycopg.connect(**admin_conninfo(inventory, inventory.database["name"]), autocommit=True) as conn:
        seen += len(conn.execute("select version, checksum from schema_migrations").fetchall())
        seen += len(
            conn.execute("select relname, relacl from pg_class where relnamespace = 'public'::regnamespace").fetchall()
        )
        seen += len(conn.execute("select extname from pg_extension").fetchall())
    aws = AwsClients(inventory)
    s3, iam, kms = aws.client("s3"), aws.client("iam"), aws.client("kms")
    logs, cw, sns = aws.client("logs"), aws.client("cloudwatch"), aws.client("sns")
    for bucket in bucket_designs(inventory, 4):
        for call in (
            s3.get_bucket_tagging,
            s3.get_bucket_versioning,
            s3.get_public_access_block,
            s3.get_bucket_encryption,
            s3.get_bucket_policy,
            s3.get_bucket_lifecycle_configuration,
            s3.get_bucket_logging,
        ):
            call(Bucket=bucket)
            seen += 1
    for service in inventory.services_at(4):
        role = names.iam_role(inventory, service.name)
        iam.get_role(RoleName=role)
        seen += 1 + len(iam.list_role_policies(RoleName=role)["PolicyNames"])
    for policy in iam.list_policies(Scope="Local")["Policies"]:
        iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
        seen += 1
    for alias in kms.list_aliases()["Aliases"]:
        if alias["AliasName"].startswith("alias/hc-"):
            kms.describe_key(KeyId=alias["TargetKeyId"])
            kms.get_key_rotation_status(KeyId=alias["TargetKeyId"])
            seen += 1
    for group in logs.describe_log_groups(logGroupNamePrefix=names.log_group(inventory, ""))["logGroups"]:
        logs.describe_metric_filters(logGroupName=group["logGroupName"])
        logs.list_tags_log_group(logGroupName=group["logGroupName"])
        seen += 1
    seen += len(cw.describe_alarms(AlarmNamePrefix=names.alarm(inventory, ""))["MetricAlarms"])
    cw.get_dashboard(DashboardName=names.dashboard(inventory))
    topic = names.alert_topic_arn(inventory)
    sns.get_topic_attributes(TopicArn=topic)
    sns.list_subscriptions_by_topic(TopicArn=topic)
    seen += 2
    return seen


def timed(fn, repeat=REPEAT) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


SCALE_APPLY = """
import io
from healthinfra import commands
from playbooks import catalog
assert commands.deploy("scale", 3, catalog=catalog(), out=io.StringIO()) == 0
"""

SCALE_CHECK = """
import io, json, time
from healthinfra import commands
from playbooks import catalog
from healthinfra.plan import plan_items
from healthinfra.inventory import load_inventory
inv = load_inventory("scale")
started = time.perf_counter()
assert commands.deploy("scale", 3, catalog=catalog(), check=True, out=io.StringIO()) == 0
elapsed = time.perf_counter() - started
# VmHWM, not ru_maxrss: Linux carries a parent's ru_maxrss across fork and exec
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"resources": len(plan_items(catalog(), inv, 3)), "check_seconds": elapsed, "peak_mb": peak_kb / 1024}))
"""


def scale_step(extra_services: int) -> dict:
    from healthinfra import commands

    base = Path(tempfile.mkdtemp(prefix="hc-bench-scale-"))
    write_inventories(base / "inventories", "scale", extra_services)
    env = dict(os.environ, HEALTHINFRA_INVENTORIES=str(base / "inventories"), HEALTHINFRA_STATE=str(base / "state"))
    os.environ.update(
        HEALTHINFRA_INVENTORIES=env["HEALTHINFRA_INVENTORIES"], HEALTHINFRA_STATE=env["HEALTHINFRA_STATE"]
    )
    quiet = io.StringIO()
    commands.local_up("scale", out=quiet)
    try:
        for child in (SCALE_APPLY, SCALE_CHECK):  # the check in a fresh process: its own peak memory
            result = subprocess.run(
                [sys.executable, "-c", child], cwd=REPO, env=env, capture_output=True, text=True, timeout=3600
            )
            if result.returncode != 0:
                raise SystemExit(result.stderr[-2000:])
        return json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        commands.local_down("scale", out=quiet)
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    base = Path(tempfile.mkdtemp(prefix="hc-bench-"))
    write_inventories(base / "inventories", "bench")
    os.environ["HEALTHINFRA_INVENTORIES"] = str(base / "inventories")
    os.environ["HEALTHINFRA_STATE"] = str(base / "state")

    from healthinfra import commands
    from healthinfra.inventory import load_inventory
    from playbooks import catalog

    quiet = io.StringIO()
    inventory = load_inventory("bench")
    commands.local_up("bench", out=quiet)
    try:

        def clean():
            assert commands.cleanup("bench", catalog=catalog(), destroy_data=True, stop_services=False, out=quiet) == 0

        cold_samples = []
        for _ in range(3):
            clean()
            started = time.perf_counter()
            assert commands.deploy("bench", 4, catalog=catalog(), out=quiet) == 0
            cold_samples.append(time.perf_counter() - started)
        results = {
            "cold apply, phase 4": statistics.median(cold_samples),
            "no-op converge, phase 4": timed(lambda: commands.deploy("bench", 4, catalog=catalog(), out=quiet)),
            "check, phase 4": timed(lambda: commands.deploy("bench", 4, catalog=catalog(), check=True, out=quiet)),
        }
        objects = floor_reads(inventory)
        floor = timed(lambda: floor_reads(inventory))
        # the same no-op converge with the journal, the lock and run state in an S3 state bucket
        path = base / "inventories" / "bench.yml"
        path.write_text(path.read_text() + "state:\n  backend: s3\n  bucket: hc-bench-state\n")
        assert commands.state_init("bench", out=quiet) == 0
        assert commands.state_migrate("bench", "local", out=quiet) == 0
        results["no-op converge, S3 state"] = timed(lambda: commands.deploy("bench", 4, catalog=catalog(), out=quiet))
        clean()
        lock_waits: list[str] = []
        if "--no-lock-wait" not in sys.argv:
            from lock_wait import measure, report_lines

            from healthinfra.lock_waits import DEFAULT_LOCK_TIMEOUT, parse_duration

            assert commands.deploy("bench", 1, catalog=catalog(), out=quiet) == 0
            figures = measure(inventory, lambda: commands.deploy("bench", 2, catalog=catalog(), out=quiet))
            lock_waits = report_lines(figures, parse_duration(DEFAULT_LOCK_TIMEOUT))
            clean()
    finally:
        commands.local_down("bench", out=quiet)
        shutil.rmtree(base, ignore_errors=True)

    listing = timed(
        lambda: subprocess.run([sys.executable, "-m", "invoke", "--list"], cwd=REPO, check=True, capture_output=True)
    )
    print(f"workload: phase 4 on the embedded services; the floor reads {objects} objects; medians of runs")
    print(f"{'measure':<30} {'seconds':>8} {'x floor':>8}")
    print(f"{'floor (plain reads)':<30} {floor:>8.3f} {1.0:>8.2f}")
    for name, seconds in results.items():
        print(f"{name:<30} {seconds:>8.3f} {seconds / floor:>8.2f}")
    s3_ratio = results["no-op converge, S3 state"] / results["no-op converge, phase 4"]
    print(f"S3 state backend / file state backend, no-op converge: {s3_ratio:.2f}x (issue 13 asks at most 1.5x)")
    print(f"{'invoke --list start-up':<30} {listing:>8.3f}")
    for line in lock_waits:
        print(line)
    if "--no-scale" not in sys.argv:
        print("\nscale: no-op check of phase 3, fresh process each")
        print(f"{'resources':>10} {'check s':>8} {'x prev':>7} {'peak MB':>8}")
        previous = None
        for extra in (0, 8, 98):
            step = scale_step(extra)
            ratio = f"{step['check_seconds'] / previous:>7.2f}" if previous else f"{'':>7}"
            print(f"{step['resources']:>10} {step['check_seconds']:>8.3f} {ratio} {step['peak_mb']:>8.1f}")
            previous = step["check_seconds"]
    return 0


if __name__ == "__main__":
    sys.exit(main())
