"""Transient faults are retried within a bound; permanent ones fail at once with the cause."""

from __future__ import annotations

import psycopg
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError
from botocore.parsers import ResponseParserError

from healthinfra import faults
from healthinfra.errors import ProviderError, TransientProviderError


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": f"{code} happened"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "CreateRole",
    )


@pytest.mark.parametrize(
    "exc, transient",
    [
        (client_error("Throttling", 400), True),
        (client_error("SlowDown", 503), True),
        (client_error("InternalError", 500), True),
        (client_error("AccessDenied", 403), False),
        (client_error("EntityAlreadyExists", 409), False),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
        (ParamValidationError(report="RoleName missing"), False),
        (ResponseParserError("Unable to parse response, invalid XML received. Further retries may succeed"), True),
        (psycopg.OperationalError("connection refused"), True),
        (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), True),
        (psycopg.errors.CannotConnectNow("the database system is starting up"), True),
        (psycopg.errors.SerializationFailure("could not serialize access"), True),
        (psycopg.errors.InsufficientPrivilege("permission denied for table users"), False),
        (psycopg.errors.SyntaxError('syntax error at or near "tabel"'), False),
        (ConnectionResetError("reset by peer"), True),
        (ValueError("bad"), False),
    ],
)
def test_classify(exc, transient):
    translated = faults.classify(exc, "apply thing")
    assert isinstance(translated, ProviderError)
    assert isinstance(translated, TransientProviderError) is transient
    assert str(translated).startswith("apply thing: ")


def test_access_denied_message_keeps_the_cause():
    assert (
        str(faults.classify(client_error("AccessDenied", 403), "apply iam.role x"))
        == "apply iam.role x: AWS AccessDenied: AccessDenied happened"
    )


def test_transient_fault_is_retried_until_it_clears(monkeypatch):
    monkeypatch.setattr(faults, "BACKOFF_SECONDS", 0.001)
    calls, seen = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise TransientProviderError("503")
        return "done"

    assert faults.with_retries(flaky, lambda exc, attempt: seen.append(attempt)) == "done"
    assert len(calls) == 3 and seen == [1, 2]


def test_retries_are_bounded(monkeypatch):
    monkeypatch.setattr(faults, "BACKOFF_SECONDS", 0.001)
    calls = []

    def always_down():
        calls.append(1)
        raise TransientProviderError("still down")

    with pytest.raises(TransientProviderError, match="still down"):
        faults.with_retries(always_down)
    assert len(calls) == faults.MAX_ATTEMPTS


def test_permanent_error_fails_at_once():
    calls = []

    def denied():
        calls.append(1)
        raise ProviderError("AccessDenied")

    with pytest.raises(ProviderError, match="AccessDenied"):
        faults.with_retries(denied)
    assert calls == [1]


def test_refused_login_is_permanent_not_retried():
    exc = psycopg.OperationalError(
        'connection to server at "127.0.0.1", port 5432 failed: '
        'FATAL:  password authentication failed for user "auth_svc"'
    )
    translated = faults.classify(exc, "connect as auth_svc")
    assert not isinstance(translated, TransientProviderError)
    assert "password authentication failed" in str(translated)
    missing = psycopg.OperationalError('connection failed: FATAL:  database "healthcare" does not exist')
    assert not isinstance(faults.classify(missing, "x"), TransientProviderError)


def test_a_change_retried_after_it_was_applied_is_still_reported_and_journalled(tmp_path, monkeypatch):
    """The first apply succeeds on the server but the connection drops before the answer:
    the retry finds nothing to do, and the run must still say `changed`, with both intents
    journalled so that rollback undoes it."""
    from healthinfra.context import RunContext
    from healthinfra.converge import ChangeLog, converge_item, report
    from healthinfra.journal import Journal
    from healthinfra.output import Output
    from healthinfra.plan import Item
    from healthinfra.recap import Recap
    from healthinfra.resource import Resource
    from healthinfra.state import FileState

    monkeypatch.setattr(faults, "BACKOFF_SECONDS", 0.001)
    world = {"value": 1}

    class Flaky(Resource):
        kind = "test.flaky"

        def read(self, ctx):
            return {"value": world["value"]}

        def apply(self, ctx, actions):
            world["value"] = actions[0].after
            if not getattr(self, "failed_once", False):
                self.failed_once = True
                raise TransientProviderError("connection reset after the write")

    class Inv:
        state_dir = tmp_path
        name = "t"

    import io

    # no servers: the resource above is all it touches, and its clients are made only when asked for
    ctx = RunContext(Inv(), state=FileState(tmp_path, "t"))  # type: ignore[arg-type]
    journal = Journal(tmp_path / "journal.jsonl")
    recap = Recap(inventory="t", phase=1, run_id="r", kind="deploy")
    log = ChangeLog(journal, "r")
    output = Output(io.StringIO())
    report(ctx, converge_item(ctx, Item("db", "step", Flaky("x", {"value": 2})), log, output), recap, output)
    applied = log.applied
    assert world["value"] == 2
    assert recap.counts["db"]["changed"] == 1 and recap.retries == 1
    assert recap.changes[0]["actions"][0]["after"] == 2
    assert [c["undo"]["converge_to"] for c in applied] == [{"value": 1}]
