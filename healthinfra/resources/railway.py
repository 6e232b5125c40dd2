"""Railway resource types: project, environment, service, variables, instance settings, deployment.

Facts come in two requests per run (and after each change): every project the token
sees with its environments and services, then every service instance of this
inventory's environment together with each of our services' variables.

Shared things are kept, not deleted: a project still holding another inventory's
environment, or a service that also runs in another environment (Railway deletes a
service in every environment at once), stays when this inventory is cleaned up or a
creation is undone; their per-environment parts (variables) are still removed.

Secret variables (DATABASE_URL) appear in state only by reference or digest, and a
value about to be replaced is first kept in the 0600 secrets file (see service_env),
so undo restores the previous collection without the journal holding a secret.

A deployment's configuration is identified by a fingerprint of what the inventory
asks (source, settings, variables by reference), recorded per deployment id in
`state/INVENTORY/railway-deployments.json`: the latest deployment on Railway is "ours
and current" only if it is recorded with today's fingerprint. Undoing a deploy rolls
the service back (deploymentRollback) to the deployment that ran before; a DATABASE_URL
that rollback brings back with a password rotated since is replaced by the live one and
the service redeployed (`write_back_database_url`).
"""

from __future__ import annotations

from ..errors import ProviderError
from ..providers import railway as api
from ..resource import Action, Resource, diff_attributes
from ..service_env import SECRET_VARIABLES, current_database_url, database_url, needs_keeping, observed, resolve, stash
from .railway_state import (
    deployment_record,
    environment_id,
    ids,
    instances_fact,
    latest_deployment,
    project_fact,
    remember_deployment,
    write_back_database_url,
)

# --- resource types ----------------------------------------------------------------------


class RailwayResource(Resource):
    def __init__(self, name, desired, *, project: str, environment: str):
        super().__init__(name, desired, project=project, environment=environment)


def refuse_foreign_services(ctx, actions, what: str) -> None:
    """Deleting a project or an environment deletes every service in it: refuse, unless the
    run has --destroy-data, while it holds services the inventory does not manage (a database
    with a volume added by hand, say)."""
    from ..errors import DataLossRefused

    if not any(a.op == "delete" for a in actions) or ctx.destroy_data:
        return
    project = project_fact(ctx) or {"services": {}}
    foreign = sorted(set(project["services"]) - set(ctx.inventory.hosting.get("services") or {}))
    if foreign:
        raise DataLossRefused(
            f"refusing to delete {what}: it also holds service(s) {', '.join(foreign)}, which this inventory does not"
            " manage and which would go with it; move them out, or re-run with --destroy-data"
        )


class RailwayProject(RailwayResource):
    """The project, found by name (created with this inventory's environment as its first one)."""

    kind = "railway.project"
    unmanaged = ("description, visibility, PR deploys: Railway's defaults",)

    def guard(self, ctx, actions):
        refuse_foreign_services(ctx, actions, f"Railway project `{self.name}`")

    def read(self, ctx):
        project = project_fact(ctx)
        return None if project is None else {"environments": sorted(project["environments"])}

    def others(self, current) -> list[str]:
        return [e for e in (current or {}).get("environments", []) if e != self.params["environment"]]

    def diff(self, current, desired):
        if desired is None:
            return [] if current is None or self.others(current) else [Action("delete", before=current)]
        return [Action("create", after=desired)] if current is None else []

    def noop_reason(self, current):
        if self.desired is None and self.others(current):
            return f"kept: it also holds environment(s) {', '.join(self.others(current))}"
        return super().noop_reason(current)

    def apply(self, ctx, actions):
        for action in actions:
            if action.op == "create":
                workspace = ctx.inventory.hosting.get("workspace")
                ctx.railway.execute(
                    api.PROJECT_CREATE,
                    {
                        "input": {
                            "name": self.name,
                            "defaultEnvironmentName": self.params["environment"],
                            **({"workspaceId": workspace} if workspace else {}),
                        }
                    },
                )
            elif action.op == "delete":
                ctx.railway.execute(api.PROJECT_DELETE, {"id": ids(ctx)["projectId"]})


