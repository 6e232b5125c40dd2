"""SSH to the hosts a service runs on, with Fabric: one connection per host per run.

Host keys are checked against the inventory's `known_hosts` file and an unknown
key is refused (never trusted on first use): these hosts receive a database
password. Commands run as root, through `sudo -n` when the login user is not
root. Every failure names the host, where it is, and what to check. fabric (and
paramiko under it) is imported here, inside functions, so `invoke --list` never
pays for it.
"""

from __future__ import annotations

import io
import os
import shlex
import threading
from typing import TYPE_CHECKING, Any

from ..errors import ProviderError, TransientProviderError

if TYPE_CHECKING:
    from ..inventory import Host


class HostUnreachable(ProviderError):
    """The host could not be reached or refused us: it fails alone, the others go on."""


class HostCommandFailed(ProviderError):
    """A command on the host ended with a non-zero status."""


def _where(host: Host) -> str:
    return f"host {host.name} ({host.user}@{host.address}:{host.port})"


class HostConnections:
    """Fabric connections of one run, opened on first use and closed with the run."""

    def __init__(self):
        self._open: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.uploads = 0  # files sent to hosts in this run

    def get(self, host: Host):
        with self._lock:
            conn = self._open.get(host.name)
        if conn is not None and conn.is_connected:
            return conn
        conn = self._connect(host)
        with self._lock:
            self._open[host.name] = conn
        return conn

    def _connect(self, host: Host):
        import paramiko
        from fabric import Connection

        key_file = os.path.expanduser(host.key_file)
        known_hosts = os.path.expanduser(host.known_hosts)
        if not os.path.isfile(known_hosts):
            raise HostUnreachable(
                f"{_where(host)}: known_hosts file {known_hosts} does not exist; add the host's key to it"
                f" (after checking its fingerprint), or set `known_hosts:` for this host in the inventory"
            )
        conn = Connection(
            host.address,
            user=host.user,
            port=host.port,
            connect_timeout=10,
            connect_kwargs={"key_filename": key_file, "look_for_keys": False, "allow_agent": False},
        )
        conn.client.load_host_keys(known_hosts)
        conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            conn.open()
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc) or isinstance(exc, paramiko.BadHostKeyException):
                raise HostUnreachable(
                    f"{_where(host)}: its host key is not the one in {known_hosts} ({exc}); check the"
                    f" fingerprint, then update the file"
                ) from None
            raise HostUnreachable(
                f"{_where(host)}: SSH refused: {exc}; check the user and `key_file` {key_file}"
            ) from None
        except FileNotFoundError:
            raise HostUnreachable(f"{_where(host)}: key file {key_file} does not exist; fix `key_file`") from None
        except OSError as exc:
            raise HostUnreachable(
                f"{_where(host)}: unreachable: {exc.strerror or exc}; check that the host is up, sshd listens"
                f" there, and its `address`/`port` in the inventory"
            ) from None
        return conn

    def run(self, host: Host, command: str, *, check: bool = True) -> tuple[int, str, str]:
        """Run a shell command as root on the host: (exit status, stdout, stderr)."""
        conn = self.get(host)
        if host.user != "root":
            command = "sudo -n sh -c " + shlex.quote(command)
        try:
            result = conn.run(command, hide=True, warn=True, in_stream=False, pty=False)
        except (EOFError, OSError) as exc:
            self.drop(host)
            raise TransientProviderError(f"{_where(host)}: the connection dropped: {exc}") from None
        if check and result.exited != 0:
            raise HostCommandFailed(
                f"{_where(host)}: `{command.splitlines()[0][:80]}` failed (exit {result.exited}):"
                f" {(result.stderr or result.stdout).strip()[-300:]}"
            )
        return result.exited, result.stdout, result.stderr

    def upload(self, host: Host, data: bytes, remote_path: str) -> None:
        """Write `data` to remote_path over SFTP (as the login user; callers move it into place as root)."""
        conn = self.get(host)
        conn.put(io.BytesIO(data), remote=remote_path)
        with self._lock:
            self.uploads += 1

    def upload_file(self, host: Host, local_path: str, remote_path: str) -> None:
        conn = self.get(host)
        conn.put(local_path, remote=remote_path)
        with self._lock:
            self.uploads += 1

    def drop(self, host: Host) -> None:
        with self._lock:
            conn = self._open.pop(host.name, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        with self._lock:
            conns, self._open = list(self._open.values()), {}
        for conn in conns:
            conn.close()
