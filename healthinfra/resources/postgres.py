"""PostgreSQL resource types: the database, versioned migrations, login roles, grants.

Facts are read in batches (all databases, all roles, all grants of a database in
one query each). SQL is composed with psycopg.sql, never string formatting.
Dropping anything that holds rows is refused unless the run has `--destroy-data`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ..errors import DataLossRefused, MigrationChanged, ProviderError
from ..inventory import project_root
from ..resource import Resource, diff_attributes

MIGRATIONS_TABLE = "schema_migrations"
PASSWORD_KEPT = "kept in the secrets file"
PASSWORD_LOST = "missing from the secrets file"
PASSWORD_ROTATED = "replaced by a new one (security.rotate)"
TABLE_PRIVILEGES = ("DELETE", "INSERT", "SELECT", "UPDATE")


def _sql():
    from psycopg import sql

    return sql


# --- facts ---------------------------------------------------------------


def parse_databases(rows) -> dict[str, dict]:
    """Rows of the pg_database query in `databases_fact` -> each database's managed attributes. Pure."""
    return {
        name: {
            "owner": owner,
            "encoding": encoding,
            # a NULL acl means PostgreSQL's default: PUBLIC may CONNECT and create TEMP tables
            "public_privileges": ["CONNECT", "TEMPORARY"] if default_acl else list(public),
        }
        for name, owner, encoding, default_acl, public in rows
    }


def databases_fact(ctx) -> dict[str, dict]:
    def load():
        conn = ctx.pg.admin_if_provisioned()
        if conn is None:  # a Neon branch not created yet: no databases
            return {}
        rows = conn.execute(
            """select datname, pg_get_userbyid(datdba), pg_encoding_to_char(encoding),
                      datacl is null,
                      array(select privilege_type from aclexplode(datacl) where grantee = 0 order by 1)
                 from pg_database where not datistemplate"""
        ).fetchall()
        return parse_databases(rows)

    return ctx.fact("pg.databases", load)


def parse_roles(rows) -> dict[str, dict]:
    """Rows of the pg_roles query in `roles_fact` -> each role's attributes. Pure."""
    return {
        r[0]: {
            "login": r[1],
            "superuser": r[2],
            "createdb": r[3],
            "createrole": r[4],
            "bypassrls": r[5],
            "replication": r[6],
            "connection_limit": r[7],
        }
        for r in rows
    }


def roles_fact(ctx) -> dict[str, dict]:
    def load():
        conn = ctx.pg.admin_if_provisioned()
        if conn is None:  # a Neon branch not created yet: no roles
            return {}
        rows = conn.execute(
            """select rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls,
                      rolreplication, rolconnlimit from pg_roles"""
        ).fetchall()
        return parse_roles(rows)

    return ctx.fact("pg.roles", load)


def grants_fact(ctx, database: str) -> dict[str, dict[str, list[str]]]:
    """Every role's privileges on the database, its own schemas and their tables, one query.

    Targets are `database`, `schema:NAME` (schemas other than `public`) and
    `table:NAME`, schema-qualified outside `public` (`table:ml.predictions`)."""

    def load():
        if database not in databases_fact(ctx):
            return {}
        conn = ctx.pg.admin(database)
        grants: dict[str, dict[str, list[str]]] = {}
        rows = conn.execute(
            """select r.rolname, 'database', a.privilege_type
                 from pg_database d, aclexplode(d.datacl) a join pg_roles r on r.oid = a.grantee
                where d.datname = current_database() and a.grantee <> d.datdba
               union all
               select r.rolname, 'schema:' || n.nspname, a.privilege_type
                 from pg_namespace n, aclexplode(n.nspacl) a join pg_roles r on r.oid = a.grantee
                where n.nspname not in ('public', 'information_schema') and n.nspname not like 'pg\\_%%'
                  and a.grantee <> n.nspowner
               union all
               select r.rolname,
                      'table:' || case when n.nspname = 'public' then c.relname else n.nspname || '.' || c.relname end,
                      a.privilege_type
                 from pg_class c join pg_namespace n on n.oid = c.relnamespace
                      cross join lateral aclexplode(c.relacl) a join pg_roles r on r.oid = a.grantee
                where n.nspname not in ('information_schema') and n.nspname not like 'pg\\_%%'
                  and c.relkind in ('r', 'p', 'v', 'm') and a.grantee <> c.relowner
                order by 1, 2, 3"""
        ).fetchall()
        for role, target, privilege in rows:
            grants.setdefault(role, {}).setdefault(target, []).append(privilege)
        return grants

    return ctx.fact(f"pg.grants:{database}", load)


