"""Log groups, metric filters, the SNS topic, alarms and the dashboard, as tables: diff, the
parse of responses spelled as AWS documents them, and actions -> calls (a recording client).

Response shapes follow the API references and botocore's models of them: CloudWatch Logs
DescribeLogGroups (no `retentionInDays`: the group never expires), ListTagsLogGroup (a map),
DescribeMetricFilters (`defaultValue` a double, `unit` optional); SNS ListSubscriptionsByTopic
(`SubscriptionArn` is "PendingConfirmation" until an email endpoint confirms),
ListTagsForResource (Key/Value); CloudWatch DescribeAlarms `MetricAlarms` (Statistic or
ExtendedStatistic, never both; optional members left out; Threshold a double) and
GetDashboard (the body as JSON text).
"""

from __future__ import annotations

import json

import pytest

from healthinfra.resource import Action
from healthinfra.resources.monitoring import (
    Alarm,
    Dashboard,
    LogGroup,
    MetricFilter,
    SnsTopic,
    log_contents,
    log_group_refusal,
)

from .support.aws_calls import WHEN, Ctx, Recorder, calls_of, client_error

# --- logs.group ----------------------------------------------------------------

GROUP_NAME = "/hc/local/auth"
GROUP = {"retention_days": 30, "tags": {"env": "local", "managed-by": "healthcare-infra", "service": "auth"}}


def log_group_entry(**overrides) -> dict:
    """One `logGroups` entry of DescribeLogGroups, the members the API reference lists."""
    entry = {
        "logGroupName": GROUP_NAME,
        "creationTime": 1740830400000,
        "retentionInDays": 30,
        "metricFilterCount": 2,
        "arn": f"arn:aws:logs:us-east-1:123456789012:log-group:{GROUP_NAME}:*",
        "logGroupArn": f"arn:aws:logs:us-east-1:123456789012:log-group:{GROUP_NAME}",
        "storedBytes": 0,
        "logGroupClass": "STANDARD",
        "deletionProtectionEnabled": False,
    }
    entry.update(overrides)
    return {k: v for k, v in entry.items() if v is not None}


@pytest.mark.parametrize(
    "group, tagged, expected",
    [
        (log_group_entry(), {"tags": GROUP["tags"]}, GROUP),
        # retention never set: the member is left out, the group never expires
        (log_group_entry(retentionInDays=None), {"tags": GROUP["tags"]}, {**GROUP, "retention_days": None}),
        (log_group_entry(retentionInDays=3653), {"tags": GROUP["tags"]}, {**GROUP, "retention_days": 3653}),
        # no tags: an empty map, or the member left out
        (log_group_entry(), {"tags": {}}, {**GROUP, "tags": {}}),
        (log_group_entry(), {}, {**GROUP, "tags": {}}),
    ],
)
def test_log_group_parse(group, tagged, expected):
    assert LogGroup.parse(group, tagged) == expected


@pytest.mark.parametrize(
    "current, desired, expected",
    [
        (None, None, []),
        (None, GROUP, [Action("create", after=GROUP)]),
        (GROUP, None, [Action("delete", before=GROUP)]),
        (GROUP, dict(GROUP), []),
        ({**GROUP, "retention_days": 7}, GROUP, [Action("set", "retention_days", 7, 30)]),
        ({**GROUP, "retention_days": None}, GROUP, [Action("set", "retention_days", None, 30)]),
        (
            {**GROUP, "tags": {"env": "local"}},
            GROUP,
            [Action("set", "tags", {"env": "local"}, GROUP["tags"])],
        ),
        (
            {**GROUP, "tags": {**GROUP["tags"], "extra": "1"}},
            GROUP,
            [Action("set", "tags", {**GROUP["tags"], "extra": "1"}, GROUP["tags"])],
        ),
        ({**GROUP, "tags": dict(reversed(list(GROUP["tags"].items())))}, GROUP, []),
    ],
)
def test_log_group_diff(current, desired, expected):
    assert LogGroup(GROUP_NAME, desired, prefix="/hc/local/").diff(current, desired) == expected


