"""A full snapshot of what the runner manages, to compare before and after."""

from __future__ import annotations

import json


def snapshot(inventory) -> dict:
    import psycopg

    from healthinfra.providers.aws import AwsClients
    from healthinfra.providers.postgres import admin_conninfo

    shot: dict = {}
    with psycopg.connect(**admin_conninfo(inventory), autocommit=True) as conn:
        shot["databases"] = conn.execute(
            """select datname, coalesce(datacl, acldefault('d', datdba))::text from pg_database
                where not datistemplate order by 1"""
        ).fetchall()
        shot["roles"] = conn.execute(
            """select rolname, rolcanlogin, rolsuper, rolconnlimit from pg_roles
                where rolname not like 'pg\\_%' order by 1"""
        ).fetchall()
        names = [d for d, _ in shot["databases"]]
    if inventory.database["name"] in names:
        with psycopg.connect(**admin_conninfo(inventory, inventory.database["name"]), autocommit=True) as conn:
            shot["columns"] = conn.execute(
                """select table_schema, table_name, column_name, data_type, is_nullable, column_default
                     from information_schema.columns where table_schema not in ('pg_catalog', 'information_schema')
                    order by 1, 2, 3"""
            ).fetchall()
            shot["constraints"] = conn.execute(
                """select conrelid::regclass::text, conname, pg_get_constraintdef(oid) from pg_constraint
                    where connamespace = 'public'::regnamespace order by 1, 2"""
            ).fetchall()
            shot["row_security"] = conn.execute(
                """select relname, relrowsecurity, relforcerowsecurity from pg_class
                    where relnamespace = 'public'::regnamespace and relkind = 'r' order by 1"""
            ).fetchall()
            shot["policies"] = conn.execute(
                "select tablename, policyname, qual, with_check from pg_policies order by 1, 2"
            ).fetchall()
            shot["triggers"] = conn.execute(
                "select tgrelid::regclass::text, tgname from pg_trigger where not tgisinternal order by 1, 2"
            ).fetchall()
            shot["functions"] = conn.execute(
                "select proname, prosecdef from pg_proc where pronamespace = 'public'::regnamespace order by 1"
            ).fetchall()
            shot["extensions"] = conn.execute("select extname from pg_extension order by 1").fetchall()
            shot["grants"] = conn.execute(
                # effective privileges: a NULL acl means the default, which a grant and revoke make explicit
                """select c.relname, coalesce(c.relacl, acldefault('r', c.relowner))::text from pg_class c
                    where c.relnamespace = 'public'::regnamespace order by 1"""
            ).fetchall()
    clients = AwsClients(inventory)
    shot["buckets"] = {
        name: bucket_settings(clients.client("s3"), name)
        for name in sorted(b["Name"] for b in clients.client("s3").list_buckets().get("Buckets", []))
    }
    kms = clients.client("kms")
    shot["kms_aliases"] = sorted(
        a["AliasName"]
        for a in kms.list_aliases()["Aliases"]  # AWS-managed ones aside
        if "TargetKeyId" in a and not a["AliasName"].startswith("alias/aws/")
    )
    logs, cloudwatch, sns = clients.client("logs"), clients.client("cloudwatch"), clients.client("sns")
    groups = logs.describe_log_groups()["logGroups"]
    shot["log_groups"] = sorted((g["logGroupName"], g.get("retentionInDays")) for g in groups)
    shot["metric_filters"] = sorted(
        (f["logGroupName"], f["filterName"], f["filterPattern"], json.dumps(f["metricTransformations"], sort_keys=True))
        for g in groups
        for f in logs.describe_metric_filters(logGroupName=g["logGroupName"])["metricFilters"]
    )
    shot["alarms"] = sorted(
        (a["AlarmName"], a["MetricName"], a.get("Threshold"), tuple(a["AlarmActions"]))
        for a in cloudwatch.describe_alarms()["MetricAlarms"]
    )
    shot["dashboards"] = sorted(
        (d["DashboardName"], cloudwatch.get_dashboard(DashboardName=d["DashboardName"])["DashboardBody"])
        for d in cloudwatch.list_dashboards()["DashboardEntries"]
    )
    shot["topics"] = sorted(
        (
            t["TopicArn"],
            tuple(
                sorted(
                    (x["Protocol"], x["Endpoint"])
                    for x in sns.list_subscriptions_by_topic(TopicArn=t["TopicArn"])["Subscriptions"]
                )
            ),
        )
        for t in sns.list_topics()["Topics"]
    )
    iam = clients.client("iam")
    roles = iam.list_roles()["Roles"]
    shot["iam_roles"] = sorted(
        (
            r["RoleName"],
            r.get("Description", ""),
            (iam.get_role(RoleName=r["RoleName"])["Role"].get("PermissionsBoundary") or {}).get(
                "PermissionsBoundaryArn"
            ),
            tuple(sorted((t["Key"], t["Value"]) for t in iam.list_role_tags(RoleName=r["RoleName"])["Tags"])),
            tuple(
                sorted(
                    (
                        name,
                        json.dumps(
                            iam.get_role_policy(RoleName=r["RoleName"], PolicyName=name)["PolicyDocument"],
                            sort_keys=True,
                        ),
                    )
                    for name in iam.list_role_policies(RoleName=r["RoleName"])["PolicyNames"]
                )
            ),
        )
        for r in roles
    )
    shot["iam_policies"] = sorted(
        (
            p["PolicyName"],
            json.dumps(
                iam.get_policy_version(PolicyArn=p["Arn"], VersionId=p["DefaultVersionId"])["PolicyVersion"][
                    "Document"
                ],
                sort_keys=True,
            ),
        )
        for p in iam.list_policies(Scope="Local")["Policies"]
    )
    return shot


def bucket_settings(s3, name: str) -> dict:
    """Every setting of a bucket, as plain boto3 answers it (an error code where unset)."""
    from botocore.exceptions import ClientError

    def get(call, **kwargs):
        try:
            answer = call(Bucket=name, **kwargs)
        except ClientError as exc:
            return exc.response["Error"]["Code"]
        answer.pop("ResponseMetadata", None)
        return answer

    return {
        "versioning": get(s3.get_bucket_versioning),
        "encryption": get(s3.get_bucket_encryption),
        "public_access_block": get(s3.get_public_access_block),
        "policy": get(s3.get_bucket_policy),
        "lifecycle": get(s3.get_bucket_lifecycle_configuration),
        "logging": get(s3.get_bucket_logging),
        "tags": get(s3.get_bucket_tagging),
    }