def migrations_fact(ctx, database: str) -> dict[str, str]:
    def load():
        if database not in databases_fact(ctx):
            return {}
        conn = ctx.pg.admin(database)
        exists = conn.execute("select to_regclass(%s) is not null", (f"public.{MIGRATIONS_TABLE}",)).fetchone()[0]
        if not exists:
            return {}
        sql = _sql()
        rows = conn.execute(
            sql.SQL("select version, checksum from {}").format(sql.Identifier(MIGRATIONS_TABLE))
        ).fetchall()
        return dict(rows)

    return ctx.fact(f"pg.migrations:{database}", load)


def rows_held(conn, tables: list[str] | None = None) -> dict[str, int]:
    """Row counts (capped) of the given tables, or of every user table, that hold rows."""
    sql = _sql()
    listed = conn.execute(
        """select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema')
              and n.nspname not like 'pg_toast%%' order by 1, 2"""
    ).fetchall()
    held = {}
    for schema, table in listed:
        shown = table if schema == "public" else f"{schema}.{table}"
        if table == MIGRATIONS_TABLE or (tables is not None and shown not in tables):
            continue
        count = conn.execute(
            sql.SQL("select count(*) from (select 1 from {}.{} limit 1000000) t").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
        ).fetchone()[0]
        if count:
            held[shown] = count
    return held


def refuse_data_loss(ctx, held: dict[str, int], what: str) -> None:
    if held and not ctx.destroy_data:
        shown = ", ".join(f"{t} ({n} rows)" for t, n in sorted(held.items()))
        raise DataLossRefused(
            f"refusing to {what}: it holds data in {shown}; back it up, then re-run with --destroy-data to delete it"
        )


# --- the database ---------------------------------------------------------


class PgDatabase(Resource):
    """The application database. Manages owner, encoding and what PUBLIC may do on it."""

    kind = "pg.database"
    uses_postgres = True
    unmanaged = ("collation and tablespace: PostgreSQL defaults, fixed at creation",)

    def read(self, ctx):
        return databases_fact(ctx).get(self.name)

    def guard(self, ctx, actions):
        for action in actions:
            if action.op == "set" and action.attribute == "encoding":
                raise ProviderError(
                    f"pg.database {self.name}: encoding is {action.before}, wanted {action.after}; an encoding"
                    " cannot change in place: dump, recreate and restore the database by hand"
                )
        if any(a.op == "delete" for a in actions) and self.name in databases_fact(ctx):
            refuse_data_loss(ctx, rows_held(ctx.pg.admin(self.name)), f"drop database `{self.name}`")

    def apply(self, ctx, actions):
        sql = _sql()
        conn = ctx.pg.admin()
        db = sql.Identifier(self.name)
        for action in actions:
            if action.op == "create":
                conn.execute(
                    sql.SQL("create database {} owner {} encoding {} template template0").format(
                        db, sql.Identifier(action.after["owner"]), sql.Literal(action.after["encoding"])
                    )
                )
                self._set_public(conn, action.after["public_privileges"])
            elif action.op == "delete":
                self.guard(ctx, [action])
                ctx.pg.close(self.name)
                conn.execute(sql.SQL("drop database if exists {} with (force)").format(db))
            elif action.attribute == "owner":
                conn.execute(sql.SQL("alter database {} owner to {}").format(db, sql.Identifier(action.after)))
            elif action.attribute == "public_privileges":
                self._set_public(conn, action.after)
            else:
                raise ProviderError(
                    f"pg.database {self.name}: `{action.attribute}` cannot be changed in place"
                    f" (is {action.before}, want {action.after}); recreate the database by hand"
                )

    def _set_public(self, conn, privileges: list[str]) -> None:
        sql = _sql()
        db = sql.Identifier(self.name)
        conn.execute(sql.SQL("revoke all on database {} from public").format(db))
        if privileges:
            conn.execute(
                sql.SQL("grant {} on database {} to public").format(
                    sql.SQL(", ").join(sql.SQL(p) for p in privileges), db
                )
            )


