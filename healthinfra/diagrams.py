"""The architecture drawn from the inventory: network, security and monitoring diagrams.

One model (`Diagram`: groups, nodes, edges) is built, purely, from the services table, the
inventory and the resources the playbooks want at a phase (`Want`s, from `plan_items`), then
written two ways from that one model: Mermaid (`to_mermaid`, for ARCHITECTURE_DIAGRAMS/*.md,
which code hosts render) and Graphviz DOT (`to_dot`, rendered to SVG by `dot` for the report).
Nothing is drawn by hand, so a picture can never disagree with what a deploy builds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import names

if TYPE_CHECKING:
    from .inventory import Inventory
    from .step import Catalog

DIAGRAMS = ("network", "security", "monitoring")
PRIVILEGES_SHOWN = {
    ("DELETE", "INSERT", "SELECT", "UPDATE"): "read/write",
    ("SELECT",): "read",
    ("INSERT",): "insert only",
}


@dataclass(frozen=True)
class Want:
    """One resource a phase wants: its kind, name, desired state and parameters."""

    kind: str
    name: str
    desired: Any
    params: dict[str, Any]


@dataclass(frozen=True)
class Node:
    id: str
    label: tuple[str, ...]  # lines
    shape: str = "box"  # box | round | cylinder | hexagon | note
    group: str = ""


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    label: str = ""
    dashed: bool = False


@dataclass(frozen=True)
class Group:
    id: str
    label: str
    parent: str = ""


@dataclass(frozen=True)
class Diagram:
    name: str
    title: str
    groups: tuple[Group, ...]
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


def node_id(kind: str, name: str) -> str:
    """A stable identifier Mermaid and DOT both accept: `svc_patient`, `lg__hc_local_audit`."""
    return f"{kind}_{re.sub(r'[^A-Za-z0-9]', '_', name)}"


def wants_of(items) -> tuple[Want, ...]:
    """Plan items (healthinfra.plan.Item) as `Want`s, keeping only what is wanted present."""
    return tuple(
        Want(i.resource.kind, i.resource.name, i.resource.desired, dict(i.resource.params))
        for i in items
        if i.resource.desired is not None
    )


def _of(wants: tuple[Want, ...], kind: str) -> list[Want]:
    return [w for w in wants if w.kind == kind]


def _service_nodes(inv: Inventory, phase: int, group_of) -> list[Node]:
    return [Node(node_id("svc", s.name), (s.name, f":{s.port}"), "round", group_of(s)) for s in inv.services_at(phase)]


def network(inv: Inventory, phase: int, wants: tuple[Want, ...]) -> Diagram:
    """Where each service runs (hosting platform or its own hosts), its port, and what it reaches."""
    services = inv.services_at(phase)
    groups = [Group("platform", f"hosting platform: {inv.provider('hosting').name}")]
    nodes = _service_nodes(inv, phase, lambda s: "platform" if s.hosted else f"hosts_{s.name}")
    edges: list[Edge] = []
    for s in services:
        if s.on_own_host:
            groups.append(Group(f"hosts_{s.name}", f"own hosts of {s.name}: {inv.provider('hosts').name}"))
            hosts = inv.hosts.get(s.name, ())
            for h in hosts:
                nodes.append(
                    Node(node_id("host", h.name), (h.name, f"{h.address}, ssh :{h.port}"), "box", f"hosts_{s.name}")
                )
                edges.append(Edge(node_id("host", h.name), node_id("svc", s.name), f"runs :{h.service_port}", True))
            if not hosts:
                nodes.append(
                    Node(
                        node_id("nohost", s.name),
                        (f"no hosts listed under hosts: {s.name}",),
                        "note",
                        f"hosts_{s.name}",
                    )
                )
    port = inv.database.get("port")
    groups.append(Group("database", f"database: {inv.provider('database').name}"))
    nodes.append(Node("db", ("PostgreSQL", f"database {inv.database['name']}"), "cylinder", "database"))
    groups.append(Group("aws", f"AWS {inv.aws['region']}: {inv.provider('aws').name}"))
    buckets = _of(wants, "s3.bucket")
    aws_parts = [
        ("s3", ("S3", f"{len(buckets)} buckets"), bool(buckets)),
        ("kms", ("KMS", "the PHI key"), bool(_of(wants, "kms.key"))),
        ("iam", ("IAM", "a role per service"), bool(_of(wants, "iam.role"))),
        ("logs", ("CloudWatch Logs", "and alarms"), bool(_of(wants, "logs.group"))),
        ("sns", ("SNS", "alert topic"), bool(_of(wants, "sns.topic"))),
    ]
    nodes += [Node(f"aws_{key}", label, "box", "aws") for key, label, present in aws_parts if present]
    present = {f"aws_{key}" for key, _, on in aws_parts if on}
    touches = {s.name for d in inv.data_types_at(phase) for s in services if s.name in (*d.read, *d.write)}
    for s in services:
        sid = node_id("svc", s.name)
        edges.append(Edge(sid, "db", f"TLS :{port}" if port else "TLS"))
        if s.name in touches and "aws_s3" in present:
            edges.append(Edge(sid, "aws_s3", "HTTPS"))
        if "aws_logs" in present:
            edges.append(Edge(sid, "aws_logs", "logs", True))
    if {"aws_s3", "aws_kms"} <= present:
        edges.append(Edge("aws_s3", "aws_kms", "SSE-KMS", True))
    title = f"Network: {inv.name}, phase {phase}"
    return Diagram("network", title, tuple(groups), tuple(nodes), tuple(edges))


def security(inv: Inventory, phase: int, wants: tuple[Want, ...], migrations: list[tuple[str, str]]) -> Diagram:
    """Identities and what each may touch: IAM roles and their boundary, database roles and their
    grants (tables with forced row security and audit triggers marked), buckets and the KMS key."""
    from .audit import expected_row_security

    triggers, forced = expected_row_security(migrations)
    audited = {table for table, _ in triggers}
    groups = [Group("services", "services"), Group("iam", "IAM"), Group("pg", f"PostgreSQL {inv.database['name']}")]
    nodes = _service_nodes(inv, phase, lambda s: "services")
    edges: list[Edge] = []
    boundary = _of(wants, "iam.policy")
    for p in boundary:
        nodes.append(Node(node_id("pol", p.name), ("permissions boundary", p.name), "hexagon", "iam"))
    roles = {w.name for w in _of(wants, "iam.role")}
    for s in inv.services_at(phase):
        role = names.iam_role(inv, s.name)
        if role in roles:
            nodes.append(Node(node_id("iam", role), ("IAM role", role), "box", "iam"))
            edges.append(Edge(node_id("svc", s.name), node_id("iam", role), "assumes"))
            edges += [Edge(node_id("iam", role), node_id("pol", p.name), "bounded by", True) for p in boundary]
    tables: set[str] = set()
    for g in _of(wants, "pg.grants"):
        service = g.name.removesuffix("_svc")
        nodes.append(Node(node_id("dbr", g.name), ("login role", g.name), "box", "pg"))
        edges.append(Edge(node_id("svc", service), node_id("dbr", g.name), "TLS, SCRAM"))
        for key, privileges in sorted(g.desired.items()):
            if key.startswith("table:"):
                table = key.removeprefix("table:")
                tables.add(table)
                shown = PRIVILEGES_SHOWN.get(tuple(sorted(privileges)), ", ".join(sorted(privileges)).lower())
                edges.append(Edge(node_id("dbr", g.name), node_id("tbl", table), shown))
    for table in sorted(tables):
        marks = [m for m, on in (("row security forced", table in forced), ("audit trigger", table in audited)) if on]
        nodes.append(Node(node_id("tbl", table), (table, *marks), "cylinder", "pg"))
    storage = _of(wants, "s3.bucket")
    if storage:
        groups.append(Group("s3", "S3 and KMS"))
    for k in _of(wants, "kms.key"):
        rotation = "rotation on" if k.desired.get("rotation") else "rotation off"
        nodes.append(Node(node_id("kms", k.name), ("KMS key", k.name, rotation), "hexagon", "s3"))
    data_types = inv.data_types_at(phase)
    for b in storage:
        rows = [d for d in data_types if names.bucket(inv, d.bucket) == b.name]
        lines = [f"{d.name}{' ' + d.prefix if d.prefix else ''} ({d.data_class})" for d in rows]
        nodes.append(Node(node_id("bkt", b.name), (b.name, *lines), "cylinder", "s3"))
        encryption = b.desired.get("encryption") or {}
        if encryption.get("kms_key"):
            alias = encryption["kms_key"].rsplit(":", 1)[-1]
            edges.append(Edge(node_id("bkt", b.name), node_id("kms", alias), "SSE-KMS", True))
        logging = b.desired.get("logging")
        if logging:
            edges.append(Edge(node_id("bkt", b.name), node_id("bkt", logging["target_bucket"]), "access logs", True))
        for s in inv.services_at(phase):
            access = [
                a
                for a, who in (
                    ("read", [x for d in rows for x in d.read]),
                    ("write", [x for d in rows for x in d.write]),
                )
                if s.name in who
            ]
            if access and names.iam_role(inv, s.name) in roles:
                edges.append(
                    Edge(node_id("iam", names.iam_role(inv, s.name)), node_id("bkt", b.name), "/".join(access))
                )
    title = f"Security: {inv.name}, phase {phase}"
    return Diagram("security", title, tuple(groups), tuple(nodes), tuple(_known(nodes, edges)))


def monitoring(inv: Inventory, phase: int, wants: tuple[Want, ...]) -> Diagram:
    """Logs to metric filters to alarms to the alert topic to people; the dashboard's rows."""
    services = inv.services_at(phase)
    groups = [Group(f"mon_{s.name}", f"service {s.name}") for s in services] + [Group("env", "environment")]
    nodes = _service_nodes(inv, phase, lambda s: f"mon_{s.name}")
    edges: list[Edge] = []
    owner = {names.log_group(inv, s.name): s.name for s in services}
    for g in _of(wants, "logs.group"):
        service = owner.get(g.name)
        lines = (f"log group {g.name}", f"retention {g.desired.get('retention_days')} days")
        nodes.append(Node(node_id("lg", g.name), lines, "box", f"mon_{service}" if service else "env"))
        if service:
            edges.append(Edge(node_id("svc", service), node_id("lg", g.name), "writes"))
    metrics: dict[tuple[str, str], str] = {}
    for f in _of(wants, "logs.metric_filter"):
        service = owner.get(f.params.get("group", ""))
        fid = node_id("mf", f.name)
        rows: tuple[str, ...] = (
            f"filter {f.params.get('filter', f.name)}",
            f.desired["pattern"],
            f"metric {f.desired['metric']}",
        )
        nodes.append(Node(fid, rows, "note", f"mon_{service}" if service else "env"))
        edges.append(Edge(node_id("lg", f.params.get("group", "")), fid, ""))
        metrics[(f.desired["namespace"], f.desired["metric"])] = fid
    topics = {names.alert_topic_arn(inv): node_id("sns", t.name) for t in _of(wants, "sns.topic")}
    for a in _of(wants, "cloudwatch.alarm"):
        service = next((s.name for s in services if a.name.startswith(names.service_alarm_prefix(inv, s.name))), None)
        group = f"mon_{service}" if service else "env"
        aid = node_id("alarm", a.name)
        nodes.append(Node(aid, (f"alarm {a.name}", a.desired.get("description", "")), "hexagon", group))
        source = metrics.get((a.desired["namespace"], a.desired["metric"]))
        if source is None:  # a metric no filter makes: published by its service, or by whatever collects it
            source = node_id("metric", f"{a.desired['namespace']}/{a.desired['metric']}")
            if source not in {n.id for n in nodes}:
                nodes.append(Node(source, (f"metric {a.desired['namespace']}/{a.desired['metric']}",), "note", group))
                if service:
                    edges.append(Edge(node_id("svc", service), source, "publishes"))
        edges.append(Edge(source, aid, ""))
        edges += [Edge(aid, topics[arn], "notifies") for arn in a.desired.get("alarm_actions", []) if arn in topics]
    for t in _of(wants, "sns.topic"):
        tid = node_id("sns", t.name)
        nodes.append(Node(tid, ("alert topic", t.name), "hexagon", "env"))
        subscriptions = t.desired.get("subscriptions") or []
        for s in subscriptions:
            sub = node_id("sub", f"{s['protocol']}_{s['endpoint']}")
            nodes.append(Node(sub, (s["protocol"], s["endpoint"]), "round", "env"))
            edges.append(Edge(tid, sub, "notifies"))
        if not subscriptions:
            nodes.append(Node("sub_none", ("no subscriptions:", "alerts reach nobody"), "note", "env"))
            edges.append(Edge(tid, "sub_none", "", True))
    for d in _of(wants, "cloudwatch.dashboard"):
        nodes.append(Node(node_id("dash", d.name), ("dashboard", d.name, "a row per service"), "box", "env"))
        edges += [Edge(node_id("dash", d.name), node_id("svc", s.name), "row", True) for s in services]
    title = f"Monitoring: {inv.name}, phase {phase}"
    return Diagram("monitoring", title, tuple(groups), tuple(nodes), tuple(_known(nodes, edges)))


