"""What each invoke task does, apart from invoke: load, validate, run, print, exit code.

Tasks in tasks.py are thin: they call these functions with plain arguments. Every
function validates all input (inventory, phase) before it touches a provider and
returns the process exit code; errors are raised as `HealthInfraError`, which the
task layer turns into one line on stderr and the error's exit code.
"""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Any, TextIO

from .errors import InventoryError, UsageError
from .inventory import Inventory, load_inventory, parse_phase

SUPPORTED = {"database": ("embedded", "neon"), "aws": ("moto", "aws"), "hosting": ("local", "railway")}


def load(name: str, *, for_providers: bool = True) -> Inventory:
    """Load an inventory; refuse, before any call, providers this version cannot drive."""
    inventory = load_inventory(name)
    if for_providers:
        require_supported(inventory)
        require_credentials(inventory)
    return inventory


def require_credentials(inventory: Inventory) -> None:
    """A provider's key, named by the inventory, must be in the environment: exit 2 before any call."""
    if inventory.providers["database"] == "neon":
        from .providers.neon import api_key

        api_key(inventory)


def require_supported(inventory: Inventory) -> None:
    for area, supported in SUPPORTED.items():
        provider = inventory.providers[area]
        if provider not in supported:
            raise InventoryError(
                f"{inventory.path.name}: `providers.{area}` is `{provider}`, which this version cannot drive yet"
                f" (supported: {', '.join(supported)}); use `-i local`, nothing was changed"
            )
    if inventory.providers["hosting"] == "railway":  # its token must be there before anything runs
        from .providers.railway import require_token

        require_token(inventory)


def require_local_services(inventory: Inventory) -> None:
    """For the embedded providers: refuse at once, naming the fix, if a server is down."""
    from .errors import LocalServiceError
    from .local import moto, postgres

    down = []
    if inventory.embedded and not postgres.status(inventory)["running"]:
        down.append("embedded PostgreSQL")
    if inventory.providers["aws"] == "moto" and not moto.status(inventory)["running"]:
        down.append("the moto server")
    if down:
        raise LocalServiceError(
            f"{' and '.join(down)} for `{inventory.name}` {'is' if len(down) == 1 else 'are'} not running;"
            f" start {'it' if len(down) == 1 else 'them'} with `invoke local.up -i {inventory.name}`, nothing was changed"
        )


def resolve_phase(inventory: Inventory, phase) -> int:
    if phase is None or phase == "":
        return inventory.phase
    return parse_phase(phase)


def _split(value: str | None) -> set[str]:
    return {v.strip() for v in (value or "").split(",") if v.strip()}


def _known_tags(tags: set[str]) -> set[str]:
    """Refuse a tag no step has: a typo would otherwise run nothing and say ok."""
    from .step import PLAYBOOK_ORDER, all_steps

    known = set(PLAYBOOK_ORDER) | {t for s in all_steps() for t in s.tags}
    unknown = sorted(tags - known)
    if unknown:
        raise UsageError(f"--tags: unknown tag `{unknown[0]}`; known tags: {', '.join(sorted(known))}")
    return tags


PLAN_FORMAT = 1


def _known_host(inventory: Inventory, limit: str | None) -> str | None:
    """`--limit HOST`: a host the inventory lists, or exit 2 naming the ones it does."""
    if not limit:
        return None
    names = [h.name for hosts in inventory.hosts.values() for h in hosts]
    if limit not in names:
        known = ", ".join(names) if names else "none: the inventory has no `hosts:`"
        raise UsageError(f"--limit: `{limit}` is not a host of {inventory.path.name} (hosts: {known})")
    return limit


