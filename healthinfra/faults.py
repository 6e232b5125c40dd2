"""Which provider faults are transient, and the bounded retry around them.

Throttling, 5xx, dropped connections and a database that is restarting are
retried with exponential backoff, within a bound; anything else (access denied,
a bad SQL statement) fails at once with its cause. Providers' exceptions are
translated here into `TransientProviderError` or `ProviderError`, so the engine
needs to know nothing about psycopg or botocore.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC
from typing import TypeVar

from .errors import HealthInfraError, LockWaitTimeout, ProviderError, TransientProviderError

T = TypeVar("T")

AWS_TRANSIENT_CODES = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "SlowDown",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
}
AWS_CONNECTION_ERRORS = {
    "EndpointConnectionError",
    "ConnectionClosedError",
    "ReadTimeoutError",
    "ConnectTimeoutError",
    "ProtocolError",
    "ConnectionError",
    "ResponseParserError",  # a non-AWS body, e.g. a load balancer's plain 503: botocore says retry
}
HTTPX_TRANSIENT = {
    "ConnectError",
    "ReadError",
    "WriteError",
    "RemoteProtocolError",
    "NetworkError",
    "PoolTimeout",
    "ConnectTimeout",
    "ReadTimeout",
    "WriteTimeout",
    "TimeoutException",
    "CloseError",
}
# SQLSTATE classes/codes meaning "try again": connection exceptions, server shutting
# down or starting, serialization failures, deadlocks, too many connections.
PG_TRANSIENT_PREFIXES = ("08", "57P", "40001", "40P01", "53300")
PG_LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout reached (LockWaitTimeout)
PG_QUERY_CANCELED = "57014"  # statement_timeout reached (or a cancel request)

PG_PERMANENT_CONNECT_ERRORS = (
    "password authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
    "SSL is required",
    "server does not support SSL",
    "permission denied",
    "is not permitted to log in",
)

MAX_ATTEMPTS = 5
MAX_SECONDS = 60
BACKOFF_SECONDS = 0.2  # first wait; doubles per attempt, at most 5 s
RETRY_AFTER_CAP_SECONDS = 30  # a server's Retry-After is honoured up to this, never beyond the bound


def classify(exc: BaseException, what: str) -> HealthInfraError:
    """Translate a provider exception into the runner's tree, keeping its cause."""
    if isinstance(exc, HealthInfraError):
        return exc
    module = type(exc).__module__ or ""
    if module.startswith("psycopg"):
        sqlstate = getattr(exc, "sqlstate", None)
        message = _first_line(str(exc))
        if sqlstate is None and type(exc).__name__ in ("OperationalError", "InterfaceError"):
            # libpq reports a refused login without a SQLSTATE: read its words
            if any(marker in str(exc) for marker in PG_PERMANENT_CONNECT_ERRORS):
                return ProviderError(f"{what}: PostgreSQL refused the connection: {_last_line(str(exc))}")
            return TransientProviderError(f"{what}: PostgreSQL unreachable: {message}")
        from .lock_waits import NOTHING_APPLIED

        applied = getattr(exc, "applied", None) or NOTHING_APPLIED  # set by a no-transaction migration
        if sqlstate == PG_LOCK_NOT_AVAILABLE:  # lock_timeout: retried with its own bound, naming the holder
            from .lock_waits import timeout_message

            blocked, retry_for = getattr(exc, "blocked", None), float(getattr(exc, "retry_for", 0.0))
            bound = getattr(exc, "lock_timeout", "lock_timeout")
            return LockWaitTimeout(
                timeout_message(what, blocked, bound, retry_for, applied=applied),
                blocked=blocked,
                retry_for=retry_for,
                journal_message=timeout_message(what, blocked, bound, retry_for, with_queries=False, applied=applied),
            )
        if sqlstate == PG_QUERY_CANCELED and "statement timeout" in message:
            return ProviderError(
                f"{what}: PostgreSQL cancelled the statement after database.statement_timeout; {applied}."
                " Make the migration faster (batches, an index built concurrently) or raise"
                " `database.statement_timeout` in the inventory"
            )
        if sqlstate and sqlstate.startswith(PG_TRANSIENT_PREFIXES):
            return TransientProviderError(f"{what}: PostgreSQL {sqlstate}: {message}")
        return ProviderError(f"{what}: PostgreSQL {sqlstate or ''} {message}".replace("  ", " "))
    if module.startswith(("botocore", "boto3", "urllib3")):
        response = getattr(exc, "response", None) or {}
        code = response.get("Error", {}).get("Code", "")
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        message = response.get("Error", {}).get("Message", "") or _first_line(str(exc))
        dropped = not response and type(exc).__name__ in AWS_CONNECTION_ERRORS
        if code in AWS_TRANSIENT_CODES or status >= 500 or status == 429 or dropped:
            return TransientProviderError(f"{what}: AWS {code or type(exc).__name__}: {message}")
        return ProviderError(f"{what}: AWS {code}: {message}")
    if module.startswith(("httpx", "httpcore")):
        # the request may or may not have reached the server; the runner re-reads before any retry
        transport = type(exc).__name__ in HTTPX_TRANSIENT or "Timeout" in type(exc).__name__
        kind = TransientProviderError if transport else ProviderError
        return kind(f"{what}: HTTP {type(exc).__name__}: {_first_line(str(exc))}")
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return TransientProviderError(f"{what}: {type(exc).__name__}: {exc}")
    return ProviderError(f"{what}: {type(exc).__name__}: {_first_line(str(exc))}")