COUNTED = [
    ("paginate describe_log_streams", {"logGroupName": GROUP_NAME}),
    ("filter_log_events", {"logGroupName": GROUP_NAME, "limit": 1000}),
]


@pytest.mark.parametrize(
    "actions, answers, expected",
    [
        (
            [Action("create", after=GROUP)],
            {},
            [
                ("create_log_group", {"logGroupName": GROUP_NAME, "tags": GROUP["tags"]}),
                ("put_retention_policy", {"logGroupName": GROUP_NAME, "retentionInDays": 30}),
            ],
        ),
        (
            [Action("set", "retention_days", 30, 90)],
            {},
            [("put_retention_policy", {"logGroupName": GROUP_NAME, "retentionInDays": 90})],
        ),
        # back to "never expires" (undo of a first retention)
        (
            [Action("set", "retention_days", 30, None)],
            {},
            [("delete_retention_policy", {"logGroupName": GROUP_NAME})],
        ),
        (
            [Action("set", "tags", {"env": "local", "old": "x"}, {"env": "dev"})],
            {},
            [
                ("untag_log_group", {"logGroupName": GROUP_NAME, "tags": ["old"]}),
                ("tag_log_group", {"logGroupName": GROUP_NAME, "tags": {"env": "dev"}}),
            ],
        ),
        # its events counted again (none) just before the delete
        ([Action("delete", before=GROUP)], {}, [*COUNTED, ("delete_log_group", {"logGroupName": GROUP_NAME})]),
        # already gone: not an error
        (
            [Action("delete", before=GROUP)],
            {"delete_log_group": client_error("ResourceNotFoundException", "DeleteLogGroup")},
            [*COUNTED, ("delete_log_group", {"logGroupName": GROUP_NAME})],
        ),
    ],
)
def test_log_group_apply_calls(actions, answers, expected):
    assert calls_of(LogGroup(GROUP_NAME, None, prefix="/hc/local/"), actions, "logs", answers) == expected


# --- logs.metric_filter ----------------------------------------------------------

ERRORS = {
    "pattern": "?ERROR ?FATAL",
    "metric": "auth-errors",
    "namespace": "HC/local",
    "value": "1",
    "default": 0.0,
    "unit": None,
}
LATENCY = {
    "pattern": "{ $.latency_ms = * }",
    "metric": "auth-latency",
    "namespace": "HC/local",
    "value": "$.latency_ms",
    "default": None,
    "unit": "Milliseconds",
}


def filter_entry(transform: dict, pattern: str = "?ERROR ?FATAL") -> dict:
    """One `metricFilters` entry of DescribeMetricFilters, the members the API reference lists."""
    return {
        "filterName": "errors",
        "filterPattern": pattern,
        "metricTransformations": [transform],
        "creationTime": 1740830400000,
        "logGroupName": GROUP_NAME,
        "applyOnTransformedLogs": False,
    }


@pytest.mark.parametrize(
    "found, expected",
    [
        (None, None),
        (
            filter_entry(
                {"metricName": "auth-errors", "metricNamespace": "HC/local", "metricValue": "1", "defaultValue": 0.0}
            ),
            ERRORS,
        ),
        # defaultValue is a double on the wire; a 1 stays a number, never a string
        (
            filter_entry(
                {"metricName": "auth-errors", "metricNamespace": "HC/local", "metricValue": "1", "defaultValue": 1.0}
            ),
            {**ERRORS, "default": 1.0},
        ),
        # no defaultValue, a unit
        (
            filter_entry(
                {
                    "metricName": "auth-latency",
                    "metricNamespace": "HC/local",
                    "metricValue": "$.latency_ms",
                    "unit": "Milliseconds",
                },
                pattern="{ $.latency_ms = * }",
            ),
            LATENCY,
        ),
    ],
)
def test_metric_filter_parse(found, expected):
    assert MetricFilter.parse(found) == expected