def deploy(
    inventory_name: str,
    phase=None,
    *,
    check=False,
    diff=False,
    as_json=False,
    rollback=True,
    tags=None,
    playbooks=None,
    destroy_data=False,
    out: TextIO | None = None,
    save_to: str = "",
    limit: str = "",
) -> int:
    from .runner import Output
    from .runner import deploy as run_deploy

    out = out or sys.stdout
    inventory = load(inventory_name)
    chosen = resolve_phase(inventory, phase)
    host = _known_host(inventory, limit)
    require_local_services(inventory)
    output = Output(sys.stderr if as_json else out, show_diff=diff)
    record: list = []
    recap = run_deploy(
        inventory,
        chosen,
        check=check,
        output=output,
        tags=_known_tags(_split(tags)),
        playbooks=_split(playbooks),
        rollback_on_failure=rollback,
        destroy_data=destroy_data,
        command=f"deploy --phase {chosen}" + (" --check" if check else "") + (f" --limit {host}" if host else ""),
        record=record if save_to else None,
        limit=host,
    )
    code = _finish(recap, as_json, out)
    if save_to and code == 0:
        from .journal import now_iso

        document = {
            "format": PLAN_FORMAT,
            "inventory": inventory.name,
            "phase": chosen,
            "created": now_iso(),
            "changes": sum(1 for entry in record if entry["actions"]),
            "items": record,
        }
        from .files import write_private

        write_private(save_to, json.dumps(document, indent=1, sort_keys=True, default=str) + "\n")
        (sys.stderr if as_json else out).write(f"plan saved to {save_to}: apply it with `invoke apply {save_to}`\n")
    return code


def apply_plan(path: str, *, as_json=False, rollback=True, destroy_data=False, out=None) -> int:
    """Carry out a plan saved by `plan --out`, exactly, or refuse if the world moved since."""
    from .runner import Output, apply_saved_plan

    out = out or sys.stdout
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except OSError as exc:
        raise UsageError(
            f"{path}: cannot read the plan ({exc.strerror}); save one with `invoke plan --out {path}`"
        ) from None
    except ValueError:
        raise UsageError(f"{path}: not a saved plan (not JSON); save one with `invoke plan --out FILE`") from None
    if not isinstance(saved, dict) or saved.get("format") != PLAN_FORMAT or not isinstance(saved.get("items"), list):
        raise UsageError(f"{path}: not a saved plan of this version (format {PLAN_FORMAT}); save it again")
    inventory = load(saved.get("inventory", ""))
    require_local_services(inventory)
    recap = apply_saved_plan(
        inventory,
        saved,
        output=Output(sys.stderr if as_json else out),
        rollback_on_failure=rollback,
        destroy_data=destroy_data,
        command=f"apply {path}",
    )
    return _finish(recap, as_json, out)


def rollback(inventory_name: str, *, run_id=None, destroy_data=False, as_json=False, check=False, out=None) -> int:
    from .runner import Output
    from .runner import rollback as run_rollback

    out = out or sys.stdout
    inventory = load(inventory_name)
    require_local_services(inventory)
    recap = run_rollback(
        inventory,
        output=Output(sys.stderr if as_json else out),
        run_id=run_id or None,
        destroy_data=destroy_data,
        check=check,
    )
    return _finish(recap, as_json, out)


def cleanup(
    inventory_name: str, *, destroy_data=False, as_json=False, check=False, stop_services=True, out=None
) -> int:
    from .runner import Output, refuse_if_protected
    from .runner import cleanup as run_cleanup

    out = out or sys.stdout
    inventory = load(inventory_name, for_providers=False)
    refuse_if_protected(inventory)  # outright: before anything else is asked of it
    require_supported(inventory)
    require_credentials(inventory)
    require_local_services(inventory)
    recap = run_cleanup(
        inventory, output=Output(sys.stderr if as_json else out), destroy_data=destroy_data, check=check
    )
    code = _finish(recap, as_json, out)
    if code == 0 and not check and stop_services and inventory.embedded:
        local_down(inventory_name, out=sys.stderr if as_json else out)
    return code


def _finish(recap, as_json: bool, out: TextIO) -> int:
    if as_json:
        out.write(json.dumps(recap.to_json(), indent=2) + "\n")
    else:
        recap.render(out)
    return 1 if recap.failed else 0