class RailwayEnvironment(RailwayResource):
    kind = "railway.environment"

    def guard(self, ctx, actions):
        refuse_foreign_services(ctx, actions, f"Railway environment `{self.name}`")

    def depends_on(self):
        return [f"railway.project {self.params['project']}"]

    def read(self, ctx):
        return {} if environment_id(ctx) else None

    def apply(self, ctx, actions):
        for action in actions:
            if action.op == "create":
                project = ids_project(ctx)
                ctx.railway.execute(
                    api.ENVIRONMENT_CREATE,
                    {"input": {"projectId": project, "name": self.name, "skipInitialDeploys": True}},
                )
            elif action.op == "delete":
                ctx.railway.execute(api.ENVIRONMENT_DELETE, {"id": ids(ctx)["environmentId"]})


def ids_project(ctx) -> str:
    project = project_fact(ctx)
    if project is None:
        raise ProviderError(f"Railway project `{ctx.inventory.hosting['project']}` does not exist (yet)")
    return project["id"]


class RailwayService(RailwayResource):
    """A service of the project. Railway has it in every environment of the project at once."""

    kind = "railway.service"

    def depends_on(self):
        return [f"railway.environment {self.params['environment']}"]

    def read(self, ctx):
        project = project_fact(ctx)
        if project is None or self.name not in project["services"]:
            return None
        return {"shared_with": sorted(e for e in project["environments"] if e != self.params["environment"])}

    def diff(self, current, desired):
        if desired is None:
            return [] if current is None or current["shared_with"] else [Action("delete", before=current)]
        return [Action("create", after=desired)] if current is None else []

    def noop_reason(self, current):
        if self.desired is None and current and current["shared_with"]:
            return f"kept: it also runs in {', '.join(current['shared_with'])}"
        return super().noop_reason(current)

    def apply(self, ctx, actions):
        for action in actions:
            if action.op == "create":  # no source here: a source would deploy at once, before its variables
                found = ids(ctx)
                ctx.railway.execute(
                    api.SERVICE_CREATE,
                    {
                        "input": {
                            "projectId": found["projectId"],
                            "environmentId": found["environmentId"],
                            "name": self.name,
                        }
                    },
                )
            elif action.op == "delete":
                found = ids(ctx, self.name)
                ctx.railway.execute(
                    api.SERVICE_DELETE, {"id": found["serviceId"], "environmentId": found["environmentId"]}
                )


class RailwayInstance(RailwayResource):
    """A service's settings in this environment: source, health-check path, start command, replicas."""

    kind = "railway.instance"
    unmanaged = ("region, restart policy, build settings, sleep, cron: Railway's defaults",)
    SETTINGS = ("source", "healthcheckPath", "startCommand", "numReplicas")

    def depends_on(self):
        return [f"railway.service {self.name}"]

    def read(self, ctx):
        found = instances_fact(ctx).get(self.name)
        instance = found and found["instance"]
        if not instance:
            return None
        source = {k: v for k, v in (instance.get("source") or {}).items() if v is not None} or None
        return {"source": source, **{k: instance.get(k) for k in self.SETTINGS if k != "source"}}

    def diff(self, current, desired):
        if desired is None:
            return []  # the settings go with the service
        return diff_attributes(current, desired)

    def apply(self, ctx, actions):
        changes = {}
        for action in actions:
            if action.op == "create":
                changes.update(action.after)
            elif action.op == "set":
                changes[action.attribute] = action.after
        if changes:
            found = ids(ctx, self.name)
            ctx.railway.execute(
                api.SERVICE_INSTANCE_UPDATE,
                {"serviceId": found["serviceId"], "environmentId": found["environmentId"], "input": changes},
            )


