"""Business metrics: counted by SQL as the admin (row security off, never a filtered zero),
published to CloudWatch once per day-period, aggregates only; the 24-hour no-appointment and
PHI_ACCESS alarms come with phase 3 and go with its rollback."""

from __future__ import annotations

import datetime as dt

import pytest

from healthinfra import business_metrics
from healthinfra.inventory import load_inventory
from healthinfra.providers.aws import AwsClients
from playbooks.monitoring import dashboard_body

from .support.database import admin
from .support.environment import REPO

TOPIC = "arn:aws:sns:us-east-1:123456789012:hc-local-alerts"
NAMESPACE = "hc/local/business"
TODAY = dt.date(2024, 5, 14)


def book(conn, count: int, *, cancelled: int = 0) -> list[str]:
    """`count` appointments of as many new patients with one provider; the first `cancelled`
    of them cancelled. Returns every PHI-ish value written (names, MRNs, reasons, ids)."""
    marker = conn.execute("select gen_random_uuid()::text").fetchone()[0][:8]
    written = []
    dr = conn.execute(
        "insert into users (email, password_hash, role) values (%s, 'x', 'provider') returning id",
        (f"dr-{marker}@example.org",),
    ).fetchone()[0]
    provider = conn.execute(
        """insert into providers (user_id, npi, first_name, last_name, specialty)
           values (%s, %s, 'Greta', 'Houseman', 'general') returning id""",
        (dr, str(int(marker, 16) % 10**10).zfill(10)),
    ).fetchone()[0]
    for i in range(count):
        user = conn.execute(
            "insert into users (email, password_hash, role) values (%s, 'x', 'patient') returning id",
            (f"pat-{marker}-{i}@example.org",),
        ).fetchone()[0]
        patient = conn.execute(
            """insert into patients (user_id, medical_record_number, first_name, last_name, date_of_birth)
               values (%s, %s, %s, 'Zebulon', '1980-01-01') returning id""",
            (user, f"MRN-{marker}-{i}", f"Quentin{i}"),
        ).fetchone()[0]
        status = "cancelled" if i < cancelled else "scheduled"
        appointment = conn.execute(
            """insert into appointments (patient_id, provider_id, starts_at, ends_at, reason, status)
               values (%s, %s, now() + interval '1 day', now() + interval '1 day 30 minutes', %s, %s) returning id""",
            (patient, provider, f"secret reason {marker}", status),
        ).fetchone()[0]
        written += [str(user), str(patient), str(appointment), f"MRN-{marker}-{i}", f"Quentin{i}"]
    return written + [str(provider), "Zebulon", "Houseman", f"secret reason {marker}"]


def day_sum(cw, metric: str, day: dt.date) -> float:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    answer = cw.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {
                    "Metric": {
                        "Namespace": NAMESPACE,
                        "MetricName": metric,
                        "Dimensions": [{"Name": "Environment", "Value": "local"}],
                    },
                    "Period": 86400,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime=start,
        EndTime=start + dt.timedelta(days=1),
    )
    return sum(answer["MetricDataResults"][0]["Values"])


# --- pure ---------------------------------------------------------------------------------


def test_the_window_is_two_weeks_ending_today():
    window = business_metrics.days(TODAY)
    assert len(window) == 14 and window[-1] == "2024-05-14" and window[0] == "2024-05-01"


@pytest.mark.parametrize(
    "counts, published, expected",
    [
        # first publish: every series, zeros included (the alarm needs a data point to judge)
        ({"d": {"A": 2.0, "B": 0.0}}, {}, [("d", "A", 2.0), ("d", "B", 0.0)]),
        # the same counts again: nothing
        ({"d": {"A": 2.0, "B": 0.0}}, {"d": {"A": 2.0, "B": 0.0}}, []),
        # grew: only the difference, so CloudWatch's Sum is the count
        ({"d": {"A": 5.0, "B": 0.0}}, {"d": {"A": 2.0, "B": 0.0}}, [("d", "A", 3.0)]),
        # shrank (a booking deleted): a negative difference
        ({"d": {"A": 1.0}}, {"d": {"A": 2.0}}, [("d", "A", -1.0)]),
        # a model's series gone from the counts: back to 0
        ({"d": {}}, {"d": {"Predictions|Model=m": 4.0}}, [("d", "Predictions|Model=m", -4.0)]),
    ],
)
def test_only_differences_are_sent(counts, published, expected):
    sent = business_metrics.differences(counts, published)
    assert [(s["day"], s["series"], s["delta"]) for s in sent] == expected


def test_a_datum_is_the_day_the_environment_and_the_model():
    inv = load_inventory("local", REPO / "inventories")
    datum = business_metrics.datum(inv, {"day": "2024-05-14", "series": "Predictions|Model=no-show", "delta": 3.0})
    assert datum["Timestamp"] == dt.datetime(2024, 5, 14, tzinfo=dt.UTC)
    assert datum["Dimensions"] == [{"Name": "Environment", "Value": "local"}, {"Name": "Model", "Value": "no-show"}]
    assert (datum["MetricName"], datum["Value"], datum["Unit"]) == ("Predictions", 3.0, "Count")


