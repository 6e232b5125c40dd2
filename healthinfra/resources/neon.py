"""Neon resource types: the project, a branch, its compute endpoint, roles and databases.

They are found by name (as the inventory names them) through the Neon API, read in
one list call per family and memoised for the run (`*_fact`). Each follows the
Resource contract: `read` gives the managed attributes or None, `diff` is pure, and
undo is converging back to the journalled state (creating a branch is undone by
deleting it; a role or database likewise).

What this tool never deletes: a Neon project (it holds every developer's branch;
delete it in the Neon console) and a project's default branch (Neon refuses).
Deleting a branch or database that holds rows is refused unless `--destroy-data`.
"""

from __future__ import annotations

from ..errors import ProviderError
from ..providers.neon import read_write_endpoint
from ..resource import Action, Resource, diff_attributes
from .neon_facts import (
    _branch,
    _project_id,
    branch_fact,
    branches_fact,
    databases_fact,
    endpoints_fact,
    project_fact,
    roles_fact,
    target_fact,
)

NEVER_DELETED = (
    "kept: a Neon project is never deleted by this tool (it holds every branch); delete it in the Neon console"
)


# --- the project ---------------------------------------------------------------------


class NeonProject(Resource):
    """A Neon project, found by name; created with its default branch and owner role."""

    kind = "neon.project"
    unmanaged = (
        "region, PostgreSQL version, compute size: Neon's defaults at creation",
        "deletion: never (every developer's branch lives in it); delete it in the Neon console",
    )

    def __init__(self, name, desired, *, default_branch: str, owner_role: str):
        super().__init__(name, desired, default_branch=default_branch, owner_role=owner_role)

    def read(self, ctx):
        return None if project_fact(ctx) is None else {}

    def diff(self, current, desired):
        if desired is None:
            return []  # kept: see NEVER_DELETED
        return diff_attributes(current, desired)

    def noop_reason(self, current):
        if current is not None and self.desired is None:
            return NEVER_DELETED
        return super().noop_reason(current)

    def apply(self, ctx, actions):
        for action in actions:
            if action.op == "create":
                ctx.neon.request(
                    "POST",
                    "/projects",
                    what=f"create Neon project `{self.name}`",
                    json={
                        "project": {
                            "name": self.name,
                            "branch": {"name": self.params["default_branch"], "role_name": self.params["owner_role"]},
                        }
                    },
                )


# --- a branch --------------------------------------------------------------------------


def refuse_blind_delete(ctx, branch: str, what: str) -> None:
    """The run's database connections reach the inventory's own branch only (from $USER). A
    delete on another branch (a journal written by someone else, or under another $USER)
    cannot have its rows counted: refuse it unless the run has --destroy-data."""
    from ..errors import DataLossRefused

    own = ctx.inventory.database["branch"]
    if branch != own and not ctx.destroy_data:
        raise DataLossRefused(
            f"refusing to {what}: it is on branch `{branch}`, not this run's `{own}` ($USER), so its rows cannot"
            " be counted; run as the user whose branch it is, or re-run with --destroy-data to delete it anyway"
        )


