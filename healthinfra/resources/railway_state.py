"""What the Railway resources read and remember: the project, environment and service ids
(one paginated query per run), the record of which configuration each deployment runs
(run state, kept by the environment's state backend), and Railway's own rollback of a
service to its previous successful deployment (`railway.rollback`).
"""

from __future__ import annotations

from typing import Any

from ..errors import ProviderError
from ..providers import railway as api

# --- facts ----------------------------------------------------------------------------


def project_fact(ctx) -> dict | None:
    """The inventory's project: {id, environments: {name: id}, services: {name: id}}, or None."""

    def load():
        name, workspace = ctx.inventory.hosting["project"], ctx.inventory.hosting.get("workspace")
        found, after = [], None
        while True:
            page = ctx.railway.execute(api.PROJECTS, {"workspaceId": workspace, "after": after})["projects"]
            found += [edge["node"] for edge in page["edges"] if edge["node"]["name"] == name]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        if len(found) > 1:
            raise ProviderError(
                f"Railway: {len(found)} projects are named `{name}` for this token; rename all but"
                f" one, or name another in `hosting.project`"
            )
        if not found:
            return None
        node = found[0]
        return {
            "id": node["id"],
            "environments": {e["node"]["name"]: e["node"]["id"] for e in node["environments"]["edges"]},
            "services": {s["node"]["name"]: s["node"]["id"] for s in node["services"]["edges"]},
        }

    return ctx.fact("railway.project", load)


def environment_id(ctx) -> str | None:
    project = project_fact(ctx)
    return project["environments"].get(ctx.inventory.hosting["environment"]) if project else None


def instances_fact(ctx) -> dict[str, dict]:
    """Our services in this environment: {name: {"instance": {...}, "variables": {...raw}}}."""

    def load():
        project, env_id = project_fact(ctx), environment_id(ctx)
        if project is None or env_id is None:
            return {}
        ours = [name for name in ctx.inventory.hosting["services"] if name in project["services"]]
        ids = [project["services"][name] for name in ours]
        data = ctx.railway.execute(
            api.instances_and_variables(ids),
            {"projectId": project["id"], "environmentId": env_id, **{f"s{i}": sid for i, sid in enumerate(ids)}},
        )
        instances = {
            edge["node"]["serviceId"]: edge["node"] for edge in data["environment"]["serviceInstances"]["edges"]
        }
        return {
            name: {"instance": instances.get(project["services"][name]), "variables": data[f"v{i}"] or {}}
            for i, name in enumerate(ours)
        }

    return ctx.fact("railway.instances", load)


def ids(ctx, service: str | None = None) -> dict[str, str]:
    """Ids a mutation needs, read now (after earlier changes); a clear error if one is missing."""
    project = project_fact(ctx)
    hosting = ctx.inventory.hosting
    if project is None:
        raise ProviderError(f"Railway project `{hosting['project']}` does not exist (yet)")
    found = {"projectId": project["id"]}
    env_id = project["environments"].get(hosting["environment"])
    if env_id is None:
        raise ProviderError(f"Railway environment `{hosting['environment']}` does not exist in `{hosting['project']}`")
    found["environmentId"] = env_id
    if service is not None:
        if service not in project["services"]:
            raise ProviderError(f"Railway service `{service}` does not exist in `{hosting['project']}`")
        found["serviceId"] = project["services"][service]
    return found


# --- the deployment record --------------------------------------------------------------


RECORD = "railway-deployments"  # the run-state document (state/INVENTORY/railway-deployments.json locally)


def deployment_record(ctx) -> dict[str, Any]:
    """Which configuration each deployment runs; empty when absent or damaged (every
    deployment then counts as unknown, and the next deploy redeploys)."""
    return ctx.state.read_document(RECORD) or {}


def remember_deployment(ctx, deployment_id: str, config: str | None, *, pending_for: str | None = None) -> None:
    """Which configuration a deployment runs (atomic write; a lost record only costs a redeploy).
    `pending_for` (a service id) records a deploy about to be asked for, before its id is known."""

    def change(record: dict[str, Any]) -> dict[str, Any]:
        if pending_for is not None:
            record[f"pending:{pending_for}"] = {"after": deployment_id, "config": config}
        elif config is None:
            record.pop(deployment_id, None)
        else:
            record[deployment_id] = config
            record = {k: v for k, v in record.items() if not (k.startswith("pending:") and v["config"] == config)}
        return record

    ctx.state.update_document(RECORD, change)


def latest_deployment(ctx, service: str) -> dict | None:
    found = ids(ctx, service)
    data = ctx.railway.execute(
        api.LATEST_DEPLOYMENT, {"serviceId": found["serviceId"], "environmentId": found["environmentId"]}
    )
    return data["serviceInstance"]["latestDeployment"]


# --- returning a service to its previous deployment (railway.rollback) ----------------------


