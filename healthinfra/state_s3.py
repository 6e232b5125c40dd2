"""The S3 state backend: an environment's journal, lock and run state in its own state bucket.

For a team: every checkout reads and writes the same history, under one lock.

- **The journal** is one object per event, `PREFIX/journal/000000000042.json`, written with
  `If-None-Match: *`: a key is written once, by one writer; the loser of a race gets 412,
  learns the newest key and takes the next one. An S3 PUT is durable when it returns, so an
  event is recorded before the change it announces is applied; a kill leaves whole objects
  only. Reading lists the keys in order and fetches the events (concurrently).
- **The lock** is `PREFIX/lock.json`: its id, the holder (user@host, pid), the command, when
  it was taken and when its lease ends, taken with `If-None-Match: *`. The holder renews the
  lease (`If-Match` the object it wrote) every third of it; a lock whose lease ended is taken
  over with `If-Match` the expired object, so two takers cannot both win. A holder whose
  renewal finds another lock there has lost it: its next journal write refuses (LeaseLost),
  so it stops before its next change. Released by deleting with `If-Match` (only our own).
- **Run state** documents are `PREFIX/state/NAME.json`, read-modify-written with `If-Match`.

Throttling, 5xx and dropped connections are retried like any provider call (faults.py).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .errors import LeaseLost, LockHeld, UsageError
from .faults import retried_call
from .journal import Event, Journal, now_iso, run_identity

if TYPE_CHECKING:
    from .inventory import Inventory
    from .state import Secrets

READ_WORKERS = 16


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")) or str(
        response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
    )


def _precondition_failed(exc: BaseException) -> bool:
    return _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")


def _missing(exc: BaseException) -> bool:
    return _code(exc) in ("NoSuchKey", "404", "NotFound")


class StateBucket:
    """The bucket and prefix of one environment's state, with retried, translated calls."""

    def __init__(self, inventory: Inventory, clients: Any = None):
        from .providers.aws import AwsClients

        self.bucket = inventory.state_backend["bucket"]
        self.prefix = inventory.state_backend["prefix"]
        self._clients = clients or AwsClients(inventory)
        self.location = f"s3://{self.bucket}/{self.prefix}"

    @property
    def s3(self):
        return self._clients.client("s3")

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        """`fn()` with transient faults retried; a ClientError the caller handles (412, 404) is
        handed back as it is, everything else translated."""
        return retried_call(f"{what} ({self.location})", fn, lambda exc: _precondition_failed(exc) or _missing(exc))

    def get(self, key: str) -> tuple[dict[str, Any], str] | None:
        """A JSON object and its ETag, or None when absent."""
        from botocore.exceptions import ClientError

        try:
            answer = self.call(f"read {key}", lambda: self.s3.get_object(Bucket=self.bucket, Key=self.prefix + key))
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return json.loads(answer["Body"].read()), answer["ETag"]

    def put(self, key: str, document: Any, *, if_match: str | None = None, if_none_match: bool = False) -> str | None:
        """Write a JSON object conditionally: its new ETag, or None when the condition failed."""
        from botocore.exceptions import ClientError

        conditions: dict[str, str] = {}
        if if_match:
            conditions["IfMatch"] = if_match
        if if_none_match:
            conditions["IfNoneMatch"] = "*"
        body = json.dumps(document, sort_keys=True, default=str).encode()
        try:
            answer = self.call(
                f"write {key}",
                lambda: self.s3.put_object(
                    Bucket=self.bucket, Key=self.prefix + key, Body=body, ContentType="application/json", **conditions
                ),
            )
        except ClientError as exc:
            if _precondition_failed(exc) or (if_match and _missing(exc)):
                return None
            raise
        return answer["ETag"]

    def delete(self, key: str, *, if_match: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.call(
                f"delete {key}",
                lambda: self.s3.delete_object(Bucket=self.bucket, Key=self.prefix + key, IfMatch=if_match),
            )
        except ClientError as exc:
            if _precondition_failed(exc) or _missing(exc):
                return False
            raise
        return True

    def keys(self, under: str, start_after: str = "") -> list[str]:
        """Every key under `under` (relative to the prefix), in order, after `start_after`."""
        found: list[str] = []
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + under}
        if start_after:
            arguments["StartAfter"] = self.prefix + start_after
        while True:
            page = self.call(f"list {under}", lambda: self.s3.list_objects_v2(**arguments))
            found.extend(item["Key"][len(self.prefix) :] for item in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return found
            arguments["ContinuationToken"] = page["NextContinuationToken"]


class S3Journal:
    """The journal as one object per event, each key written once (If-None-Match)."""

    def __init__(self, bucket: StateBucket, before_write: Callable[[], None]):
        self.bucket = bucket
        self.location = f"{bucket.location}journal/"
        self._before_write = before_write  # refuses when the run has lost its lock
        self._last: str | None = None  # the newest key this journal has seen

    def _newest(self) -> str:
        keys = self.bucket.keys("journal/", start_after=self._last or "")
        if keys:
            self._last = keys[-1]
        return self._last or ""

    def append(self, event: Event) -> None:
        self._before_write()
        while True:
            newest = self._newest() if self._last is None else self._last
            number = int(newest.rsplit("/", 1)[-1].split(".")[0]) + 1 if newest else 1
            key = f"journal/{number:012d}.json"
            if self.bucket.put(key, event, if_none_match=True) is not None or self._is(key, event):
                self._last = key  # written (or written by an attempt whose answer was lost, then retried)
                return
            self._newest()  # another writer took that key: learn the newest and take the next

    def _is(self, key: str, event: Event) -> bool:
        found = self.bucket.get(key)
        return found is not None and _same(found[0], event)

    def events(self) -> Iterator[Event]:
        keys = self.bucket.keys("journal/")
        if keys:
            self._last = keys[-1]

        def fetch(key: str) -> Event | None:
            found = self.bucket.get(key)
            return found[0] if found else None

        with ThreadPoolExecutor(max_workers=READ_WORKERS) as pool:
            for event in pool.map(fetch, keys):
                if event is not None:
                    yield event


class LeaseLock:
    """The environment's lock: an object with a lease, renewed by its holder while it runs."""

    KEY = "lock.json"

    def __init__(self, bucket: StateBucket, inventory_name: str, command: str, lease_seconds: int):
        self.bucket = bucket
        self.inventory_name = inventory_name
        self.command = command
        self.lease_seconds = lease_seconds
        self.id = uuid.uuid4().hex[:12]
        self._etag: str | None = None
        self._lost = False
        self._expires = 0.0  # time.monotonic() by which the lease must have been renewed
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _document(self) -> dict[str, Any]:
        who = run_identity()
        expires = datetime.now(UTC) + timedelta(seconds=self.lease_seconds)
        return {
            "id": self.id,
            "holder": f"{who['user']}@{who['host']}",
            "pid": who["pid"],
            "command": self.command,
            "since": getattr(self, "_since", None) or now_iso(),
            "lease_expires": expires.isoformat(timespec="seconds"),
        }

    def acquire(self) -> LeaseLock:
        self._since = now_iso()
        while True:
            etag = self.bucket.put(self.KEY, self._document(), if_none_match=True)
            if etag is None:
                found = self.bucket.get(self.KEY)
                if found is None:
                    continue  # released meanwhile: try again
                holder, held_etag = found
                if holder.get("id") == self.id:
                    etag = held_etag  # ours: an attempt whose answer was lost, then retried
                elif not _expired(holder):
                    raise LockHeld(
                        f"{self.bucket.location}{self.KEY}: environment `{self.inventory_name}` is locked by"
                        f" {holder.get('holder', '?')} (pid {holder.get('pid', '?')}, `{holder.get('command', '?')}`,"
                        f" since {holder.get('since', '?')}), lock id {holder.get('id', '?')}, its lease ends"
                        f" {holder.get('lease_expires', '?')}; wait for it, or, if nobody holds it any more,"
                        f" `invoke state.unlock -i {self.inventory_name} --id {holder.get('id', '?')}`;"
                        " nothing was changed"
                    )
                else:
                    etag = self.bucket.put(self.KEY, self._document(), if_match=held_etag)  # take over an expired one
                    if etag is None:
                        continue  # someone else took it over first: look again
            self._etag = etag
            self._expires = time.monotonic() + self.lease_seconds
            self._renewer = threading.Thread(target=self._renew, name=f"lease {self.id}", daemon=True)
            self._renewer.start()
            return self

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                etag = self.bucket.put(self.KEY, self._document(), if_match=self._etag)
            except Exception:  # noqa: S110 - a renewal that failed is tried again; the lease says how long
                continue
            if etag is None:
                found = self.bucket.get(self.KEY)
                if found is not None and found[0].get("id") == self.id:
                    etag = found[1]  # our own renewal, its answer lost: still ours
                else:  # another run took the lock over, or removed it: ours is gone
                    self._lost = True
                    return
            self._etag = etag
            self._expires = time.monotonic() + self.lease_seconds

    def check(self) -> None:
        """Refuse (LeaseLost, exit 3) once the lock is no longer ours, before any further write."""
        if self._etag is None:
            return
        if self._lost or time.monotonic() > self._expires:
            raise LeaseLost(
                f"{self.bucket.location}{self.KEY}: this run's lease on `{self.inventory_name}` ended"
                f" (lock id {self.id}) and another run may hold the lock now; this run stopped before its next"
                " change: see `invoke history`, then run again"
            )

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        if self._etag is not None and not self._lost:
            self.bucket.delete(self.KEY, if_match=self._etag)
        self._etag = None

    def __enter__(self) -> LeaseLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _same(stored: Any, event: Event) -> bool:
    return json.dumps(stored, sort_keys=True, default=str) == json.dumps(
        json.loads(json.dumps(event, default=str)), sort_keys=True, default=str
    )


def _expired(holder: dict[str, Any]) -> bool:
    try:
        return datetime.fromisoformat(holder["lease_expires"]) <= datetime.now(UTC)
    except (KeyError, TypeError, ValueError):
        return True  # not a lock this version wrote: treat as stale, take it over conditionally


class S3State:
    """Journal, lock and run state in the state bucket; secrets where `secrets:` says."""

    def __init__(self, inventory: Inventory, secrets: Callable[[], Secrets] | None = None, aws: Any = None):
        self.inventory = inventory
        self.bucket = StateBucket(inventory, aws)
        self.aws_clients = self.bucket._clients  # shared with the run
        self.location = self.bucket.location
        self._secrets = secrets
        self._locks: list[LeaseLock] = []

    def journal(self) -> Journal:
        return Journal(S3Journal(self.bucket, self._check_leases))

    def _check_leases(self) -> None:
        for lock in self._locks:
            lock.check()

    def lock(self, command: str) -> LeaseLock:
        lock = LeaseLock(self.bucket, self.inventory.name, command, self.inventory.state_backend["lease_seconds"])
        self._locks.append(lock)
        return lock

    def unlock(self, lock_id: str) -> dict[str, Any]:
        """Force-unlock: remove the lock if, and only if, it has this id. Returns what was removed."""
        found = self.bucket.get(LeaseLock.KEY)
        if found is None:
            raise UsageError(f"--id: `{self.inventory.name}` is not locked ({self.location}{LeaseLock.KEY} is absent)")
        holder, etag = found
        if holder.get("id") != lock_id:
            raise UsageError(
                f"--id: the lock of `{self.inventory.name}` has id `{holder.get('id')}` (held by"
                f" {holder.get('holder')}, `{holder.get('command')}`), not `{lock_id}`; nothing was removed"
            )
        if not self.bucket.delete(LeaseLock.KEY, if_match=etag):
            raise UsageError(
                f"--id: the lock of `{self.inventory.name}` changed while it was being removed; look again"
            )
        return holder

    def secrets(self) -> Secrets:
        if self._secrets is None:
            from .secret_store import SecretStore

            return SecretStore(self.inventory.state_dir / "secrets.json")
        return self._secrets()

    def read_document(self, name: str) -> dict[str, Any] | None:
        found = self.bucket.get(f"state/{name}.json")
        return found[0] if found and isinstance(found[0], dict) else None

    def write_document(self, name: str, document: dict[str, Any]) -> None:
        self.update_document(name, lambda _: document)

    def update_document(self, name: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        key = f"state/{name}.json"
        while True:  # read, change, write only if nobody wrote in between
            found = self.bucket.get(key)
            if found is None:
                if self.bucket.put(key, change({}), if_none_match=True) is not None:
                    return
            elif self.bucket.put(key, change(dict(found[0])), if_match=found[1]) is not None:
                return
