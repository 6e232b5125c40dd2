"""The local admin is no way in: SCRAM everywhere, no `trust`, no superuser over the network,
and every connection over TCP verifies the server's certificate (verify-full).

What an attacker on the machine would try first, tried against the session's real server.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from healthinfra.providers.postgres import admin_conninfo, service_conninfo
from healthinfra.secret_store import SecretStore

from .support.environment import INVENTORY
from .support.invoking import run_invoke


def tcp(env, user: str, **extra) -> dict:
    return {"host": "127.0.0.1", "port": env.database["port"], "user": user, "dbname": "postgres", **extra}


def test_psql_as_postgres_over_tcp_without_its_password_is_refused(env):
    """The finding as it was confirmed: psql over TLS as `postgres`, no password, was superuser."""
    empty = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    result = subprocess.run(
        ["psql", f"host=127.0.0.1 port={env.database['port']} user=postgres dbname=healthcare sslmode=require"]
        + ["-tAc", "select usesuper from pg_user where usename = current_user"],
        env={**empty, "PGPASSFILE": "/dev/null"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0 and result.stdout.strip() != "t", result
    assert "may not connect over the network" in result.stderr, result.stderr


def test_the_admin_over_tcp_is_refused_even_with_its_password(env):
    password = Path(admin_conninfo(env)["passfile"]).read_text().strip().rsplit(":", 1)[-1]
    with pytest.raises(psycopg.OperationalError, match="may not connect over the network"):
        psycopg.connect(**tcp(env, "postgres", password=password, sslmode="require"), connect_timeout=5)


def test_any_superuser_over_tcp_is_refused_after_it_authenticates(env):
    with psycopg.connect(**admin_conninfo(env), autocommit=True) as conn:
        conn.execute("drop role if exists intruder")
        conn.execute("create role intruder login superuser password 'Intruder-pw-1'")
    try:
        with pytest.raises(psycopg.OperationalError, match="`intruder` is a superuser"):
            psycopg.connect(**tcp(env, "intruder", password="Intruder-pw-1", sslmode="require"), connect_timeout=5)
        with psycopg.connect(**admin_conninfo(env), autocommit=True) as conn:
            conn.execute("alter role intruder nosuperuser")
        with psycopg.connect(**tcp(env, "intruder", password="Intruder-pw-1", sslmode="require")) as conn:
            assert conn.execute("select current_user").fetchone()[0] == "intruder", "a plain role still connects"
    finally:
        with psycopg.connect(**admin_conninfo(env), autocommit=True) as conn:
            conn.execute("drop role if exists intruder")


def test_a_query_sent_before_authentication_finishes_never_reaches_the_server(env):
    """A client that pipelines a query behind its start-up message (hoping it runs once a
    password is accepted) is cut off: before the session is ready only authentication passes."""
    context = ssl.create_default_context(cafile=str(env.state_dir / "tls" / "server.crt"))
    with socket.create_connection(("127.0.0.1", env.database["port"]), timeout=10) as raw:
        raw.sendall(struct.pack("!II", 8, 80877103))
        assert raw.recv(1) == b"S"
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            params = b"user\0auth_svc\0database\0healthcare\0\0"
            tls.sendall(struct.pack("!II", 8 + len(params), 196608) + params)
            query = b"select pg_sleep(0)\0"
            tls.sendall(b"Q" + struct.pack("!I", 4 + len(query)) + query)
            answer = b""
            while chunk := tls.recv(4096):
                answer += chunk
    assert b"only authentication may come before the session is ready" in answer


def test_no_trust_rule_and_the_socket_needs_the_password_too(env):
    status = run_invoke("local.status", "-i", INVENTORY, "--json").json["postgres"]
    hba = (Path(status["data_dir"]) / "pg_hba.conf").read_text()
    rules = [line.split() for line in hba.splitlines() if line.strip() and not line.startswith("#")]
    assert rules and all(rule[-1] == "scram-sha-256" for rule in rules), hba
    socket_only = {k: v for k, v in admin_conninfo(env).items() if k != "passfile"}
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(**socket_only, passfile="/dev/null", connect_timeout=5)
    passfile = Path(admin_conninfo(env)["passfile"])
    assert oct(passfile.stat().st_mode & 0o777) == "0o600"
    secret = passfile.read_text().strip().rsplit(":", 1)[-1]
    assert len(secret) >= 32
    shown = run_invoke("local.status", "-i", INVENTORY, "--json")
    assert secret not in shown.out + shown.err and str(passfile) in status["admin_dsn"]


def test_every_connection_over_tcp_verifies_the_server(env, invoke, tmp_path):
    assert invoke("deploy", "-i", INVENTORY).code == 0
    password = SecretStore(env.state_dir / "secrets.json").get("pg.auth_svc")
    info = service_conninfo(env, "auth_svc", password)
    assert (info["sslmode"], info["sslrootcert"]) == ("verify-full", str(env.state_dir / "tls" / "server.crt"))
    with psycopg.connect(**info) as conn:
        assert conn.pgconn.ssl_in_use
    url = env.provider("database").role_url(env, "auth_svc", password).reveal()
    assert url.endswith(f"?sslmode=verify-full&sslrootcert={env.state_dir}/tls/server.crt")
    with psycopg.connect(url) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "auth_svc"

    # an on-path server with a certificate of its own (here: another self-signed one) is refused
    from healthinfra.local.tls import ensure_certificate

    other, _ = ensure_certificate(tmp_path / "other")
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(**{**info, "sslrootcert": str(other)}, connect_timeout=5)


def test_a_server_made_when_the_admin_was_trusted_gets_a_password_at_its_next_start(env):
    """Upgrading a laptop's server from before: its admin had no password and `trust` on the
    socket. The next `local.up` sets one, keeps it in the passfile, and drops the trust rule."""
    from healthinfra import commands

    passfile = Path(admin_conninfo(env)["passfile"])
    old = passfile.read_text()
    with psycopg.connect(**admin_conninfo(env), autocommit=True) as conn:
        conn.execute(sql.SQL("alter role postgres with password NULL"))
    with open(os.devnull, "w") as quiet:
        commands.local_down(INVENTORY, out=quiet)
        passfile.unlink()
        status = run_invoke("local.status", "-i", INVENTORY, "--json").json["postgres"]
        hba = Path(status["data_dir"]) / "pg_hba.conf"
        hba.write_text("local all postgres trust\nlocal all all scram-sha-256\n")  # as servers were made
        commands.local_up(INVENTORY, out=quiet)
    assert passfile.exists() and passfile.read_text() != old
    assert "trust" not in hba.read_text()
    with psycopg.connect(**admin_conninfo(env)) as conn:
        scram = "select rolpassword like 'SCRAM-SHA-256$%%' from pg_authid where rolname = 'postgres'"
        assert conn.execute(scram).fetchone()[0] is True