def test_the_dashboard_has_a_business_row():
    inv = load_inventory("local", REPO / "inventories")
    widgets = dashboard_body(inv, 4)["widgets"]
    titles = {w["properties"].get("title") for w in widgets}
    assert {
        "appointments booked and cancelled per day",
        "active patients per day (booked that day)",
        "predictions per model per day",
    } <= titles
    business = [w for w in widgets if w["properties"].get("period") == 86400]
    assert all(w["properties"]["stat"] == "Sum" for w in business)
    others = [w for w in widgets if w not in business]
    assert min(w["y"] for w in business) >= max(w["y"] + w["height"] for w in others), "a row of its own"


# --- against the servers -----------------------------------------------------------------


def test_publish_counts_once_per_day_with_no_phi_and_alarms_come_and_go(env, invoke):
    assert invoke("monitoring.publish", "-i", "test").code == 2, "before phase 3 there is nothing to count"
    assert invoke("deploy", "-i", "test", "--phase", "2").code == 0
    three = invoke("deploy", "-i", "test", "--phase", "3", "--json")
    assert three.code == 0, three
    with admin(env) as conn:
        written = book(conn, 3, cancelled=1)

    first = invoke("monitoring.publish", "-i", "test", "--json")
    assert first.code == 0, first
    today = dt.date.fromisoformat(first.json["days"][-1])
    assert first.json["counts"][today.isoformat()] == {
        "AppointmentsBooked": 3.0,
        "AppointmentsCancelled": 1.0,
        "ActivePatients": 3.0,
    }
    cw = AwsClients(env).client("cloudwatch")
    assert day_sum(cw, "AppointmentsBooked", today) == 3
    assert day_sum(cw, "AppointmentsCancelled", today) == 1
    assert day_sum(cw, "ActivePatients", today) == 3

    again = invoke("monitoring.publish", "-i", "test", "--json")
    assert again.code == 0 and again.json["sent"] == [], again
    assert "nothing new to send" in invoke("monitoring.publish", "-i", "test").out
    assert day_sum(cw, "AppointmentsBooked", today) == 3, "a second publish does not double the day"

    with admin(env) as conn:
        written += book(conn, 2)
    grown = invoke("monitoring.publish", "-i", "test", "--json")
    assert [(s["series"], s["delta"]) for s in grown.json["sent"]] == [
        ("ActivePatients", 2.0),
        ("AppointmentsBooked", 2.0),
    ]
    assert day_sum(cw, "AppointmentsBooked", today) == 5 and day_sum(cw, "ActivePatients", today) == 5

    # aggregates only: every dimension is the environment, every value a count
    metrics = cw.list_metrics(Namespace=NAMESPACE)["Metrics"]
    assert {m["MetricName"] for m in metrics} == {"AppointmentsBooked", "AppointmentsCancelled", "ActivePatients"}
    assert all(m["Dimensions"] == [{"Name": "Environment", "Value": "local"}] for m in metrics)
    documents = first.out + again.out + grown.out
    state = (env.state_dir / "business_metrics.json").read_text()
    for value in written:
        assert value not in documents and value not in state, f"PHI `{value}` in the published metrics"

    alarms = {a["AlarmName"]: a for a in cw.describe_alarms(AlarmNamePrefix="hc-local-")["MetricAlarms"]}
    quiet = alarms["hc-local-no-appointments-24h"]
    assert (quiet["Namespace"], quiet["MetricName"], quiet["Statistic"]) == (NAMESPACE, "AppointmentsBooked", "Sum")
    assert (quiet["Period"], quiet["Threshold"], quiet["ComparisonOperator"]) == (86400, 1.0, "LessThanThreshold")
    assert quiet["TreatMissingData"] == "breaching" and quiet["AlarmActions"] == [TOPIC]
    assert quiet["Dimensions"] == [{"Name": "Environment", "Value": "local"}]
    for service in ("gateway", "auth", "patient", "provider", "appointment"):
        phi = alarms[f"hc-local-{service}-phi-access"]
        assert (phi["MetricName"], phi["Statistic"], phi["AlarmActions"]) == (
            f"{service}-phi-access",
            "Sum",
            [TOPIC],
        )
        assert phi["Threshold"] == 100.0 and phi["ComparisonOperator"] == "GreaterThanThreshold"
    assert invoke("deploy", "-i", "test", "--phase", "3", "--json").json["changed"] == 0, "alarms read back equal"

    assert invoke("rollback", "-i", "test").code == 0
    left = {a["AlarmName"] for a in cw.describe_alarms(AlarmNamePrefix="hc-local-")["MetricAlarms"]}
    assert not left, f"rollback of phase 3 removes its alarms: {left}"