# --- migrations -----------------------------------------------------------


class PgMigration(Resource):
    """One versioned migration, applied with its up SQL and undone with its down SQL.

    Its state is a row in `schema_migrations` with the checksum of the SQL that
    was applied. A migration edited after it was applied is an error, not a diff:
    write a new migration instead.
    """

    kind = "pg.migration"
    uses_postgres = True

    def __init__(self, name, desired, *, database: str, directory: str):
        # `directory` is relative to the project root, so a journal replays from any checkout
        super().__init__(name, desired, database=database, directory=directory)

    def depends_on(self):
        return [f"pg.database {self.params['database']}"]

    def sql_text(self, direction: str) -> str:
        path = project_root() / self.params["directory"] / f"{self.name}.{direction}.sql"
        return path.read_text(encoding="utf-8")

    @staticmethod
    def checksum_of(up: str, down: str) -> str:
        return hashlib.sha256((up + "\0" + down).encode()).hexdigest()[:16]

    def files_checksum(self) -> str:
        return self.checksum_of(self.sql_text("up"), self.sql_text("down"))

    def read(self, ctx):
        checksum = migrations_fact(ctx, self.params["database"]).get(self.name)
        return None if checksum is None else {"checksum": checksum}

    def changed_files(self, recorded: str) -> MigrationChanged:
        return MigrationChanged(
            f"{self.params['directory']}/{self.name}.up.sql or .down.sql changed after it was applied"
            f" (checksum {recorded} in the database, {self.files_checksum()} on disk);"
            " restore the files and add a new migration for the change"
        )

    def dropped_tables(self) -> list[str]:
        """Tables the down SQL drops, schema-qualified outside `public` (as rows_held names them)."""
        names = re.findall(r"drop\s+table\s+(?:if\s+exists\s+)?([a-z_][a-z0-9_.]*)", self.sql_text("down"), re.I)
        return [name.lower().removeprefix("public.") for name in names]

    def guard(self, ctx, actions):
        for action in actions:
            if action.op == "set":  # an applied migration is never re-applied differently
                raise self.changed_files(action.before)
            if action.op == "delete":
                if action.before["checksum"] != self.files_checksum():  # undo only with the SQL that was applied
                    raise self.changed_files(action.before["checksum"])
                conn = ctx.pg.admin(self.params["database"])
                refuse_data_loss(ctx, rows_held(conn, self.dropped_tables()), f"undo migration `{self.name}`")

    def apply(self, ctx, actions):
        sql = _sql()
        table = sql.Identifier(MIGRATIONS_TABLE)
        conn = ctx.pg.admin(self.params["database"])
        for action in actions:
            if action.op == "create":
                with conn.transaction():
                    conn.execute(
                        sql.SQL(
                            "create table if not exists {} (version text primary key, checksum text not null,"
                            " applied_at timestamptz not null default now())"
                        ).format(table)
                    )
                    conn.execute(self.sql_text("up"))
                    conn.execute(
                        sql.SQL("insert into {} (version, checksum) values (%s, %s)").format(table),
                        (self.name, action.after["checksum"]),
                    )
            elif action.op == "delete":
                self.guard(ctx, [action])
                with conn.transaction():
                    conn.execute(self.sql_text("down"))
                    conn.execute(sql.SQL("delete from {} where version = %s").format(table), (self.name,))
                    left = conn.execute(sql.SQL("select count(*) from {}").format(table)).fetchone()[0]
                    if left == 0:  # the table came with the first migration; leave nothing behind
                        conn.execute(sql.SQL("drop table {}").format(table))
            else:
                raise self.changed_files(action.before)


# --- login roles ----------------------------------------------------------


