"""What each service may do to the database, derived from its row of the services table (pure).

The security playbook grants exactly this, and `security.audit` flags anything more;
both call `table_privileges`, so the grant and the check can never disagree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .inventory import Service

READ_WRITE = ["DELETE", "INSERT", "SELECT", "UPDATE"]


def table_privileges(service: Service) -> dict[str, list[str]]:
    """What a service's row in the services table allows, per table (pure). A table outside
    `public` is named with its schema (`ml.predictions`) and brings USAGE on that schema."""
    grants: dict[str, set[str]] = {}
    for table in service.owns:
        grants.setdefault(table, set()).update(READ_WRITE)
    for table in service.reads:
        grants.setdefault(table, set()).add("SELECT")
    for table in service.appends:
        grants.setdefault(table, set()).add("INSERT")
    schemas = {f"schema:{t.split('.')[0]}": ["USAGE"] for t in grants if "." in t}
    return {**schemas, **{f"table:{t}": sorted(p) for t, p in sorted(grants.items())}}
