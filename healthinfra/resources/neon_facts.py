"""What the Neon resources read: the project, its branches, and per branch its endpoints, roles
and databases, found by name through the Neon API, one list call per family, memoised for
the run (the run's Neon client memoises its requests as well, until anything changes)."""

from __future__ import annotations

from ..errors import ProviderError
from ..providers.neon import Target, read_write_endpoint


def project_fact(ctx) -> dict | None:
    name = ctx.inventory.database["project"]
    return ctx.fact(f"neon.project:{name}", lambda: ctx.neon.find_project(name))


def branches_fact(ctx) -> dict[str, dict]:
    project = project_fact(ctx)
    if project is None:
        return {}
    return ctx.fact(f"neon.branches:{project['id']}", lambda: ctx.neon.branches(project["id"]))


def branch_fact(ctx, branch: str) -> dict | None:
    return branches_fact(ctx).get(branch)


def endpoints_fact(ctx, branch: str) -> list[dict]:
    found = branch_fact(ctx, branch)
    if found is None:
        return []
    return ctx.fact(f"neon.endpoints:{found['id']}", lambda: ctx.neon.endpoints(found["project_id"], found["id"]))


def roles_fact(ctx, branch: str) -> dict[str, dict]:
    found = branch_fact(ctx, branch)
    if found is None:
        return {}
    return ctx.fact(f"neon.roles:{found['id']}", lambda: ctx.neon.roles(found["project_id"], found["id"]))


def databases_fact(ctx, branch: str) -> dict[str, dict]:
    found = branch_fact(ctx, branch)
    if found is None:
        return {}
    return ctx.fact(f"neon.databases:{found['id']}", lambda: ctx.neon.databases(found["project_id"], found["id"]))


def target_fact(ctx) -> Target | None:
    """The inventory's project, branch and read-write endpoint on Neon, or None while missing."""
    branch = ctx.inventory.database["branch"]
    found = branch_fact(ctx, branch)
    endpoint = read_write_endpoint(endpoints_fact(ctx, branch))
    if found is None or endpoint is None:
        return None
    return Target(found["project_id"], found["id"], endpoint["id"], tuple(databases_fact(ctx, branch)))


def _project_id(ctx) -> str:
    project = project_fact(ctx)
    if project is None:
        raise ProviderError(f"Neon project `{ctx.inventory.database['project']}` does not exist")
    return project["id"]


def _branch(ctx, name: str) -> dict:
    found = branch_fact(ctx, name)
    if found is None:
        raise ProviderError(f"Neon branch `{name}` does not exist in project `{ctx.inventory.database['project']}`")
    return found
