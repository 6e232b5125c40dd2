"""Monitoring playbook: observability that grows with the phases, from the services table.

Phase 1 is the health check (`invoke monitoring.check`), which reads and changes
nothing. Phase 2: a log group per service (and one for the audit trail) with
retention, metric filters counting errors and PHI-access events. Phase 3:
pg_stat_statements, latency metrics, the SNS alert topic, alarms per service and
on the database. Phase 4: the AI service's inference alarms and the dashboard.
Every function here is pure.
"""

from __future__ import annotations

from healthinfra import business_metrics, names
from healthinfra.inventory import Inventory, Service
from healthinfra.resources.monitoring import Alarm, Dashboard, LogGroup, MetricFilter, SnsTopic
from healthinfra.resources.postgres import PgExtension
from healthinfra.step import Step
from healthinfra.templates import render_json

PERIOD = 300
PHI_ACCESS_THRESHOLD = 100  # PHI_ACCESS events per service in 5 minutes; `monitoring.phi_access_threshold`


def tags(inv: Inventory, **extra: str) -> dict[str, str]:
    return {"env": inv.environment, "managed-by": "healthcare-infra", **extra}


def create_log_groups(inv: Inventory, phase: int):
    prefix = names.log_group(inv, "")
    groups = [
        LogGroup(
            names.log_group(inv, s.name),
            {"retention_days": inv.monitoring["retention_days"], "tags": tags(inv, service=s.name)},
            prefix=prefix,
        )
        for s in inv.services_at(phase)
    ]
    groups.append(
        LogGroup(
            names.log_group(inv, "audit"),
            {"retention_days": inv.monitoring["audit_retention_days"], "tags": tags(inv, **{"data-class": "audit"})},
            prefix=prefix,
        )
    )
    return groups


def metric_filters(inv: Inventory, service: Service, phase: int) -> dict[str, dict]:
    """The filters a service's log group gets at a phase (pure)."""
    ns = names.metric_namespace(inv)
    filters = {
        "errors": {
            "pattern": "?ERROR ?FATAL",
            "metric": f"{service.name}-errors",
            "namespace": ns,
            "value": "1",
            "default": 0.0,
            "unit": None,
        },
        "phi-access": {
            "pattern": "PHI_ACCESS",
            "metric": f"{service.name}-phi-access",
            "namespace": ns,
            "value": "1",
            "default": 0.0,
            "unit": None,
        },
    }
    if phase >= 3:  # services log JSON lines with latency_ms
        filters["latency"] = {
            "pattern": "{ $.latency_ms = * }",
            "metric": f"{service.name}-latency",
            "namespace": ns,
            "value": "$.latency_ms",
            "default": None,
            "unit": "Milliseconds",
        }
    return filters


def count_errors_and_phi_access(inv: Inventory, phase: int):
    resources = []
    for s in inv.services_at(phase):
        group = names.log_group(inv, s.name)
        for name, desired in metric_filters(inv, s, 4).items():
            resources.append(
                MetricFilter(
                    f"{group}:{name}",
                    desired if name in metric_filters(inv, s, phase) else None,
                    group=group,
                    filter=name,
                )
            )
    return resources


def track_statements(inv: Inventory, phase: int):
    return [PgExtension("pg_stat_statements", {}, database=inv.database["name"])]


def create_alert_topic(inv: Inventory, phase: int):
    subscriptions = sorted(
        ({"protocol": s["protocol"], "endpoint": s["endpoint"]} for s in inv.monitoring["alert_subscriptions"]),
        key=lambda s: (s["protocol"], s["endpoint"]),
    )
    return [
        SnsTopic(
            names.alert_topic(inv),
            {"subscriptions": subscriptions, "tags": tags(inv)},
            region=inv.aws["region"],
            account=inv.aws_account_id,
        )
    ]


def alarm(
    inv: Inventory,
    description: str,
    ns: str,
    metric: str,
    threshold: float,
    *,
    statistic: str | None = None,
    extended: str | None = None,
) -> dict:
    return {
        "description": description,
        "namespace": ns,
        "metric": metric,
        "statistic": statistic,
        "extended_statistic": extended,
        "period": PERIOD,
        "evaluation_periods": 1,
        "threshold": float(threshold),
        "comparison": "GreaterThanThreshold",
        "treat_missing_data": "notBreaching",
        "alarm_actions": [names.alert_topic_arn(inv)],
    }


