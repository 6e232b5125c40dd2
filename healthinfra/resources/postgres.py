"""PostgreSQL resource types: the database, versioned migrations, grants, extensions
(migrations: `pg_migration.py`; login roles: `pg_role.py`; the catalog reads they share: `pg_facts.py`).

Facts are read in batches (all databases, all roles, all grants of a database in
one query each). SQL is composed with psycopg.sql, never string formatting.
Dropping anything that holds rows is refused unless the run has `--destroy-data`.
"""

from __future__ import annotations

from ..errors import ProviderError
from ..resource import Resource, diff_attributes
from .pg_facts import (
    _privs,
    _sql,
    databases_fact,
    grants_fact,
    parse_databases,
    parse_roles,
    refuse_data_loss,
    roles_fact,
    rows_held,
    rows_held_locked,
    set_public_privileges,
)
from .pg_migration import PgMigration
from .pg_role import PASSWORD_KEPT, PASSWORD_LOST, PASSWORD_ROTATED, PgRole

TABLE_PRIVILEGES = ("DELETE", "INSERT", "SELECT", "UPDATE")


# --- the database ---------------------------------------------------------


class PgDatabase(Resource):
    """The application database. Manages owner, encoding and what PUBLIC may do on it."""

    kind = "pg.database"
    uses_postgres = True
    unmanaged = ("collation and tablespace: PostgreSQL defaults, fixed at creation",)

    def read(self, ctx):
        return databases_fact(ctx).get(self.name)

    def guard(self, ctx, actions):
        """Preflight: refuse an encoding change, and a drop while any user table holds rows (the
        count is taken again under lock when the drop happens: `drop`)."""
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
                set_public_privileges(conn, self.name, action.after["public_privileges"])
            elif action.op == "delete":
                self.guard(ctx, [action])  # an obvious refusal, before any lock is taken
                self.drop(ctx)
            elif action.attribute == "owner":
                conn.execute(sql.SQL("alter database {} owner to {}").format(db, sql.Identifier(action.after)))
            elif action.attribute == "public_privileges":
                set_public_privileges(conn, self.name, action.after)
            else:
                raise ProviderError(
                    f"pg.database {self.name}: `{action.attribute}` cannot be changed in place"
                    f" (is {action.before}, want {action.after}); recreate the database by hand"
                )

    def drop(self, ctx) -> None:
        """Drop the database, its rows counted under a lock that lasts until the drop.

        DROP DATABASE cannot run inside a transaction, so the count cannot share one with
        it. Instead a *holder* connection to the doomed database opens a transaction, locks
        every user table ACCESS EXCLUSIVE (listing them again after each lock, so a table
        created meanwhile is locked too) and counts their rows. With a row anywhere it rolls
        back and the drop is refused, nothing changed. With none it keeps its locks while the
        admin connection (to `postgres`) issues DROP DATABASE … WITH (FORCE). That statement
        first takes the database's own lock, which keeps every new connection out, then
        terminates every session inside it at once, the holder and any writer waiting for its
        locks alike: until then no session can have written a row to any of the tables,
        because the holder's locks bar them all, and after it none can connect. A row written
        between preflight and the drop is thus counted and refused, or its write fails (its
        session ended, its transaction rolled back). (What the locks do not cover: a table
        created and filled by another session in the instant between the holder's last
        listing and the drop; only a role with CREATE in the database, the admin itself
        here, could do that.) With --destroy-data nothing is counted: the drop goes ahead.
        """
        sql = _sql()
        admin = ctx.pg.admin()
        statement = sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(self.name))
        if self.name not in databases_fact(ctx):
            return
        if ctx.destroy_data:
            ctx.pg.close(self.name)
            admin.execute(statement)
            return
        holder = ctx.pg.admin(self.name)
        try:
            holder.execute("begin")
            held = rows_held_locked(holder)
            if held:
                holder.execute("rollback")
                refuse_data_loss(ctx, held, f"drop database `{self.name}`")
            admin.execute(statement)  # ends the holder's session, and with it its locks
        finally:
            ctx.pg.close(self.name)


# --- migrations -----------------------------------------------------------


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
        with conn.transaction():  # all of a role's grants or none: a lock wait retries them whole
            self._apply_grants(conn, database, role, roles, actions)

    def _apply_grants(self, conn, database, role, roles, actions) -> None:
        sql = _sql()
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


__all__ = [
    "PASSWORD_KEPT",
    "PASSWORD_LOST",
    "PASSWORD_ROTATED",
    "PgMigration",
    "PgRole",
    "databases_fact",
    "parse_databases",
    "parse_roles",
    "roles_fact",
]