class PgRole(Resource):
    """A login role for one service. Its password comes from the secrets file."""

    kind = "pg.role"
    uses_postgres = True
    unmanaged = (
        "password value: PostgreSQL keeps only a verifier, so a password changed by hand on the server is not"
        " detected; managed is that the secrets file holds one (a lost one is replaced by a new one)",
        "valid_until, inherit, config settings: PostgreSQL defaults",
    )

    def __init__(self, name, desired, *, database: str):
        super().__init__(name, desired, database=database)

    @property
    def secret_name(self) -> str:
        return f"pg.{self.name}"

    def read(self, ctx):
        role = roles_fact(ctx).get(self.name)
        if role is None:
            return None
        return self.parse(role, ctx.secrets.get(self.secret_name) is not None)

    @staticmethod
    def parse(role: dict | None, password_known: bool) -> dict | None:
        """The role's attributes from `roles_fact` (None: no such role), and whether the secrets
        file holds its password -> the managed attributes. Pure."""
        if role is None:
            return None
        return {**role, "password": PASSWORD_KEPT if password_known else PASSWORD_LOST}

    def verifier(self, conn, password) -> str:
        """SCRAM verifier computed client-side: the plain password never reaches the server or its logs."""
        return conn.pgconn.encrypt_password(password.reveal().encode(), self.name.encode(), b"scram-sha-256").decode()

    def password_literal(self, ctx, conn, password):
        """What `PASSWORD` is set to. Embedded: the SCRAM verifier, computed here. On Neon the
        password itself, over TLS: Neon checks a new password's strength, so it must see it
        (its documentation: passwords are supplied in plain text and stored encrypted)."""
        sql = _sql()
        if not ctx.inventory.provider("database").takes_password_verifier:
            return sql.Literal(password.reveal())
        return sql.Literal(self.verifier(conn, password))

    def apply(self, ctx, actions):
        sql = _sql()
        conn = ctx.pg.admin()
        role = sql.Identifier(self.name)
        for action in actions:
            if action.op == "create":
                password = ctx.secrets.get_or_create(self.secret_name)
                options = {k: v for k, v in action.after.items() if k != "password"}
                conn.execute(
                    sql.SQL("create role {} with {} password {}").format(
                        role, self._options(options), self.password_literal(ctx, conn, password)
                    )
                )
            elif action.attribute == "password":
                if action.after == PASSWORD_KEPT:  # lost from the secrets file: set a new one, keep it
                    password = ctx.secrets.get_or_create(self.secret_name)
                    conn.execute(
                        sql.SQL("alter role {} with password {}").format(
                            role, self.password_literal(ctx, conn, password)
                        )
                    )
                elif action.after == PASSWORD_ROTATED:  # security.rotate: a new one, the old one kept nowhere
                    self._rotate(ctx, conn)
                # undoing either never forgets a working password: nothing to do
            elif action.op == "delete":
                if (
                    self.name in roles_fact(ctx)
                    and not conn.execute("select rolsuper from pg_roles where rolname = current_user").fetchone()[0]
                ):
                    # Neon: the owner created this role (CREATEROLE, so ADMIN OPTION on it) but holds
                    # none of its privileges, which DROP OWNED needs; take them first
                    conn.execute(sql.SQL("grant {} to current_user").format(role))
                for dbname in (self.params["database"], "postgres"):
                    if dbname in databases_fact(ctx):
                        ctx.pg.admin(dbname).execute(sql.SQL("drop owned by {}").format(role))
                conn.execute(sql.SQL("drop role if exists {}").format(role))
                ctx.secrets.delete(self.secret_name)
            else:
                conn.execute(
                    sql.SQL("alter role {} with {}").format(role, self._options({action.attribute: action.after}))
                )

    def _rotate(self, ctx, conn) -> None:
        """The secrets store first: a crash leaves it ahead of the server, never behind; a
        refused ALTER puts the old password back."""
        from ..secret_store import generate_password

        sql = _sql()
        old = ctx.secrets.get(self.secret_name)
        new = generate_password()
        ctx.secrets.put(self.secret_name, new)
        try:
            conn.execute(
                sql.SQL("alter role {} with password {}").format(
                    sql.Identifier(self.name), self.password_literal(ctx, conn, new)
                )
            )
        except Exception:
            if old is not None:
                ctx.secrets.put(self.secret_name, old)
            raise

    @staticmethod
    def _options(attrs: dict[str, Any]):
        sql = _sql()
        words = {
            "login": "LOGIN",
            "superuser": "SUPERUSER",
            "createdb": "CREATEDB",
            "createrole": "CREATEROLE",
            "bypassrls": "BYPASSRLS",
            "replication": "REPLICATION",
        }
        parts = []
        for key, value in attrs.items():
            if key == "connection_limit":
                parts.append(sql.SQL("connection limit {}").format(sql.Literal(int(value))))
            else:
                parts.append(sql.SQL(("" if value else "NO") + words[key]))
        return sql.SQL(" ").join(parts)