class NeonBranch(Resource):
    """A branch of the project: the environment's own copy of the database (`dev-alice`
    branches from `main`). Its parent is fixed at creation."""

    kind = "neon.branch"
    unmanaged = ("protection, expiry, point-in-time of the parent: Neon's defaults (the parent's head)",)

    def __init__(self, name, desired, *, project: str, database: str):
        super().__init__(name, desired, project=project, database=database)

    def depends_on(self):
        return [f"neon.project {self.params['project']}"]

    def read(self, ctx):
        found = branch_fact(ctx, self.name)
        if found is None:
            return None
        by_id = {b["id"]: b["name"] for b in branches_fact(ctx).values()}
        return {
            "parent": by_id.get(found.get("parent_id")) if found.get("parent_id") else None,
            "default": bool(found.get("default")),
        }

    def diff(self, current, desired):
        if desired is None and current is not None and current.get("default"):
            return []  # Neon never deletes a project's default branch
        if current is not None and desired is not None:
            desired = {**desired, "default": current.get("default", False)}
        return diff_attributes(current, desired)

    def noop_reason(self, current):
        if current is not None and self.desired is None:
            return "kept: the project's default branch is deleted only with the project"
        return super().noop_reason(current)

    def guard(self, ctx, actions):
        from .postgres import refuse_data_loss, rows_held

        for action in actions:
            if action.op == "set":
                raise ProviderError(
                    f"neon.branch {self.name}: its parent is `{action.before}`, the inventory wants `{action.after}`;"
                    " a branch's parent is fixed at creation: delete the branch (invoke cleanup-dev) or change"
                    " `database.parent_branch` back"
                )
            if action.op == "delete":
                refuse_blind_delete(ctx, self.name, f"delete Neon branch `{self.name}`")
                conn = ctx.pg.admin_if_provisioned(self.params["database"])
                if conn is not None:
                    refuse_data_loss(ctx, rows_held(conn), f"delete Neon branch `{self.name}`")

    def apply(self, ctx, actions):
        project_id = _project_id(ctx)
        for action in actions:
            if action.op == "create":
                parent = action.after["parent"]
                body = {"branch": {"name": self.name}}
                if parent is not None:
                    body["branch"]["parent_id"] = _branch(ctx, parent)["id"]
                ctx.neon.request(
                    "POST", f"/projects/{project_id}/branches", json=body, what=f"create Neon branch `{self.name}`"
                )
            elif action.op == "delete":
                self.guard(ctx, [action])
                found = _branch(ctx, self.name)
                ctx.pg.close()
                ctx.neon.request(
                    "DELETE",
                    f"/projects/{project_id}/branches/{found['id']}",
                    what=f"delete Neon branch `{self.name}`",
                    absent_ok=True,
                )


# --- the compute endpoint ---------------------------------------------------------------


class NeonEndpoint(Resource):
    """The branch's read-write compute endpoint, the host every connection goes to."""

    kind = "neon.endpoint"
    unmanaged = ("compute size, autoscaling and suspend timeout: the project's defaults",)

    def __init__(self, name, desired, *, project: str):
        super().__init__(name, desired, project=project)

    def depends_on(self):
        return [f"neon.branch {self.name}"]

    def read(self, ctx):
        endpoint = read_write_endpoint(endpoints_fact(ctx, self.name))
        return None if endpoint is None else {"type": endpoint["type"]}

    def apply(self, ctx, actions):
        project_id = _project_id(ctx)
        for action in actions:
            if action.op == "create":
                ctx.neon.request(
                    "POST",
                    f"/projects/{project_id}/endpoints",
                    json={"endpoint": {"branch_id": _branch(ctx, self.name)["id"], "type": "read_write"}},
                    what=f"create the compute endpoint of `{self.name}`",
                )
            elif action.op == "delete":
                endpoint = read_write_endpoint(endpoints_fact(ctx, self.name))
                if endpoint is not None:
                    ctx.pg.close()
                    ctx.neon.request(
                        "DELETE",
                        f"/projects/{project_id}/endpoints/{endpoint['id']}",
                        absent_ok=True,
                        what=f"delete the compute endpoint of `{self.name}`",
                    )
            else:
                raise ProviderError(f"neon.endpoint {self.name}: `{action.attribute}` cannot change in place")


# --- roles and databases on a branch -------------------------------------------------------


class NeonRole(Resource):
    """A role created through Neon's API on a branch: the owner of the application database.

    Neon makes such a role a member of `neon_superuser` (CREATEDB, CREATEROLE, BYPASSRLS,
    reading and writing all data): right for the owner that runs migrations, wrong for a
    service. Service login roles are created with SQL by this owner (pg.role), as Neon's
    documentation advises for roles with limited privileges.
    """

    kind = "neon.role"
    unmanaged = (
        "password: Neon keeps it; each run asks Neon for the owner's connection URI",
        "deletion: never on its own (it owns the project's first database on every branch); it goes with its branch",
    )

    def __init__(self, name, desired, *, project: str, branch: str):
        super().__init__(name, desired, project=project, branch=branch)

    def diff(self, current, desired):
        if desired is None:
            return []  # kept: see `unmanaged`
        return diff_attributes(current, desired)

    def noop_reason(self, current):
        if current is not None and self.desired is None:
            return "kept: the branch's owner role goes with the branch"
        return super().noop_reason(current)

    def depends_on(self):
        return [f"neon.branch {self.params['branch']}"]

    def read(self, ctx):
        return {} if self.name in roles_fact(ctx, self.params["branch"]) else None

    def apply(self, ctx, actions):
        project_id = _project_id(ctx)
        base = f"/projects/{project_id}/branches/{_branch(ctx, self.params['branch'])['id']}/roles"
        for action in actions:
            if action.op == "create":
                ctx.neon.request(
                    "POST", base, json={"role": {"name": self.name}}, what=f"create Neon role `{self.name}`"
                )
            elif action.op == "delete":
                ctx.pg.close()
                ctx.neon.request(
                    "DELETE", f"{base}/{self.name}", what=f"delete Neon role `{self.name}`", absent_ok=True
                )


