"""pg.database, pg.role and pg.extension, as tables: diff, the parse of catalog rows as psycopg
returns them (tuples; a text[] as a list of str; rolconnlimit -1 for no limit), and actions ->
the SQL apply sends (a recording connection, no server)."""

from __future__ import annotations

import pytest

from healthinfra.errors import ProviderError
from healthinfra.resource import Action
from healthinfra.resources.postgres import (
    PASSWORD_KEPT,
    PASSWORD_LOST,
    PgDatabase,
    PgExtension,
    PgRole,
    parse_databases,
    parse_roles,
)

# --- a recording connection ----------------------------------------------------


class Cursor:
    def __init__(self, rows):
        self.rows = rows

    def fetchall(self):
        return list(self.rows)

    def fetchone(self):
        return self.rows[0] if self.rows else None


class Pg:
    """`ctx.pg`: admin connections per database, each recording `(database, SQL text, params)`;
    a query whose text contains a key of `answers` gets those rows."""

    def __init__(self, answers: dict | None = None):
        self.sent: list[tuple] = []
        self.closed: list[str | None] = []
        # the session's own bound, as `PostgresProvider.admin` sets it (database.lock_timeout)
        self.answers = {"current_setting('lock_timeout')": [("2s",)], **(answers or {})}

    def admin(self, dbname: str = "postgres"):
        pg = self

        class Conn:
            def transaction(self):  # a transaction or savepoint: the statements inside are what count here
                import contextlib

                return contextlib.nullcontext()

            def execute(self, query, params=None):
                text = query if isinstance(query, str) else query.as_string(None)
                pg.sent.append((dbname, " ".join(text.split()), params))
                return Cursor(next((rows for key, rows in pg.answers.items() if key in text), []))

        return Conn()

    def close(self, dbname=None):
        self.closed.append(dbname)


class Secrets:
    def __init__(self):
        self.deleted: list[str] = []

    def delete(self, name):
        self.deleted.append(name)


class Ctx:
    def __init__(self, pg: Pg, facts: dict, destroy_data: bool = False):
        self.pg = pg
        self.facts = facts
        self.secrets = Secrets()
        self.destroy_data = destroy_data

    def fact(self, key, loader):
        if key not in self.facts:
            self.facts[key] = loader()
        return self.facts[key]


def statements(pg: Pg) -> list[tuple[str, str]]:
    """What was sent, without the catalog reads and the counts' own setting (they are not changes)."""
    return [
        (db, text)
        for db, text, _ in pg.sent
        if not text.startswith("select") and text != "set local row_security = off"
    ]


# --- pg.database -----------------------------------------------------------------

DATABASE = {"owner": "postgres", "encoding": "UTF8", "public_privileges": []}


@pytest.mark.parametrize(
    "rows, expected",
    [
        ([], {}),
        # datname, owner, encoding, datacl is null, PUBLIC's privileges (text[], sorted by the query)
        ([("healthcare", "postgres", "UTF8", False, [])], {"healthcare": DATABASE}),
        # a NULL acl is PostgreSQL's default: PUBLIC may CONNECT and create TEMP tables
        (
            [("healthcare", "postgres", "UTF8", True, [])],
            {"healthcare": {**DATABASE, "public_privileges": ["CONNECT", "TEMPORARY"]}},
        ),
        (
            [("healthcare", "app_owner", "UTF8", False, ["CONNECT"])],
            {"healthcare": {**DATABASE, "owner": "app_owner", "public_privileges": ["CONNECT"]}},
        ),
        (
            [("healthcare", "postgres", "UTF8", False, ["CONNECT", "TEMPORARY"])],
            {"healthcare": {**DATABASE, "public_privileges": ["CONNECT", "TEMPORARY"]}},
        ),
        (
            [("postgres", "postgres", "UTF8", True, []), ("legacy", "postgres", "SQL_ASCII", False, [])],
            {
                "postgres": {**DATABASE, "public_privileges": ["CONNECT", "TEMPORARY"]},
                "legacy": {**DATABASE, "encoding": "SQL_ASCII"},
            },
        ),
    ],
)
def test_parse_databases(rows, expected):
    assert parse_databases(rows) == expected


@pytest.mark.parametrize(
    "current, desired, expected",
    [
        (None, None, []),
        (None, DATABASE, [Action("create", after=DATABASE)]),
        (DATABASE, None, [Action("delete", before=DATABASE)]),
        (DATABASE, dict(DATABASE), []),
        ({**DATABASE, "owner": "app"}, DATABASE, [Action("set", "owner", "app", "postgres")]),
        ({**DATABASE, "encoding": "LATIN1"}, DATABASE, [Action("set", "encoding", "LATIN1", "UTF8")]),
        (
            {**DATABASE, "public_privileges": ["CONNECT", "TEMPORARY"]},
            DATABASE,
            [Action("set", "public_privileges", ["CONNECT", "TEMPORARY"], [])],
        ),
    ],
)
def test_database_diff(current, desired, expected):
    assert PgDatabase("healthcare", desired).diff(current, desired) == expected


