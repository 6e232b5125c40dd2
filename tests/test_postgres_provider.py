"""The `postgres` provider: a PostgreSQL server of one's own (RDS, Aurora, Cloud SQL, a server of
the team's), reached by the URL of an admin role held in the environment variable the inventory
names (`database.admin_url_env`), every connection verifying the server (`sslmode=verify-full`).

Pure: the settings, the credential check (every refusal names the file, the key, the variable and
the fix, never the URL's password), the connection keywords and URLs made from the admin URL.
Real: the session's embedded PostgreSQL, reached only by its TCP/TLS front as a server of one's own
would be, with an admin role that is no superuser (LOGIN CREATEROLE CREATEDB): phases 1-4 build on
it, a second deploy changes nothing, the services log in with their DATABASE_URL over verified TLS,
a server whose certificate does not chain to `sslrootcert` is refused, cleanup-dev removes it all.
"""

from __future__ import annotations

import os
import shutil
import uuid

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from healthinfra.errors import InventoryError
from healthinfra.inventory import load_inventory
from healthinfra.providers import PROVIDERS
from healthinfra.providers.database import POSTGRES_KINDS
from healthinfra.secret_store import Secret

from .support.database import trusted_pg_stat_statements
from .support.environment import INVENTORY, REPO, aws_env, buckets
from .support.invoking import OUTPUTS

NAME = "plainpg"
VARIABLE = "PLAINPG_ADMIN_URL"
PASSWORD = "hunter2-Secret-value"  # in every URL of the pure tests: no message or repr may show it
ADMIN = "plainpg_admin"


def plain_inventory(**database) -> str:
    settings = {"name": "plaindb", "admin_url_env": VARIABLE, **database}
    lines = "".join(f"  {key}: {value}\n" for key, value in settings.items() if value is not None)
    return f"""description: a PostgreSQL server of the team's own
environment: plain
prefix: hc
phase: 1
protected: false
providers:
  database: postgres
  aws: aws
  hosting: local
database:
{lines}aws:
  region: us-east-1
  account_id: "123456789012"
"""


@pytest.fixture
def inventories(tmp_path):
    (tmp_path / "services.yml").write_text((REPO / "inventories" / "services.yml").read_text())
    (tmp_path / "data_types.yml").write_text((REPO / "inventories" / "data_types.yml").read_text())
    (tmp_path / f"{NAME}.yml").write_text(plain_inventory())
    return tmp_path


@pytest.fixture
def plain(inventories):
    return load_inventory(NAME, inventories)


# --- pure: the settings --------------------------------------------------------------------


def test_the_provider_is_registered_and_runs_nothing_here(plain):
    provider = plain.provider("database")
    assert type(provider) is PROVIDERS["database"]["postgres"]
    assert provider.schema == {
        "name": (str, True),
        "admin_url_env": (str, True),
        "lock_timeout": (str, False),
        "statement_timeout": (str, False),
        "lock_retry_seconds": (int, False),
    }
    assert provider.resource_kinds == POSTGRES_KINDS and not provider.offers("neon.branch")
    assert provider.local_service == "" and not plain.embedded
    assert plain.local_providers == []  # with `aws: aws`, nothing of this inventory runs on this machine
    assert provider.connect_timeout == 10
    assert provider.takes_password_verifier  # CREATE ROLE … PASSWORD 'SCRAM-SHA-256$…' (PostgreSQL ≥ 10, RDS)
    assert plain.database == {"name": "plaindb", "admin_url_env": VARIABLE}


def test_local_commands_refuse_an_inventory_with_no_local_server(inventories, monkeypatch):
    from healthinfra.commands.common import require_local_services
    from healthinfra.commands.local import local_up

    monkeypatch.setenv("HEALTHINFRA_INVENTORIES", str(inventories))
    with pytest.raises(InventoryError, match=r"none of this inventory's providers runs on this machine"):
        local_up(NAME)
    require_local_services(load_inventory(NAME))  # deploy asks for no local server


