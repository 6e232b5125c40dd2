"""Business metrics: counts per UTC day computed by SQL, published to CloudWatch.

Aggregates only, never a PHI value: every query selects a day and a count (and, for
predictions, the model's registry name), nothing from a patient's row. The metrics:

| metric | phase | value per day | dimensions |
|---|---|---|---|
| AppointmentsBooked | 3 | appointments created that day | Environment |
| AppointmentsCancelled | 3 | appointments whose status became `cancelled` that day (by `updated_at`) | Environment |
| ActivePatients | 3 | distinct patients who booked an appointment that day | Environment |
| Predictions | 4 | predictions recorded that day, per model | Environment, Model |

Row security. `appointments`, `ml.predictions` (and the patient tables) have *forced* row-level
security: without `app.user_id` a session sees no row, so a count taken by a role the policies
apply to would be a silent zero. The queries run as the admin in a read-only transaction with
`row_security = off`: a role that bypasses row security (the embedded server's superuser, an
owner with BYPASSRLS) reads every row, and any other role gets PostgreSQL's error instead of
a wrong count ("query would be affected by row-level security policy"), reported as such. No
view or SECURITY DEFINER function is added for it: a definer view would still be held to the
forced policies unless its owner bypasses them (the same condition), and it would be one more
path into patient tables for the audit to watch.

Idempotency. CloudWatch keeps every datum it is sent and sums them, so the value of a day is
published as the difference from what was already published for that day (recorded in the
environment's run state, document `business_metrics`): the Sum over a day-period is always
the day's count as of the last publish, a second publish with nothing new sends nothing, and a
count that went down (a booking deleted) sends a negative difference. Read the metrics with
the Sum statistic only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from . import names
from .errors import ProviderError
from .faults import provider_call
from .inventory import Inventory

DOCUMENT = "business_metrics"
LOOKBACK_DAYS = 14  # CloudWatch takes data points up to two weeks old
PERIOD = 86400
BATCH = 20  # data points per PutMetricData (CloudWatch's long-standing minimum limit)

QUERIES: dict[str, tuple[int, str]] = {
    # metric: (phase, SQL giving (day, dimension value or NULL, count)); %(since)s is the first day
    "AppointmentsBooked": (
        3,
        """select date_trunc('day', created_at at time zone 'UTC')::date, null, count(*)
             from public.appointments where created_at >= %(since)s group by 1""",
    ),
    "AppointmentsCancelled": (
        3,
        """select date_trunc('day', updated_at at time zone 'UTC')::date, null, count(*)
             from public.appointments where status = 'cancelled' and updated_at >= %(since)s group by 1""",
    ),
    "ActivePatients": (
        3,
        """select date_trunc('day', created_at at time zone 'UTC')::date, null, count(distinct patient_id)
             from public.appointments where created_at >= %(since)s group by 1""",
    ),
    "Predictions": (
        4,
        """select date_trunc('day', p.created_at at time zone 'UTC')::date, r.name, count(*)
             from ml.predictions p join ml.model_registry r on r.id = p.model_id
            where p.created_at >= %(since)s group by 1, 2""",
    ),
}
DIMENSION = {"Predictions": "Model"}  # the metric's own dimension, beside Environment


def namespace(inv: Inventory) -> str:
    """`{prefix}/{env}/business`."""
    return f"{names.metric_namespace(inv)}/business"


def metrics_at(phase: int) -> list[str]:
    return [m for m, (introduced, _) in QUERIES.items() if introduced <= phase]


def days(today: dt.date) -> list[str]:
    """The day-periods published: the last LOOKBACK_DAYS, today included, oldest first (pure)."""
    return [(today - dt.timedelta(days=n)).isoformat() for n in range(LOOKBACK_DAYS - 1, -1, -1)]


def series_key(metric: str, dimension: str | None) -> str:
    """`AppointmentsBooked`, `Predictions|Model=no-show` (pure)."""
    return metric if dimension is None else f"{metric}|{DIMENSION[metric]}={dimension}"


def measure(conn, phase: int, today: dt.date) -> dict[str, dict[str, float]]:
    """{day: {series: count}} for every day of the window; days without rows count 0 for the
    dimensionless metrics. Runs as the admin with row_security off, read-only."""
    window = days(today)
    counts: dict[str, dict[str, float]] = {day: {} for day in window}
    try:
        with conn.transaction():
            conn.execute("set transaction read only")
            conn.execute("set local row_security = off")  # bypass or refuse; never a filtered count
            for metric in metrics_at(phase):
                if metric not in DIMENSION:
                    for day in window:
                        counts[day][metric] = 0.0
                for day, dimension, count in conn.execute(QUERIES[metric][1], {"since": window[0]}).fetchall():
                    if day.isoformat() in counts:
                        counts[day.isoformat()][series_key(metric, dimension)] = float(count)
    except Exception as exc:  # psycopg's errors, imported lazily
        if "row-level security" in str(exc):
            raise ProviderError(
                "business metrics: the admin role is held to row-level security and would count no rows;"
                " it needs BYPASSRLS (or to be a superuser) to count every appointment"
            ) from None
        raise
    return counts


def differences(counts: dict[str, dict[str, float]], published: dict[str, dict[str, float]]) -> list[dict]:
    """What to send: per day and series, the count minus what was already published for it
    (nothing when equal). A series published before but gone now (its rows deleted) goes
    back to 0. Pure."""
    sends = []
    for day in sorted(counts):
        before = published.get(day, {})
        for series in sorted(set(counts[day]) | set(before)):
            delta = counts[day].get(series, 0.0) - before.get(series, 0.0)
            if delta or series not in before:
                sends.append({"day": day, "series": series, "delta": delta, "value": counts[day].get(series, 0.0)})
    return sends


def datum(inv: Inventory, send: dict) -> dict[str, Any]:
    """One PutMetricData datum: the day's midnight UTC, the environment and, for predictions,
    the model (pure)."""
    metric, _, dimension = send["series"].partition("|")
    dimensions = [{"Name": "Environment", "Value": inv.environment}]
    if dimension:
        name, _, value = dimension.partition("=")
        dimensions.append({"Name": name, "Value": value})
    day = dt.date.fromisoformat(send["day"])
    return {
        "MetricName": metric,
        "Dimensions": dimensions,
        "Timestamp": dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC),
        "Value": send["delta"],
        "Unit": "Count",
    }


def publish(ctx, phase: int, today: dt.date | None = None) -> dict[str, Any]:
    """Measure, send the differences, record them per batch. The caller holds the lock."""
    inv = ctx.inventory
    today = today or dt.datetime.now(dt.UTC).date()
    with provider_call("business metrics"):
        counts = measure(ctx.pg.admin(inv.database["name"]), phase, today)
    document = ctx.state.read_document(DOCUMENT) or {}
    published = {d: dict(v) for d, v in document.get("published", {}).items() if d in counts}
    sends = differences(counts, published)
    cloudwatch = ctx.aws.client("cloudwatch")
    for start in range(0, len(sends), BATCH):
        batch = sends[start : start + BATCH]
        with provider_call("put metric data"):
            cloudwatch.put_metric_data(Namespace=namespace(inv), MetricData=[datum(inv, s) for s in batch])
        for s in batch:  # recorded right after CloudWatch took them
            published.setdefault(s["day"], {})[s["series"]] = s["value"]
        ctx.state.write_document(DOCUMENT, {"format": 1, "namespace": namespace(inv), "published": published})
    return {
        "namespace": namespace(inv),
        "phase": phase,
        "days": sorted(counts),
        "counts": counts,
        "sent": sends,
    }
