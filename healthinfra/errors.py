"""One exception tree for the whole runner.

Every error a user can meet is a `HealthInfraError` carrying the exit code the
command line should end with; its message is one line that names the thing at
fault and the fix. Subclasses also inherit the matching builtin where it fits.
"""


class HealthInfraError(Exception):
    """Base of every error the runner raises on purpose."""

    exit_code = 1


class InventoryError(HealthInfraError, ValueError):
    """A bad inventory, phase or argument: rejected before any provider is called."""

    exit_code = 2


class UsageError(HealthInfraError, ValueError):
    """A bad command-line argument that is not part of an inventory."""

    exit_code = 2


class ProtectedInventory(HealthInfraError, PermissionError):
    """A destructive command was refused on a protected inventory (prod)."""

    exit_code = 2


class LockHeld(HealthInfraError):
    """Another live run holds this environment's lock."""

    exit_code = 3


class ProviderError(HealthInfraError):
    """A provider (PostgreSQL, AWS, …) refused or failed a request for good."""


class TransientProviderError(ProviderError):
    """A provider fault worth retrying: throttling, 5xx, a dropped connection. `retry_after`
    is the wait the provider asked for (HTTP Retry-After), in seconds, when it said one."""

    def __init__(self, message: str = "", *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.exhausted = False  # already retried to the bound where it happened: not again


class LockWaitTimeout(TransientProviderError):
    """A DDL statement waited `database.lock_timeout` for a table lock and gave up (PostgreSQL
    55P03), its transaction rolled back. Retried, the whole change again, until `retry_for`
    seconds (`database.lock_retry_seconds`) have passed. `blocked` names who held the lock."""

    def __init__(self, message: str = "", *, blocked=None, retry_for: float = 0.0, journal_message: str = ""):
        super().__init__(message)
        self.blocked = blocked  # lock_waits.Blocked, or None when the holder could not be named
        self.retry_for = retry_for
        self.journal_message = journal_message or message  # without the blockers' queries


class DataLossRefused(HealthInfraError):
    """A change would delete data (rows, objects) and `--destroy-data` was not given."""


class MigrationChanged(ProviderError):
    """An applied migration's file changed afterwards: write a new migration instead."""


class LocalServiceError(HealthInfraError):
    """An embedded local service (PostgreSQL, moto) could not be started or reached."""


class StalePlan(HealthInfraError):
    """A saved plan's facts no longer hold: someone or something changed the environment since."""


class NothingToRollBack(HealthInfraError):
    """The journal has no run that can be rolled back."""


class JournalWriteError(HealthInfraError, OSError):
    """The journal could not record an event whole: the change it announced is not applied."""


class LeaseLost(LockHeld):
    """The run's lease on the environment's lock ran out and another run took the lock over:
    it stops before its next change."""