@pytest.mark.parametrize(
    "database, expected",
    [
        ({"admin_url_env": None}, "missing key `database.admin_url_env`; add it (text)"),
        ({"name": None}, "missing key `database.name`; add it (text)"),
        (
            {"admin_url_env": f"postgresql://admin:{PASSWORD}@db.example.org/postgres"},
            "`database.admin_url_env` names an environment variable holding a secret; write its name",
        ),
        ({"admin_url_env": "plain_admin_url"}, "`database.admin_url_env` names an environment variable"),
        ({"admin_url_env": 42}, "`database.admin_url_env` must be text, got a number"),
        ({"port": 5432}, "unknown key `database.port`"),
        ({"url": "x"}, "unknown key `database.url`"),
        ({"name": "Plain-DB"}, "`database.name` must be a lower-case identifier"),
    ],
)
def test_bad_settings_are_one_line_naming_the_key(inventories, database, expected):
    (inventories / f"{NAME}.yml").write_text(plain_inventory(**database))
    with pytest.raises(InventoryError) as caught:
        load_inventory(NAME, inventories)
    message = str(caught.value)
    assert f"{NAME}.yml" in message and expected in message, message
    assert "\n" not in message and PASSWORD not in message
    assert caught.value.exit_code == 2


# --- pure: the credential check --------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, "which is not set; export the admin role's URL there"),
        ("", "which is not set"),
        ("   ", "which is not set"),
        (f"mysql://admin:{PASSWORD}@db.example.org/postgres", "does not hold a `postgresql://` URL"),
        (f"host=db.example.org user=admin password={PASSWORD}", "does not hold a `postgresql://` URL"),
        (f"db.example.org:5432:postgres:admin:{PASSWORD}", "does not hold a `postgresql://` URL"),
        (f"postgresql://admin:{PASSWORD}@/postgres?host=/var/run/postgresql", "names no TCP host"),
        (f"postgresql://admin:{PASSWORD}@%2Fvar%2Frun%2Fpostgresql/postgres", "names no TCP host"),
        (f"postgres://admin:{PASSWORD}@/postgres", "names no TCP host"),
        (f"postgresql://:{PASSWORD}@db.example.org/postgres", "names no user"),
        (f"postgresql://db.example.org/postgres?password={PASSWORD}", "names no user"),
        (f"postgresql://admin:{PASSWORD}@db.example.org:port/postgres", "port"),
        (f"postgresql://admin:{PASSWORD}@db.example.org:99999/postgres", "port"),
        (f"postgresql://admin:{PASSWORD}@a.example.org:5432,b.example.org/x", "port"),
    ],
)
def test_a_missing_or_unusable_admin_url_is_refused_before_any_call(plain, monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(VARIABLE, raising=False)
    else:
        monkeypatch.setenv(VARIABLE, value)
    with pytest.raises(InventoryError) as caught:
        plain.provider("database").check_credentials(plain)
    message = str(caught.value)
    assert message.startswith(f"{NAME}.yml: `database.admin_url_env` names ${VARIABLE}"), message
    assert expected in message and "nothing was changed" in message, message
    assert PASSWORD not in message and PASSWORD not in repr(caught.value) and "\n" not in message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    "value",
    [
        f"postgresql://admin:{PASSWORD}@db.example.org/postgres",
        f"postgres://admin:{PASSWORD}@db.example.org:6543/postgres?sslmode=require",
        f"postgresql://admin:{PASSWORD}@10.0.0.7:5432",
        "postgresql://admin@db.example.org/postgres",  # no password: libpq finds one in ~/.pgpass
    ],
)
def test_a_usable_admin_url_passes(plain, monkeypatch, value):
    monkeypatch.setenv(VARIABLE, value)
    plain.provider("database").check_credentials(plain)


# --- pure: the connections made from the admin URL -------------------------------------------


@pytest.mark.parametrize("sslmode", ["", "disable", "allow", "prefer", "require", "verify-ca", "verify-full"])
def test_every_connection_verifies_the_server_whatever_the_url_says(plain, monkeypatch, sslmode):
    query = f"?sslmode={sslmode}" if sslmode else ""
    monkeypatch.setenv(VARIABLE, f"postgresql://admin:{PASSWORD}@db.example.org:6543/anything{query}")
    provider = plain.provider("database")
    admin = provider.admin_conninfo(plain, "plaindb")
    assert admin == {
        "host": "db.example.org",
        "port": 6543,
        "user": "admin",
        "password": PASSWORD,
        "dbname": "plaindb",
        "sslmode": "verify-full",
        "sslrootcert": "system",  # the system's roots (libpq ≥ 16)
    }
    service = provider.role_conninfo(plain, "patient_svc", Secret("pw"))
    assert service == {**admin, "user": "patient_svc", "password": "pw"}
    url = provider.role_url(plain, "patient_svc", Secret("pw"))
    assert isinstance(url, Secret) and conninfo_to_dict(url.reveal()) == {
        "host": "db.example.org",
        "port": "6543",
        "user": "patient_svc",
        "password": "pw",
        "dbname": "plaindb",
        "sslmode": "verify-full",
        "sslrootcert": "system",
    }