@pytest.mark.parametrize(
    "current, desired, expected",
    [
        (None, None, []),
        (None, ERRORS, [Action("create", after=ERRORS)]),
        (ERRORS, None, [Action("delete", before=ERRORS)]),
        (ERRORS, dict(ERRORS), []),
        ({**ERRORS, "pattern": "ERROR"}, ERRORS, [Action("set", "pattern", "ERROR", "?ERROR ?FATAL")]),
        ({**ERRORS, "metric": "errors"}, ERRORS, [Action("set", "metric", "errors", "auth-errors")]),
        ({**ERRORS, "namespace": "HC/dev"}, ERRORS, [Action("set", "namespace", "HC/dev", "HC/local")]),
        ({**ERRORS, "value": "2"}, ERRORS, [Action("set", "value", "2", "1")]),
        ({**ERRORS, "default": None}, ERRORS, [Action("set", "default", None, 0.0)]),
        ({**ERRORS, "unit": "Count"}, ERRORS, [Action("set", "unit", "Count", None)]),
    ],
)
def test_metric_filter_diff(current, desired, expected):
    resource = MetricFilter(f"{GROUP_NAME}:errors", desired, group=GROUP_NAME, filter="errors")
    assert resource.diff(current, desired) == expected


def put_filter(pattern: str, transform: dict):
    return (
        "put_metric_filter",
        {
            "logGroupName": GROUP_NAME,
            "filterName": "errors",
            "filterPattern": pattern,
            "metricTransformations": [transform],
        },
    )


@pytest.mark.parametrize(
    "desired, actions, expected",
    [
        # a default of 0.0 is sent (it is not "no default"); no unit: the member left out
        (
            ERRORS,
            [Action("create", after=ERRORS)],
            [
                put_filter(
                    "?ERROR ?FATAL",
                    {
                        "metricName": "auth-errors",
                        "metricNamespace": "HC/local",
                        "metricValue": "1",
                        "defaultValue": 0.0,
                    },
                )
            ],
        ),
        (
            LATENCY,
            [Action("create", after=LATENCY)],
            [
                put_filter(
                    "{ $.latency_ms = * }",
                    {
                        "metricName": "auth-latency",
                        "metricNamespace": "HC/local",
                        "metricValue": "$.latency_ms",
                        "unit": "Milliseconds",
                    },
                )
            ],
        ),
        # put whole: several attributes changed are one put
        (
            ERRORS,
            [Action("set", "pattern", "ERROR", "?ERROR ?FATAL"), Action("set", "value", "2", "1")],
            [
                put_filter(
                    "?ERROR ?FATAL",
                    {
                        "metricName": "auth-errors",
                        "metricNamespace": "HC/local",
                        "metricValue": "1",
                        "defaultValue": 0.0,
                    },
                )
            ],
        ),
        (
            None,
            [Action("delete", before=ERRORS)],
            [("delete_metric_filter", {"logGroupName": GROUP_NAME, "filterName": "errors"})],
        ),
    ],
)
def test_metric_filter_apply_calls(desired, actions, expected):
    resource = MetricFilter(f"{GROUP_NAME}:errors", desired, group=GROUP_NAME, filter="errors")
    assert calls_of(resource, actions, "logs") == expected


# --- sns.topic -------------------------------------------------------------------

TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:hc-local-alerts"
OPS = {"protocol": "email", "endpoint": "ops@example.com"}
ONCALL = {"protocol": "email", "endpoint": "oncall@example.com"}
HOOK = {"protocol": "https", "endpoint": "https://hooks.example.com/alerts"}
TOPIC = {"subscriptions": [ONCALL, OPS], "tags": {"env": "local", "managed-by": "healthcare-infra"}}


def subscription(s: dict, arn: str | None = None) -> dict:
    """One `Subscriptions` member of ListSubscriptionsByTopic, as the API reference lists it."""
    return {
        "SubscriptionArn": arn or "PendingConfirmation",
        "Owner": "123456789012",
        "Protocol": s["protocol"],
        "Endpoint": s["endpoint"],
        "TopicArn": TOPIC_ARN,
    }


