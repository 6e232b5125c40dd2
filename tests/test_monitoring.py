"""Monitoring grows with the phases: each adds exactly its resources, a second run changes nothing,
rollback removes what a phase added; health, audit trail, slow queries and the report work."""

from __future__ import annotations

import http.server
import json
import re
import shutil
import subprocess
import threading

import psycopg
import pytest

from healthinfra.inventory import load_inventory
from healthinfra.providers.aws import AwsClients
from healthinfra.providers.postgres import service_conninfo
from healthinfra.secret_store import SecretStore
from playbooks.monitoring import alarm_designs, metric_filters

from .support.catalog import snapshot
from .support.environment import REPO, free_port, write_inventory

TOPIC = "arn:aws:sns:us-east-1:123456789012:hc-local-alerts"


@pytest.fixture(scope="module")
def local():
    return load_inventory("local", REPO / "inventories")


@pytest.mark.parametrize(
    "phase, expected",
    [
        (2, set()),
        (
            3,
            {
                f"hc-local-{s}-{k}"
                for s in ("gateway", "auth", "patient", "provider", "appointment")
                for k in ("errors", "latency-p99", "phi-access")
            }
            | {"hc-local-database-connections", "hc-local-no-appointments-24h"},
        ),
        (
            4,
            {
                f"hc-local-{s}-{k}"
                for s in ("gateway", "auth", "patient", "provider", "appointment", "ai")
                for k in ("errors", "latency-p99", "phi-access")
            }
            | {"hc-local-database-connections", "hc-local-no-appointments-24h"}
            | {"hc-local-ai-inference-latency-p99", "hc-local-ai-inference-errors"},
        ),
    ],
)
def test_alarms_per_phase_all_to_the_alert_topic(local, phase, expected):
    designs = alarm_designs(local, phase)
    assert set(designs) == expected
    assert all(d["alarm_actions"] == [TOPIC] for d in designs.values())
    if phase == 4:
        assert designs["hc-local-ai-inference-latency-p99"]["namespace"] == "hc/local/ml"
        assert designs["hc-local-patient-latency-p99"]["extended_statistic"] == "p99"


def test_latency_filters_come_with_phase_3(local):
    patient = next(s for s in local.services if s.name == "patient")
    assert set(metric_filters(local, patient, 2)) == {"errors", "phi-access"}
    assert metric_filters(local, patient, 3)["latency"]["value"] == "$.latency_ms"


def aws_changes(result, playbook="monitoring"):
    return sorted(
        (c["resource"], tuple(a["op"] if a["op"] != "set" else a["attribute"] for a in c["actions"]))
        for c in result.json["changes"]
        if c["playbook"] == playbook
    )


def test_each_phase_adds_exactly_its_monitoring_and_rollback_removes_it(env, invoke):
    assert invoke("deploy", "-i", "test", "--phase", "1").code == 0
    two = invoke("deploy", "-i", "test", "--phase", "2", "--json")
    assert two.code == 0, two
    groups = ["gateway", "auth", "patient", "provider", "audit"]
    assert [r for r, _ in aws_changes(two)] == sorted(
        [f"logs.group /hc/local/{g}" for g in groups]
        + [f"logs.metric_filter /hc/local/{s}:{f}" for s in groups[:-1] for f in ("errors", "phi-access")]
    )
    aws = AwsClients(env)
    retention = {g["logGroupName"]: g["retentionInDays"] for g in aws.client("logs").describe_log_groups()["logGroups"]}
    assert retention["/hc/local/patient"] == 90 and retention["/hc/local/audit"] == 2192
    assert invoke("deploy", "-i", "test", "--phase", "2", "--json").json["changed"] == 0
    after_two = snapshot(env)

    three = invoke("deploy", "-i", "test", "--phase", "3", "--json")
    assert three.code == 0, three
    added = dict(aws_changes(three))
    assert added.pop("pg.extension pg_stat_statements") == ("create",)
    assert added.pop("sns.topic hc-local-alerts") == ("create",)
    assert added.pop("logs.group /hc/local/appointment") == ("create",)
    assert {k for k in added if k.startswith("cloudwatch.alarm")} == {
        f"cloudwatch.alarm {n}" for n in alarm_designs(env, 3)
    }
    assert {k for k in added if k.endswith(":latency")} == {
        f"logs.metric_filter /hc/local/{s}:latency" for s in ("gateway", "auth", "patient", "provider", "appointment")
    }
    cw, sns = aws.client("cloudwatch"), aws.client("sns")
    alarms = cw.describe_alarms(AlarmNamePrefix="hc-local-")["MetricAlarms"]
    assert alarms and all(a["AlarmActions"] == [TOPIC] for a in alarms)
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=TOPIC)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("email", "oncall@example.org")]
    assert invoke("deploy", "-i", "test", "--phase", "3", "--json").json["changed"] == 0

    rolled = invoke("rollback", "-i", "test", "--json")
    assert rolled.code == 0, rolled
    assert snapshot(env) == after_two, "rollback removes exactly what phase 3 added"


