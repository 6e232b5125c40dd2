"""monitoring.report: the environment at a glance, as one self-contained HTML page.

Gathering reads the same facts a plan does (roles, buckets, log groups, alarms),
runs the health checks, and reads the recent runs from the journal; rendering is a
Jinja2 template with autoescaping, inline CSS, no script and no external link.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import names
from .inventory import Inventory
from .plan import desired_names

if TYPE_CHECKING:
    from .step import Catalog


def gather_report(inventory: Inventory, phase: int, catalog: Catalog) -> dict[str, Any]:
    from .context import RunContext
    from .deployed import deployed_phase
    from .faults import provider_call
    from .health import run_checks
    from .journal import now_iso
    from .resources.iam import IamRole
    from .resources.monitoring import alarms_fact, log_groups_fact
    from .resources.postgres import roles_fact
    from .resources.s3 import S3Bucket, buckets_fact

    bucket_names = desired_names(catalog, inventory, phase, S3Bucket.kind)
    with RunContext(inventory, check=True) as ctx:
        with provider_call("report"):
            verdicts = run_checks(inventory, phase, bucket_names, ctx.secrets)
            health = {v.target: v for v in verdicts}
            roles = roles_fact(ctx)
            groups = log_groups_fact(ctx, names.log_group(inventory, ""))
            alarms = alarms_fact(ctx, names.alarm(inventory, ""))
            services: list[dict[str, Any]] = []
            for s in inventory.services_at(phase):
                iam_name = names.iam_role(inventory, s.name)
                services.append(
                    {
                        "name": s.name,
                        "port": s.port,
                        "phase": s.phase,
                        "runs_on": s.runs_on,
                        "db_role": s.db_role,
                        "db_role_exists": s.db_role in roles,
                        "iam_role": iam_name,
                        "iam_role_exists": IamRole(iam_name, None).read(ctx) is not None,
                        "log_group": names.log_group(inventory, s.name),
                        "log_group_exists": names.log_group(inventory, s.name) in groups,
                        "alarms": sorted(
                            n for n in alarms if n.startswith(names.service_alarm_prefix(inventory, s.name))
                        ),
                        "health": health.get(s.db_role),
                    }
                )
            existing = buckets_fact(ctx)
            buckets = []
            for name in bucket_names:
                contents = (
                    S3Bucket(name, None, region=inventory.aws["region"]).contents(ctx) if name in existing else None
                )
                buckets.append({"name": name, "exists": name in existing, "contents": contents})
            other_alarms = sorted(n for n in alarms if not any(n in s["alarms"] for s in services))
            expected_alarms = sorted(desired_names(catalog, inventory, phase, "cloudwatch.alarm"))
        every_run = ctx.state.journal().runs()
        runs = every_run[-10:]
    return {
        "inventory": inventory.name,
        "environment": inventory.environment,
        "phase": phase,
        "deployed_phase": deployed_phase(every_run),
        "generated": now_iso(),
        "services": services,
        "buckets": buckets,
        "verdicts": verdicts,
        "other_alarms": other_alarms,
        "expected_alarms": expected_alarms,
        "alarms": sorted(alarms),
        "runs": [
            {
                "id": r.run_id,
                "kind": r.kind,
                "status": r.status,
                "phase": r.start.get("phase"),
                "who": f"{r.start.get('user')}@{r.start.get('host')}",
                "at": r.start.get("at"),
                "changes": len(r.changes),
            }
            for r in reversed(runs)
        ],
    }


def render_report(data: dict[str, Any]) -> str:
    import jinja2

    from .inventory import project_root

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(project_root() / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    return env.get_template("monitoring/report.html.j2").render(**data)