@contextlib.contextmanager
def provider_call(what: str):
    """Run provider I/O, translating whatever it raises."""
    try:
        yield
    except HealthInfraError:
        raise
    except Exception as exc:  # translated, with the cause kept for debugging
        raise classify(exc, what) from exc


def retry_after_seconds(header: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    from datetime import datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def with_retries(
    fn: Callable[[], T],
    on_retry: Callable[[BaseException, int], None] | None = None,
    attempts: int | None = None,
    retry_on: type[BaseException] = TransientProviderError,
) -> T:
    """Call `fn`, retrying `retry_on` (by default every `TransientProviderError`) with backoff,
    within a bound. An error that carries `retry_after` (seconds, from a server's Retry-After
    header) waits at least that long, up to RETRY_AFTER_CAP_SECONDS."""
    from tenacity import Retrying, retry_if_exception, wait_exponential

    from .lock_waits import backoff_seconds

    backoff = wait_exponential(multiplier=BACKOFF_SECONDS, max=5)
    most = attempts or MAX_ATTEMPTS

    def wait(state) -> float:
        exc = state.outcome.exception()
        if isinstance(exc, LockWaitTimeout):  # jittered, so the services get the table between tries
            return backoff_seconds(state.attempt_number)
        asked = getattr(exc, "retry_after", None) or 0
        return max(backoff(state), min(float(asked), RETRY_AFTER_CAP_SECONDS))

    def stop(state) -> bool:
        exc = state.outcome.exception()
        if isinstance(exc, LockWaitTimeout):  # tried again until database.lock_retry_seconds have passed
            return state.seconds_since_start >= exc.retry_for
        return state.attempt_number >= most or state.seconds_since_start >= MAX_SECONDS

    def before_sleep(state) -> None:
        if on_retry is not None:
            on_retry(state.outcome.exception(), state.attempt_number)

    retrying = Retrying(
        retry=retry_if_exception(lambda exc: isinstance(exc, retry_on) and not getattr(exc, "exhausted", False)),
        stop=stop,
        wait=wait,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(fn)


def retried_call(what: str, fn: Callable[[], T], answers: Callable[[BaseException], bool] = lambda exc: False) -> T:
    """`fn()` with whatever it raises translated and transient faults retried, within the bound.
    An error `answers` says is an answer the caller expects (a 412, a 404) is handed back untouched."""

    def attempt() -> T:
        try:
            return fn()
        except Exception as exc:
            if answers(exc):
                raise
            with provider_call(what):
                raise

    return with_retries(attempt)


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[-1].strip()


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0]