def test_database_encoding_change_is_refused_before_any_change():
    pg = Pg()
    with pytest.raises(ProviderError, match="encoding cannot change in place"):
        PgDatabase("healthcare", DATABASE).guard(Ctx(pg, {}), [Action("set", "encoding", "LATIN1", "UTF8")])
    assert pg.sent == []


@pytest.mark.parametrize(
    "actions, expected",
    [
        (
            [Action("create", after=DATABASE)],
            [
                ("postgres", 'create database "healthcare" owner "postgres" encoding \'UTF8\' template template0'),
                ("postgres", 'revoke all on database "healthcare" from public'),
            ],
        ),
        (
            [Action("create", after={**DATABASE, "public_privileges": ["CONNECT"]})],
            [
                ("postgres", 'create database "healthcare" owner "postgres" encoding \'UTF8\' template template0'),
                ("postgres", 'revoke all on database "healthcare" from public'),
                ("postgres", 'grant CONNECT on database "healthcare" to public'),
            ],
        ),
        (
            [Action("set", "owner", "app", "postgres")],
            [("postgres", 'alter database "healthcare" owner to "postgres"')],
        ),
        # undo of a revoke: PostgreSQL's defaults back, in one grant
        (
            [Action("set", "public_privileges", [], ["CONNECT", "TEMPORARY"])],
            [
                ("postgres", 'revoke all on database "healthcare" from public'),
                ("postgres", 'grant CONNECT, TEMPORARY on database "healthcare" to public'),
            ],
        ),
        (
            [Action("set", "public_privileges", ["CONNECT"], [])],
            [("postgres", 'revoke all on database "healthcare" from public')],
        ),
        # an empty database is dropped while a connection to it holds a transaction (it would
        # hold every table's lock; there is none here); the drop ends that connection
        (
            [Action("delete", before=DATABASE)],
            [
                ("healthcare", "begin"),
                ("healthcare", "set local lock_timeout = '30s'"),
                ("postgres", 'drop database if exists "healthcare" with (force)'),
            ],
        ),
    ],
)
def test_database_apply_sql(actions, expected):
    pg = Pg()
    PgDatabase("healthcare", None).apply(Ctx(pg, {"pg.databases": {"healthcare": DATABASE}}), actions)
    assert statements(pg) == expected
    assert pg.closed == (["healthcare"] if actions[0].op == "delete" else [])


def test_database_tables_are_locked_and_counted_in_the_holder_before_the_drop():
    pg = Pg({"from pg_class": [("public", "patients"), ("ml", "features")], "count(*)": [(0,)]})
    ctx = Ctx(pg, {"pg.databases": {"healthcare": DATABASE}})
    PgDatabase("healthcare", None).apply(ctx, [Action("delete", before=DATABASE)])
    assert statements(pg) == [
        ("healthcare", "begin"),
        ("healthcare", "set local lock_timeout = '30s'"),
        ("healthcare", 'lock table "public"."patients", "ml"."features" in access exclusive mode'),
        ("postgres", 'drop database if exists "healthcare" with (force)'),
    ]
    # once every table is locked, the rest waits the session's own bound again, not the guard's 30 s
    assert ("healthcare", "select set_config('lock_timeout', %s, true)", ("2s",)) in pg.sent
    assert pg.closed == ["healthcare"]


def test_database_dropped_with_destroy_data_counts_nothing():
    pg = Pg({"from pg_class": [("public", "patients")], "count(*)": [(3,)]})
    ctx = Ctx(pg, {"pg.databases": {"healthcare": DATABASE}}, destroy_data=True)
    PgDatabase("healthcare", None).apply(ctx, [Action("delete", before=DATABASE)])
    assert statements(pg) == [("postgres", 'drop database if exists "healthcare" with (force)')]
    assert pg.closed == ["healthcare"]


def test_database_holding_rows_is_not_dropped():
    from healthinfra.errors import DataLossRefused

    pg = Pg({"from pg_class": [("public", "patients")], "count(*)": [(3,)]})
    with pytest.raises(DataLossRefused, match=r"patients \(3 rows\)"):
        PgDatabase("healthcare", None).apply(
            Ctx(pg, {"pg.databases": {"healthcare": DATABASE}}), [Action("delete", before=DATABASE)]
        )
    assert statements(pg) == [] and pg.closed == []


# --- pg.role ---------------------------------------------------------------------

