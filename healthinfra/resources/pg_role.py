"""The `pg.role` resource type: a login role for one service, its password kept in the
environment's secrets store (never in the journal: only whether the store holds it)."""

from __future__ import annotations

from typing import Any

from ..resource import Resource
from .pg_facts import _sql, databases_fact, roles_fact

PASSWORD_KEPT = "kept in the secrets file"
PASSWORD_LOST = "missing from the secrets file"
PASSWORD_ROTATED = "replaced by a new one (security.rotate)"


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