def history(inventory_name: str, *, as_json=False, limit=20, out=None) -> int:
    from .journal import Journal

    out = out or sys.stdout
    inventory = load(inventory_name, for_providers=False)
    if not re.fullmatch(r"[1-9][0-9]{0,5}", str(limit).strip()):
        raise UsageError(f"--limit: must be a whole number of runs from 1, got `{limit}`")
    runs = Journal(inventory.state_dir / "journal.jsonl").runs()[-int(limit) :]
    if as_json:
        document = [
            {
                "run_id": r.run_id,
                "kind": r.kind,
                "status": r.status,
                "phase": r.start.get("phase"),
                "command": r.start.get("command"),
                "user": r.start.get("user"),
                "host": r.start.get("host"),
                "at": r.start.get("at"),
                "target": r.start.get("target"),
                "rolled_back_by": r.rolled_back_by,
                "changes": [
                    {
                        "seq": c["seq"],
                        "playbook": c["playbook"],
                        "step": c["step"],
                        "resource": f"{c['resource']['kind']} {c['resource']['name']}",
                        "actions": [a["op"] if a["op"] != "set" else f"set {a['attribute']}" for a in c["actions"]],
                        "outcome": r.outcomes.get(c["seq"], {}).get("status", "unknown"),
                    }
                    for c in r.changes
                ],
            }
            for r in runs
        ]
        out.write(json.dumps({"inventory": inventory.name, "runs": document}, indent=2) + "\n")
        return 0
    if not runs:
        out.write(f"no runs yet in {inventory.state_dir / 'journal.jsonl'}\n")
        return 0
    for r in runs:
        target = f" of {r.start['target']}" if r.start.get("target") else ""
        out.write(
            f"{r.run_id}  {r.kind}{target}  phase={r.start.get('phase')}  {r.status}  "
            f"{r.start.get('user')}@{r.start.get('host')}  {r.start.get('at')}  changes={len(r.changes)}\n"
        )
        for c in r.changes:
            ops = ", ".join(a["op"] if a["op"] != "set" else f"set {a['attribute']}" for a in c["actions"])
            outcome = r.outcomes.get(c["seq"], {}).get("status", "unknown")
            out.write(
                f"    {c['seq']:>3}. [{c['playbook']}] {c['resource']['kind']} {c['resource']['name']}: {ops} ({outcome})\n"
            )
    return 0


def local_up(inventory_name: str, *, out=None) -> int:
    from .local import moto, postgres

    out = out or sys.stdout
    inventory = _embedded(inventory_name)
    pg = postgres.start(inventory)
    out.write(f"postgres: running (pid {pg['pid']}) on 127.0.0.1:{pg['port']}, data in {pg['data_dir']}\n")
    aws = moto.start(inventory)
    out.write(f"aws (moto): running (pid {aws['pid']}) at {aws['endpoint_url']}\n")
    return 0


def local_down(inventory_name: str, *, out=None) -> int:
    from .local import moto, postgres
    from .lock import EnvironmentLock

    out = out or sys.stdout
    inventory = _embedded(inventory_name)
    with EnvironmentLock(inventory.state_dir, inventory.name, "local.down"):  # never under a running deploy
        postgres.stop(inventory)
        moto.stop(inventory)
    out.write("postgres: stopped (data kept)\naws (moto): stopped (its in-memory state is gone)\n")
    return 0


def local_status(inventory_name: str, *, as_json=False, out=None) -> int:
    from .local import moto, postgres

    out = out or sys.stdout
    inventory = _embedded(inventory_name)
    document: dict[str, Any] = {
        "inventory": inventory.name,
        "state_dir": str(inventory.state_dir),
        "postgres": postgres.status(inventory),
        "aws": moto.status(inventory),
    }
    running = document["postgres"]["running"] and document["aws"]["running"]
    if as_json:
        out.write(json.dumps(document, indent=2) + "\n")
    else:
        for name in ("postgres", "aws"):
            item = document[name]
            where = item.get("admin_dsn") or item.get("endpoint_url")
            out.write(f"{name:<9} {'running' if item['running'] else 'stopped':<8} pid={item['pid']}  {where}\n")
    return 0 if running else 1


def _embedded(inventory_name: str) -> Inventory:
    inventory = load_inventory(inventory_name)
    if not inventory.embedded or inventory.providers["aws"] != "moto":
        raise InventoryError(
            f"{inventory.path.name}: local.* manages embedded services, but `providers.database` is"
            f" `{inventory.providers['database']}` and `providers.aws` is `{inventory.providers['aws']}`; use `-i local`"
        )
    return inventory