ROLE = {
    "login": True,
    "superuser": False,
    "createdb": False,
    "createrole": False,
    "bypassrls": False,
    "replication": False,
    "connection_limit": 20,
}
MANAGED = {**ROLE, "password": PASSWORD_KEPT}


@pytest.mark.parametrize(
    "rows, expected",
    [
        ([], {}),
        # rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, rolreplication, rolconnlimit
        ([("auth_svc", True, False, False, False, False, False, 20)], {"auth_svc": ROLE}),
        # -1: no connection limit, as pg_roles says it
        (
            [("postgres", True, True, True, True, True, True, -1)],
            {
                "postgres": {
                    "login": True,
                    "superuser": True,
                    "createdb": True,
                    "createrole": True,
                    "bypassrls": True,
                    "replication": True,
                    "connection_limit": -1,
                }
            },
        ),
        # a group role (NOLOGIN), each flag in its own column
        (
            [("pg_read_all_data", False, False, False, False, False, False, -1)],
            {"pg_read_all_data": {**ROLE, "login": False, "connection_limit": -1}},
        ),
        ([("a", True, False, True, False, False, False, 5)], {"a": {**ROLE, "createdb": True, "connection_limit": 5}}),
        (
            [("a", True, False, False, True, False, False, 5)],
            {"a": {**ROLE, "createrole": True, "connection_limit": 5}},
        ),
        ([("a", True, False, False, False, True, False, 5)], {"a": {**ROLE, "bypassrls": True, "connection_limit": 5}}),
        (
            [("a", True, False, False, False, False, True, 5)],
            {"a": {**ROLE, "replication": True, "connection_limit": 5}},
        ),
    ],
)
def test_parse_roles(rows, expected):
    assert parse_roles(rows) == expected


@pytest.mark.parametrize(
    "role, known, expected",
    [
        (None, True, None),
        (None, False, None),
        (ROLE, True, MANAGED),
        # the secrets file lost it: a change (a new password is set and kept)
        (ROLE, False, {**ROLE, "password": PASSWORD_LOST}),
    ],
)
def test_role_parse(role, known, expected):
    assert PgRole.parse(role, known) == expected


CHANGED_ROLE = {
    "login": False,
    "superuser": True,
    "createdb": True,
    "createrole": True,
    "bypassrls": True,
    "replication": True,
    "connection_limit": 5,
    "password": PASSWORD_LOST,
}


@pytest.mark.parametrize("attribute", sorted(CHANGED_ROLE))
def test_role_diff_each_attribute_alone(attribute):
    current = {**MANAGED, attribute: CHANGED_ROLE[attribute]}
    assert PgRole("auth_svc", MANAGED, database="healthcare").diff(current, MANAGED) == [
        Action("set", attribute, CHANGED_ROLE[attribute], MANAGED[attribute])
    ]


@pytest.mark.parametrize(
    "current, desired, expected",
    [
        (None, None, []),
        (None, MANAGED, [Action("create", after=MANAGED)]),
        (MANAGED, None, [Action("delete", before=MANAGED)]),
        (MANAGED, dict(MANAGED), []),
        # what the catalog says of a role created as wanted: no change
        (
            PgRole.parse(parse_roles([("auth_svc", True, False, False, False, False, False, 20)])["auth_svc"], True),
            MANAGED,
            [],
        ),
    ],
)
def test_role_diff(current, desired, expected):
    assert PgRole("auth_svc", desired, database="healthcare").diff(current, desired) == expected


ALL_DATABASES = {"pg.databases": {"healthcare": DATABASE, "postgres": DATABASE}, "pg.roles": {"auth_svc": ROLE}}


