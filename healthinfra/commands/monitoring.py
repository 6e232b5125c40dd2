"""`monitoring.*` and `storage.usage`: what the environment looks like now. These only read."""

from __future__ import annotations

import json
import re
import sys
import time
from typing import TYPE_CHECKING

from ..context import RunContext
from ..errors import UsageError
from ..faults import provider_call
from ..plan import desired_names
from ..state import open_state
from .common import load, observed_phase, require_local_services, whole_number

if TYPE_CHECKING:
    from ..step import Catalog


def monitoring_check(
    inventory_name: str, phase=None, *, catalog: Catalog, as_json=False, watch=None, alert=False, out=None
) -> int:
    from ..health import render, run_checks
    from ..resources.s3 import S3Bucket

    out = out or sys.stdout
    inventory = load(inventory_name)
    interval = None
    if watch not in (None, "", 0, "0"):
        try:
            interval = float(watch)
            assert interval > 0
        except (ValueError, AssertionError):
            raise UsageError(f"--watch: must be a number of seconds above 0, got `{watch}`") from None
    chosen = observed_phase(inventory, phase)
    if alert and chosen < 3:
        raise UsageError(
            f"--alert: the alert topic comes with phase 3; `{inventory.name}` is checked at phase {chosen}"
        )
    buckets = desired_names(catalog, inventory, chosen, S3Bucket.kind)
    secrets = open_state(inventory).secrets()
    alerted: frozenset = frozenset()  # with --watch, a new message only when the unhealthy set changes
    while True:
        verdicts = run_checks(inventory, chosen, buckets, secrets)
        healthy = all(v.healthy for v in verdicts)
        unhealthy = frozenset((v.probe, v.target) for v in verdicts if not v.healthy)
        if alert and unhealthy and unhealthy != alerted:
            from ..health import publish_alert

            publish_alert(inventory, chosen, [v for v in verdicts if not v.healthy], secrets)
        alerted = unhealthy
        if as_json:
            document = {
                "inventory": inventory.name,
                "phase": chosen,
                "healthy": healthy,
                "probes": [v.to_json() for v in verdicts],
            }
            out.write(json.dumps(document, indent=2) + "\n")
        else:
            out.write(render(verdicts) + "\n")
            out.write(("all healthy" if healthy else f"{sum(not v.healthy for v in verdicts)} unhealthy") + "\n")
        out.flush()
        if interval is None:
            return 0 if healthy else 1
        time.sleep(interval)


def storage_usage(inventory_name: str, *, catalog: Catalog, as_json=False, out=None) -> int:
    """Object counts and sizes per bucket of the inventory (every phase), reading only."""
    from ..resources.s3 import S3Bucket, buckets_fact

    out = out or sys.stdout
    inventory = load(inventory_name)
    require_local_services(inventory)
    rows = []
    with RunContext(inventory, check=True) as ctx, provider_call("storage usage"):
        for name in desired_names(catalog, inventory, 4, S3Bucket.kind):
            bucket = S3Bucket(name, None, region=inventory.aws["region"])
            exists = name in buckets_fact(ctx)
            rows.append({"bucket": name, "exists": exists, **bucket.contents(ctx)})
    if as_json:
        out.write(json.dumps({"inventory": inventory.name, "buckets": rows}, indent=2) + "\n")
        return 0
    out.write(f"{'bucket':<32} {'objects':>8} {'versions':>9} {'markers':>8} {'current bytes':>14} {'all bytes':>12}\n")
    for row in rows:
        if not row["exists"]:
            out.write(f"{row['bucket']:<32} {'(not created)':>8}\n")
            continue
        out.write(
            f"{row['bucket']:<32} {row['objects']:>8} {row['versions']:>9} {row['delete_markers']:>8}"
            f" {row['current_bytes']:>14} {row['bytes']:>12}\n"
        )
    return 0


def monitoring_audit_trail(inventory_name: str, *, since: str = "1h", as_json=False, out=None) -> int:
    """Who touched which PHI table since a moment: read from the audit trail, never PHI values."""
    from ..queries import audit_trail

    out = out or sys.stdout
    match = re.fullmatch(r"\s*([1-9][0-9]{0,4})\s*([mhd])\s*", since or "")
    if not match:
        raise UsageError(f"--since: must look like `30m`, `1h` or `7d`, got `{since}`")
    amount, unit = int(match[1]), {"m": "minutes", "h": "hours", "d": "days"}[match[2]]
    inventory = load(inventory_name)
    require_local_services(inventory)
    with RunContext(inventory, check=True) as ctx:
        events = audit_trail(ctx, amount, unit)
    if as_json:
        out.write(json.dumps({"inventory": inventory.name, "since": since, "events": events}, indent=2) + "\n")
        return 0
    if not events:
        out.write(f"no changes to PHI tables in the last {amount} {unit}\n")
        return 0
    out.write(f"{'when':<26} {'who (db role)':<16} {'for user':<37} {'action':<7} {'table':<16} row\n")
    for e in events:
        out.write(
            f"{e['at']:<26} {e['actor']:<16} {e['user'] or '-':<37} {e['action']:<7} {e['table']:<16} {e['row']}\n"
        )
    return 0


def monitoring_slow_queries(inventory_name: str, *, limit="10", as_json=False, out=None) -> int:
    """The top statements by total time, from pg_stat_statements (constants are normalised away)."""
    from ..queries import slow_queries

    out = out or sys.stdout
    count = whole_number(limit, "--limit", digits=4, what="")
    inventory = load(inventory_name)
    require_local_services(inventory)
    with RunContext(inventory, check=True) as ctx:
        statements = slow_queries(ctx, count)
    if as_json:
        out.write(json.dumps({"inventory": inventory.name, "statements": statements}, indent=2) + "\n")
        return 0
    out.write(f"{'calls':>7} {'total ms':>10} {'mean ms':>9} {'rows':>8}  query\n")
    for st in statements:
        out.write(
            f"{st['calls']:>7} {st['total_ms']:>10.2f} {st['mean_ms']:>9.2f} {st['rows']:>8}  {st['query'][:100]}\n"
        )
    return 0


def monitoring_report(inventory_name: str, phase=None, *, catalog: Catalog, path: str = "", out=None) -> int:
    """Write one self-contained HTML page of the environment: no scripts, no network to view it."""
    from pathlib import Path

    from ..report import gather_report, render_report

    out = out or sys.stdout
    inventory = load(inventory_name)
    if phase not in (None, ""):
        observed_phase(inventory, phase)  # a bad --phase exits 2 before the servers are asked
    require_local_services(inventory)
    chosen = observed_phase(inventory, phase)
    target = Path(path) if path else inventory.state_dir / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    from .compliance import compliance_rows

    data = gather_report(inventory, chosen, catalog)
    data["compliance"] = compliance_rows(inventory, chosen, catalog)  # the same rows as security.compliance
    target.write_text(render_report(data), encoding="utf-8")
    out.write(f"wrote {target}\n")
    return 0