TOPIC_TAGS = {"Tags": [{"Key": "env", "Value": "local"}, {"Key": "managed-by", "Value": "healthcare-infra"}]}


@pytest.mark.parametrize(
    "pages, tagged, expected",
    [
        (
            [{"Subscriptions": [subscription(ONCALL, f"{TOPIC_ARN}:1"), subscription(OPS, f"{TOPIC_ARN}:2")]}],
            TOPIC_TAGS,
            TOPIC,
        ),
        # an unconfirmed email subscription exists all the same
        ([{"Subscriptions": [subscription(OPS), subscription(ONCALL)]}], TOPIC_TAGS, TOPIC),
        # across pages (NextToken), in SNS's order: sorted by protocol, then endpoint
        (
            [
                {"Subscriptions": [subscription(OPS, f"{TOPIC_ARN}:2"), subscription(HOOK)], "NextToken": "t"},
                {"Subscriptions": [subscription(ONCALL, f"{TOPIC_ARN}:1")]},
            ],
            TOPIC_TAGS,
            {**TOPIC, "subscriptions": [ONCALL, OPS, HOOK]},
        ),
        ([{"Subscriptions": []}], TOPIC_TAGS, {**TOPIC, "subscriptions": []}),
        ([], {"Tags": []}, {"subscriptions": [], "tags": {}}),
        ([], {}, {"subscriptions": [], "tags": {}}),
    ],
)
def test_sns_topic_parse(pages, tagged, expected):
    assert SnsTopic.parse(pages, tagged) == expected


def topic(desired=None) -> SnsTopic:
    return SnsTopic("hc-local-alerts", desired, region="us-east-1", account="123456789012")


@pytest.mark.parametrize(
    "current, desired, expected",
    [
        (None, None, []),
        (None, TOPIC, [Action("create", after=TOPIC)]),
        (TOPIC, None, [Action("delete", before=TOPIC)]),
        (TOPIC, dict(TOPIC), []),
        (
            {**TOPIC, "subscriptions": [OPS]},
            TOPIC,
            [Action("set", "subscriptions", [OPS], [ONCALL, OPS])],
        ),
        (
            {**TOPIC, "subscriptions": [ONCALL, OPS, HOOK]},
            TOPIC,
            [Action("set", "subscriptions", [ONCALL, OPS, HOOK], [ONCALL, OPS])],
        ),
        ({**TOPIC, "tags": {}}, TOPIC, [Action("set", "tags", {}, TOPIC["tags"])]),
    ],
)
def test_sns_topic_diff(current, desired, expected):
    assert topic(desired).diff(current, desired) == expected


@pytest.mark.parametrize(
    "actions, listed, expected",
    [
        (
            [Action("create", after=TOPIC)],
            [],
            [
                (
                    "create_topic",
                    {"Name": "hc-local-alerts", "Tags": TOPIC_TAGS["Tags"]},
                ),
                ("subscribe", {"TopicArn": TOPIC_ARN, "Protocol": "email", "Endpoint": "oncall@example.com"}),
                ("subscribe", {"TopicArn": TOPIC_ARN, "Protocol": "email", "Endpoint": "ops@example.com"}),
            ],
        ),
        ([Action("delete", before=TOPIC)], [], [("delete_topic", {"TopicArn": TOPIC_ARN})]),
        # one replaced by another: the unwanted confirmed one unsubscribed, the new one subscribed
        (
            [Action("set", "subscriptions", [OPS], [ONCALL])],
            [{"Subscriptions": [subscription(OPS, f"{TOPIC_ARN}:2")]}],
            [
                ("paginate list_subscriptions_by_topic", {"TopicArn": TOPIC_ARN}),
                ("unsubscribe", {"SubscriptionArn": f"{TOPIC_ARN}:2"}),
                ("subscribe", {"TopicArn": TOPIC_ARN, "Protocol": "email", "Endpoint": "oncall@example.com"}),
            ],
        ),
        # a pending confirmation has no ARN to unsubscribe: it is left to expire
        (
            [Action("set", "subscriptions", [OPS, ONCALL], [ONCALL])],
            [{"Subscriptions": [subscription(OPS), subscription(ONCALL, f"{TOPIC_ARN}:1")]}],
            [("paginate list_subscriptions_by_topic", {"TopicArn": TOPIC_ARN})],
        ),
        (
            [Action("set", "tags", {"env": "local", "old": "x"}, {"env": "dev"})],
            [],
            [
                ("untag_resource", {"ResourceArn": TOPIC_ARN, "TagKeys": ["old"]}),
                ("tag_resource", {"ResourceArn": TOPIC_ARN, "Tags": [{"Key": "env", "Value": "dev"}]}),
            ],
        ),
    ],
)
def test_sns_topic_apply_calls(actions, listed, expected):
    answers = {"paginate list_subscriptions_by_topic": listed}
    assert calls_of(topic(), actions, "sns", answers) == expected


