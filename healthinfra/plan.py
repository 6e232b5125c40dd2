"""What a run converges: its items, in order, from the playbooks, the journal or a saved plan.

An `Item` is one resource with the playbook and step it came from. A `Job` is what a run
is asked to do: its kind, its phase, its items, and for a rollback the run it undoes, for
a saved plan what each item read when the plan was made. All of it is pure data, built
before anything is read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .deployed import TOP_PHASE, PhaseChange, phase_after_rollback
from .errors import UsageError
from .plan_file import first_difference
from .registry import resource_from_ref
from .resource import Resource

if TYPE_CHECKING:
    from .inventory import Inventory
    from .journal import RunRecord
    from .step import Catalog


@dataclass(frozen=True)
class Item:
    """One resource to converge, with where it came from."""

    playbook: str
    step: str
    resource: Resource


@dataclass(frozen=True)
class Job:
    kind: str  # deploy | cleanup | rollback
    phase: int | None
    items: tuple[Item, ...]
    target: str | None = None  # the run a rollback undoes
    expected: tuple[Any, ...] | None = None  # per item, what a saved plan read
    phase_change: PhaseChange | None = None  # what the run records as deployed when it ends well
    partial: bool = False  # --tags, --playbooks or --limit: not the whole environment
    downgrade: bool = False  # also removes what the phases above `phase` added
    contract: bool = False  # --contract: contract changes are made (last), not left waiting


def plan_items(
    catalog: Catalog,
    inventory: Inventory,
    phase: int,
    tags: set[str] | None = None,
    playbooks: set[str] | None = None,
    limit: str | None = None,
) -> list[Item]:
    """Every resource of the chosen steps, in run order. With `limit`, only the host steps,
    and only for that host."""
    items = []
    for step in catalog.steps_for(phase, tags, playbooks):
        for resource in step.resources(inventory, phase):
            if limit is not None and getattr(resource, "host_name", None) != limit:
                continue
            items.append(Item(step.playbook, step.name, resource))
    return items


def desired_names(catalog: Catalog, inventory: Inventory, phase: int, kind: str) -> list[str]:
    """The names of the resources of one kind the playbooks want at a phase (buckets, alarms…)."""
    return [
        i.resource.name
        for i in plan_items(catalog, inventory, phase)
        if i.resource.kind == kind and i.resource.desired is not None
    ]


def with_contracts(items: list[Item], contract: bool) -> list[Item]:
    """Contract changes (expand, then contract: a drop, a rename, a type change that older
    instances of the services still depend on) are never made by a plain run: each waits
    (`Resource.waiting`: what exists stays, what is missing is not made). With `contract`,
    they are made after everything else, once the rest of the run is in place. Pure."""
    plain = [item for item in items if not item.resource.contract]
    contracts = [item for item in items if item.resource.contract]
    if contract:
        return plain + contracts
    return [Item(i.playbook, i.step, i.resource.waiting()) if i.resource.contract else i for i in items]


def deploy_job(
    catalog: Catalog,
    inventory: Inventory,
    phase: int,
    *,
    deployed: int | None = None,
    tags: set[str] | None = None,
    playbooks: set[str] | None = None,
    limit: str | None = None,
    contract: bool = False,
) -> Job:
    """Converge to `phase`; a whole deploy records it as the deployed phase when it ends well.
    Contract changes wait unless `contract` (`with_contracts`)."""
    partial = bool(tags or playbooks or limit)
    items = tuple(with_contracts(plan_items(catalog, inventory, phase, tags, playbooks, limit), contract))
    change = None if partial else PhaseChange(deployed, phase)
    return Job("deploy", phase, items, phase_change=change, partial=partial, contract=contract)


def downgrade_job(
    catalog: Catalog, inventory: Inventory, phase: int, *, deployed: int | None = None, contract: bool = False
) -> Job:
    """Exactly `phase`: converge what phase `phase` wants, then remove, newest first, every
    resource that only the phases above it add (to absent, through each resource's own
    delete: the migrations' down files, roles, buckets…). The kept resources go first, so
    what stays stops using what goes (variables, policies, grants) before it is removed."""
    kept = with_contracts(plan_items(catalog, inventory, phase), contract)
    kept_keys = {i.resource.key for i in kept}
    removed = [
        Item(i.playbook, f"downgrade: {i.step}", i.resource.with_desired(None))
        for i in reversed(plan_items(catalog, inventory, TOP_PHASE))
        if i.resource.key not in kept_keys and i.resource.desired is not None
    ]
    return Job(
        "deploy",
        phase,
        tuple(kept + removed),
        phase_change=PhaseChange(deployed, phase),
        downgrade=True,
        contract=contract,
    )


def cleanup_job(catalog: Catalog, inventory: Inventory, *, deployed: int | None = None) -> Job:
    """Every resource of every phase, to absent, newest first."""
    items = reversed(plan_items(catalog, inventory, TOP_PHASE))
    return Job(
        "cleanup",
        None,
        tuple(Item(i.playbook, i.step, i.resource.with_desired(None)) for i in items),
        phase_change=PhaseChange(deployed, None),
    )


def undo_items(run: RunRecord) -> list[Item]:
    """A run's changes undone, newest first: each resource converged back to its before-state."""
    items = []
    for change in reversed(run.changes):
        resource = resource_from_ref(change["resource"], change["undo"]["converge_to"])
        items.append(Item(change["playbook"], f"undo: {change['step']}", resource))
    return items


def rollback_job(run: RunRecord, *, deployed: int | None = None) -> Job:
    """Undo `run`; if it had set the deployed phase, the phase it replaced is restored."""
    change = phase_after_rollback(run, deployed)
    return Job("rollback", run.start.get("phase"), tuple(undo_items(run)), target=run.run_id, phase_change=change)


def saved_plan_job(
    catalog: Catalog, inventory: Inventory, saved: dict[str, Any], *, deployed: int | None = None, source: str = "plan"
) -> Job:
    """The job a saved plan (plan_file.parse_plan: shape-checked) was made from, made again from
    the inventory and the repository: a deploy job with the plan's selection, or a downgrade job,
    at its phase. Every entry must be, at its index, the one this job has (playbook, step,
    resource ref, desired state before resolution), or the plan is refused (UsageError) naming
    the first that is not. What runs is this job, never a resource built from the file; the file
    gives only what each item read, checked again in preflight (a stale plan is refused there)."""
    contract = bool(saved.get("contract"))
    if saved["downgrade"]:
        job = downgrade_job(catalog, inventory, saved["phase"], deployed=deployed, contract=contract)
    else:
        tags, playbooks = set(saved["tags"]), set(saved["playbooks"])
        job = deploy_job(
            catalog,
            inventory,
            saved["phase"],
            deployed=deployed,
            tags=tags,
            playbooks=playbooks,
            limit=saved["limit"],
            contract=contract,
        )
    problem = first_difference(job.items, saved["items"])
    if problem:
        down = (" --downgrade" if saved["downgrade"] else "") + (" --contract" if contract else "")
        made = f"`{inventory.name}` at phase {saved['phase']}{down}"
        again = f"invoke plan -i {inventory.name} --phase {saved['phase']}{down} --out {source}"
        raise UsageError(
            f"{source}: {problem}; the job, made again from {made} and the repository, does not match the"
            f" plan (edited, or made from another inventory or version): nothing was changed; run `{again}` again"
        )
    return replace(job, expected=tuple(entry["current"] for entry in saved["items"]))
