"""Real OpenSSH servers on 127.0.0.1 that play the AI hosts in tests.

Each has its own host key, port and log, and accepts one generated client key for
root (the runner logs in as root here; real inventories may use a sudoer). The
sftp subsystem logs every file it opens at INFO, so a test counts uploads from the
server's side. `.ci/run` installs Debian's openssh-server.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hc-tests", "-f", str(path)], check=True)


class SshServer:
    def __init__(self, directory: Path, port: int, client_public_key: str):
        if not os.path.exists(SSHD):
            raise RuntimeError("sshd is not installed: `apt-get install openssh-server` (.ci/run does it)")
        self.directory, self.port = directory, port
        directory.mkdir(parents=True, exist_ok=True)
        keygen(directory / "host_ed25519")
        (directory / "authorized_keys").write_text(client_public_key)
        os.chmod(directory / "authorized_keys", 0o600)
        self.log = directory / "sshd.log"
        self.sftp_log = directory / "sftp.log"
        sftp = directory / "sftp-logged"  # sftp-server logging each file it opens, to a file of its own
        sftp.write_text(f"#!/bin/sh\nexec {SFTP_SERVER} -e -l INFO 2>>{self.sftp_log}\n")
        os.chmod(sftp, 0o755)
        self.config = directory / "sshd_config"
        self.config.write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {directory / 'host_ed25519'}\n"
            f"PidFile {directory / 'sshd.pid'}\nAuthorizedKeysFile {directory / 'authorized_keys'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nLogLevel VERBOSE\n"
            f"Subsystem sftp {sftp}\n"
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        self.process = None

    @property
    def known_hosts_line(self) -> str:
        kind, key = (self.directory / "host_ed25519.pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {key}\n"

    def start(self) -> None:
        self.process = subprocess.Popen([SSHD, "-D", "-f", str(self.config), "-E", str(self.log)])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd on port {self.port} exited: {self.log.read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not listen on {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def uploads(self) -> list[str]:
        """Paths the sftp server opened for writing, in order, as its log says."""
        found = []
        if not self.sftp_log.exists():
            return []
        for line in self.sftp_log.read_text(errors="replace").splitlines():
            match = re.search(r'open "(.*)" flags (\S+)', line)
            if match and "WRITE" in match.group(2):
                found.append(match.group(1))
        return found