def rollback_candidates(ctx, service: str) -> tuple[dict, dict]:
    """The deployment a service runs now and the earlier successful one it can return to."""
    from ..errors import ProviderError
    from ..faults import provider_call, with_retries

    def find():
        with provider_call(f"list the deployments of `{service}`"):
            found = ids(ctx, service)
            edges = ctx.railway.execute(
                api.DEPLOYMENTS, {"input": {**found, "status": {"in": ["SUCCESS", "REMOVED"]}}}
            )["deployments"]["edges"]
            return [e["node"] for e in edges]

    deployments = with_retries(find, lambda exc, attempt: ctx.forget_all())
    current = next((d for d in deployments if d["status"] == "SUCCESS"), None)
    if current is None:
        raise ProviderError(
            f"`{service}` has no successful deployment in `{ctx.inventory.hosting['environment']}`;"
            " there is nothing to roll back from"
        )
    older = deployments[deployments.index(current) + 1 :]
    previous = next((d for d in older if d["canRollback"]), None)
    if previous is None:
        raise ProviderError(f"`{service}` has no earlier successful deployment to return to (current: {current['id']})")
    return current, previous


def roll_back_to(ctx, service: str, current: dict, previous: dict) -> str | None:
    """Ask Railway to redeploy `previous`; safe to retry (an attempt whose answer was lost is seen).
    Returns the id of the deployment the rollback made."""
    from ..faults import provider_call, with_retries

    def roll_back():
        with provider_call(f"roll `{service}` back"):
            latest = latest_deployment(ctx, service)
            if latest and latest["id"] != current["id"]:
                return latest  # an earlier attempt took effect; its answer was lost
            ctx.railway.execute(api.DEPLOYMENT_ROLLBACK, {"id": previous["id"]})
            return latest_deployment(ctx, service)

    latest = with_retries(roll_back, lambda exc, attempt: ctx.forget_all())
    if latest:
        remember_deployment(ctx, latest["id"], deployment_record(ctx).get(previous["id"]))
    return latest["id"] if latest else None


# --- after a rollback: the live password back on the service ---------------------------------

REDEPLOY_WAIT_SECONDS = 30.0  # how long Railway may take to show the deployment a variable change starts


def write_back_database_url(ctx, service: str, live: Any, rolled: str, *, only_stale: bool = False) -> str | None:
    """Railway's rollback brings back the old deployment's variables, a `DATABASE_URL` whose
    password `security.rotate` has since replaced among them. Put the service's URL as it is now
    (`live`, a `Secret`) back and let Railway redeploy the rolled-back code with it (an upsert
    without `skipDeploys` redeploys the service). Returns the id of that deployment, or None
    when the rollback's variables already held the live URL (or, with `only_stale`, held a value
    other than our role's URL with an older password: undo restores such a value exactly).

    Safe to retry: an attempt whose answer was lost is seen (the variable holds the live URL).
    A value that is not our role's URL is kept in the secrets store first (`stash`), as any
    secret the runner replaces."""
    from ..faults import provider_call, with_retries
    from ..service_env import DATABASE_URL_STALE, needs_keeping, observed, stash

    sent: list[bool] = []

    def attempt() -> str | None:
        with provider_call(f"write the live DATABASE_URL of `{service}` back"):
            ctx.forget_all()
            value = ((instances_fact(ctx).get(service) or {}).get("variables") or {}).get("DATABASE_URL")
            if value != live.reveal():
                if only_stale and (value is None or observed("DATABASE_URL", value, live) != DATABASE_URL_STALE):
                    return None
                if value is not None and needs_keeping("DATABASE_URL", value, live):
                    stash(ctx.secrets, value)
                sent.append(True)
                ctx.railway.execute(
                    api.VARIABLE_COLLECTION_UPSERT,
                    {"input": {**ids(ctx, service), "variables": {"DATABASE_URL": live.reveal()}}},
                )
            elif not sent:
                return None  # the deployment returned to ran with the live password already
            return deployment_after(ctx, service, rolled)

    redeployed = with_retries(attempt, lambda exc, attempt: ctx.forget_all())
    if redeployed:
        remember_deployment(ctx, redeployed, deployment_record(ctx).get(rolled))
    return redeployed


def deployment_after(ctx, service: str, rolled: str) -> str:
    """The deployment Railway started after `rolled` (waited for, within REDEPLOY_WAIT_SECONDS)."""
    import time

    deadline = time.monotonic() + REDEPLOY_WAIT_SECONDS
    while True:
        latest = latest_deployment(ctx, service)
        if latest and latest["id"] != rolled:
            return latest["id"]
        if time.monotonic() > deadline:
            raise ProviderError(
                f"`{service}`: its DATABASE_URL was written back, but Railway started no deployment within"
                f" {REDEPLOY_WAIT_SECONDS:.0f}s; redeploy it in Railway's dashboard (it still runs deployment {rolled})"
            )
        time.sleep(1.0)