def _known(nodes: list[Node], edges: list[Edge]) -> list[Edge]:
    """Edges between nodes that are drawn (a bucket logging to one a phase lacks is left out)."""
    ids = {n.id for n in nodes}
    return [e for e in edges if e.src in ids and e.dst in ids]


def build(inv: Inventory, phase: int, wants: tuple[Want, ...], migrations: list[tuple[str, str]]) -> list[Diagram]:
    """The three diagrams of an inventory at a phase. Pure."""
    return [network(inv, phase, wants), security(inv, phase, wants, migrations), monitoring(inv, phase, wants)]


def diagrams_for(catalog: Catalog, inv: Inventory, phase: int) -> list[Diagram]:
    """The three diagrams from what the playbooks want at `phase` (reads the migration files)."""
    from .inventory import project_root
    from .plan import plan_items

    wants = wants_of(plan_items(catalog, inv, phase))
    migrations = []
    for w in _of(wants, "pg.migration"):
        path = project_root() / w.params.get("directory", "templates/sql/migrations") / f"{w.name}.up.sql"
        migrations.append((w.name, path.read_text(encoding="utf-8") if path.exists() else ""))
    return build(inv, phase, wants, migrations)


# --- Mermaid ---------------------------------------------------------------------------------

MERMAID_SHAPES = {
    "box": ('["', '"]'),
    "round": ('("', '")'),
    "cylinder": ('[("', '")]'),
    "hexagon": ('{{"', '"}}'),
    "note": ('>"', '"]'),
}