def monitoring_check(inventory_name: str, phase=None, *, as_json=False, watch=None, out=None) -> int:
    from .health import render, run_checks

    out = out or sys.stdout
    inventory = load(inventory_name)
    chosen = resolve_phase(inventory, phase)
    interval = None
    if watch not in (None, "", 0, "0"):
        try:
            interval = float(watch)
            assert interval > 0
        except (ValueError, AssertionError):
            raise UsageError(f"--watch: must be a number of seconds above 0, got `{watch}`") from None
    while True:
        verdicts = run_checks(inventory, chosen)
        healthy = all(v.healthy for v in verdicts)
        if as_json:
            out.write(
                json.dumps(
                    {
                        "inventory": inventory.name,
                        "phase": chosen,
                        "healthy": healthy,
                        "probes": [v.to_json() for v in verdicts],
                    },
                    indent=2,
                )
                + "\n"
            )
        else:
            out.write(render(verdicts) + "\n")
            out.write(("all healthy" if healthy else f"{sum(not v.healthy for v in verdicts)} unhealthy") + "\n")
        out.flush()
        if interval is None:
            return 0 if healthy else 1
        time.sleep(interval)


def storage_usage(inventory_name: str, *, as_json=False, out=None) -> int:
    """Object counts and sizes per bucket of the inventory (every phase), reading only."""
    from playbooks.storage import bucket_designs

    from .context import RunContext
    from .faults import provider_call
    from .resources.s3 import S3Bucket, buckets_fact

    out = out or sys.stdout
    inventory = load(inventory_name)
    require_local_services(inventory)
    ctx = RunContext(inventory, check=True)
    rows = []
    with provider_call("storage usage"):
        for name in bucket_designs(inventory, 4):
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


def security_audit(inventory_name: str, *, as_json=False, out=None) -> int:
    """Findings table (or JSON); exit 1 when there is any finding. Reads only."""
    from .audit import gather
    from .context import RunContext
    from .faults import provider_call

    out = out or sys.stdout
    inventory = load(inventory_name)
    require_local_services(inventory)
    ctx = RunContext(inventory, check=True)
    try:
        with provider_call("security audit"):
            findings = gather(ctx, inventory, inventory.phase)
    finally:
        ctx.close()
    if as_json:
        out.write(
            json.dumps({"inventory": inventory.name, "findings": [f.to_json() for f in findings]}, indent=2) + "\n"
        )
    elif not findings:
        out.write(
            f"no findings in `{inventory.name}`: buckets private and encrypted, policies narrow, every role"
            " bounded, every database role holding only what it needs\n"
        )
    else:
        width = max(len(f.resource) for f in findings)
        out.write(f"{'resource':<{width}}  problem  ->  fix\n")
        for f in findings:
            out.write(f"{f.resource:<{width}}  {f.problem}  ->  {f.fix}\n")
        out.write(f"{len(findings)} finding(s)\n")
    return 1 if findings else 0


def security_rotate(inventory_name: str, service: str, *, out=None) -> int:
    """A new password for a service's database role: set on the server, kept in the secrets file.

    The old password is not kept anywhere, by design; a rotation is journalled (who,
    when, which role; never a value) and is not undone by `rollback`.
    """
    from .context import RunContext
    from .faults import provider_call
    from .journal import Journal, new_run_id, now_iso, run_identity
    from .lock import EnvironmentLock
    from .resources.postgres import PgRole, roles_fact
    from .secret_store import generate_password

    out = out or sys.stdout
    inventory = load(inventory_name)
    names = {s.name: s for s in inventory.services}
    if service not in names:
        raise UsageError(f"--service: no service `{service}` in services.yml; choose one of {', '.join(names)}")
    require_local_services(inventory)
    role = PgRole(names[service].db_role, None, database=inventory.database["name"])
    journal = Journal(inventory.state_dir / "journal.jsonl")
    run_id = new_run_id()
    with EnvironmentLock(inventory.state_dir, inventory.name, f"security.rotate --service {service}"):
        ctx = RunContext(inventory)
        try:
            with provider_call(f"rotate {role.key}"):
                if role.name not in roles_fact(ctx):
                    raise UsageError(
                        f"--service: `{service}` has no database role yet in `{inventory.name}`; deploy its phase first"
                    )
                journal.append(
                    {
                        "event": "run_start",
                        "run_id": run_id,
                        "kind": "rotate",
                        "phase": None,
                        "inventory": inventory.name,
                        "command": f"security.rotate --service {service}",
                        "at": now_iso(),
                        **run_identity(),
                    }
                )
                old = ctx.secrets.get(role.secret_name)
                new = generate_password()
                ctx.secrets.put(role.secret_name, new)  # first the file: a crash leaves it ahead, never behind
                try:
                    conn = ctx.pg.admin()
                    from psycopg import sql

                    conn.execute(
                        sql.SQL("alter role {} with password {}").format(
                            sql.Identifier(role.name), role.password_literal(ctx, conn, new)
                        )
                    )
                except Exception:
                    if old is not None:
                        ctx.secrets.put(role.secret_name, old)
                    raise
                journal.append(
                    {"event": "run_end", "run_id": run_id, "status": "ok", "at": now_iso(), "rotated": role.name}
                )
        finally:
            ctx.close()
    out.write(
        f"rotated the password of `{role.name}`; it is in {ctx.secrets.path} (0600)."
        " Restart the service, or let it reconnect, to use it\n"
    )
    return 0