class NeonDatabase(Resource):
    """The application database on the branch, created through Neon's API; what PUBLIC may
    do on it is set with SQL by its owner (nothing: each service is granted CONNECT)."""

    kind = "neon.database"
    uses_postgres = True
    unmanaged = (
        "encoding and collation: Neon's (UTF8)",
        "neon_superuser's privileges on it: Neon grants them to its API roles",
    )

    def __init__(self, name, desired, *, project: str, branch: str):
        super().__init__(name, desired, project=project, branch=branch)

    def depends_on(self):
        return [f"neon.branch {self.params['branch']}"]

    def read(self, ctx):
        from .postgres import databases_fact as pg_databases

        found = databases_fact(ctx, self.params["branch"]).get(self.name)
        if found is None:
            return None
        public = pg_databases(ctx).get(self.name, {}).get("public_privileges")
        return {"owner": found["owner_name"], "public_privileges": public}

    def guard(self, ctx, actions):
        from .postgres import refuse_data_loss, rows_held

        if any(a.op == "delete" for a in actions) and self.name in databases_fact(ctx, self.params["branch"]):
            refuse_blind_delete(ctx, self.params["branch"], f"delete database `{self.name}`")
            conn = ctx.pg.admin_if_provisioned(self.name)
            if conn is None and not ctx.destroy_data:
                from ..errors import DataLossRefused

                raise DataLossRefused(
                    f"refusing to delete database `{self.name}`: no compute endpoint answers, so its rows cannot be"
                    " counted; start the branch's endpoint, or re-run with --destroy-data to delete it anyway"
                )
            if conn is not None:
                refuse_data_loss(ctx, rows_held(conn), f"delete database `{self.name}`")

    def apply(self, ctx, actions):
        project_id = _project_id(ctx)
        base = f"/projects/{project_id}/branches/{_branch(ctx, self.params['branch'])['id']}/databases"
        for action in actions:
            if action.op == "create":
                ctx.neon.request(
                    "POST",
                    base,
                    json={"database": {"name": self.name, "owner_name": action.after["owner"]}},
                    what=f"create Neon database `{self.name}`",
                )
                ctx.forget_all()  # the branch has a new database: connect afresh
                self._set_public(ctx, action.after["public_privileges"])
            elif action.op == "delete":
                self.guard(ctx, [action])
                ctx.pg.close()
                ctx.neon.request(
                    "DELETE", f"{base}/{self.name}", what=f"delete Neon database `{self.name}`", absent_ok=True
                )
            elif action.attribute == "owner":
                ctx.neon.request(
                    "PATCH",
                    f"{base}/{self.name}",
                    json={"database": {"owner_name": action.after}},
                    what=f"change the owner of Neon database `{self.name}`",
                )
            elif action.attribute == "public_privileges":
                self._set_public(ctx, action.after)

    def _set_public(self, ctx, privileges) -> None:
        from .pg_facts import set_public_privileges

        set_public_privileges(ctx.pg.admin(self.name), self.name, privileges)


def neon_database_resources(inventory) -> list[Resource]:
    """Project, branch, endpoint, owner role and application database, in dependency order."""
    db = inventory.database
    branch, parent = db["branch"], db["parent_branch"]
    return [
        NeonProject(db["project"], {}, default_branch=parent, owner_role=db["owner_role"]),
        NeonBranch(
            branch, {"parent": None if branch == parent else parent}, project=db["project"], database=db["name"]
        ),
        NeonEndpoint(branch, {"type": "read_write"}, project=db["project"]),
        NeonRole(db["owner_role"], {}, project=db["project"], branch=branch),
        NeonDatabase(
            db["name"], {"owner": db["owner_role"], "public_privileges": []}, project=db["project"], branch=branch
        ),
    ]


__all__ = [
    "Action",
    "NeonBranch",
    "NeonDatabase",
    "NeonEndpoint",
    "NeonProject",
    "NeonRole",
    "neon_database_resources",
    "target_fact",
]
