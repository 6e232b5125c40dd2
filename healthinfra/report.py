"""monitoring.report: the environment at a glance, as one self-contained HTML page.

Gathering reads the same facts a plan does (roles, buckets, log groups, alarms),
runs the health checks, and reads the recent runs from the journal; rendering is a
Jinja2 template with autoescaping, inline CSS, no script and no external link. The three
architecture diagrams (healthinfra/diagrams.py) are embedded as inline SVG drawn by Graphviz's
`dot` and sanitised here; without `dot`, one line says how to install it and the page shows
their Mermaid source instead.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Any

from . import names
from .errors import HealthInfraError
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

    pictures = report_diagrams(catalog, inventory, phase)
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
        "diagrams": pictures,
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


def report_diagrams(catalog: Catalog, inventory: Inventory, phase: int, err=None) -> list[dict[str, Any]]:
    """The three diagrams for the page: each with its inline SVG, or None and its Mermaid source
    when `dot` is missing (said once, on one line, on stderr: the report is still written)."""
    from .diagrams import diagrams_for, to_dot, to_mermaid

    pictures: list[dict[str, Any]] = []
    for d in diagrams_for(catalog, inventory, phase):
        try:
            svg = render_svg(to_dot(d))
        except GraphvizMissing as missing:
            if not any(p["svg"] is None for p in pictures):
                (err or sys.stderr).write(f"{missing}; the report shows the diagrams' Mermaid source instead\n")
            svg = None
        pictures.append({"name": d.name, "title": d.title, "svg": svg, "mermaid": to_mermaid(d), "note": GRAPHVIZ_HINT})
    return pictures


def render_report(data: dict[str, Any]) -> str:
    import jinja2

    from .inventory import project_root

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(project_root() / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    return env.get_template("monitoring/report.html.j2").render(**data)


class GraphvizMissing(HealthInfraError):
    """`dot` is not on PATH: the SVG pictures need Graphviz (the Mermaid files do not)."""

    exit_code = 1


GRAPHVIZ_HINT = (
    "graphviz's `dot` is not installed; it draws the report's diagrams as SVG: install it with"
    " `apt-get install graphviz` (Debian/Ubuntu) or `brew install graphviz` (macOS)"
)


def render_svg(dot_source: str) -> str:
    """`dot -Tsvg`, sanitised for inline use in a page (see `sanitise_svg`)."""
    import shutil
    import subprocess

    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizMissing(GRAPHVIZ_HINT)
    result = subprocess.run([dot, "-Tsvg"], input=dot_source, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise HealthInfraError(f"dot -Tsvg failed: {result.stderr.strip().splitlines()[-1:]}")
    return sanitise_svg(result.stdout)


SVG_ELEMENTS = {
    "svg",
    "g",
    "title",
    "path",
    "polygon",
    "polyline",
    "ellipse",
    "circle",
    "rect",
    "line",
    "text",
    "tspan",
}
SVG_ATTRIBUTES = {
    "width", "height", "viewBox", "transform", "points", "d", "cx", "cy", "rx", "ry", "r", "x", "y", "x1", "y1",
    "x2", "y2", "fill", "stroke", "stroke-width", "stroke-dasharray", "font-family", "font-size", "font-weight",
    "font-style", "text-anchor", "class", "preserveAspectRatio",
}  # fmt: skip


def sanitise_svg(svg: str) -> str:
    """An SVG document as inline markup that can run nothing: only drawing elements and
    presentation attributes are kept (no script, foreignObject, link, style, event handler,
    id or url()), every text and value escaped, namespaces and the doctype dropped. Pure."""
    import html
    import xml.etree.ElementTree as ET

    body = re.sub(r"<!DOCTYPE[^>]*>", "", re.sub(r"<\?xml[^>]*\?>", "", svg))
    root = ET.fromstring(body)
    out: list[str] = []

    def local(name: str) -> str:
        return name.rsplit("}", 1)[-1]

    def walk(el) -> None:
        tag = local(el.tag)
        if tag not in SVG_ELEMENTS:
            return
        attrs = "".join(
            f' {local(k)}="{html.escape(v, quote=True)}"'
            for k, v in el.attrib.items()
            if local(k) in SVG_ATTRIBUTES and "}" not in k and not re.search(r"url\(|script:", v, re.IGNORECASE)
        )
        out.append(f"<{tag}{attrs}>{html.escape(el.text or '', quote=False)}")
        for child in el:
            walk(child)
            out.append(html.escape(child.tail or "", quote=False))
        out.append(f"</{tag}>")

    walk(root)
    return "".join(out)
