"""`railway.rollback`: return a hosted service to its previous successful deployment."""

from __future__ import annotations

import sys

from .. import journal as events
from ..context import RunContext
from ..converge import ChangeLog
from ..errors import HealthInfraError, UsageError
from ..faults import provider_call
from ..journal import new_run_id
from ..plan import Item
from ..resource import Action
from ..state import open_state
from .common import load


def railway_rollback(inventory_name: str, service: str, *, out=None) -> int:
    """Railway's own rollback: the deployment returned to brings its image and variables; the next
    `deploy` puts the inventory's configuration back, as after any change made outside the runner.

    The variables it brings back may hold a `DATABASE_URL` whose password `security.rotate` has
    replaced since: the service's URL as it is now is written back and the service redeployed
    with it, a change journalled (by reference, never the value) in the same run. Journalled as
    its own run (kind `railway-rollback`), never undone by `rollback`."""
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
        live = live_database_url(ctx, service)  # before any change: a rollback we could not fix is refused
        current, previous = rollback_candidates(ctx, service)
        run_id = new_run_id()
        journal.append(
            events.run_start(run_id, kind="railway-rollback", phase=None, inventory=inventory.name, command=command)
        )
        ok, details = False, {}
        try:
            rolled = roll_back_to(ctx, service, current, previous)
            redeployed = put_live_database_url_back(ctx, service, live, rolled, ChangeLog(journal, run_id))
            if redeployed:
                details["redeployed"] = redeployed
            ok = True
        finally:
            journal.append(
                events.run_end(
                    run_id, ok=ok, service=service, **{"from": current["id"], "to": previous["id"]}, **details
                )
            )
    fixed = (
        f"; its DATABASE_URL (written back with the role's current password) runs in deployment {redeployed}"
        if redeployed
        else ""
    )
    out.write(
        f"rolled `{service}` back to deployment {previous['id']} (it was running {current['id']}){fixed};"
        f" the next `invoke deploy -i {inventory.name}` deploys the inventory's configuration again\n"
    )
    return 0


def live_database_url(ctx, service: str):
    """The service's `DATABASE_URL` as a deploy would set it now (a `Secret`)."""
    from ..service_env import database_url

    return database_url(
        ctx.inventory, next(s for s in ctx.inventory.services if s.name == service), ctx.secrets, ctx.database_api
    )


def put_live_database_url_back(ctx, service: str, live, rolled: str | None, log: ChangeLog) -> str | None:
    """After the rollback: the live `DATABASE_URL` on the service and a deployment running with it,
    journalled as a change of the service's variables (markers only: `before` shows the value the
    rollback brought back as a reference or a digest). The deployment's id, or None if none was needed."""
    from ..resources.railway import RailwayVariables
    from ..resources.railway_state import write_back_database_url
    from ..service_env import DATABASE_URL_REF, managed_names

    hosting = ctx.inventory.hosting
    row = next(s for s in ctx.inventory.services if s.name == service)
    variables = RailwayVariables(
        service,
        None,
        project=hosting["project"],
        environment=hosting["environment"],
        managed=managed_names(ctx.inventory, row),
    )
    ctx.forget_all()
    with provider_call(f"read {variables.key}"):
        before = variables.read(ctx) or {}
    if rolled is None or before.get("DATABASE_URL") == DATABASE_URL_REF:
        return None
    item = Item(
        "railway.rollback",  # the command that made the change
        "write the live DATABASE_URL back after the rollback, and redeploy",
        variables.with_desired({**before, "DATABASE_URL": DATABASE_URL_REF}),
    )
    seq = log.intent(item, [Action("set", "DATABASE_URL", before.get("DATABASE_URL"), DATABASE_URL_REF)], before)
    try:
        redeployed = write_back_database_url(ctx, service, live, rolled)
    except HealthInfraError as exc:
        log.done(seq, error=str(exc))
        raise
    log.done(seq)
    return redeployed
