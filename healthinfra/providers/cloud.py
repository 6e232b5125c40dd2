"""The AWS providers: the local moto server and AWS itself.

`moto`: the moto server on 127.0.0.1 over TLS (its certificate verified), moto's fixed
account and test keys (not secrets: the server accepts any) unless AWS_ACCESS_KEY_ID is
set (a moto server enforcing IAM needs a key of its own). `aws`: boto3's own
credential chain (environment, profile, instance role), never a key from the inventory,
and boto3's own CA bundle. The clients themselves are made by `aws.AwsClients`.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from ..errors import InventoryError
from ..schema import show
from .base import Provider

if TYPE_CHECKING:
    from ..inventory import Inventory

MOTO_ACCOUNT_ID = "123456789012"
MOTO_ACCESS_KEY = "testing"  # moto accepts any key; this is not a credential
AWS_KINDS = frozenset(
    {
        "s3.bucket",
        "kms.key",
        "iam.role",
        "iam.role_policy",
        "iam.policy",
        "logs.group",
        "logs.metric_filter",
        "sns.topic",
        "cloudwatch.alarm",
        "cloudwatch.dashboard",
    }
)


REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")  # us-east-1, eu-central-2, us-gov-west-1


class AwsProvider(Provider):
    area = "aws"
    resource_kinds = AWS_KINDS

    @classmethod
    def check_values(cls, settings: dict[str, Any], file: str) -> None:
        """The region reaches ARNs, env files and host commands: an AWS region name, or exit 2."""
        if not REGION.fullmatch(settings["region"]):
            raise InventoryError(
                f"{file}: `aws.region` must be an AWS region name like `us-east-1`, got `{show(settings['region'])}`"
            )

    def account_id(self) -> str:
        return self.settings.get("account_id", MOTO_ACCOUNT_ID)

    def endpoint_url(self) -> str | None:
        """Where boto3 sends requests; None for AWS's own endpoints."""
        return None

    def verify(self, inventory: Inventory) -> str | None:
        """The CA bundle the endpoint's certificate is checked against; None for boto3's own."""
        return None

    def session_arguments(self) -> dict[str, Any]:
        """Keyword arguments of boto3's Session: the region, and where credentials come from."""
        return {"profile_name": self.settings.get("profile"), "region_name": self.settings["region"]}

    def probe(self, inventory: Inventory) -> str:
        """The health probe of the endpoint: who the credentials are (STS GetCallerIdentity)."""
        from .aws import AwsClients

        return f"answers (account {AwsClients(inventory).account_id()})"


class MotoAws(AwsProvider):
    name = "moto"
    schema = {"region": (str, True), "port": (int, True)}
    local_service = "the moto server"
    status_key = "aws"
    stopped_note = "stopped (its in-memory state is gone)"

    def describe(self, status):
        return "aws (moto)", status.get("endpoint_url", "")

    def started(self, status) -> str:
        return f"running (pid {status['pid']}) at {status['endpoint_url']}"

    def endpoint_url(self):
        return f"https://127.0.0.1:{self.settings['port']}"

    def verify(self, inventory):
        from ..local.moto import certificate

        return str(certificate(inventory))

    def session_arguments(self):
        if "AWS_ACCESS_KEY_ID" in os.environ:  # a moto server enforcing IAM: the key of a user it knows
            return super().session_arguments()
        return {
            "aws_access_key_id": MOTO_ACCESS_KEY,
            "aws_secret_access_key": MOTO_ACCESS_KEY,
            "region_name": self.settings["region"],
        }

    def start(self, inventory):
        from ..local import moto

        return moto.start(inventory)

    def stop(self, inventory):
        from ..local import moto

        moto.stop(inventory)

    def status(self, inventory):
        from ..local import moto

        return moto.status(inventory)


class RealAws(AwsProvider):
    name = "aws"
    schema = {"region": (str, True), "account_id": (str, True), "profile": (str, False)}

    @classmethod
    def check_values(cls, settings: dict[str, Any], file: str) -> None:
        super().check_values(settings, file)
        if not re.fullmatch(r"\d{12}", settings["account_id"]):
            raise InventoryError(
                f"{file}: `aws.account_id` must be the 12-digit AWS account id, quoted,"
                f" got `{show(settings['account_id'])}`"
            )
