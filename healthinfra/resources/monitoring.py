"""Monitoring resources: CloudWatch log groups and metric filters, the SNS alert topic,
alarms and the dashboard.

Log groups are listed once per run under the environment's prefix; metric filters
once per group; alarms once per run by name prefix; each compared as canonical
dictionaries (a dashboard body and an alarm as documents, so `--diff` shows them
as unified JSON diffs).
"""

from __future__ import annotations

import json

from ..errors import DataLossRefused
from ..providers.aws import absent_on, list_by_name, tag_changes
from ..resource import Resource


def log_groups_fact(ctx, prefix: str) -> dict[str, dict]:
    return ctx.fact(
        f"logs.groups:{prefix}",
        lambda: list_by_name(
            ctx.aws.client("logs"), "describe_log_groups", "logGroups", "logGroupName", logGroupNamePrefix=prefix
        ),
    )


EVENTS_COUNTED = 1000  # events counted at most per group before a refusal says "at least"
EVENT_PAGES = 100  # FilterLogEvents pages read at most (a page may be empty while more follow)


def log_contents(logs, group: str) -> dict:
    """The streams of a log group and its events, counted up to EVENTS_COUNTED.

    Streams come from DescribeLogStreams (every page); events from FilterLogEvents over the
    whole group (every stream, all time). FilterLogEvents may answer an empty page with a
    `nextToken` while more events follow, so pages are followed until the count reaches the
    cap or no token is left; `unsure` when EVENT_PAGES ran out first with none seen (then the
    group holds events as far as anyone can tell)."""
    streams = 0
    for page in logs.get_paginator("describe_log_streams").paginate(logGroupName=group):
        streams += len(page.get("logStreams", []))
    events, token = 0, None
    for _ in range(EVENT_PAGES):
        request: dict = {"logGroupName": group, "limit": EVENTS_COUNTED - events}
        if token:
            request["nextToken"] = token
        page = logs.filter_log_events(**request)
        events += len(page.get("events", []))
        token = page.get("nextToken")
        if not token or events >= EVENTS_COUNTED:
            break
    return {
        "streams": streams,
        "events": events,
        "capped": bool(token) and events > 0,  # more may follow: "at least"
        "unsure": bool(token) and events == 0,
    }


def log_group_refusal(group: str, held: dict, retention_days: int | None) -> str | None:
    """The refusal to delete a log group holding `held` (log_contents), or None when it holds
    no event. Pure."""
    if not held["events"] and not held["unsure"]:
        return None
    if held["events"]:
        events = f"{'at least ' if held['capped'] else ''}{held['events']} events"
    else:
        events = f"events as far as can be told (no event in {EVENT_PAGES} pages of FilterLogEvents, more pending)"
    kept = f", kept {retention_days} days" if retention_days else ""
    return (
        f"refusing to delete log group `{group}`: it holds {events} in {held['streams']} log streams{kept};"
        " export them first (`aws logs create-export-task` to an S3 bucket, or copy them elsewhere),"
        " then re-run with --destroy-data to delete them"
    )


class LogGroup(Resource):
    """A CloudWatch Logs group: retention and tags. Its events are the services' logs and,
    for the audit group, the audit trail kept six years (45 CFR 164.316(b)(2)(i)): a group
    holding any event is never deleted without --destroy-data, refused in preflight
    (`guard`) and checked again just before DeleteLogGroup."""

    kind = "logs.group"
    unmanaged = ("KMS encryption of log data: CloudWatch's own; log streams: the services create them",)

    def __init__(self, name, desired, *, prefix: str):
        super().__init__(name, desired, prefix=prefix)

    def read(self, ctx):
        group = log_groups_fact(ctx, self.params["prefix"]).get(self.name)
        if group is None:
            return None
        return self.parse(group, ctx.aws.client("logs").list_tags_log_group(logGroupName=self.name))

    @staticmethod
    def parse(group: dict, tagged: dict) -> dict:
        """The group's entry in DescribeLogGroups and its ListTagsLogGroup response -> the
        managed attributes (no `retentionInDays`: never expires, None). Pure."""
        return {"retention_days": group.get("retentionInDays"), "tags": tagged.get("tags", {})}

    def guard(self, ctx, actions):
        """Refuse to delete the group while it holds any event (unless --destroy-data)."""
        logs = ctx.aws.client("logs")
        for action in actions:
            if action.op != "delete" or ctx.destroy_data:
                continue
            held = absent_on(lambda: log_contents(logs, self.name), "ResourceNotFoundException")
            message = held and log_group_refusal(self.name, held, (action.before or {}).get("retention_days"))
            if message:
                raise DataLossRefused(message)

    def apply(self, ctx, actions):
        logs = ctx.aws.client("logs")
        for action in actions:
            if action.op == "create":
                logs.create_log_group(logGroupName=self.name, tags=action.after["tags"])
                logs.put_retention_policy(logGroupName=self.name, retentionInDays=action.after["retention_days"])
            elif action.op == "delete":
                # counted again at the moment of the change: an event may have come since preflight.
                # CloudWatch Logs has no lock, so the window left is this one request's
                self.guard(ctx, [action])
                absent_on(lambda: logs.delete_log_group(logGroupName=self.name), "ResourceNotFoundException")
            elif action.attribute == "retention_days":
                if action.after:
                    logs.put_retention_policy(logGroupName=self.name, retentionInDays=action.after)
                else:
                    logs.delete_retention_policy(logGroupName=self.name)
            elif action.attribute == "tags":
                gone, changed = tag_changes(action.before, action.after)
                if gone:
                    logs.untag_log_group(logGroupName=self.name, tags=gone)
                if changed:
                    logs.tag_log_group(logGroupName=self.name, tags=changed)


