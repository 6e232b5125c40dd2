"""Alerts reach someone: the inventory's subscriptions are the alert topic's (a dropped one is
unsubscribed), and `monitoring.check --alert` publishes one message listing the unhealthy
probes to the topic (nothing when all are healthy, never a secret)."""

from __future__ import annotations

import json

from healthinfra import names
from healthinfra.providers.aws import AwsClients
from healthinfra.secret_store import SecretStore

from .support.environment import INVENTORY

TOPIC = "arn:aws:sns:us-east-1:123456789012:hc-local-alerts"
QUEUE = "hc-local-oncall-test"
QUEUE_ARN = f"arn:aws:sqs:us-east-1:123456789012:{QUEUE}"


def with_sqs_subscription(workspace, directory):
    """A copy of the test inventories whose alert topic also notifies an SQS queue."""
    directory.mkdir()
    for name in ("services.yml", "data_types.yml"):
        (directory / name).write_text((workspace["inventories"] / name).read_text())
    text = (workspace["inventories"] / f"{INVENTORY}.yml").read_text()
    (directory / f"{INVENTORY}.yml").write_text(text + f"    - {{protocol: sqs, endpoint: '{QUEUE_ARN}'}}\n")
    return {"HEALTHINFRA_INVENTORIES": str(directory)}


def drain(sqs, url) -> list[str]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    for m in messages:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return [json.loads(m["Body"])["Message"] for m in messages]


def subscriptions(sns):
    return sorted(
        (s["Protocol"], s["Endpoint"]) for s in sns.list_subscriptions_by_topic(TopicArn=TOPIC)["Subscriptions"]
    )


def test_check_alert_reaches_the_queue_only_when_unhealthy_and_a_dropped_subscription_goes(
    env, invoke, servers, tmp_path
):
    aws = AwsClients(env)
    sqs, sns, s3 = aws.client("sqs"), aws.client("sns"), aws.client("s3")
    url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    try:
        assert invoke("monitoring.check", "-i", "test", "--alert").code == 2, "no alert topic before phase 3"
        overrides = with_sqs_subscription(servers, tmp_path / "inventories")
        assert invoke("deploy", "-i", "test", "--phase", "3", env_overrides=overrides).code == 0
        assert subscriptions(sns) == [("email", "oncall@example.org"), ("sqs", QUEUE_ARN)]

        healthy = invoke("monitoring.check", "-i", "test", "--alert", "--json", env_overrides=overrides)
        assert healthy.code == 0 and healthy.json["healthy"], healthy
        assert drain(sqs, url) == [], "nothing is published when every probe is healthy"

        # something cheap breaks: a data bucket disappears
        buckets = [p["target"] for p in healthy.json["probes"] if p["probe"] == "bucket"]
        gone = next(b for b in buckets if b != names.access_log_bucket(env))
        for version in s3.list_object_versions(Bucket=gone).get("Versions", []):
            s3.delete_object(Bucket=gone, Key=version["Key"], VersionId=version["VersionId"])
        s3.delete_bucket(Bucket=gone)

        sick = invoke("monitoring.check", "-i", "test", "--alert", env_overrides=overrides)
        assert sick.code == 1, sick
        messages = drain(sqs, url)
        assert len(messages) == 1, messages
        assert f"- bucket {gone}:" in messages[0] and "1 unhealthy at phase 3" in messages[0]
        assert "iam role" not in messages[0], "only the unhealthy probes are listed"
        secrets = SecretStore(env.state_dir / "secrets.json")
        for name in secrets.names():
            assert secrets.get(name).reveal() not in messages[0], f"secret {name} in the alert"

        # the subscription dropped from the inventory is unsubscribed
        assert invoke("deploy", "-i", "test", "--phase", "3", "--tags", "alerts").code == 0
        assert subscriptions(sns) == [("email", "oncall@example.org")]
        assert invoke("monitoring.check", "-i", "test", "--alert").code == 1
        assert drain(sqs, url) == [], "the queue no longer hears the topic"
    finally:
        sqs.delete_queue(QueueUrl=url)