def test_sns_topic_read_is_absent_on_not_found():
    sns = Recorder({"get_topic_attributes": client_error("NotFound", "GetTopicAttributes")})
    assert topic().read(Ctx(sns=sns)) is None
    assert sns.calls == [("get_topic_attributes", {"TopicArn": TOPIC_ARN})]


# --- cloudwatch.alarm ------------------------------------------------------------

ALARM_NAME = "hc-local-auth-errors"
ERRORS_ALARM = {
    "description": "auth: more than 5 errors in 5 minutes",
    "namespace": "HC/local",
    "metric": "auth-errors",
    "statistic": "Sum",
    "extended_statistic": None,
    "period": 300,
    "evaluation_periods": 1,
    "threshold": 5.0,
    "comparison": "GreaterThanThreshold",
    "treat_missing_data": "notBreaching",
    "alarm_actions": [TOPIC_ARN],
}
P99_ALARM = {
    **ERRORS_ALARM,
    "description": "auth: p99 latency above 500 ms",
    "metric": "auth-latency",
    "statistic": None,
    "extended_statistic": "p99",
    "threshold": 500.0,
}


def metric_alarm(**overrides) -> dict:
    """One `MetricAlarms` member of DescribeAlarms, the members the API reference lists."""
    alarm = {
        "AlarmName": ALARM_NAME,
        "AlarmArn": f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{ALARM_NAME}",
        "AlarmDescription": ERRORS_ALARM["description"],
        "AlarmConfigurationUpdatedTimestamp": WHEN,
        "ActionsEnabled": True,
        "OKActions": [],
        "AlarmActions": [TOPIC_ARN],
        "InsufficientDataActions": [],
        "StateValue": "INSUFFICIENT_DATA",
        "StateReason": "Unchecked: Initial alarm creation",
        "StateUpdatedTimestamp": WHEN,
        "MetricName": "auth-errors",
        "Namespace": "HC/local",
        "Statistic": "Sum",
        "Dimensions": [],
        "Period": 300,
        "EvaluationPeriods": 1,
        "Threshold": 5.0,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
        "StateTransitionedTimestamp": WHEN,
    }
    alarm.update(overrides)
    return {k: v for k, v in alarm.items() if v is not None}


OTHER_TOPIC = "arn:aws:sns:us-east-1:123456789012:a-pager"