# --- grants ---------------------------------------------------------------


class PgGrants(Resource):
    """Everything one role may do in the database: CONNECT, and privileges per table.

    The diff is open: a privilege the role holds that the services table does not
    give it is revoked. "Absent" means no privileges at all.
    """

    kind = "pg.grants"
    uses_postgres = True
    unmanaged = (
        "privileges on schema `public`: PostgreSQL's default (USAGE for everyone, CREATE for nobody);"
        " other schemas' USAGE is managed",
        "column-level and sequence privileges: none are granted (keys are UUIDs or identity columns)",
    )

    def __init__(self, name, desired, *, database: str):
        super().__init__(name, desired, database=database)

    def read(self, ctx):
        return grants_fact(ctx, self.params["database"]).get(self.name, {})

    def diff(self, current, desired):
        return diff_attributes(current or {}, desired or {}, open_keys=True, missing=[])

    def noop_reason(self, current):
        return "privileges as wanted"

    def depends_on(self):
        return [f"pg.role {self.name}", f"pg.database {self.params['database']}"]

    def apply(self, ctx, actions):
        sql = _sql()
        database = self.params["database"]
        conn = ctx.pg.admin(database)
        role = sql.Identifier(self.name)
        roles = roles_fact(ctx)
        for action in actions:
            add = sorted(set(action.after or []) - set(action.before or []))
            remove = sorted(set(action.before or []) - set(action.after or []))
            if action.attribute == "database":
                target = sql.SQL("database {}").format(sql.Identifier(database))
            else:
                kind, name = action.attribute.split(":", 1)
                schema, _, table = name.rpartition(".")
                if kind == "schema":
                    exists = conn.execute("select to_regnamespace(%s) is not null", (name,)).fetchone()[0]
                    target = sql.SQL("schema {}").format(sql.Identifier(name))
                else:
                    exists = conn.execute(
                        "select to_regclass(%s) is not null", (f"{schema or 'public'}.{table}",)
                    ).fetchone()[0]
                    target = sql.SQL("table {}").format(sql.Identifier(schema or "public", table))
                if not exists:
                    if add:
                        raise ProviderError(
                            f"pg.grants {self.name}: {kind} `{name}` does not exist; a migration must create it"
                            " before a service is granted access (check inventories/services.yml)"
                        )
                    continue  # dropped with its table: nothing left to revoke
            if remove and self.name in roles:
                conn.execute(sql.SQL("revoke {} on {} from {}").format(_privs(remove), target, role))
            if add:
                conn.execute(sql.SQL("grant {} on {} to {}").format(_privs(add), target, role))


def _privs(privileges: list[str]):
    sql = _sql()
    allowed = {
        "CONNECT",
        "TEMPORARY",
        "CREATE",
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "TRUNCATE",
        "REFERENCES",
        "TRIGGER",
        "MAINTAIN",
        "USAGE",
    }
    unknown = set(privileges) - allowed
    if unknown:
        raise ProviderError(f"unknown privilege(s) {sorted(unknown)}")
    return sql.SQL(", ").join(sql.SQL(p) for p in privileges)


class PgExtension(Resource):
    """An extension in the application database (pg_stat_statements in phase 3)."""

    kind = "pg.extension"
    uses_postgres = True
    unmanaged = ("extension version: the server's default",)

    def __init__(self, name, desired, *, database: str):
        super().__init__(name, desired, database=database)

    def read(self, ctx):
        database = self.params["database"]
        if database not in databases_fact(ctx):
            return None
        row = ctx.pg.admin(database).execute("select 1 from pg_extension where extname = %s", (self.name,)).fetchone()
        return self.parse(row)

    @staticmethod
    def parse(row) -> dict | None:
        """The pg_extension row found for the extension, or None -> present ({}) or absent (None). Pure."""
        return {} if row else None

    def apply(self, ctx, actions):
        sql = _sql()
        conn = ctx.pg.admin(self.params["database"])
        for action in actions:
            if action.op == "create":
                conn.execute(sql.SQL("create extension if not exists {}").format(sql.Identifier(self.name)))
            elif action.op == "delete":
                conn.execute(sql.SQL("drop extension if exists {}").format(sql.Identifier(self.name)))