def test_the_urls_root_certificate_is_kept_and_special_characters_survive(plain, monkeypatch):
    cert = "/etc/ssl/certs/rds global bundle.pem"
    monkeypatch.setenv(
        VARIABLE, f"postgresql://hc%40admin:p%40ss%23w%3Ard@db.example.org/postgres?sslrootcert={cert}&sslmode=disable"
    )
    provider = plain.provider("database")
    admin = provider.admin_conninfo(plain)
    assert (admin["user"], admin["password"], admin["dbname"]) == ("hc@admin", "p@ss#w:rd", "postgres")
    assert (admin["sslmode"], admin["sslrootcert"]) == ("verify-full", cert)
    assert provider.admin_role(plain) == "hc@admin"  # it owns the application database
    password = Secret("a/b@c:d?e#f%g")
    parsed = conninfo_to_dict(provider.role_url(plain, "auth_svc", password).reveal())
    assert parsed["password"] == password.reveal() and parsed["sslrootcert"] == cert
    assert parsed["sslmode"] == "verify-full" and parsed["dbname"] == "plaindb"
    without = provider.role_conninfo(plain, "auth_svc", None, "postgres")
    assert "password" not in without and without["dbname"] == "postgres" and without["sslrootcert"] == cert


def test_a_password_with_an_encoded_slash_is_accepted(plain, monkeypatch):
    monkeypatch.setenv(VARIABLE, "postgresql://admin:ab%2Fcd%2B%3D@db.example.org/postgres")
    provider = plain.provider("database")
    provider.check_credentials(plain)
    assert provider.admin_conninfo(plain)["password"] == "ab/cd+="


def test_no_repr_or_message_shows_the_password(plain, monkeypatch):
    monkeypatch.setenv(VARIABLE, f"postgresql://admin:{PASSWORD}@db.example.org/postgres")
    provider = plain.provider("database")
    url = provider.role_url(plain, "patient_svc", Secret(PASSWORD))
    shown = [repr(url), str(url), f"{url}", repr(provider), repr(plain), repr(Secret(os.environ[VARIABLE]))]
    assert all(PASSWORD not in text for text in shown), shown


def test_an_ipv6_host_makes_a_url_libpq_reads_back(plain, monkeypatch):
    monkeypatch.setenv(VARIABLE, f"postgresql://admin:{PASSWORD}@[2001:db8::7]:5432/postgres")
    url = plain.provider("database").role_url(plain, "patient_svc", Secret("pw"))
    parsed = conninfo_to_dict(url.reveal())
    assert (parsed.get("host"), parsed.get("port")) == ("2001:db8::7", "5432")


def test_the_bundled_libpq_knows_the_system_roots():
    assert psycopg.pq.version() >= 160000, "sslrootcert=system needs libpq 16 or later"


# --- real: the session's PostgreSQL as a server of one's own ------------------------------------


def local_admin():
    from healthinfra.providers.postgres import admin_conninfo

    return psycopg.connect(**admin_conninfo(load_inventory(INVENTORY)), autocommit=True)


def created_by(conn, admin: str) -> list[str]:
    """The roles `admin` made (CREATEROLE gives their creator ADMIN OPTION on them)."""
    rows = conn.execute(
        "select r.rolname from pg_auth_members m join pg_roles r on r.oid = m.roleid"
        " where m.member = (select oid from pg_roles where rolname = %s) and m.admin_option order by 1",
        (admin,),
    ).fetchall()
    return [r[0] for r in rows]


@pytest.fixture
def plainpg(env, servers, invoke):
    """`plainpg.yml` on the session's PostgreSQL, by its TLS front, with an admin role of its own
    (LOGIN CREATEROLE CREATEDB, no superuser); everything it made is removed on every path."""
    password = uuid.uuid4().hex
    with local_admin() as conn:
        conn.execute(
            sql.SQL("create role {} login createrole createdb password {}").format(
                sql.Identifier(ADMIN), sql.Literal(password)
            )
        )
    cert = servers["state"] / INVENTORY / "tls" / "server.crt"
    url = f"postgresql://{ADMIN}:{password}@127.0.0.1:{servers['pg_port']}/postgres?sslrootcert={cert}"
    path = servers["inventories"] / f"{NAME}.yml"
    path.write_text(plain_inventory())
    environment = {**aws_env(servers), VARIABLE: url}
    seen = len(OUTPUTS)
    try:
        yield {"env": environment, "url": url, "password": password, "cert": cert}
    finally:
        cleaned = invoke("cleanup-dev", "-i", NAME, "--destroy-data", "--json", env_overrides=environment, timeout=600)
        with local_admin() as conn:
            conn.execute("drop database if exists plaindb with (force)")
            for role in created_by(conn, ADMIN):
                conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(role)))
                conn.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(ADMIN)))
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(ADMIN)))
        path.unlink(missing_ok=True)
        shutil.rmtree(servers["state"] / NAME, ignore_errors=True)
        assert cleaned.code == 0, cleaned
        assert all(password not in text for text in OUTPUTS[seen:]), "the admin URL's password was shown"