def test_dashboard_is_shown_as_a_json_diff_when_it_changes(env, invoke):
    assert invoke("deploy", "-i", "test", "--phase", "4").code == 0
    cw = AwsClients(env).client("cloudwatch")
    body = json.loads(cw.get_dashboard(DashboardName="hc-local-overview")["DashboardBody"])
    titles = [w["properties"].get("title") for w in body["widgets"]]
    assert "patient p99 latency (ms)" in titles and "inference p99 latency (ms) and errors" in titles
    body["widgets"] = body["widgets"][1:]
    cw.put_dashboard(DashboardName="hc-local-overview", DashboardBody=json.dumps(body))
    plan = invoke("plan", "-i", "test", "--phase", "4")
    assert "would change: [cloudwatch.dashboard hc-local-overview] set body" in plan.out, plan
    assert '+        "markdown": "## gateway\\nport 8000, phase 1"' in plan.out
    assert invoke("deploy", "-i", "test", "--phase", "4", "--json").json["changed"] == 1


def test_audit_trail_and_slow_queries(env, invoke):
    assert invoke("deploy", "-i", "test", "--phase", "2").code == 0
    refused = invoke("monitoring.slow-queries", "-i", "test")
    assert refused.code == 1 and "it comes with phase 3" in refused.err
    assert invoke("deploy", "-i", "test", "--phase", "3").code == 0
    password = SecretStore(env.state_dir / "secrets.json").get("pg.patient_svc")
    from healthinfra.providers.postgres import admin_conninfo

    with psycopg.connect(**admin_conninfo(env, "healthcare"), autocommit=True) as conn:
        user = conn.execute(
            "insert into users (email, password_hash, role) values ('tess@example.org', 'x', 'patient') returning id"
        ).fetchone()[0]
    with psycopg.connect(**service_conninfo(env, "patient_svc", password), autocommit=True) as conn:
        conn.execute("select set_config('app.user_id', %s, false)", (str(user),))
        conn.execute(
            """insert into patients (user_id, medical_record_number, first_name, last_name, date_of_birth)
                        values (%s, 'MRN-T', 'Tess', 'Secret', '1970-02-03')""",
            (user,),
        )
    trail = invoke("monitoring.audit-trail", "-i", "test", "--since", "1h", "--json")
    assert trail.code == 0, trail
    events = trail.json["events"]
    assert [(e["actor"], e["action"], e["table"], e["user"]) for e in events] == [
        ("postgres", "insert", "users", None),
        ("patient_svc", "insert", "patients", str(user)),
    ]
    assert all(phi not in trail.out for phi in ("Tess", "MRN-T", "1970-02-03", "tess@example.org"))
    assert invoke("monitoring.audit-trail", "-i", "test", "--since", "soon").code == 2
    with psycopg.connect(**admin_conninfo(env, "healthcare"), autocommit=True) as conn:  # as on Neon: plain text
        conn.execute("create role tmp_pw_role password 'Plain-Text-Pw-91'")
        conn.execute("drop role tmp_pw_role")
    slow = invoke("monitoring.slow-queries", "-i", "test", "--json", "--limit", "500")
    assert slow.code == 0 and slow.json["statements"], slow
    assert "Plain-Text-Pw-91" not in slow.out, "a role statement's password is never shown"
    assert all("Tess" not in s["query"] for s in slow.json["statements"]), "constants are normalised away"


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_http_endpoints_are_probed_with_bounded_retries(env, invoke, servers):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    closed = free_port()
    path = write_inventory(servers["inventories"], "web", servers["pg_port"], servers["aws_port"])
    path.write_text(
        path.read_text() + f"monitoring:\n  endpoints:\n    gateway: http://127.0.0.1:{server.server_port}\n"
        f"    auth: http://127.0.0.1:{closed}\n"
    )
    state = servers["state"] / "web"
    state.mkdir(exist_ok=True)
    for shared in ("postgres", "tls-front.pid", "moto.pid", "tls", "admin.pgpass"):
        (state / shared).symlink_to(servers["state"] / "test" / shared)
    try:
        result = invoke("monitoring.check", "-i", "web", "--json")
        probes = {p["target"]: p for p in result.json["probes"] if p["probe"] == "http"}
        assert probes[f"gateway http://127.0.0.1:{server.server_port}/health"]["healthy"]
        down = probes[f"auth http://127.0.0.1:{closed}/health"]
        assert not down["healthy"] and "unreachable" in down["detail"] and "(after 3 attempts)" in down["detail"]
        assert result.code == 1
    finally:
        server.shutdown()
        server.server_close()
        path.unlink()
        shutil.rmtree(state, ignore_errors=True)


