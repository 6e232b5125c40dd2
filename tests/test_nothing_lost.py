"""Nothing lost: every deletion is refused while it would lose data, in preflight and again at
the moment of the change, against the session's real servers.

Log groups holding an event are refused like buckets holding objects; a bucket is emptied only
with --destroy-data (an object written after preflight stops the delete, the bucket whole, its
policy included); PostgreSQL counts rows under ACCESS EXCLUSIVE locks held until the drop (a row
committed while the drop waits is counted and refused); the KMS key's guard knows the key by its
id and ARN and finds the object versions it encrypts. Each refusal lists everything it protects.

The apply-level checks are shown by calling a resource's read, diff, guard and apply in turn
with a RunContext, as converge does, with the write of another session in between.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from healthinfra.context import RunContext
from healthinfra.errors import DataLossRefused
from healthinfra.providers.aws import AwsClients
from healthinfra.providers.postgres import admin_conninfo
from healthinfra.resources.postgres import PgDatabase, PgMigration
from healthinfra.resources.s3 import S3Bucket

from .support.catalog import bucket_settings, snapshot

DOCS, IMAGES = "hc-local-medical-documents", "hc-local-medical-images"
KEY_ALIAS = "alias/hc-local-phi"
AUDIT, PATIENT = "/hc/local/audit", "/hc/local/patient"


@pytest.fixture
def aws(env):
    return AwsClients(env)


def quiet():
    class Sink:
        def write(self, text):
            pass

        def flush(self):
            pass

    return Sink()


def put_event(logs, group: str, stream: str, message: str) -> None:
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": int(time.time() * 1000), "message": message}],
    )


def planned_delete(ctx, resource):
    """What converge does before apply: read, diff to absent, guard (preflight)."""
    actions = resource.diff(resource.read(ctx), None)
    assert [a.op for a in actions] == ["delete"]
    resource.guard(ctx, actions)
    return actions


# --- log groups ------------------------------------------------------------------------


def test_cleanup_refuses_log_groups_holding_events_and_destroy_data_deletes_them(env, invoke, aws):
    assert invoke("deploy", "-i", "test", "--phase", "2").code == 0
    logs = aws.client("logs")
    put_event(logs, AUDIT, "auth-2025", '{"actor": "auth_svc", "action": "login"}')
    put_event(logs, PATIENT, "patient-1", "GET /patients/1 200")
    before = snapshot(env)

    refused = invoke("cleanup-dev", "-i", "test")
    assert refused.code == 1, refused
    # the audit group, kept six years, is guarded like any other; both are named in one go
    assert (
        f"refusing to delete log group `{AUDIT}`: it holds 1 events in 1 log streams, kept 2192 days" in refused.out
    ), refused
    assert f"refusing to delete log group `{PATIENT}`: it holds 1 events in 1 log streams" in refused.out
    assert "--destroy-data" in refused.out and "export" in refused.out
    assert "nothing was changed" in refused.out, refused
    assert snapshot(env) == before, "a refused cleanup changes nothing: database, buckets, keys, groups, alarms"
    events = logs.get_log_events(logGroupName=AUDIT, logStreamName="auth-2025")["events"]
    assert [e["message"] for e in events] == ['{"actor": "auth_svc", "action": "login"}']

    from healthinfra import commands
    from playbooks import catalog

    assert commands.cleanup("test", catalog=catalog(), destroy_data=True, stop_services=False, out=quiet()) == 0
    left = logs.describe_log_groups(logGroupNamePrefix="/hc/local/")["logGroups"]
    assert left == [], "with --destroy-data the groups go, their events with them"


def test_an_event_arriving_after_preflight_stops_the_log_group_delete(env, invoke, aws):
    assert invoke("deploy", "-i", "test", "--phase", "2", "--tags", "monitoring").code == 0
    from healthinfra.resources.monitoring import LogGroup

    logs = aws.client("logs")
    with RunContext(env) as ctx:
        group = LogGroup(AUDIT, None, prefix="/hc/local/")
        actions = planned_delete(ctx, group)  # empty at preflight
        put_event(logs, AUDIT, "late", "written after preflight")
        with pytest.raises(DataLossRefused, match=f"log group `{AUDIT}`: it holds 1 events"):
            group.apply(ctx, actions)
    assert [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix=AUDIT)["logGroups"]] == [AUDIT]


# --- buckets -----------------------------------------------------------------------------


def test_a_bucket_is_emptied_only_with_destroy_data_and_a_refused_delete_keeps_it_whole(env, invoke, aws):
    assert invoke("deploy", "-i", "test", "--phase", "2").code == 0
    s3 = aws.client("s3")
    settings = bucket_settings(s3, DOCS)
    assert settings["policy"], "the TLS-only policy is there to keep"
    bucket = S3Bucket(DOCS, None, region="us-east-1")
    with RunContext(env) as ctx:
        actions = planned_delete(ctx, bucket)  # empty: the guard lets it through
        s3.put_object(Bucket=DOCS, Key="late.pdf", Body=b"written after preflight", ServerSideEncryption="aws:kms")
        with pytest.raises(DataLossRefused) as refused:
            bucket.apply(ctx, actions)
    assert f"refusing to delete bucket `{DOCS}`: it holds 1 objects in 1 versions" in str(refused.value)
    assert s3.get_object(Bucket=DOCS, Key="late.pdf")["Body"].read() == b"written after preflight"
    assert bucket_settings(s3, DOCS) == settings, "the bucket keeps every setting, its policy first of all"

    with RunContext(env, destroy_data=True) as ctx:
        actions = planned_delete(ctx, bucket)
        s3.put_object(Bucket=DOCS, Key="later.pdf", Body=b"x", ServerSideEncryption="aws:kms")
        bucket.apply(ctx, actions)  # told to: every version goes, then the bucket
    assert DOCS not in {b["Name"] for b in s3.list_buckets()["Buckets"]}


# --- PostgreSQL --------------------------------------------------------------------------


def waiting_for_lock(conn, timeout: float = 20.0) -> None:
    """Until some session of the database waits for a lock (the drop, behind the writer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = conn.execute(
            "select count(*) from pg_locks l join pg_stat_activity a on a.pid = l.pid"
            " where not l.granted and a.pid <> pg_backend_pid()"
        ).fetchone()[0]
        if waiting:
            return
        time.sleep(0.05)
    raise AssertionError("the drop never waited for the writer's lock")


def apply_in_thread(resource, ctx, actions):
    outcome: dict = {}

    def run():
        try:
            resource.apply(ctx, actions)
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def users_rows(env) -> list:
    with psycopg.connect(**admin_conninfo(env, "healthcare"), autocommit=True) as conn:
        return conn.execute("select email from users order by 1").fetchall()


@pytest.mark.parametrize("kind", ["migration", "database"])
def test_a_row_committed_while_the_drop_waits_is_counted_under_lock_and_kept(env, invoke, kind):
    assert invoke("deploy", "-i", "test", "--phase", "1").code == 0
    if kind == "migration":
        resource = PgMigration("0001_core_tables", None, database="healthcare", directory="templates/sql/migrations")
        what = "undo migration `0001_core_tables`"
    else:
        resource = PgDatabase("healthcare", None)
        what = "drop database `healthcare`"
    with RunContext(env) as ctx, psycopg.connect(**admin_conninfo(env, "healthcare")) as writer:
        actions = planned_delete(ctx, resource)  # no rows at preflight
        # another session writes a row, its transaction still open: the counts outside a lock see nothing
        writer.execute("insert into users (email, password_hash, role) values ('late@example.org', 'x', 'patient')")
        writer.execute(
            """insert into audit_log (actor, action, table_name, row_key)
               values ('patient_svc', 'insert', 'users', 'late')"""
        )
        thread, outcome = apply_in_thread(resource, ctx, actions)
        with psycopg.connect(**admin_conninfo(env, "healthcare"), autocommit=True) as watcher:
            waiting_for_lock(watcher)  # the drop's lock waits behind the writer
        writer.commit()  # the rows land while the drop waits
        thread.join(60)
        assert not thread.is_alive()
    refused = outcome.get("error")
    assert isinstance(refused, DataLossRefused), outcome
    # every table with rows, in one message
    assert f"refusing to {what}: it holds data in audit_log (1 rows), users (1 rows)" in str(refused)
    assert users_rows(env) == [("late@example.org",)], "the row is there, its table too"
    with psycopg.connect(**admin_conninfo(env, "healthcare"), autocommit=True) as conn:
        assert conn.execute("select version from schema_migrations").fetchall() == [("0001_core_tables",)]


def test_an_empty_database_is_dropped_even_with_a_session_open_in_it(env, invoke):
    assert invoke("deploy", "-i", "test", "--phase", "1").code == 0
    resource = PgDatabase("healthcare", None)
    with RunContext(env) as ctx, psycopg.connect(**admin_conninfo(env, "healthcare"), autocommit=True) as idle:
        actions = planned_delete(ctx, resource)
        resource.apply(ctx, actions)
        assert idle.closed or idle.broken or _is_gone(idle)
    with psycopg.connect(**admin_conninfo(env), autocommit=True) as conn:
        assert conn.execute("select 1 from pg_database where datname = 'healthcare'").fetchone() is None


def _is_gone(conn) -> bool:
    try:
        conn.execute("select 1")
    except psycopg.OperationalError:
        return True
    return False


# --- the KMS key -------------------------------------------------------------------------


def test_the_key_guard_knows_the_key_by_id_and_arn_and_by_the_versions_it_encrypts(env, invoke, aws):
    key_only = invoke("deploy", "-i", "test", "--phase", "2", "--tags", "kms", "--json")
    assert key_only.code == 0, key_only
    assert invoke("deploy", "-i", "test", "--phase", "2").code == 0
    s3, kms = aws.client("s3"), aws.client("kms")
    key_id = next(a["TargetKeyId"] for a in kms.list_aliases()["Aliases"] if a["AliasName"] == KEY_ALIAS)
    key_arn = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]

    def default(bucket, key):
        rule = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key} if key else {"SSEAlgorithm": "AES256"}
        s3.put_bucket_encryption(
            Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": rule}]}
        )

    # by hand, the defaults name the key by its ARN and by its id: no alias in sight
    default(DOCS, key_arn)
    default(IMAGES, key_id)
    rollback = ("rollback", "-i", "test", "--run", key_only.json["run_id"])
    refused = invoke(*rollback)
    assert refused.code == 1, refused
    assert (
        f"refusing to delete KMS key `{KEY_ALIAS}`: bucket(s) {DOCS}, {IMAGES} still encrypt with it"
        f" ({DOCS}: default encryption names it by key ARN; {IMAGES}: default encryption names it by key id)"
    ) in refused.out, refused

    # an object written under the key; then both defaults move off it: the version still needs it
    s3.put_object(Bucket=DOCS, Key="scan.pdf", Body=b"x", ServerSideEncryption="aws:kms")
    s3.put_object(Bucket=DOCS, Key="scan.pdf", Body=b"y", ServerSideEncryption="aws:kms")
    default(DOCS, None)
    default(IMAGES, None)
    refused = invoke(*rollback)
    assert refused.code == 1, refused
    assert f"bucket(s) {DOCS} still encrypt with it ({DOCS}: 2 object versions encrypted with it)" in refused.out, (
        refused
    )
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    assert KEY_ALIAS in {a["AliasName"] for a in kms.list_aliases()["Aliases"]}
