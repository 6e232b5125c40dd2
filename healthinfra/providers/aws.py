"""boto3 clients for a run, created lazily, once per service.

The endpoint, the certificate check and where credentials come from are the AWS
provider's (`cloud.py`: the local moto server, or AWS itself). boto3's internal
retries are turned off: the engine retries transient faults itself, with a bound,
and counts them.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..inventory import Inventory


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
            self._session = boto3.session.Session(**self.inventory.provider("aws").session_arguments())
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
        """The CA bundle the endpoint's certificate is checked against (None: boto3's own)."""
        return self.inventory.provider("aws").verify(self.inventory)

    def account_id(self) -> str:
        return self.client("sts").get_caller_identity()["Account"]