def monitoring_audit_trail(inventory_name: str, *, since: str = "1h", as_json=False, out=None) -> int:
    """Who touched which PHI table since a moment: read from the audit trail, never PHI values."""
    import psycopg

    from .faults import provider_call
    from .providers.postgres import admin_conninfo

    out = out or sys.stdout
    match = re.fullmatch(r"\s*([1-9][0-9]{0,4})\s*([mhd])\s*", since or "")
    if not match:
        raise UsageError(f"--since: must look like `30m`, `1h` or `7d`, got `{since}`")
    amount, unit = int(match[1]), {"m": "minutes", "h": "hours", "d": "days"}[match[2]]
    inventory = load(inventory_name)
    require_local_services(inventory)
    with provider_call("audit trail"):
        with psycopg.connect(**admin_conninfo(inventory, inventory.database["name"]), connect_timeout=5) as conn:
            rows = conn.execute(
                """select occurred_at, actor, action, table_name, row_key, details->>'app_user_id'
                     from audit_log where occurred_at >= now() - %s::interval
                    order by occurred_at, id""",
                (f"{amount} {unit}",),
            ).fetchall()
    events = [
        {"at": r[0].isoformat(), "actor": r[1], "action": r[2], "table": r[3], "row": r[4], "user": r[5]} for r in rows
    ]
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
    import psycopg

    from .errors import ProviderError
    from .faults import provider_call
    from .providers.postgres import admin_conninfo

    out = out or sys.stdout
    if not re.fullmatch(r"[1-9][0-9]{0,3}", str(limit).strip()):
        raise UsageError(f"--limit: must be a whole number from 1, got `{limit}`")
    inventory = load(inventory_name)
    require_local_services(inventory)
    with provider_call("slow queries"):
        with psycopg.connect(**admin_conninfo(inventory, inventory.database["name"]), connect_timeout=5) as conn:
            installed = conn.execute("select 1 from pg_extension where extname = 'pg_stat_statements'").fetchone()
            if not installed:
                raise ProviderError(
                    f"pg_stat_statements is not installed in `{inventory.database['name']}`;"
                    " it comes with phase 3: invoke deploy --phase 3"
                )
            rows = conn.execute(
                """select calls, round(total_exec_time::numeric, 2), round(mean_exec_time::numeric, 2),
                          rows, regexp_replace(query, '\\s+', ' ', 'g')
                     from pg_stat_statements join pg_database d on d.oid = dbid
                    where d.datname = current_database()
                      and query !~* 'password'  -- role statements keep their text verbatim (Neon: plain passwords)
                    order by total_exec_time desc limit %s""",
                (int(limit),),
            ).fetchall()
    statements = [
        {"calls": r[0], "total_ms": float(r[1]), "mean_ms": float(r[2]), "rows": r[3], "query": r[4]} for r in rows
    ]
    if as_json:
        out.write(json.dumps({"inventory": inventory.name, "statements": statements}, indent=2) + "\n")
        return 0
    out.write(f"{'calls':>7} {'total ms':>10} {'mean ms':>9} {'rows':>8}  query\n")
    for st in statements:
        out.write(
            f"{st['calls']:>7} {st['total_ms']:>10.2f} {st['mean_ms']:>9.2f} {st['rows']:>8}  {st['query'][:100]}\n"
        )
    return 0


