"""The architecture diagrams: one model from the inventory, written as Mermaid and DOT, and the
committed ARCHITECTURE_DIAGRAMS/ files exactly what `invoke monitoring.diagrams` generates."""

from __future__ import annotations

import dataclasses
import io
import re

import pytest

from healthinfra.diagrams import (
    DIAGRAMS,
    Diagram,
    Edge,
    Group,
    Node,
    Want,
    build,
    diagrams_for,
    dot_text,
    mermaid_text,
    monitoring,
    network,
    node_id,
    security,
    to_dot,
    to_mermaid,
)
from healthinfra.inventory import load_inventory
from healthinfra.providers.host_access import Host
from healthinfra.report import GRAPHVIZ_HINT, GraphvizMissing, render_svg, report_diagrams, sanitise_svg
from playbooks import catalog

from .support.environment import REPO
from .support.invoking import run_invoke
from .support.programs import require_program

COMMITTED = REPO / "ARCHITECTURE_DIAGRAMS"


@pytest.fixture(scope="module")
def local():
    return load_inventory("local", REPO / "inventories")


# --- the pure parts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("patient", "patient"),
        ('say "hi"', "say #34;hi#34;"),
        ("<b>&</b>", "#60;b#62;#38;#60;/b#62;"),
        ("a|b #1", "a#124;b #35;1"),
        ("{ $.latency_ms = * }", "#123; $.latency_ms = * #125;"),
        ("`x`", "#96;x#96;"),
    ],
)
def test_mermaid_labels_are_escaped(text, expected):
    assert mermaid_text(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("plain", "plain"),
        ('a "b"', 'a \\"b\\"'),
        ("back\\slash \\N", "back\\\\slash \\\\N"),
        ("two\nlines", "two lines"),
    ],
)
def test_dot_labels_are_escaped(text, expected):
    assert dot_text(text) == expected


@pytest.mark.parametrize(
    "kind, name, expected",
    [("svc", "patient", "svc_patient"), ("lg", "/hc/local/audit", "lg__hc_local_audit"), ("b", "hc-x.y", "b_hc_x_y")],
)
def test_node_ids_are_plain_identifiers(kind, name, expected):
    assert node_id(kind, name) == expected


TINY = Diagram(
    "tiny",
    "Tiny",
    (Group("outer", "outer <1>"), Group("inner", "inner", "outer")),
    (
        Node("a", ("a", ":80"), "round", "inner"),
        Node("b", ('b "q"',), "cylinder", ""),
        Node("c", ("c",), "note", "outer"),
    ),
    (Edge("a", "b", "TLS"), Edge("b", "c", "", True)),
)


def test_one_model_written_as_mermaid():
    assert to_mermaid(TINY) == (
        "flowchart LR\n"
        '  subgraph outer["outer #60;1#62;"]\n'
        '    subgraph inner["inner"]\n'
        '      a("a<br/>:80")\n'
        "    end\n"
        '    c>"c"]\n'
        "  end\n"
        '  b[("b #34;q#34;")]\n'
        '  a -->|"TLS"| b\n'
        "  b -.-> c\n"
    )


def test_the_same_model_written_as_dot():
    dot = to_dot(TINY)
    assert dot.startswith('digraph "tiny" {\n  rankdir=LR;')
    for line in (
        '  subgraph "cluster_outer" { label="outer <1>"; style=rounded;',
        '    subgraph "cluster_inner" { label="inner"; style=rounded;',
        '      "a" [label="a\\n:80", shape=box, style="rounded"];',
        '    "c" [label="c", shape=note];',
        '  "b" [label="b \\"q\\"", shape=cylinder];',
        '  "a" -> "b" [label="TLS"];',
        '  "b" -> "c" [label="", style=dashed];',
    ):
        assert line in dot.splitlines(), line
    assert dot.endswith("}\n")