class MetricFilter(Resource):
    """A metric filter, named `GROUP:FILTER`: pattern and metric transformation."""

    kind = "logs.metric_filter"

    def __init__(self, name, desired, *, group: str, filter: str):
        super().__init__(name, desired, group=group, filter=filter)

    def depends_on(self):
        return [f"logs.group {self.params['group']}"]

    def read(self, ctx):
        def load():
            answer = absent_on(
                lambda: ctx.aws.client("logs").describe_metric_filters(logGroupName=self.params["group"]),
                "ResourceNotFoundException",
            )
            return {f["filterName"]: f for f in (answer or {}).get("metricFilters", [])}

        return self.parse(ctx.fact(f"logs.filters:{self.params['group']}", load).get(self.params["filter"]))

    @staticmethod
    def parse(found: dict | None) -> dict | None:
        """The filter's entry in DescribeMetricFilters (None: not there) -> the managed attributes. Pure."""
        if found is None:
            return None
        transform = found["metricTransformations"][0]
        return {
            "pattern": found["filterPattern"],
            "metric": transform["metricName"],
            "namespace": transform["metricNamespace"],
            "value": transform["metricValue"],
            "default": transform.get("defaultValue"),
            "unit": transform.get("unit"),
        }

    def apply(self, ctx, actions):
        logs = ctx.aws.client("logs")
        for action in actions:
            if action.op == "delete":
                absent_on(
                    lambda: logs.delete_metric_filter(
                        logGroupName=self.params["group"], filterName=self.params["filter"]
                    ),
                    "ResourceNotFoundException",
                )
                continue
            want = self.desired  # a filter is put whole
            transform = {
                "metricName": want["metric"],
                "metricNamespace": want["namespace"],
                "metricValue": want["value"],
            }
            if want.get("default") is not None:
                transform["defaultValue"] = want["default"]
            if want.get("unit"):
                transform["unit"] = want["unit"]
            logs.put_metric_filter(
                logGroupName=self.params["group"],
                filterName=self.params["filter"],
                filterPattern=want["pattern"],
                metricTransformations=[transform],
            )
            return


class SnsTopic(Resource):
    """The alert topic and its subscriptions (protocol + endpoint), found by name."""

    kind = "sns.topic"
    unmanaged = ("delivery policies and topic policy: SNS defaults",)

    def __init__(self, name, desired, *, region: str, account: str):
        super().__init__(name, desired, region=region, account=account)

    @property
    def arn(self) -> str:
        return f"arn:aws:sns:{self.params['region']}:{self.params['account']}:{self.name}"

    def read(self, ctx):
        sns = ctx.aws.client("sns")
        if absent_on(lambda: sns.get_topic_attributes(TopicArn=self.arn), "NotFound", "NotFoundException") is None:
            return None
        pages = list(sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=self.arn))
        return self.parse(pages, sns.list_tags_for_resource(ResourceArn=self.arn))

    @staticmethod
    def parse(pages: list[dict], tagged: dict) -> dict:
        """Every page of ListSubscriptionsByTopic (confirmed or pending) and the ListTagsForResource
        response of a topic that exists -> the managed attributes, subscriptions sorted. Pure."""
        subscriptions = []
        for page in pages:
            subscriptions += [{"protocol": s["Protocol"], "endpoint": s["Endpoint"]} for s in page["Subscriptions"]]
        tags = {t["Key"]: t["Value"] for t in tagged.get("Tags", [])}
        return {"subscriptions": sorted(subscriptions, key=lambda s: (s["protocol"], s["endpoint"])), "tags": tags}

    def apply(self, ctx, actions):
        sns = ctx.aws.client("sns")
        for action in actions:
            if action.op == "create":
                sns.create_topic(
                    Name=self.name, Tags=[{"Key": k, "Value": v} for k, v in sorted(action.after["tags"].items())]
                )
                for s in action.after["subscriptions"]:
                    sns.subscribe(TopicArn=self.arn, Protocol=s["protocol"], Endpoint=s["endpoint"])
            elif action.op == "delete":
                sns.delete_topic(TopicArn=self.arn)
            elif action.attribute == "subscriptions":
                want = {(s["protocol"], s["endpoint"]) for s in action.after or []}
                for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=self.arn):
                    for s in page["Subscriptions"]:
                        if (s["Protocol"], s["Endpoint"]) not in want and s["SubscriptionArn"].startswith("arn:"):
                            sns.unsubscribe(SubscriptionArn=s["SubscriptionArn"])
                have = {(s["protocol"], s["endpoint"]) for s in action.before or []}
                for protocol, endpoint in sorted(want - have):
                    sns.subscribe(TopicArn=self.arn, Protocol=protocol, Endpoint=endpoint)
            elif action.attribute == "tags":
                gone, changed = tag_changes(action.before, action.after)
                if gone:
                    sns.untag_resource(ResourceArn=self.arn, TagKeys=gone)
                if changed:
                    sns.tag_resource(ResourceArn=self.arn, Tags=[{"Key": k, "Value": v} for k, v in changed.items()])