def alarm_designs(inv: Inventory, phase: int) -> dict[str, dict]:
    """Every alarm at this phase, by name (pure)."""
    ns, m = names.metric_namespace(inv), inv.monitoring
    designs: dict[str, dict] = {}
    if phase < 3:
        return designs
    for s in inv.services_at(phase):
        designs[names.alarm(inv, f"{s.name}-errors")] = alarm(
            inv,
            f"{s.name}: more than {m['error_threshold']} errors in 5 minutes",
            ns,
            f"{s.name}-errors",
            m["error_threshold"],
            statistic="Sum",
        )
        designs[names.alarm(inv, f"{s.name}-latency-p99")] = alarm(
            inv,
            f"{s.name}: p99 latency above {m['latency_p99_ms']} ms",
            ns,
            f"{s.name}-latency",
            m["latency_p99_ms"],
            extended="p99",
        )
        designs[names.alarm(inv, f"{s.name}-phi-access")] = alarm(
            inv,
            f"{s.name}: more than {phi_access_threshold(inv)} PHI_ACCESS events in 5 minutes (a spike: who reads so much?)",
            ns,
            f"{s.name}-phi-access",
            phi_access_threshold(inv),
            statistic="Sum",
        )
    designs[names.alarm(inv, "no-appointments-24h")] = no_appointments_alarm(inv)
    designs[names.alarm(inv, "database-connections")] = alarm(
        inv,
        f"database: connections above {m['db_connections_percent']}% of the limit",
        ns,
        "database-connections-percent",
        m["db_connections_percent"],
        statistic="Maximum",
    )
    if phase >= 4:
        ml = m["ml_namespace"]
        designs[names.alarm(inv, "ai-inference-latency-p99")] = alarm(
            inv,
            f"ai: p99 inference latency above {m['inference_p99_ms']} ms",
            ml,
            "InferenceLatency",
            m["inference_p99_ms"],
            extended="p99",
        )
        designs[names.alarm(inv, "ai-inference-errors")] = alarm(
            inv,
            f"ai: more than {m['error_threshold']} inference errors in 5 minutes",
            ml,
            "InferenceErrors",
            m["error_threshold"],
            statistic="Sum",
        )
    return designs


def phi_access_threshold(inv: Inventory) -> int:
    return int(inv.monitoring.get("phi_access_threshold", PHI_ACCESS_THRESHOLD))


def no_appointments_alarm(inv: Inventory) -> dict:
    """No appointment booked in the last day-period: the Sum of AppointmentsBooked (published per
    UTC day by `invoke monitoring.publish`) below 1; no data at all (nobody publishes) breaches too."""
    return {
        **alarm(
            inv,
            "appointments: none booked in 24 hours (or no business metrics published: run monitoring.publish)",
            business_metrics.namespace(inv),
            "AppointmentsBooked",
            1,
            statistic="Sum",
        ),
        "period": business_metrics.PERIOD,
        "comparison": "LessThanThreshold",
        "treat_missing_data": "breaching",
        "dimensions": [{"Name": "Environment", "Value": inv.environment}],
    }


def create_alarms(inv: Inventory, phase: int):
    prefix = names.alarm(inv, "")
    every = alarm_designs(inv, 4)
    current = alarm_designs(inv, phase)
    return [Alarm(name, current.get(name), prefix=prefix) for name in every]


def dashboard_body(inv: Inventory, phase: int) -> dict:
    body = render_json(
        "monitoring/dashboard.json.j2",
        services=inv.services_at(phase),
        region=inv.aws["region"],
        namespace=names.metric_namespace(inv),
        ml_namespace=inv.monitoring["ml_namespace"] if phase >= 4 else "",
    )
    return {"widgets": body["widgets"] + business_widgets(inv, phase, body["widgets"])}


def business_widgets(inv: Inventory, phase: int, above: list[dict]) -> list[dict]:
    """A row of the business metrics under the rest: appointments booked and cancelled, active
    patients, and (phase 4) predictions per model, each a daily Sum (pure)."""
    ns, region = business_metrics.namespace(inv), inv.aws["region"]
    y = max((w["y"] + w["height"] for w in above), default=0)
    env = ["Environment", inv.environment]

    def widget(x: int, title: str, metrics: list) -> dict:
        properties = {"title": title, "region": region, "stat": "Sum", "period": business_metrics.PERIOD}
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": 8,
            "height": 6,
            "properties": {**properties, "metrics": metrics},
        }

    widgets = [
        widget(
            0,
            "appointments booked and cancelled per day",
            [[ns, "AppointmentsBooked", *env], [ns, "AppointmentsCancelled", *env]],
        ),
        widget(8, "active patients per day (booked that day)", [[ns, "ActivePatients", *env]]),
    ]
    if "Predictions" in business_metrics.metrics_at(phase):
        search = f"SEARCH('{{{ns},Environment,Model}} MetricName=\"Predictions\" Environment=\"{inv.environment}\"', 'Sum', {business_metrics.PERIOD})"
        widgets.append(widget(16, "predictions per model per day", [[{"expression": search, "id": "predictions"}]]))
    return widgets


def create_dashboard(inv: Inventory, phase: int):
    return [Dashboard(names.dashboard(inv), {"body": dashboard_body(inv, phase)})]


STEPS = [
    Step("create a log group per service", "monitoring", 2, create_log_groups, tags=("logs",)),
    Step(
        "count errors and PHI access in the logs",
        "monitoring",
        2,
        count_errors_and_phi_access,
        tags=("logs", "metrics"),
    ),
    Step("turn on pg_stat_statements", "monitoring", 3, track_statements, tags=("database", "metrics")),
    Step("create the alert topic", "monitoring", 3, create_alert_topic, tags=("alerts",)),
    Step("create alarms per service and on the database", "monitoring", 3, create_alarms, tags=("alerts", "alarms")),
    Step("render the dashboard", "monitoring", 4, create_dashboard, tags=("dashboard",)),
]