@pytest.mark.parametrize(
    "actions, answers, expected",
    [
        ([Action("set", "login", True, False)], {}, [("postgres", 'alter role "auth_svc" with NOLOGIN')]),
        ([Action("set", "login", False, True)], {}, [("postgres", 'alter role "auth_svc" with LOGIN')]),
        ([Action("set", "superuser", True, False)], {}, [("postgres", 'alter role "auth_svc" with NOSUPERUSER')]),
        ([Action("set", "createdb", False, True)], {}, [("postgres", 'alter role "auth_svc" with CREATEDB')]),
        ([Action("set", "createrole", True, False)], {}, [("postgres", 'alter role "auth_svc" with NOCREATEROLE')]),
        ([Action("set", "bypassrls", True, False)], {}, [("postgres", 'alter role "auth_svc" with NOBYPASSRLS')]),
        ([Action("set", "replication", True, False)], {}, [("postgres", 'alter role "auth_svc" with NOREPLICATION')]),
        (
            [Action("set", "connection_limit", 5, 20)],
            {},
            [("postgres", 'alter role "auth_svc" with connection limit 20')],
        ),
        # undoing "a lost password was replaced" never forgets the working one: nothing sent
        ([Action("set", "password", PASSWORD_KEPT, PASSWORD_LOST)], {}, []),
        # delete as a superuser: what it owns in both databases, then the role
        (
            [Action("delete", before=MANAGED)],
            {"rolsuper": [(True,)]},
            [
                ("healthcare", 'drop owned by "auth_svc"'),
                ("postgres", 'drop owned by "auth_svc"'),
                ("postgres", 'drop role if exists "auth_svc"'),
            ],
        ),
        # as a CREATEROLE owner (Neon): take the role's privileges first, which DROP OWNED needs
        (
            [Action("delete", before=MANAGED)],
            {"rolsuper": [(False,)]},
            [
                ("postgres", 'grant "auth_svc" to current_user'),
                ("healthcare", 'drop owned by "auth_svc"'),
                ("postgres", 'drop owned by "auth_svc"'),
                ("postgres", 'drop role if exists "auth_svc"'),
            ],
        ),
    ],
)
def test_role_apply_sql(actions, answers, expected):
    pg = Pg(answers)
    ctx = Ctx(pg, dict(ALL_DATABASES))
    PgRole("auth_svc", None, database="healthcare").apply(ctx, actions)
    assert statements(pg) == expected
    assert ctx.secrets.deleted == (["pg.auth_svc"] if actions[0].op == "delete" else [])


def test_role_delete_replayed_asks_nothing_of_a_role_gone_nor_of_a_database_gone():
    pg = Pg()
    ctx = Ctx(pg, {"pg.databases": {"healthcare": DATABASE}, "pg.roles": {}})
    PgRole("auth_svc", None, database="healthcare").apply(ctx, [Action("delete", before=MANAGED)])
    assert statements(pg) == [
        ("healthcare", 'drop owned by "auth_svc"'),
        ("postgres", 'drop role if exists "auth_svc"'),
    ]


# --- pg.extension ------------------------------------------------------------------


@pytest.mark.parametrize("row, expected", [(None, None), ((1,), {})])
def test_extension_parse(row, expected):
    assert PgExtension.parse(row) == expected


@pytest.mark.parametrize(
    "current, desired, expected",
    [
        (None, None, []),
        (None, {}, [Action("create", after={})]),
        ({}, None, [Action("delete", before={})]),
        ({}, {}, []),
    ],
)
def test_extension_diff(current, desired, expected):
    assert PgExtension("pg_stat_statements", desired, database="healthcare").diff(current, desired) == expected


@pytest.mark.parametrize(
    "actions, expected",
    [
        ([Action("create", after={})], [("healthcare", 'create extension if not exists "pg_stat_statements"')]),
        ([Action("delete", before={})], [("healthcare", 'drop extension if exists "pg_stat_statements"')]),
    ],
)
def test_extension_apply_sql(actions, expected):
    pg = Pg()
    PgExtension("pg_stat_statements", None, database="healthcare").apply(Ctx(pg, {}), actions)
    assert statements(pg) == expected


def test_extension_read_of_a_database_not_there_asks_nothing():
    pg = Pg()
    assert PgExtension("pg_stat_statements", {}, database="healthcare").read(Ctx(pg, {"pg.databases": {}})) is None
    assert pg.sent == []


def test_rows_row_security_would_hide_count_as_held():
    """An admin without BYPASSRLS owning tables with forced row security would count none of
    their rows; with row_security off PostgreSQL refuses the count instead, and the table counts
    as holding data, so the guard refuses rather than dropping rows it could not see."""
    from psycopg import errors

    from healthinfra.errors import DataLossRefused
    from healthinfra.resources.pg_facts import HIDDEN, refuse_data_loss, rows_held

    class Hidden(Pg):
        def admin(self, dbname="postgres"):
            conn = super().admin(dbname)
            execute = conn.execute

            def counting(query, params=None):
                text = query if isinstance(query, str) else query.as_string(None)
                if "count(*)" in text and "patients" in text:
                    raise errors.InsufficientPrivilege("query would be affected by row-level security policy")
                return execute(query, params)

            conn.execute = counting
            return conn

    pg = Hidden({"from pg_class": [("public", "patients"), ("public", "users")], "count(*)": [(0,)]})
    held = rows_held(pg.admin("healthcare"))
    assert held == {"patients": HIDDEN}, "the hidden table is held; the empty one is not"
    assert ("healthcare", "set local row_security = off") in [(d, t) for d, t, _ in pg.sent]
    with pytest.raises(DataLossRefused, match=r"patients \(rows row-level security hides from the admin role"):
        refuse_data_loss(Ctx(pg, {}), held, "drop database `healthcare`")
    refuse_data_loss(Ctx(pg, {}, destroy_data=True), held, "drop database `healthcare`")  # told: no refusal