def mermaid_text(text: str) -> str:
    """Text inside a quoted Mermaid label: entity codes for what Mermaid or HTML would read."""
    return "".join(f"#{ord(c)};" if c in '#"<>&|`{}' else c for c in text)


def to_mermaid(d: Diagram) -> str:
    lines = ["flowchart LR"]

    def emit(parent: str, indent: str) -> None:
        for g in (g for g in d.groups if g.parent == parent):
            lines.append(f'{indent}subgraph {g.id}["{mermaid_text(g.label)}"]')
            emit(g.id, indent + "  ")
            lines.append(f"{indent}end")
        for n in (n for n in d.nodes if n.group == parent):
            start, end = MERMAID_SHAPES[n.shape]
            lines.append(f"{indent}{n.id}{start}{'<br/>'.join(mermaid_text(x) for x in n.label)}{end}")

    emit("", "  ")
    for e in d.edges:
        arrow = "-.->" if e.dashed else "-->"
        label = f'|"{mermaid_text(e.label)}"|' if e.label else ""
        lines.append(f"  {e.src} {arrow}{label} {e.dst}")
    return "\n".join(lines) + "\n"


def markdown(d: Diagram, command: str) -> str:
    """One ARCHITECTURE_DIAGRAMS/*.md file: a title, where it comes from, the Mermaid block."""
    return (
        f"# {d.title}\n\n"
        f"Generated by `{command}` from the services and data types tables,\n"
        "the inventory and the playbooks. Do not edit it: run the command again\n"
        "(`tests/test_diagrams.py` fails when this file differs from what it generates).\n\n"
        f"```mermaid\n{to_mermaid(d)}```\n"
    )


