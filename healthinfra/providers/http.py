"""One retry path for the HTTP API clients (Neon's, Railway's): what an answer means, and who retries.

A request is repeated inside the client only when that cannot do anything twice: the
server said it did not carry the request out (the API's own list, e.g. 429, or Neon's 423
and 503), or the request only reads (a GET, a GraphQL query) and failed on the way or with
a 5xx. Such a fault is a `Repeatable`, retried here by `send` within faults.py's bound,
honouring the server's Retry-After. Any other transient fault (a mutation whose answer was
lost) goes up as a plain `TransientProviderError`, so the engine re-reads and re-diffs
before it tries again: a retried create never duplicates.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import TypeVar

from ..errors import TransientProviderError
from ..faults import retry_after_seconds, with_retries
from .base import RetryHook

T = TypeVar("T")


class Repeatable(TransientProviderError):
    """A fault after which the client itself sends the same request again."""


def fault_for_status(
    text: str,
    status: int,
    headers: Mapping[str, str],
    *,
    reads_only: bool,
    not_carried_out: Collection[int],
    kind: type[TransientProviderError] = TransientProviderError,
    repeatable: type[TransientProviderError] = Repeatable,
) -> TransientProviderError | None:
    """The transient fault an HTTP status means, or None for a plain error (the caller's to report)."""
    retry_after = retry_after_seconds(headers.get("Retry-After") or headers.get("retry-after"))
    if status in not_carried_out or (reads_only and status >= 500):
        return repeatable(text, retry_after=retry_after)
    if status >= 500 or status == 429:
        return kind(text, retry_after=retry_after)
    return None


def fault_for_transport(
    text: str,
    *,
    reads_only: bool,
    kind: type[TransientProviderError] = TransientProviderError,
    repeatable: type[TransientProviderError] = Repeatable,
) -> TransientProviderError:
    """A request that failed on the way (refused, reset, timed out): repeatable if it only reads."""
    return repeatable(text) if reads_only else kind(text)


def send(attempt: Callable[[], T], on_retry: RetryHook | None = None) -> T:
    """`attempt()`, repeated while it fails with a `Repeatable` fault, within the bound. A fault
    still there after the last attempt is marked `exhausted`: the engine does not retry it again
    (the bound is the bound, not the bound squared)."""
    try:
        return with_retries(attempt, on_retry, retry_on=Repeatable)
    except Repeatable as exc:
        exc.exhausted = True
        raise
