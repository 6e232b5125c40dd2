"""boto3 clients for a run, created lazily, once per service.

For the `moto` provider the endpoint is the local moto server (TLS, its
certificate verified) and the credentials
are moto's fixed test keys (not secrets: the server accepts any), unless
AWS_ACCESS_KEY_ID is set (a moto server with IAM enforcement on needs a real key
of its own). For `aws`, boto3's
own credential chain (environment, profile, instance role) is used, never a key
from the inventory. boto3's internal retries are turned off: the engine retries
transient faults itself, with a bound, and counts them.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from ..inventory import Inventory

MOTO_ACCESS_KEY = "testing"  # moto accepts any key; this is not a credential


def absent_on(call, *codes: str):
    """Call an AWS getter; the given error codes mean "not there" (None), anything else raises."""
    from botocore.exceptions import ClientError

    try:
        return call()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in codes:
            return None
        raise


def list_by_name(client, operation: str, items: str, name: str, **kwargs) -> dict[str, dict]:
    """Every page of a list call, indexed by each item's name: one family's facts in one go."""
    found = {}
    for page in client.get_paginator(operation).paginate(**kwargs):
        for item in page.get(items, []):
            found[item[name]] = item
    return found


def tag_changes(before: dict | None, after: dict | None) -> tuple[list[str], dict[str, str]]:
    """The tag keys to remove and the tags to set, to turn `before` into `after` (pure)."""
    before, after = before or {}, after or {}
    return sorted(set(before) - set(after)), {k: v for k, v in sorted(after.items()) if before.get(k) != v}


class AwsClients:
    def __init__(self, inventory: Inventory):
        self.inventory = inventory
        self._clients: dict[str, Any] = {}
        self._session = None
        self._lock = threading.Lock()  # boto3 sessions may not create clients concurrently

    def session(self):
        import boto3

        if self._session is None:
            if self.inventory.providers["aws"] == "moto" and "AWS_ACCESS_KEY_ID" not in os.environ:
                self._session = boto3.session.Session(
                    aws_access_key_id=MOTO_ACCESS_KEY,
                    aws_secret_access_key=MOTO_ACCESS_KEY,
                    region_name=self.inventory.aws["region"],
                )
            else:
                self._session = boto3.session.Session(
                    profile_name=self.inventory.aws.get("profile"), region_name=self.inventory.aws["region"]
                )
        return self._session

    def client(self, service: str):
        from botocore.config import Config

        with self._lock:
            if service not in self._clients:
                config = Config(
                    retries={"max_attempts": 1, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=30,
                    max_pool_connections=20,
                )
                self._clients[service] = self.session().client(
                    service, endpoint_url=self.inventory.aws_endpoint_url, config=config, verify=self.verify()
                )
            return self._clients[service]

    def verify(self) -> str | None:
        """The local endpoint's certificate for moto; None (boto3's own CA bundle) for AWS."""
        if self.inventory.providers["aws"] == "moto":
            from ..local.moto import certificate

            return str(certificate(self.inventory))
        return None

    def account_id(self) -> str:
        return self.client("sts").get_caller_identity()["Account"]