@pytest.mark.parametrize(
    "alarm, expected",
    [
        (None, None),
        (metric_alarm(), ERRORS_ALARM),
        # a percentile alarm: ExtendedStatistic, and no Statistic member at all
        (
            metric_alarm(
                Statistic=None,
                ExtendedStatistic="p99",
                AlarmDescription=P99_ALARM["description"],
                MetricName="auth-latency",
                Threshold=500.0,
            ),
            P99_ALARM,
        ),
        # optional members left out: no description, no treat-missing-data, no actions
        (
            metric_alarm(AlarmDescription=None, TreatMissingData=None, AlarmActions=None),
            {**ERRORS_ALARM, "description": None, "treat_missing_data": None, "alarm_actions": []},
        ),
        (metric_alarm(AlarmActions=[]), {**ERRORS_ALARM, "alarm_actions": []}),
        # a whole-number threshold decoded as an int is still the same threshold
        (metric_alarm(Threshold=5), ERRORS_ALARM),
        # actions in any order: sorted
        (
            metric_alarm(AlarmActions=[TOPIC_ARN, OTHER_TOPIC]),
            {**ERRORS_ALARM, "alarm_actions": [OTHER_TOPIC, TOPIC_ARN]},
        ),
    ],
)
def test_alarm_parse(alarm, expected):
    parsed = Alarm.parse(alarm)
    assert parsed == expected
    if parsed is not None:
        assert isinstance(parsed["threshold"], float)


CHANGED = {
    "description": "other",
    "namespace": "HC/dev",
    "metric": "gateway-errors",
    "statistic": "Maximum",
    "extended_statistic": "p90",
    "period": 60,
    "evaluation_periods": 3,
    "threshold": 10.0,
    "comparison": "GreaterThanOrEqualToThreshold",
    "treat_missing_data": "breaching",
    "alarm_actions": [OTHER_TOPIC],
}


@pytest.mark.parametrize("field", sorted(CHANGED))
def test_alarm_diff_each_field_alone(field):
    current = {**ERRORS_ALARM, field: CHANGED[field]}
    assert Alarm(ALARM_NAME, ERRORS_ALARM, prefix="hc-local-").diff(current, ERRORS_ALARM) == [
        Action("set", field, CHANGED[field], ERRORS_ALARM[field])
    ]


@pytest.mark.parametrize(
    "current, desired, expected",
    [
        (None, None, []),
        (None, ERRORS_ALARM, [Action("create", after=ERRORS_ALARM)]),
        (ERRORS_ALARM, None, [Action("delete", before=ERRORS_ALARM)]),
        (ERRORS_ALARM, dict(ERRORS_ALARM), []),
        # what DescribeAlarms gives back for what was put: no change
        (Alarm.parse(metric_alarm()), ERRORS_ALARM, []),
        # from a statistic to a percentile: both fields change
        (
            ERRORS_ALARM,
            {**ERRORS_ALARM, "statistic": None, "extended_statistic": "p99"},
            [Action("set", "statistic", "Sum", None), Action("set", "extended_statistic", None, "p99")],
        ),
    ],
)
def test_alarm_diff(current, desired, expected):
    assert Alarm(ALARM_NAME, desired, prefix="hc-local-").diff(current, desired) == expected


def put_alarm(**fields):
    return ("put_metric_alarm", {"AlarmName": ALARM_NAME, **fields})


ERRORS_PUT = {
    "AlarmDescription": ERRORS_ALARM["description"],
    "Namespace": "HC/local",
    "MetricName": "auth-errors",
    "Statistic": "Sum",
    "Period": 300,
    "EvaluationPeriods": 1,
    "Threshold": 5.0,
    "ComparisonOperator": "GreaterThanThreshold",
    "TreatMissingData": "notBreaching",
    "AlarmActions": [TOPIC_ARN],
}


@pytest.mark.parametrize(
    "desired, actions, expected",
    [
        (ERRORS_ALARM, [Action("create", after=ERRORS_ALARM)], [put_alarm(**ERRORS_PUT)]),
        # a percentile: ExtendedStatistic sent, Statistic left out (CloudWatch takes one of them)
        (
            P99_ALARM,
            [Action("create", after=P99_ALARM)],
            [
                put_alarm(
                    **{
                        **{k: v for k, v in ERRORS_PUT.items() if k != "Statistic"},
                        "AlarmDescription": P99_ALARM["description"],
                        "MetricName": "auth-latency",
                        "Threshold": 500.0,
                        "ExtendedStatistic": "p99",
                    }
                )
            ],
        ),
        # put whole: one field changed is the whole alarm put once
        (
            ERRORS_ALARM,
            [Action("set", "threshold", 10.0, 5.0), Action("set", "period", 60, 300)],
            [put_alarm(**ERRORS_PUT)],
        ),
        (None, [Action("delete", before=ERRORS_ALARM)], [("delete_alarms", {"AlarmNames": [ALARM_NAME]})]),
    ],
)
def test_alarm_apply_calls(desired, actions, expected):
    assert calls_of(Alarm(ALARM_NAME, desired, prefix="hc-local-"), actions, "cloudwatch") == expected