ALARM_FIELDS = {
    "description": "AlarmDescription",
    "namespace": "Namespace",
    "metric": "MetricName",
    "statistic": "Statistic",
    "extended_statistic": "ExtendedStatistic",
    "period": "Period",
    "evaluation_periods": "EvaluationPeriods",
    "threshold": "Threshold",
    "comparison": "ComparisonOperator",
    "treat_missing_data": "TreatMissingData",
    "alarm_actions": "AlarmActions",
    "dimensions": "Dimensions",  # only on alarms that have them (the business metrics'), sorted by name
}


def alarms_fact(ctx, prefix: str) -> dict[str, dict]:
    return ctx.fact(
        f"cloudwatch.alarms:{prefix}",
        lambda: list_by_name(
            ctx.aws.client("cloudwatch"), "describe_alarms", "MetricAlarms", "AlarmName", AlarmNamePrefix=prefix
        ),
    )


class Alarm(Resource):
    """A metric alarm, put whole (CloudWatch has no partial update); every field compared."""

    kind = "cloudwatch.alarm"
    unmanaged = ("alarm state and history: CloudWatch's",)

    def __init__(self, name, desired, *, prefix: str):
        super().__init__(name, desired, prefix=prefix)

    def read(self, ctx):
        return self.parse(alarms_fact(ctx, self.params["prefix"]).get(self.name))

    @staticmethod
    def parse(alarm: dict | None) -> dict | None:
        """The alarm's entry in DescribeAlarms' `MetricAlarms` (None: not there) -> every field,
        absent ones as None, alarm actions sorted; `dimensions` only when it has some. Pure."""
        if alarm is None:
            return None
        current = {key: alarm.get(field) for key, field in ALARM_FIELDS.items() if key != "dimensions"}
        if alarm.get("Dimensions"):
            current["dimensions"] = sorted(
                ({"Name": d["Name"], "Value": d["Value"]} for d in alarm["Dimensions"]), key=lambda d: d["Name"]
            )
        current["threshold"] = float(current["threshold"]) if current["threshold"] is not None else None
        current["alarm_actions"] = sorted(current["alarm_actions"] or [])
        return current

    def apply(self, ctx, actions):
        cw = ctx.aws.client("cloudwatch")
        if any(a.op == "delete" for a in actions):
            cw.delete_alarms(AlarmNames=[self.name])
            return
        want = self.desired  # put whole: the full desired state (or, on undo, the full before-state)
        request = {field: want[key] for key, field in ALARM_FIELDS.items() if want.get(key) is not None}
        cw.put_metric_alarm(AlarmName=self.name, **request)


class Dashboard(Resource):
    """The CloudWatch dashboard; its body is a document, shown as a JSON diff."""

    kind = "cloudwatch.dashboard"

    def read(self, ctx):
        answer = absent_on(
            lambda: ctx.aws.client("cloudwatch").get_dashboard(DashboardName=self.name),
            "ResourceNotFound",
            "ResourceNotFoundException",
        )
        return self.parse(answer)

    @staticmethod
    def parse(answer: dict | None) -> dict | None:
        """GetDashboard's response (None: not found) -> the body, as a document. Pure."""
        return {"body": json.loads(answer["DashboardBody"])} if answer else None

    def apply(self, ctx, actions):
        cw = ctx.aws.client("cloudwatch")
        for action in actions:
            if action.op == "delete":
                cw.delete_dashboards(DashboardNames=[self.name])
            else:
                body = action.after["body"] if action.op == "create" else action.after
                cw.put_dashboard(DashboardName=self.name, DashboardBody=json.dumps(body))
