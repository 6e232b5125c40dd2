"""`security.*`: audit what the environment holds, rotate a service's database password."""

from __future__ import annotations

import json
import sys

from ..context import RunContext
from ..errors import ProviderError, UsageError
from ..faults import provider_call
from ..options import RunOptions
from ..output import Output
from ..plan import Item, Job
from ..runner import execute
from ..state import open_state
from .common import load, require_local_services


def security_audit(inventory_name: str, *, as_json=False, out=None) -> int:
    """Findings table (or JSON); exit 1 when there is any finding. Reads only."""
    from ..audit import gather

    out = out or sys.stdout
    inventory = load(inventory_name)
    require_local_services(inventory)
    with RunContext(inventory, check=True) as ctx, provider_call("security audit"):
        findings = gather(ctx, inventory, inventory.phase)
    if as_json:
        document = {"inventory": inventory.name, "findings": [f.to_json() for f in findings]}
        out.write(json.dumps(document, indent=2) + "\n")
    elif not findings:
        out.write(
            f"no findings in `{inventory.name}`: buckets private and encrypted, policies narrow, every role"
            " bounded, every database role holding only what it needs\n"
        )
    else:
        width = max(len(f.resource) for f in findings)
        out.write(f"{'resource':<{width}}  problem  ->  fix\n")
        for f in findings:
            out.write(f"{f.resource:<{width}}  {f.problem}  ->  {f.fix}\n")
        out.write(f"{len(findings)} finding(s)\n")
    return 1 if findings else 0


def security_rotate(inventory_name: str, service: str, *, out=None) -> int:
    """A new password for a service's database role: set on the server, kept in the secrets store.

    A change like any other: journalled (the role, never a value) as a run of kind `rotate`,
    through the role's resource type. The old password is kept nowhere, by design, so a
    rotation is never undone by `rollback`.
    """
    from ..resources.postgres import PASSWORD_ROTATED, PgRole, roles_fact

    out = out or sys.stdout
    inventory = load(inventory_name)
    services = {s.name: s for s in inventory.services}
    if service not in services:
        raise UsageError(f"--service: no service `{service}` in services.yml; choose one of {', '.join(services)}")
    require_local_services(inventory)
    role = PgRole(services[service].db_role, None, database=inventory.database["name"])
    command = f"security.rotate --service {service}"
    state = open_state(inventory)
    options = RunOptions(rollback_on_failure=False, command=command)
    with state.lock(command), RunContext(inventory, options, state=state) as ctx:
        with provider_call(f"read {role.key}"):
            current = role.read(ctx) if role.name in roles_fact(ctx) else None
        if current is None:
            raise UsageError(
                f"--service: `{service}` has no database role yet in `{inventory.name}`; deploy its phase first"
            )
        item = Item(
            "security",
            "rotate a service's database password",
            role.with_desired({**current, "password": PASSWORD_ROTATED}),
        )
        result = execute(ctx, Job("rotate", None, (item,)), Output(sys.stderr), state.journal())
        location = ctx.secrets.location
    if result.recap.failed:  # one line, as for any command that fails (the role keeps its password)
        raise ProviderError(result.recap.errors[0] if result.recap.errors else f"rotating `{role.name}` failed")
    out.write(
        f"rotated the password of `{role.name}`; it is in {location} (0600)."
        " Restart the service, or let it reconnect, to use it\n"
    )
    return 0
