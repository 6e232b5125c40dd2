"""Least privilege proven by use, on a moto server with IAM enforcement on.

moto's INITIAL_NO_AUTH_ACTION_COUNT lets the first N requests through, then checks
every request against the caller's IAM policies. The test bootstraps an admin in
those first requests, deploys storage and IAM with it, then acts as each service
with credentials carrying exactly the policy deployed on that service's role.

moto evaluates identity policies but not permissions boundaries, so the boundary
is checked by the pure tests, not here. The server is the local endpoint
(TLS, bucket policies evaluated with their conditions), so the bucket policies stay
on and writes carry the KMS header they ask for.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request

import boto3
import pytest
from botocore.exceptions import ClientError

from .support.environment import free_port, write_inventory

DOCS, IMAGES = "hc-local-medical-documents", "hc-local-medical-images"
MODELS, EXPORTS = "hc-local-ml-models", "hc-local-analytics-exports"


@pytest.fixture
def enforced(servers, invoke):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
    log = open(servers["base"] / "moto-enforced.log", "wb")
    tls = servers["state"] / "test" / "tls"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "healthinfra.local.moto_server",
            "127.0.0.1",
            str(port),
            str(tls / "server.crt"),
            str(tls / "server.key"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    state = servers["state"] / "enforced"
    context = ssl.create_default_context(cafile=str(tls / "server.crt"))
    CERTIFICATE["path"] = str(tls / "server.crt")
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"https://127.0.0.1:{port}/moto-api/", timeout=1, context=context).close()
                break
            except OSError:
                time.sleep(0.05)
        endpoint = f"https://127.0.0.1:{port}"
        anyone = client(endpoint, "iam", {"AWS_ACCESS_KEY_ID": "bootstrap", "AWS_SECRET_ACCESS_KEY": "bootstrap"})
        anyone.create_user(UserName="admin")  # requests 1-3 pass unchecked
        anyone.put_user_policy(
            UserName="admin",
            PolicyName="admin",
            PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}',
        )
        key = anyone.create_access_key(UserName="admin")["AccessKey"]
        admin = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
        write_inventory(servers["inventories"], "enforced", servers["pg_port"], port)
        state.mkdir(exist_ok=True)
        (state / "moto.pid").write_text(str(process.pid))
        for shared in (
            "postgres",
            "tls-front.pid",
            "tls",
            "admin.pgpass",
        ):  # the session's database server and its TLS front
            (state / shared).symlink_to(servers["state"] / "test" / shared)
        yield {"endpoint": endpoint, "admin": admin}
    finally:
        process.terminate()
        process.wait(10)
        log.close()
        (servers["inventories"] / "enforced.yml").unlink(missing_ok=True)
        shutil.rmtree(state, ignore_errors=True)


CERTIFICATE = {}


def client(endpoint, service, key):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        verify=CERTIFICATE["path"],
        aws_access_key_id=key["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=key["AWS_SECRET_ACCESS_KEY"],
    )


def denied(call, **kwargs) -> bool:
    try:
        call(**kwargs)
    except ClientError as exc:
        return exc.response["Error"]["Code"] in ("AccessDenied", "403")
    return False


def test_each_service_can_do_what_its_policy_allows_and_nothing_else(enforced, invoke):
    endpoint, admin = enforced["endpoint"], enforced["admin"]
    anonymous = invoke(
        "deploy",
        "-i",
        "enforced",
        "--phase",
        "4",
        "--tags",
        "storage,iam",
        env_overrides={"AWS_ACCESS_KEY_ID": "nobody", "AWS_SECRET_ACCESS_KEY": "nobody"},
    )
    assert anonymous.code == 1 and "InvalidClientTokenId" in anonymous.out + anonymous.err, anonymous
    deployed = invoke("deploy", "-i", "enforced", "--phase", "4", "--tags", "storage,iam", env_overrides=admin)
    assert deployed.code == 0, deployed

    iam, s3 = client(endpoint, "iam", admin), client(endpoint, "s3", admin)
    s3.put_object(Bucket=MODELS, Key="models/risk-v1.bin", Body=b"weights", ServerSideEncryption="aws:kms")
    s3.put_object(Bucket=DOCS, Key="records/p1.pdf", Body=b"record", ServerSideEncryption="aws:kms")

    def acting_as(service):
        iam.create_user(UserName=f"as-{service}")
        role = f"hc-local-{service}"
        names = iam.list_role_policies(RoleName=role)["PolicyNames"]
        for name in names:  # exactly the policy deployed on the service's role
            document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
            iam.put_user_policy(
                UserName=f"as-{service}",
                PolicyName=name,
                PolicyDocument=document if isinstance(document, str) else json.dumps(document),
            )
        key = iam.create_access_key(UserName=f"as-{service}")["AccessKey"]
        return client(
            endpoint, "s3", {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
        ), names

    patient, names = acting_as("patient")
    assert names == ["data-access"]
    patient.put_object(Bucket=DOCS, Key="records/p2.pdf", Body=b"x", ServerSideEncryption="aws:kms")
    assert patient.get_object(Bucket=DOCS, Key="records/p1.pdf")["Body"].read() == b"record"
    patient.put_object(Bucket=IMAGES, Key="scans/s1.dcm", Body=b"x", ServerSideEncryption="aws:kms")
    assert denied(patient.get_object, Bucket=MODELS, Key="models/risk-v1.bin")
    assert denied(patient.put_object, Bucket=MODELS, Key="models/evil.bin", Body=b"x", ServerSideEncryption="aws:kms")
    assert denied(patient.put_object, Bucket=EXPORTS, Key="e.csv", Body=b"x", ServerSideEncryption="aws:kms")

    gateway, names = acting_as("gateway")
    assert names == [], "a service that touches no data has no policy"
    assert denied(gateway.get_object, Bucket=DOCS, Key="records/p1.pdf")
    assert denied(gateway.put_object, Bucket=DOCS, Key="records/p3.pdf", Body=b"x", ServerSideEncryption="aws:kms")

    ai, _ = acting_as("ai")
    assert ai.get_object(Bucket=MODELS, Key="models/risk-v1.bin")["Body"].read() == b"weights"
    ai.put_object(Bucket=EXPORTS, Key="exports/e1.csv", Body=b"x", ServerSideEncryption="aws:kms")
    assert denied(ai.put_object, Bucket=DOCS, Key="records/p4.pdf", Body=b"x", ServerSideEncryption="aws:kms")
    assert denied(ai.get_object, Bucket=DOCS, Key="records/p1.pdf")
    assert denied(ai.put_object, Bucket=MODELS, Key="models/tampered.bin", Body=b"x", ServerSideEncryption="aws:kms")

    appointment, _ = acting_as("appointment")
    appointment.put_object(Bucket=DOCS, Key="appointments/a1.pdf", Body=b"x", ServerSideEncryption="aws:kms")
    assert denied(appointment.put_object, Bucket=DOCS, Key="records/a2.pdf", Body=b"x", ServerSideEncryption="aws:kms")
    assert denied(appointment.get_object, Bucket=DOCS, Key="records/p1.pdf")