def test_report_is_one_self_contained_page_that_a_browser_renders(env, invoke, tmp_path, chromium):
    assert invoke("deploy", "-i", "test", "--phase", "3").code == 0
    out = tmp_path / "report.html"
    result = invoke("monitoring.report", "-i", "test", "--phase", "3", "--out", str(out))
    assert result.code == 0, result
    html = out.read_text()
    for text in (
        "Environment <code>test</code>",
        "patient_svc",
        "hc-local-patient",
        "/hc/local/patient",
        "hc-local-patient-errors",
        "hc-local-medical-documents",
        "deploy",
    ):
        assert text in html, text
    assert (
        "<script" not in html
        and "http://" not in html.replace("http://127.0.0.1", "")
        and "https://" not in html.replace("https://127.0.0.1", "")
    )
    shot = tmp_path / "report.png"

    def dump_dom(page):
        """The DOM Chromium made of a page, and every console message it logged (a page with
        no scripts logs none: any is an error, a blocked resource or a parse problem)."""
        done = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--enable-logging=stderr",
                "--v=0",
                "--dump-dom",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]

    probe = tmp_path / "probe.html"  # the console check sees what it looks for
    probe.write_text('<!doctype html><title>p</title><script>console.error("probe-error")</script>')
    assert any("probe-error" in line for line in dump_dom(probe)[1])
    dom, console = dump_dom(out)
    assert console == []
    assert 'id="services"' in dom and "hc-local-appointment" in dom
    services = ("gateway", "auth", "patient", "provider", "appointment")
    for name in ("network", "security", "monitoring"):
        figure = re.search(rf'<figure class="diagram" id="{name}-diagram">(.*?)</figure>', dom, re.DOTALL)
        assert figure, name
        if shutil.which("dot") is None:  # without graphviz, the Mermaid source and how to install it
            assert "apt-get install graphviz" in figure[1] and "flowchart LR" in figure[1]
            continue
        assert figure[1].count("<svg") == 1, name
        texts = set(re.findall(r"<text[^>]*>([^<]*)</text>", figure[1]))
        assert set(services) <= texts, (name, texts)
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1400,1000",
            out.as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 10_000