# --- Graphviz --------------------------------------------------------------------------------

DOT_SHAPES = {"box": "box", "round": "box", "cylinder": "cylinder", "hexagon": "hexagon", "note": "note"}


def dot_text(text: str) -> str:
    """A DOT quoted string's contents: backslashes and quotes escaped (no `\\N`-style escapes)."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def to_dot(d: Diagram) -> str:
    lines = [
        f'digraph "{dot_text(d.name)}" {{',
        "  rankdir=LR;",
        '  graph [fontname="Helvetica", fontsize=12];',
        '  node [fontname="Helvetica", fontsize=10];',
    ]
    lines.append('  edge [fontname="Helvetica", fontsize=9];')

    def emit(parent: str, indent: str) -> None:
        for g in (g for g in d.groups if g.parent == parent):
            lines.append(f'{indent}subgraph "cluster_{g.id}" {{ label="{dot_text(g.label)}"; style=rounded;')
            emit(g.id, indent + "  ")
            lines.append(f"{indent}}}")
        for n in (n for n in d.nodes if n.group == parent):
            style = ', style="rounded"' if n.shape == "round" else ""
            label = "\\n".join(dot_text(x) for x in n.label)
            lines.append(f'{indent}"{n.id}" [label="{label}", shape={DOT_SHAPES[n.shape]}{style}];')

    emit("", "  ")
    for e in d.edges:
        style = ", style=dashed" if e.dashed else ""
        lines.append(f'  "{e.src}" -> "{e.dst}" [label="{dot_text(e.label)}"{style}];')
    return "\n".join(lines) + "\n}\n"