def service_url(servers, service: str) -> str:
    from healthinfra.resources.local_env import parse_env_file

    text = (servers["state"] / NAME / "services" / f"{service}.env").read_text()
    return parse_env_file(text)["DATABASE_URL"].strip().strip("'\"")


def test_phases_1_to_4_build_on_a_server_of_ones_own_and_cleanup_removes_them(plainpg, servers, invoke, tmp_path):
    with local_admin() as conn:  # the server lets the database's owner create pg_stat_statements
        conn.execute(
            sql.SQL("alter role {} set extension_control_path = {}").format(
                sql.Identifier(ADMIN), sql.Literal(trusted_pg_stat_statements(servers["base"] / "plainpg-ext"))
            )
        )
    environment = plainpg["env"]
    built = invoke("deploy", "-i", NAME, "--phase", "4", "--json", env_overrides=environment, timeout=900)
    assert built.code == 0 and built.json["failed"] == 0 and built.json["changed"] > 50, built
    again = invoke("deploy", "-i", NAME, "--phase", "4", "--json", env_overrides=environment, timeout=900)
    assert again.code == 0 and again.json["changed"] == 0, again.json["changes"]
    healthy = invoke("monitoring.check", "-i", NAME, "--phase", "4", "--json", env_overrides=environment)
    assert healthy.code == 0, healthy
    probes = [p for p in healthy.json["probes"] if p["probe"] == "database"]
    assert probes and all("over TLS" in p["detail"] for p in probes), probes

    with local_admin() as conn:  # built by a role that is no superuser, owned by it
        assert conn.execute("select rolsuper from pg_roles where rolname = %s", (ADMIN,)).fetchone() == (False,)
        owner = conn.execute("select pg_get_userbyid(datdba) from pg_database where datname = 'plaindb'").fetchone()
        assert owner == (ADMIN,)
        assert {"patient_svc", "auth_svc", "gateway_svc", "provider_svc", "appointment_svc", "ai_svc"} <= set(
            created_by(conn, ADMIN)
        )

    from healthinfra.providers.postgres import admin_conninfo

    local = admin_conninfo(load_inventory(INVENTORY), "plaindb")
    with psycopg.connect(**local, autocommit=True) as conn:  # phase 3's extension and phase 4's schema
        assert conn.execute(
            "select pg_get_userbyid(extowner) from pg_extension where extname = 'pg_stat_statements'"
        ).fetchone() == (ADMIN,)
        assert conn.execute("select 1 from pg_namespace where nspname = 'ml'").fetchone() == (1,)

    # a service's DATABASE_URL: the server verified against the URL's sslrootcert
    url = service_url(servers, "patient")
    info = conninfo_to_dict(url)
    assert (info["sslmode"], info["sslrootcert"]) == ("verify-full", str(plainpg["cert"]))
    assert (info["host"], info["dbname"], info["user"]) == ("127.0.0.1", "plaindb", "patient_svc")
    with psycopg.connect(url, connect_timeout=5) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("select count(*) from patients").fetchone() == (0,)

    # a server whose certificate does not chain to sslrootcert is refused, the services' and the runner's
    from healthinfra.local.tls import ensure_certificate

    other, _ = ensure_certificate(tmp_path / "other-ca")
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(url.replace(str(plainpg["cert"]), str(other)), connect_timeout=5)
    with pytest.raises(psycopg.OperationalError):  # the system roots do not know the local certificate
        psycopg.connect(url.replace(f"sslrootcert={plainpg['cert']}", "sslrootcert=system"), connect_timeout=5)
    wrong = {**environment, VARIABLE: plainpg["url"].replace(str(plainpg["cert"]), str(other))}
    refused = invoke("plan", "-i", NAME, "--phase", "4", env_overrides=wrong)
    assert refused.code != 0 and "certificate verify failed" in refused.out + refused.err, refused
    downgraded = {
        **environment,
        VARIABLE: plainpg["url"].replace(str(plainpg["cert"]), str(other)) + "&sslmode=disable",
    }
    assert invoke("plan", "-i", NAME, "--phase", "4", env_overrides=downgraded).code != 0  # no way around it

    removed = invoke("cleanup-dev", "-i", NAME, "--destroy-data", "--json", env_overrides=environment, timeout=600)
    assert removed.code == 0 and removed.json["failed"] == 0, removed
    with local_admin() as conn:
        assert conn.execute("select 1 from pg_database where datname = 'plaindb'").fetchone() is None
        assert created_by(conn, ADMIN) == []
    assert buckets(servers, "hc-plain-") == []


