"""What the PostgreSQL resources read, in batches: all databases, all roles, a database's
grants and applied migrations (one catalog query each), the rows tables hold, and the
few SQL pieces they share (privilege lists, PUBLIC's privileges on a database). SQL is
composed with psycopg.sql, never string formatting.
"""

from __future__ import annotations

from ..errors import DataLossRefused, ProviderError

MIGRATIONS_TABLE = "schema_migrations"


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


def shown_table(schema: str, table: str) -> str:
    """A table's name as the runner shows it: schema-qualified outside `public`. Pure."""
    return table if schema == "public" else f"{schema}.{table}"


def user_tables(conn, tables: list[str] | None = None) -> list[tuple[str, str]]:
    """(schema, table) of the given tables that exist (shown names), or of every user table."""
    listed = conn.execute(
        """select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema')
              and n.nspname not like 'pg_toast%%' order by 1, 2"""
    ).fetchall()
    return [(s, t) for s, t in listed if tables is None or shown_table(s, t) in tables]


LOCK_TIMEOUT = "30s"  # a drop waits this long for the tables' locks, then fails (nothing dropped)


def rows_held_locked(conn, tables: list[str] | None = None) -> dict[str, int]:
    """`rows_held`, counted under ACCESS EXCLUSIVE locks that last until the caller's transaction
    ends: inside it, no other session can write (or read) those tables until the drop that
    follows has committed or rolled back. Every user table when `tables` is None, listed again
    after each lock until no new one appears (a table created meanwhile is locked too).
    The caller must be inside a transaction."""
    from psycopg import errors

    sql = _sql()
    bound = conn.execute("select current_setting('lock_timeout')").fetchone()[0]  # the session's own
    conn.execute(sql.SQL("set local lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
    locked: set[tuple[str, str]] = set()
    while True:
        new = [name for name in user_tables(conn, tables) if name not in locked]
        if not new:
            # what the caller runs next (the drop, a down migration's other statements) waits
            # no longer than the session's bound, not the guard's
            conn.execute("select set_config('lock_timeout', %s, true)", (bound,))
            return rows_held(conn, tables)
        try:
            conn.execute(
                sql.SQL("lock table {} in access exclusive mode").format(
                    sql.SQL(", ").join(sql.Identifier(schema, table) for schema, table in new)
                )
            )
        except errors.LockNotAvailable as exc:
            exc.lock_timeout = f"{LOCK_TIMEOUT} (the deletion guard's own bound)"  # type: ignore[attr-defined]
            raise
        locked.update(new)


HIDDEN = -1  # a count row-level security would have filtered: unknown, so held


def rows_held(conn, tables: list[str] | None = None) -> dict[str, int]:
    """Row counts (capped) of the given tables, or of every user table, that hold rows.

    Counted with `row_security = off`: for a role that bypasses row security (a superuser,
    BYPASSRLS) that changes nothing; for one that does not (an admin of a server of one's own
    owning tables with forced RLS), PostgreSQL then refuses the count instead of silently
    counting only the rows a policy shows it (none), and the table counts as holding data
    (HIDDEN): a guard never passes on rows it could not see."""
    from psycopg import errors

    sql = _sql()
    held = {}
    with conn.transaction():  # a transaction of its own (autocommit), or a savepoint in the caller's
        conn.execute("set local row_security = off")
        for schema, table in user_tables(conn, tables):
            shown = shown_table(schema, table)
            if table == MIGRATIONS_TABLE:
                continue
            try:
                with conn.transaction():
                    count = conn.execute(
                        sql.SQL("select count(*) from (select 1 from {}.{} limit 1000000) t").format(
                            sql.Identifier(schema), sql.Identifier(table)
                        )
                    ).fetchone()[0]
            except errors.InsufficientPrivilege:  # row security would have hidden rows from this role
                count = HIDDEN
            if count:
                held[shown] = count
    return held


def refuse_data_loss(ctx, held: dict[str, int], what: str) -> None:
    if held and not ctx.destroy_data:
        shown = ", ".join(
            f"{t} (rows row-level security hides from the admin role, which lacks BYPASSRLS)"
            if n == HIDDEN
            else f"{t} ({n} rows)"
            for t, n in sorted(held.items())
        )
        raise DataLossRefused(
            f"refusing to {what}: it holds data in {shown}; back it up, then re-run with --destroy-data to delete it"
        )


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


def set_public_privileges(conn, database: str, privileges: list[str]) -> None:
    """PUBLIC holds exactly `privileges` on `database` (revoke all, then grant those)."""
    sql = _sql()
    db = sql.Identifier(database)
    conn.execute(sql.SQL("revoke all on database {} from public").format(db))
    if privileges:
        conn.execute(sql.SQL("grant {} on database {} to public").format(_privs(privileges), db))