@pytest.mark.parametrize(
    "svg, kept, gone",
    [
        ('<svg xmlns="http://www.w3.org/2000/svg" width="10"><text x="1">gateway</text></svg>', ['<svg width="10">', '<text x="1">gateway</text>'], ["xmlns", "http"]),
        ('<svg><script>alert(1)</script><g onload="x()" class="node"><path d="M0"/></g></svg>', ['<g class="node"><path d="M0"></path></g>'], ["script", "alert", "onload"]),
        ('<svg xmlns:xlink="http://www.w3.org/1999/xlink"><a xlink:href="javascript:x"><text>t</text></a></svg>', ["<svg></svg>"], ["javascript", "href", "<a"]),
        ('<svg><foreignObject><div>hi</div></foreignObject><rect fill="url(#p)" stroke="red"/></svg>', ['<rect stroke="red"></rect>'], ["foreignObject", "url(", "div"]),
        ("<svg><text>&lt;img src=x onerror=y&gt; &amp;</text></svg>", ["<text>&lt;img src=x onerror=y&gt; &amp;</text>"], ["<img"]),
        ('<?xml version="1.0"?><!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://x"><svg id="graph0"><title>n</title></svg>', ["<svg><title>n</title></svg>"], ["DOCTYPE", "<?xml", "id="]),
    ],
)  # fmt: skip
def test_svg_is_sanitised_for_inline_use(svg, kept, gone):
    clean = sanitise_svg(svg)
    for text in kept:
        assert text in clean, (text, clean)
    for text in gone:
        assert text not in clean, (text, clean)


def wants(*rows) -> tuple[Want, ...]:
    return tuple(Want(kind, name, desired, params) for kind, name, desired, params in rows)


ALARM = {"namespace": "hc/local", "metric": "patient-errors", "description": "errors", "alarm_actions": []}
FILTER = {"pattern": "?ERROR", "metric": "patient-errors", "namespace": "hc/local"}


@pytest.mark.parametrize(
    "subscriptions, expected_nodes, expected_edges",
    [
        ([], {"sub_none"}, {("sns_hc_local_alerts", "sub_none")}),
        (
            [{"protocol": "email", "endpoint": "oncall@example.org"}],
            {"sub_email_oncall_example_org"},
            {("sns_hc_local_alerts", "sub_email_oncall_example_org")},
        ),
    ],
)
def test_monitoring_follows_logs_to_filters_to_alarms_to_people(local, subscriptions, expected_nodes, expected_edges):
    topic = "arn:aws:sns:us-east-1:123456789012:hc-local-alerts"
    d = monitoring(
        local,
        1,
        wants(
            ("logs.group", "/hc/local/patient", {"retention_days": 90}, {}),
            (
                "logs.metric_filter",
                "/hc/local/patient:errors",
                FILTER,
                {"group": "/hc/local/patient", "filter": "errors"},
            ),
            ("cloudwatch.alarm", "hc-local-patient-errors", {**ALARM, "alarm_actions": [topic]}, {}),
            ("cloudwatch.alarm", "hc-local-database-connections", {**ALARM, "metric": "db"}, {}),
            ("sns.topic", "hc-local-alerts", {"subscriptions": subscriptions}, {}),
        ),
    )
    ids = {n.id for n in d.nodes}
    edges = {(e.src, e.dst) for e in d.edges}
    assert expected_nodes <= ids and expected_edges <= edges
    assert {
        ("svc_patient", "lg__hc_local_patient"),
        ("lg__hc_local_patient", "mf__hc_local_patient_errors"),
        ("mf__hc_local_patient_errors", "alarm_hc_local_patient_errors"),
        ("alarm_hc_local_patient_errors", "sns_hc_local_alerts"),
        ("metric_hc_local_db", "alarm_hc_local_database_connections"),  # a metric no filter makes
    } <= edges
    assert next(n for n in d.nodes if n.id == "alarm_hc_local_patient_errors").group == "mon_patient"


def test_security_marks_grants_row_security_and_encryption(local):
    migrations = [
        ("m", "alter table patients enable row level security; alter table patients force row level security;")
    ]
    d = security(
        local,
        2,
        wants(
            ("pg.grants", "patient_svc", {"database": ["CONNECT"], "table:patients": ["SELECT", "INSERT", "UPDATE", "DELETE"]}, {}),
            ("pg.grants", "gateway_svc", {"table:audit_log": ["INSERT"]}, {}),
            ("iam.role", "hc-local-patient", {}, {}),
            ("kms.key", "alias/hc-local-phi", {"rotation": True}, {}),
            ("s3.bucket", "hc-local-medical-images", {"encryption": {"kms_key": "arn:aws:kms:r:1:alias/hc-local-phi"}, "logging": None}, {}),
        ),
        migrations,
    )  # fmt: skip
    labels = {(e.src, e.dst): e.label for e in d.edges}
    assert labels[("dbr_patient_svc", "tbl_patients")] == "read/write"
    assert labels[("dbr_gateway_svc", "tbl_audit_log")] == "insert only"
    assert labels[("svc_patient", "iam_hc_local_patient")] == "assumes"
    assert labels[("bkt_hc_local_medical_images", "kms_alias_hc_local_phi")] == "SSE-KMS"
    assert labels[("iam_hc_local_patient", "bkt_hc_local_medical_images")] == "read/write"  # data_types.yml
    assert "row security forced" in next(n for n in d.nodes if n.id == "tbl_patients").label
    assert ("medical_images (phi)",) == next(n for n in d.nodes if n.id == "bkt_hc_local_medical_images").label[1:]