def test_without_pg_stat_statements_phase_3_stops_at_it_and_undoes_the_database(plainpg, invoke):
    """pg_stat_statements is not a trusted extension: an admin that is neither a superuser nor
    allowed it by the server (RDS's master user is) builds phases 1 and 2, not 3."""
    environment = plainpg["env"]
    failed = invoke("deploy", "-i", NAME, "--phase", "3", "--json", env_overrides=environment, timeout=900)
    assert failed.code == 1, failed
    assert failed.json["errors"][0].startswith("pg.extension pg_stat_statements: "), failed.json["errors"]
    assert 'permission denied to create extension "pg_stat_statements"' in failed.json["errors"][0]
    # the database and its roles undone (the access-log bucket, holding the logs written meanwhile,
    # is kept by the rollback as on any server; cleanup-dev --destroy-data removes it)
    with local_admin() as conn:
        assert conn.execute("select 1 from pg_database where datname = 'plaindb'").fetchone() is None
        assert created_by(conn, ADMIN) == []


def test_rows_row_security_hides_from_the_admin_are_never_dropped_as_empty(plainpg, invoke):
    """The admin (no superuser, no BYPASSRLS) owns the tables, whose row security is forced:
    a plain count would see none of a patient's rows. Cleanup must refuse, not drop them."""
    from healthinfra.providers.postgres import admin_conninfo

    environment = plainpg["env"]
    built = invoke("deploy", "-i", NAME, "--phase", "2", "--json", env_overrides=environment, timeout=900)
    assert built.code == 0, built
    local = admin_conninfo(load_inventory(INVENTORY), "plaindb")
    with psycopg.connect(**local, autocommit=True) as conn:  # the session's superuser, on the socket
        conn.execute(
            "insert into patients (medical_record_number, first_name, last_name, date_of_birth) values ('MRN-1', 'Ann', 'Lee', '1980-01-01')"
        )
    refused = invoke("cleanup-dev", "-i", NAME, "--json", env_overrides=environment, timeout=600)
    assert refused.code == 1, refused
    assert "patients (rows row-level security hides from the admin role" in " ".join(refused.json["errors"])
    with psycopg.connect(**local, autocommit=True) as conn:
        assert conn.execute("select count(*) from patients").fetchone() == (1,), "the row is still there"


def test_a_report_that_outlives_the_lock_retries_fails_the_deploy_naming_it_on_a_server_of_ones_own(
    plainpg, servers, invoke
):
    """The admin is no superuser: pg_stat_activity hides other roles' state and query from it. The
    message still names the blocking session and says how to see the rest; the next run, the
    blocker gone, succeeds."""
    environment = plainpg["env"]
    path = servers["inventories"] / f"{NAME}.yml"
    path.write_text(plain_inventory(lock_timeout="500ms", lock_retry_seconds=3))
    assert invoke("deploy", "-i", NAME, "--phase", "1", env_overrides=environment, timeout=600).code == 0
    with psycopg.connect(service_url(servers, "patient"), connect_timeout=5) as report:
        report.execute("set application_name = 'nightly-report'")
        report.execute("select count(*) from patients").fetchone()  # a read transaction left open
        pid = report.info.backend_pid
        failed = invoke("deploy", "-i", NAME, "--phase", "2", env_overrides=environment, timeout=600)
        report.rollback()
    assert failed.code == 1, failed
    assert f"pid {pid} (patient_svc, application `nightly-report`, its state and query hidden" in failed.out, failed
    assert "pg_terminate_backend" in failed.out and "database.lock_retry_seconds" in failed.out
    with psycopg.connect(service_url(servers, "patient"), connect_timeout=5) as conn:
        row_security = conn.execute("select relrowsecurity from pg_class where relname = 'patients'").fetchone()
    assert row_security == (False,), "nothing of the migration applied"
    again = invoke("deploy", "-i", NAME, "--phase", "2", env_overrides=environment, timeout=600)
    assert again.code == 0, again
