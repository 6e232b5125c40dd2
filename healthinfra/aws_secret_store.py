"""The AWS Secrets Manager secrets backend: every generated password under `{prefix}/{env}/NAME`.

Encrypted with the environment's state key (`alias/{prefix}-{env}-state`, made by
`invoke state.init`), shared by every checkout: a fresh checkout finds the passwords the
team's runs made, and never needs a local copy. Values are wrapped in `Secret` the moment
they are read. Creating a name is serialised per name within a process; two processes (or
checkouts) creating one name at once both end with the one that won (`create_secret` refuses
the second with ResourceExistsException; it reads the first's value and never uses its own).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from . import names
from .faults import retried_call
from .secret_store import Secret, generate_password, name_lock

if TYPE_CHECKING:
    from .inventory import Inventory


class SecretsManagerStore:
    def __init__(self, inventory: Inventory, clients: Any = None):
        from .providers.aws import AwsClients

        self._clients = clients or AwsClients(inventory)
        self._prefix = names.secret_prefix(inventory)
        self._key = names.state_key_alias(inventory)
        self.location = f"AWS Secrets Manager {self._prefix}"
        self._lock = threading.RLock()

    @property
    def _sm(self):
        return self._clients.client("secretsmanager")

    def _call(self, what: str, fn, *absent: str) -> Any:
        """`fn()`, retried on transient faults; the error codes `absent` mean None."""

        def is_absent(exc: BaseException) -> bool:
            return (getattr(exc, "response", None) or {}).get("Error", {}).get("Code") in absent

        try:
            return retried_call(f"{what} in {self.location}", fn, is_absent)
        except Exception as exc:
            if is_absent(exc):
                return None
            raise

    def _id(self, name: str) -> str:
        return f"{self._prefix}{name}"

    def get(self, name: str) -> Secret | None:
        answer = self._call(
            f"read secret `{name}`",
            lambda: self._sm.get_secret_value(SecretId=self._id(name)),
            "ResourceNotFoundException",
        )
        return Secret(answer["SecretString"]) if answer else None

    def get_or_create(self, name: str) -> Secret:
        """The secret `name`, created once. Within this process one thread per name creates it;
        across processes (or checkouts) CreateSecret decides: the loser's ResourceExistsException
        means another run's value is stored, and that one is read and returned, never ours."""
        existing = self.get(name)
        if existing is not None:
            return existing
        with name_lock(self.location, name):
            existing = self.get(name)  # another thread of this process may have made it meanwhile
            if existing is not None:
                return existing
            created = generate_password()
            made = self._create(name, created)
            return created if made else self._winner(name)

    def _create(self, name: str, value: Secret) -> bool:
        """CreateSecret; False when the name exists already (another creator won, or an attempt
        of ours whose answer was lost: reading it back tells them apart)."""
        made = self._call(
            f"create secret `{name}`",
            lambda: self._sm.create_secret(
                Name=self._id(name), SecretString=value.reveal(), KmsKeyId=self._key, Description=DESCRIPTION
            ),
            "ResourceExistsException",
        )
        return made is not None

    def _winner(self, name: str) -> Secret:
        """The value someone else created (read back, allowing for Secrets Manager's brief
        delay before a new secret's value can be read)."""
        import time

        for wait in WINNER_READ_WAITS:
            won = self.get(name)
            if won is not None:
                return won
            time.sleep(wait)
        from .errors import ProviderError

        raise ProviderError(
            f"secret `{name}` exists in {self.location} (another run created it) but has no value to read;"
            " run again, or look at it in the AWS console"
        )

    def put(self, name: str, value: Secret) -> None:
        with self._lock:
            for _ in range(2):
                updated = self._call(
                    f"write secret `{name}`",
                    lambda: self._sm.put_secret_value(SecretId=self._id(name), SecretString=value.reveal()),
                    "ResourceNotFoundException",
                )
                if updated is not None or self._create(name, value):
                    return
            # created by someone else between our two calls, twice: this write stands or fails loudly
            self._call(
                f"write secret `{name}`",
                lambda: self._sm.put_secret_value(SecretId=self._id(name), SecretString=value.reveal()),
            )

    def delete(self, name: str) -> None:
        """At once, without a recovery window: the name is free for the next deploy to use."""
        with self._lock:
            self._call(
                f"delete secret `{name}`",
                lambda: self._sm.delete_secret(SecretId=self._id(name), ForceDeleteWithoutRecovery=True),
                "ResourceNotFoundException",
            )

    def names(self) -> list[str]:
        found: list[str] = []
        arguments: dict[str, Any] = {"Filters": [{"Key": "name", "Values": [self._prefix]}]}
        while True:
            page = self._call("list secrets", lambda: self._sm.list_secrets(**arguments))
            found.extend(
                s["Name"][len(self._prefix) :] for s in page["SecretList"] if s["Name"].startswith(self._prefix)
            )
            if not page.get("NextToken"):
                return sorted(found)
            arguments["NextToken"] = page["NextToken"]


WINNER_READ_WAITS = (0.2, 0.5, 1.0, 2.0, 0.0)  # seconds between reads of a secret another run created
DESCRIPTION = "generated by healthcare-infra; read by the environment's runs, never printed"