ENV_DIMENSION = [{"Name": "Environment", "Value": "local"}]
QUIET_ALARM = {
    **ERRORS_ALARM,
    "metric": "AppointmentsBooked",
    "period": 86400,
    "threshold": 1.0,
    "comparison": "LessThanThreshold",
    "treat_missing_data": "breaching",
    "dimensions": ENV_DIMENSION,
}


@pytest.mark.parametrize(
    "alarm, expected",
    [
        # no dimensions (every alarm but the business metrics'): no `dimensions` key at all
        (metric_alarm(), ERRORS_ALARM),
        # dimensions come back sorted by name, only Name and Value
        (
            metric_alarm(
                MetricName="AppointmentsBooked",
                Period=86400,
                Threshold=1.0,
                ComparisonOperator="LessThanThreshold",
                TreatMissingData="breaching",
                Dimensions=[{"Name": "Model", "Value": "m"}, {"Name": "Environment", "Value": "local"}],
            ),
            {**QUIET_ALARM, "dimensions": [*ENV_DIMENSION, {"Name": "Model", "Value": "m"}]},
        ),
    ],
)
def test_alarm_parse_dimensions(alarm, expected):
    assert Alarm.parse(alarm) == expected


def test_alarm_with_dimensions_is_put_with_them_and_reads_back_equal():
    put = calls_of(
        Alarm(ALARM_NAME, QUIET_ALARM, prefix="hc-local-"), [Action("create", after=QUIET_ALARM)], "cloudwatch"
    )
    assert put[0][1]["Dimensions"] == ENV_DIMENSION
    current = Alarm.parse(metric_alarm(**put[0][1]))
    assert Alarm(ALARM_NAME, QUIET_ALARM, prefix="hc-local-").diff(current, QUIET_ALARM) == []


# --- cloudwatch.dashboard ----------------------------------------------------------

BODY = {
    "widgets": [
        {
            "type": "metric",
            "x": 0,
            "y": 0,
            "width": 12,
            "height": 6,
            "properties": {"metrics": [["HC/local", "auth-errors"]], "region": "us-east-1", "title": "errors"},
        }
    ]
}


@pytest.mark.parametrize(
    "answer, expected",
    [
        (None, None),
        (
            {
                "DashboardArn": "arn:aws:cloudwatch::123456789012:dashboard/hc-local",
                "DashboardBody": json.dumps(BODY),
                "DashboardName": "hc-local",
            },
            {"body": BODY},
        ),
        # the body as CloudWatch keeps it: any whitespace, any key order
        ({"DashboardBody": json.dumps(BODY, indent=1, sort_keys=True), "DashboardName": "hc-local"}, {"body": BODY}),
    ],
)
def test_dashboard_parse(answer, expected):
    assert Dashboard.parse(answer) == expected


MORE = {"widgets": [*BODY["widgets"], {"type": "text", "x": 0, "y": 6, "width": 24, "height": 2, "properties": {}}]}


@pytest.mark.parametrize(
    "current, desired, expected",
    [
        (None, None, []),
        (None, {"body": BODY}, [Action("create", after={"body": BODY})]),
        ({"body": BODY}, None, [Action("delete", before={"body": BODY})]),
        ({"body": BODY}, {"body": BODY}, []),
        ({"body": json.loads(json.dumps(BODY, sort_keys=True))}, {"body": BODY}, []),
        ({"body": BODY}, {"body": MORE}, [Action("set", "body", BODY, MORE)]),
    ],
)
def test_dashboard_diff(current, desired, expected):
    assert Dashboard("hc-local", desired).diff(current, desired) == expected