class RailwayVariables(RailwayResource):
    """The variables the runner sets on a service in this environment, upserted as one collection.

    Only names the runner can set (`managed`) are read, changed or deleted: a variable
    added by hand in Railway is left alone."""

    kind = "railway.variables"

    def __init__(self, name, desired, *, project: str, environment: str, managed: list[str]):
        Resource.__init__(self, name, desired, project=project, environment=environment, managed=managed)

    def depends_on(self):
        return [f"railway.service {self.name}"]

    def service(self, ctx):
        return next(s for s in ctx.inventory.services if s.name == self.name)

    def wanted_url(self, ctx):
        """The service's database URL now, or None if its role has no password yet."""
        return current_database_url(ctx.inventory, self.name, ctx.secrets, ctx.database_api)

    def raw(self, ctx) -> dict[str, str] | None:
        found = instances_fact(ctx).get(self.name)
        if not found or not found["instance"]:
            return None
        return {k: v for k, v in found["variables"].items() if k in self.params["managed"]}

    def read(self, ctx):
        raw = self.raw(ctx)
        if raw is None:
            return None
        wanted = self.wanted_url(ctx) if SECRET_VARIABLES & raw.keys() else None
        return {name: observed(name, value, wanted) for name, value in sorted(raw.items())}

    def diff(self, current, desired):
        if current is None:
            return [] if desired is None else [Action("create", after=desired)]
        return diff_attributes(current, desired or {}, open_keys=True)

    def noop_reason(self, current):
        return "absent, as wanted" if current is None else f"up to date ({len(current)} variables)"

    def apply(self, ctx, actions):
        desired = self.desired or {}
        raw = self.raw(ctx) or {}
        service = self.service(ctx)
        values = {
            name: resolve(
                value, ctx.secrets, lambda: database_url(ctx.inventory, service, ctx.secrets, ctx.database_api)
            )
            for name, value in desired.items()
        }
        wanted = self.wanted_url(ctx)
        removed = sorted(set(raw) - set(values))
        for name in SECRET_VARIABLES & raw.keys():  # keep a secret we replace, for undo
            if raw[name] != values.get(name) and needs_keeping(name, raw[name], wanted):
                stash(ctx.secrets, raw[name])
        found = ids(ctx, self.name)
        if values:
            ctx.railway.execute(
                api.VARIABLE_COLLECTION_UPSERT, {"input": {**found, "variables": values, "skipDeploys": True}}
            )
        for name in removed:
            ctx.railway.execute(api.VARIABLE_DELETE, {"input": {**found, "name": name}})
        if any(a.attribute in SECRET_VARIABLES or a.op == "create" for a in actions):
            # a new password is not part of the configuration's fingerprint: make the next deploy happen
            latest = latest_deployment(ctx, self.name)
            if latest:
                remember_deployment(ctx, latest["id"], None)


class RailwayDeployment(RailwayResource):
    """The service's latest deployment runs the inventory's configuration (by fingerprint)."""

    kind = "railway.deployment"

    def depends_on(self):
        return [f"railway.service {self.name}"]

    def read(self, ctx):
        found = instances_fact(ctx).get(self.name)
        latest = found and found["instance"] and found["instance"].get("latestDeployment")
        if not latest:
            return None
        record = deployment_record(ctx)
        config = record.get(latest["id"])
        pending = record.get(f"pending:{found['instance']['serviceId']}")
        if config is None and pending and pending["after"] != latest["id"]:
            config = pending["config"]  # our deploy whose answer was lost (a timeout): a newer deployment is there
        return {"deployment": latest["id"], "config": config}

    def diff(self, current, desired):
        if desired is None:
            return []  # a deployment goes with its service
        if "deployment" in desired:  # undo: back to the deployment that ran before
            same = current is not None and (
                current["deployment"] == desired["deployment"]
                or (desired.get("config") is not None and current.get("config") == desired["config"])
            )
            return (
                [] if same else [Action("set", "deployment", (current or {}).get("deployment"), desired["deployment"])]
            )
        if current is not None and current.get("config") == desired["config"]:
            return []
        return [Action("set", "config", (current or {}).get("config"), desired["config"])]

    def noop_reason(self, current):
        return "no deployment, as wanted" if current is None else f"deployment {current['deployment']} is current"

    def apply(self, ctx, actions):
        found = ids(ctx, self.name)
        for action in actions:
            if action.attribute == "deployment":
                ctx.railway.execute(api.DEPLOYMENT_ROLLBACK, {"id": action.after})
                latest = latest_deployment(ctx, self.name)
                if latest:
                    remember_deployment(ctx, latest["id"], self.desired.get("config"))
                    live = current_database_url(ctx.inventory, self.name, ctx.secrets, ctx.database_api)
                    if live is not None:  # the rollback brought back a password rotated since: the live one
                        write_back_database_url(ctx, self.name, live, latest["id"], only_stale=True)
            else:
                before = self.read(ctx)
                remember_deployment(ctx, (before or {}).get("deployment"), action.after, pending_for=found["serviceId"])
                data = ctx.railway.execute(
                    api.SERVICE_INSTANCE_DEPLOY,
                    {"serviceId": found["serviceId"], "environmentId": found["environmentId"]},
                )
                remember_deployment(ctx, data["serviceInstanceDeployV2"], action.after)
