"""Read-only questions to the application database that commands ask: the audit trail and
the slowest statements. Each returns plain rows; no PHI value is ever selected."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ProviderError
from .faults import provider_call

if TYPE_CHECKING:
    from .context import RunContext


def audit_trail(ctx: RunContext, amount: int, unit: str) -> list[dict[str, Any]]:
    """Who touched which PHI table in the last `amount` `unit`s (minutes, hours, days)."""
    with provider_call("audit trail"):
        conn = ctx.pg.admin(ctx.inventory.database["name"])
        rows = conn.execute(
            """select occurred_at, actor, action, table_name, row_key, details->>'app_user_id'
                 from audit_log where occurred_at >= now() - %s::interval
                order by occurred_at, id""",
            (f"{amount} {unit}",),
        ).fetchall()
    return [
        {"at": r[0].isoformat(), "actor": r[1], "action": r[2], "table": r[3], "row": r[4], "user": r[5]} for r in rows
    ]


def slow_queries(ctx: RunContext, limit: int) -> list[dict[str, Any]]:
    """The top statements by total time, from pg_stat_statements (constants normalised away)."""
    database = ctx.inventory.database["name"]
    with provider_call("slow queries"):
        conn = ctx.pg.admin(database)
        installed = conn.execute("select 1 from pg_extension where extname = 'pg_stat_statements'").fetchone()
        if not installed:
            raise ProviderError(
                f"pg_stat_statements is not installed in `{database}`; it comes with phase 3: invoke deploy --phase 3"
            )
        rows = conn.execute(
            """select calls, round(total_exec_time::numeric, 2), round(mean_exec_time::numeric, 2),
                      rows, regexp_replace(query, '\\s+', ' ', 'g')
                 from pg_stat_statements join pg_database d on d.oid = dbid
                where d.datname = current_database()
                  and query !~* 'password'  -- role statements keep their text verbatim (Neon: plain passwords)
                order by total_exec_time desc limit %s""",
            (limit,),
        ).fetchall()
    return [{"calls": r[0], "total_ms": float(r[1]), "mean_ms": float(r[2]), "rows": r[3], "query": r[4]} for r in rows]