@pytest.mark.parametrize(
    "actions, expected",
    [
        (
            [Action("create", after={"body": BODY})],
            [("put_dashboard", {"DashboardName": "hc-local", "DashboardBody": json.dumps(BODY)})],
        ),
        (
            [Action("set", "body", BODY, MORE)],
            [("put_dashboard", {"DashboardName": "hc-local", "DashboardBody": json.dumps(MORE)})],
        ),
        ([Action("delete", before={"body": BODY})], [("delete_dashboards", {"DashboardNames": ["hc-local"]})]),
    ],
)
def test_dashboard_apply_calls(actions, expected):
    assert calls_of(Dashboard("hc-local", None), actions, "cloudwatch") == expected


def test_dashboard_read_is_absent_on_not_found():
    cw = Recorder({"get_dashboard": client_error("ResourceNotFound", "GetDashboard")})
    assert Dashboard("hc-local", None).read(Ctx(cloudwatch=cw)) is None


# --- logs.group: its events guard its deletion -------------------------------------


@pytest.mark.parametrize(
    "held, retention, expected",
    [
        ({"streams": 0, "events": 0, "capped": False, "unsure": False}, 30, None),
        # empty streams hold nothing
        ({"streams": 3, "events": 0, "capped": False, "unsure": False}, 30, None),
        (
            {"streams": 2, "events": 5, "capped": False, "unsure": False},
            2192,
            "5 events in 2 log streams, kept 2192 days",
        ),
        (
            {"streams": 9, "events": 1000, "capped": True, "unsure": False},
            None,
            "at least 1000 events in 9 log streams",
        ),
        # FilterLogEvents kept answering empty pages with a token: refused, saying so
        ({"streams": 1, "events": 0, "capped": False, "unsure": True}, None, "events as far as can be told"),
    ],
)
def test_log_group_refusal(held, retention, expected):
    message = log_group_refusal("/hc/local/audit", held, retention)
    if expected is None:
        assert message is None
    else:
        assert message.startswith(f"refusing to delete log group `/hc/local/audit`: it holds {expected}")
        assert "--destroy-data" in message and "export" in message


def test_log_events_are_followed_through_empty_pages():
    class Logs(Recorder):
        pages = [{"events": [], "nextToken": "t1"}, {"events": [{"message": "x"}] * 2, "nextToken": "t2"}, {}]

        def filter_log_events(self, **kwargs):
            self.calls.append(("filter_log_events", kwargs))
            return self.pages[len([c for c in self.calls if c[0] == "filter_log_events"]) - 1]

    logs = Logs({"paginate describe_log_streams": [{"logStreams": [{"logStreamName": "a"}, {"logStreamName": "b"}]}]})
    assert log_contents(logs, "/g") == {"streams": 2, "events": 2, "capped": False, "unsure": False}
    assert [c[1].get("nextToken") for c in logs.calls if c[0] == "filter_log_events"] == [None, "t1", "t2"]
    assert [c[1]["limit"] for c in logs.calls if c[0] == "filter_log_events"] == [1000, 1000, 998]


def test_a_log_group_holding_events_is_not_deleted():
    from healthinfra.errors import DataLossRefused

    logs = Recorder(
        {
            "paginate describe_log_streams": [{"logStreams": [{"logStreamName": "a"}]}],
            "filter_log_events": {"events": [{"message": "x"}]},
        }
    )
    with pytest.raises(DataLossRefused, match="it holds 1 events in 1 log streams, kept 30 days"):
        LogGroup(GROUP_NAME, None, prefix="/hc/local/").apply(Ctx(logs=logs), [Action("delete", before=GROUP)])
    assert "delete_log_group" not in [c[0] for c in logs.calls]