def monitoring_report(inventory_name: str, phase=None, *, path: str = "", out=None) -> int:
    """Write one self-contained HTML page of the environment: no scripts, no network to view it."""
    from pathlib import Path

    from .report import gather_report, render_report

    out = out or sys.stdout
    inventory = load(inventory_name)
    require_local_services(inventory)
    target = Path(path) if path else inventory.state_dir / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_report(gather_report(inventory, resolve_phase(inventory, phase))), encoding="utf-8")
    out.write(f"wrote {target}\n")
    return 0


def railway_rollback(inventory_name: str, service: str, *, out=None) -> int:
    """Return a Railway service to its previous successful deployment (Railway's own rollback).

    The deployment rolled back to brings its image and variables; the next `deploy` puts the
    inventory's configuration back, as it would after any change made outside the runner.
    Journalled as its own run (kind `railway-rollback`), never undone by `rollback`.
    """
    from .context import RunContext
    from .errors import ProviderError
    from .faults import provider_call, with_retries
    from .journal import Journal, new_run_id, now_iso, run_identity
    from .lock import EnvironmentLock
    from .providers import railway as api
    from .resources.railway import deployment_record, ids, latest_deployment, remember_deployment

    out = out or sys.stdout
    inventory = load(inventory_name)
    hosted = [s.name for s in inventory.services if s.runs_on == "railway"]
    if service not in hosted:
        raise UsageError(
            f"--service: no Railway-hosted service `{service}` in services.yml; choose one of {', '.join(hosted)}"
        )
    if inventory.providers["hosting"] != "railway":
        raise UsageError(
            f"{inventory.path.name}: `providers.hosting` is `{inventory.providers['hosting']}`;"
            " railway.rollback needs an inventory hosted on Railway"
        )
    journal = Journal(inventory.state_dir / "journal.jsonl")
    with EnvironmentLock(inventory.state_dir, inventory.name, f"railway.rollback --service {service}"):
        ctx = RunContext(inventory)
        try:

            def find():
                with provider_call(f"list the deployments of `{service}`"):
                    found = ids(ctx, service)
                    edges = ctx.railway.execute(
                        api.DEPLOYMENTS, {"input": {**found, "status": {"in": ["SUCCESS", "REMOVED"]}}}
                    )["deployments"]["edges"]
                    return found, [e["node"] for e in edges]

            found, deployments = with_retries(find, lambda exc, attempt: ctx.forget_all())
            current = next((d for d in deployments if d["status"] == "SUCCESS"), None)
            if current is None:
                raise ProviderError(
                    f"`{service}` has no successful deployment in `{inventory.hosting['environment']}`;"
                    " there is nothing to roll back from"
                )
            older = deployments[deployments.index(current) + 1 :]
            previous = next((d for d in older if d["canRollback"]), None)
            if previous is None:
                raise ProviderError(
                    f"`{service}` has no earlier successful deployment to return to (current: {current['id']})"
                )
            run_id = new_run_id()
            journal.append(
                {
                    "event": "run_start",
                    "run_id": run_id,
                    "kind": "railway-rollback",
                    "phase": None,
                    "inventory": inventory.name,
                    "command": f"railway.rollback --service {service}",
                    "at": now_iso(),
                    **run_identity(),
                }
            )

            def roll_back():
                with provider_call(f"roll `{service}` back"):
                    latest = latest_deployment(ctx, service)
                    if latest and latest["id"] != current["id"]:
                        return latest  # an earlier attempt took effect; its answer was lost
                    ctx.railway.execute(api.DEPLOYMENT_ROLLBACK, {"id": previous["id"]})
                    return latest_deployment(ctx, service)

            status = "failed"
            try:
                latest = with_retries(roll_back, lambda exc, attempt: ctx.forget_all())
                if latest:
                    remember_deployment(ctx, latest["id"], deployment_record(ctx).get(previous["id"]))
                status = "ok"
            finally:
                journal.append(
                    {
                        "event": "run_end",
                        "run_id": run_id,
                        "status": status,
                        "at": now_iso(),
                        "service": service,
                        "from": current["id"],
                        "to": previous["id"],
                    }
                )
        finally:
            ctx.close()
    out.write(
        f"rolled `{service}` back to deployment {previous['id']} (it was running {current['id']});"
        f" the next `invoke deploy -i {inventory.name}` deploys the inventory's configuration again\n"
    )
    return 0
