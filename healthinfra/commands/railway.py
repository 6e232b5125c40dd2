"""`railway.rollback`: return a hosted service to its previous successful deployment."""

from __future__ import annotations

import sys

from .. import journal as events
from ..context import RunContext
from ..errors import UsageError
from ..journal import new_run_id
from ..state import open_state
from .common import load


def railway_rollback(inventory_name: str, service: str, *, out=None) -> int:
    """Railway's own rollback: the deployment returned to brings its image and variables; the next
    `deploy` puts the inventory's configuration back, as after any change made outside the runner.
    Journalled as its own run (kind `railway-rollback`), never undone by `rollback`."""
    from ..resources.railway_state import roll_back_to, rollback_candidates

    out = out or sys.stdout
    inventory = load(inventory_name)
    hosted = [s.name for s in inventory.services if s.hosted]
    if service not in hosted:
        raise UsageError(
            f"--service: no Railway-hosted service `{service}` in services.yml; choose one of {', '.join(hosted)}"
        )
    if not getattr(inventory.provider("hosting"), "can_roll_back_deployments", False):
        raise UsageError(
            f"{inventory.path.name}: `providers.hosting` is `{inventory.providers['hosting']}`;"
            " railway.rollback needs an inventory hosted on Railway"
        )
    command = f"railway.rollback --service {service}"
    state = open_state(inventory)
    journal = state.journal()
    with state.lock(command), RunContext(inventory, state=state) as ctx:
        current, previous = rollback_candidates(ctx, service)
        run_id = new_run_id()
        journal.append(
            events.run_start(run_id, kind="railway-rollback", phase=None, inventory=inventory.name, command=command)
        )
        ok = False
        try:
            roll_back_to(ctx, service, current, previous)
            ok = True
        finally:
            journal.append(
                events.run_end(run_id, ok=ok, service=service, **{"from": current["id"], "to": previous["id"]})
            )
    out.write(
        f"rolled `{service}` back to deployment {previous['id']} (it was running {current['id']});"
        f" the next `invoke deploy -i {inventory.name}` deploys the inventory's configuration again\n"
    )
    return 0