def test_network_draws_each_host_of_a_service_on_its_own_hosts(local):
    host = Host("ai", "ai-1", "10.0.0.7", 22, "deploy", "k", "kh", "/opt/x", 8005, "run")
    with_host = dataclasses.replace(local, hosts={"ai": (host,)})
    drawn = network(with_host, 4, ())
    assert ("host_ai_1", "svc_ai") in {(e.src, e.dst) for e in drawn.edges}
    assert next(n for n in drawn.nodes if n.id == "host_ai_1").label == ("ai-1", "10.0.0.7, ssh :22")
    assert "nohost_ai" in {n.id for n in network(local, 4, ()).nodes}
    assert "hosts_ai" not in {g.id for g in network(local, 3, ()).groups}  # no own-host service before phase 4


@pytest.mark.parametrize("phase", [1, 2, 3, 4])
def test_every_diagram_has_every_service_at_its_phase_and_only_known_ids(local, phase):
    for d in diagrams_for(catalog(), local, phase):
        ids = [n.id for n in d.nodes]
        assert len(ids) == len(set(ids)), d.name
        assert {e.src for e in d.edges} | {e.dst for e in d.edges} <= set(ids), d.name
        assert {n.group for n in d.nodes} - {""} <= {g.id for g in d.groups}, d.name
        shown = to_mermaid(d)
        assert all(f"svc_{s.name}(" in shown for s in local.services_at(phase)), d.name
        assert "svc_ai" not in shown or phase == 4


def test_build_is_pure_and_repeatable(local):
    made = wants(("logs.group", "/hc/local/auth", {"retention_days": 90}, {}))
    assert build(local, 1, made, []) == build(local, 1, made, [])
    assert [d.name for d in build(local, 1, made, [])] == list(DIAGRAMS)


# --- the committed files and the renderer ------------------------------------------------


def test_committed_diagrams_are_what_the_command_generates(tmp_path):
    inventories = str(REPO / "inventories")
    result = run_invoke(
        "monitoring.diagrams",
        "-i",
        "local",
        "--phase",
        "4",
        "--out",
        str(tmp_path),
        env_overrides={"HEALTHINFRA_INVENTORIES": inventories, "HEALTHINFRA_STATE": str(tmp_path / "state")},
    )
    assert result.code == 0, result
    local = load_inventory("local", REPO / "inventories")
    for name in DIAGRAMS:
        generated = (tmp_path / f"{name}-diagram.md").read_text()
        committed = COMMITTED / f"{name}-diagram.md"
        assert committed.exists(), f"run `invoke monitoring.diagrams -i local --phase 4` and commit {committed.name}"
        assert committed.read_text() == generated, (
            f"ARCHITECTURE_DIAGRAMS/{committed.name} is stale: run `invoke monitoring.diagrams -i local --phase 4`"
        )
        assert "```mermaid\nflowchart LR\n" in generated
        for s in local.services_at(4):
            assert f'svc_{s.name}("{s.name}<br/>:{s.port}")' in generated, (name, s.name)


def test_a_bad_phase_exits_2_and_writes_nothing(tmp_path):
    result = run_invoke("monitoring.diagrams", "-i", "local", "--phase", "9", "--out", str(tmp_path / "d"))
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1, result
    assert not (tmp_path / "d").exists()


def test_dot_draws_sanitised_svg_with_the_services_in_its_text(local):
    require_program("dot", "graphviz")
    for d in diagrams_for(catalog(), local, 4):
        svg = render_svg(to_dot(d))
        assert svg.startswith("<svg") and "<script" not in svg and "xmlns" not in svg
        assert not re.search(r"\son\w+=", svg)
        for s in local.services_at(4):
            assert f">{s.name}</text>" in svg, (d.name, s.name)


def test_without_dot_one_line_says_how_to_install_it_and_the_report_shows_mermaid(local, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GraphvizMissing) as missing:
        render_svg("digraph {}")
    assert missing.value.exit_code == 1 and "apt-get install graphviz" in str(missing.value)
    err = io.StringIO()
    pictures = report_diagrams(catalog(), local, 2, err=err)
    assert len(err.getvalue().splitlines()) == 1 and "apt-get install graphviz" in err.getvalue()
    assert [p["svg"] for p in pictures] == [None, None, None]
    assert all(p["mermaid"].startswith("flowchart LR") and p["note"] == GRAPHVIZ_HINT for p in pictures)
