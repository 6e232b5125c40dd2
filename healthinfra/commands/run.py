"""The commands that change an environment: deploy (and plan), apply a saved plan, rollback, cleanup.

Each validates everything first, then takes the environment's lock, opens a run context
and hands the runner a job; the lock and the context are released on every path.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from ..context import RunContext
from ..deployed import deployed_phase
from ..errors import ProtectedInventory, UsageError
from ..journal import RunRecord, now_iso
from ..options import RunOptions
from ..output import Output
from ..plan import Job, cleanup_job, deploy_job, downgrade_job, rollback_job, saved_plan_job
from ..plan_file import PLAN_FORMAT as PLAN_FORMAT
from ..preflight import Readings
from ..runner import Result, execute, rollback_target
from ..state import open_state
from .common import (
    deletion_confirmation,
    finish,
    known_host,
    known_tags,
    load,
    progress,
    require_credentials,
    require_local_services,
    resolve_phase,
    split,
)

if TYPE_CHECKING:
    from ..inventory import Inventory
    from ..step import Catalog


def run_job(
    inventory: Inventory, make_job: Callable[[list[RunRecord]], Job], options: RunOptions, output: Output
) -> tuple[Result, Job]:
    """Lock the environment, make the job from its journal (the deployed phase is read under the
    lock), run it in a fresh context; release both on every path. Returns the result and the job."""
    state = open_state(inventory)
    with state.lock(options.command), RunContext(inventory, options, state=state) as ctx:
        journal = state.journal()
        job = make_job(journal.runs())
        return execute(ctx, job, output, journal), job


def refuse_direct_deploy(inventory: Inventory) -> None:
    """Protected means reviewed: no deploy straight from a checkout."""
    name = inventory.name
    via = f"`invoke promote --to {name} --out plan.json`" if inventory.promotes_from else ""
    via = via or f"`invoke plan -i {name} --out plan.json`"
    raise ProtectedInventory(
        f"{inventory.path.name}: `{name}` is protected (`protected: true`): it changes only through a reviewed"
        f" plan, never a direct deploy; nothing was changed. Make one with {via}, have it reviewed, then run"
        " `invoke apply plan.json --yes` (docs/promotion.md)"
    )


def refuse_unconfirmed_data_loss(inventory: Inventory, destroy_data: bool, yes: bool) -> None:
    if inventory.protected and destroy_data and not yes:
        raise ProtectedInventory(
            f"{inventory.path.name}: `{inventory.name}` is protected: --destroy-data there needs --yes as well;"
            " nothing was changed"
        )


def refuse_unpromoted(inventory: Inventory, saved: dict[str, Any], path: str) -> None:
    """Where the inventory names `promotes_from`, only a plan `promote` made, at a revision the
    source ran successfully at that phase (read again from the source's journal), is applied."""
    from ..promotion import ran_successfully

    source = inventory.promotes_from
    if not source:
        return
    promotion = saved.get("promotion")
    name = inventory.name
    if not isinstance(promotion, dict) or promotion.get("from") != source:
        raise ProtectedInventory(
            f"{path}: `{name}` is promoted from `{source}` (`promotes_from` in {inventory.path.name}): only a plan"
            f" made by `invoke promote --to {name}` is applied to it; nothing was changed"
        )
    run = promotion.get("source_run") or {}
    commit = (run.get("revision") or {}).get("commit")
    source_runs = open_state(load(source, for_providers=False)).journal().runs()
    if not isinstance(commit, str) or not ran_successfully(source_runs, commit, saved["phase"]):
        raise ProtectedInventory(
            f"{path}: `{source}`'s journal has no successful run of {str(commit)[:12]} at phase {saved['phase']}"
            f" (the plan says run {run.get('run_id')}); promote again from a revision `{source}` ran; nothing"
            " was changed"
        )


def refuse_below_deployed(inventory: Inventory, phase: int, deployed: int | None, given: bool) -> None:
    """A phase below the deployed one is never deployed by accident: exit 2, naming both phases."""
    if deployed is None or phase >= deployed:
        return
    source = "" if given else f" (the default: `phase: {phase}` in {inventory.path.name})"
    name = inventory.name
    raise UsageError(
        f"`{name}` is deployed at phase {deployed}; phase {phase}{source} is below it, and deploying it would"
        f" leave the environment neither phase {phase} nor phase {deployed}; nothing was changed. To stay, use"
        f" `--phase {deployed}`. To go down, removing what phases {phase + 1}-{deployed} added, see it with"
        f" `invoke plan --phase {phase} --downgrade -i {name}`, then run"
        f" `invoke deploy --phase {phase} --downgrade -i {name}`"
    )


def deploy(
    inventory_name: str,
    phase=None,
    *,
    catalog: Catalog,
    check=False,
    diff=False,
    as_json=False,
    rollback=True,
    tags=None,
    playbooks=None,
    destroy_data=False,
    out: TextIO | None = None,
    save_to: str = "",
    limit: str = "",
    downgrade=False,
    yes=False,
    promotion: dict[str, Any] | None = None,
    contract=False,
) -> int:
    out = out or sys.stdout
    inventory = load(inventory_name)
    chosen = resolve_phase(inventory, phase)
    host = known_host(inventory, limit)
    wanted = known_tags(catalog, tags)
    chosen_playbooks = split(playbooks)
    if downgrade and (host or wanted or chosen_playbooks):
        raise UsageError(
            "--downgrade takes the whole environment to the phase: it cannot be combined with --tags,"
            " --limit or an area's deploy (run `invoke deploy --phase N --downgrade`)"
        )
    if inventory.protected and not check:
        refuse_direct_deploy(inventory)
    require_local_services(inventory)
    command = (
        f"deploy --phase {chosen}"
        + (" --downgrade" if downgrade else "")
        + (" --contract" if contract else "")
        + (" --check" if check else "")
        + (f" --limit {host}" if host else "")
    )
    options = RunOptions(
        check=check,
        show_diff=diff,
        destroy_data=destroy_data,
        rollback_on_failure=rollback,
        command=command,
        confirm=deletion_confirmation(inventory, yes),
    )

    def make_job(runs: list[RunRecord]) -> Job:
        deployed = deployed_phase(runs)
        if downgrade:
            return downgrade_job(catalog, inventory, chosen, deployed=deployed, contract=contract)
        refuse_below_deployed(inventory, chosen, deployed, given=phase not in (None, ""))
        return deploy_job(
            catalog,
            inventory,
            chosen,
            deployed=deployed,
            tags=wanted,
            playbooks=chosen_playbooks,
            limit=host,
            contract=contract,
        )

    output = Output(progress(as_json, out), show_diff=diff)
    result, job = run_job(inventory, make_job, options, output)
    code = finish(result.recap, as_json, out)
    if save_to and code == 0:
        save_plan(
            inventory,
            job,
            result.readings,
            save_to,
            tags=wanted,
            playbooks=chosen_playbooks,
            limit=host,
            promotion=promotion,
        )
        progress(as_json, out).write(f"plan saved to {save_to}: apply it with `invoke apply {save_to}`\n")
    return code


def save_plan(
    inventory: Inventory,
    job: Job,
    readings: Readings,
    path: str,
    *,
    tags: set[str] | None = None,
    playbooks: set[str] | None = None,
    limit: str | None = None,
    promotion: dict[str, Any] | None = None,
) -> None:
    """The plan's items, with what each read, and the selection that made the job (so `apply`
    can make it again), with its digest; 0600 (a plan names resources, never a secret)."""
    from ..files import write_private
    from ..plan_file import plan_document, plan_entries

    if job.partial and not (tags or playbooks or limit):
        raise UsageError(
            f"{path}: a plan of part of the environment (--tags, an area, --limit) is saved with what selected"
            " it, and none was given; nothing was saved"
        )
    unresolved = [  # as the playbooks made them, before preflight resolved them (plan_file says why)
        (kept.resource.ref(), kept.resource.desired)
        for r, kept in zip(readings.readings, job.items, strict=True)
        if r.error is None
    ]
    document = plan_document(
        inventory=inventory.name,
        phase=job.phase,
        downgrade=job.downgrade,
        partial=job.partial,
        selection={"tags": tags, "playbooks": playbooks, "limit": limit},
        contract=job.contract,
        created=now_iso(),
        items=plan_entries(unresolved, readings.record()),
        promotion=promotion,
    )
    write_private(path, json.dumps(document, indent=1, sort_keys=True) + "\n")


def read_plan(path: str) -> dict[str, Any]:
    """A saved plan, checked (JSON, format, digest, then shape) before anything else is read."""
    from ..plan_file import parse_plan

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise UsageError(
            f"{path}: cannot read the plan ({exc.strerror}); save one with `invoke plan --out {path}`"
        ) from None
    except ValueError:  # not UTF-8
        raise UsageError(f"{path}: not a saved plan (not JSON); save one with `invoke plan --out FILE`") from None
    return parse_plan(text, path)


def apply_plan(
    path: str,
    *,
    catalog: Catalog | None = None,
    as_json=False,
    rollback=True,
    destroy_data=False,
    yes=False,
    out=None,
) -> int:
    """Carry out a plan saved by `plan --out`, exactly, or refuse if the world moved since.

    The file is checked first (digest, shape); its job is then made again from the inventory and
    the playbooks and every entry must match it (plan.saved_plan_job), before any server is asked
    anything, and again under the lock; what runs is that job, with what the plan read checked."""
    from ..errors import InventoryError

    out = out or sys.stdout
    if catalog is None:
        raise UsageError(
            "apply: the playbooks' steps were not given (catalog=); a plan is applied only as they make it"
        )
    saved = read_plan(path)
    try:
        inventory = load(saved["inventory"])
    except InventoryError as exc:
        raise UsageError(f"{path}: the plan names inventory `{saved['inventory']}`: {exc}") from None
    try:  # a partial plan's selection: still tags and a host the catalog and the inventory know
        known_tags(catalog, ",".join(saved["tags"]))
        known_host(inventory, saved["limit"])
    except UsageError as exc:
        raise UsageError(f"{path}: {exc}") from None
    unknown = sorted(set(saved["playbooks"]) - set(catalog.names))
    if unknown:
        raise UsageError(f"{path}: `playbooks`: no playbook `{unknown[0]}`; known: {', '.join(catalog.names)}")
    saved_plan_job(catalog, inventory, saved, source=path)  # before anything is read: exit 2 if it differs
    refuse_unconfirmed_data_loss(inventory, destroy_data, yes)
    require_local_services(inventory)
    if inventory.protected:
        refuse_unpromoted(inventory, saved, path)
    options = RunOptions(
        destroy_data=destroy_data,
        rollback_on_failure=rollback,
        command=f"apply {path}",
        confirm=deletion_confirmation(inventory, yes),
        confirm_every_change=True,  # on a protected inventory, an apply shows all it does first
    )

    def make_job(runs: list[RunRecord]) -> Job:
        deployed = deployed_phase(runs)
        if not saved["downgrade"]:
            refuse_below_deployed(inventory, saved["phase"], deployed, given=True)
        return saved_plan_job(catalog, inventory, saved, deployed=deployed, source=path)

    result, _ = run_job(inventory, make_job, options, Output(progress(as_json, out)))
    return finish(result.recap, as_json, out)


def rollback(
    inventory_name: str, *, run_id=None, destroy_data=False, as_json=False, check=False, yes=False, out=None
) -> int:
    out = out or sys.stdout
    inventory = load(inventory_name)
    if not check:
        refuse_unconfirmed_data_loss(inventory, destroy_data, yes)
    require_local_services(inventory)
    options = RunOptions(
        check=check,
        destroy_data=destroy_data,
        rollback_on_failure=False,
        command="rollback",
        confirm=deletion_confirmation(inventory, yes),
        confirm_every_change=True,  # on a protected inventory, a rollback shows its undo plan first
    )

    def make_job(runs: list[RunRecord]) -> Job:
        return rollback_job(rollback_target(runs, run_id or None, inventory.name), deployed=deployed_phase(runs))

    result, _ = run_job(inventory, make_job, options, Output(progress(as_json, out)))
    return finish(result.recap, as_json, out)


def refuse_if_protected(inventory: Inventory) -> None:
    if inventory.protected:
        raise ProtectedInventory(
            f"{inventory.path.name}: inventory `{inventory.name}` is protected (`protected: true`);"
            " cleanup refuses it outright, nothing was changed"
        )


def cleanup(
    inventory_name: str,
    *,
    catalog: Catalog,
    destroy_data=False,
    as_json=False,
    check=False,
    stop_services=True,
    out=None,
) -> int:
    from .local import local_down

    out = out or sys.stdout
    inventory = load(inventory_name, for_providers=False)
    refuse_if_protected(inventory)  # outright: before anything else is asked of it
    require_credentials(inventory)  # then the credentials
    require_local_services(inventory)
    options = RunOptions(check=check, destroy_data=destroy_data, rollback_on_failure=False, command="cleanup-dev")

    def make_job(runs: list[RunRecord]) -> Job:
        return cleanup_job(catalog, inventory, deployed=deployed_phase(runs))

    result, _ = run_job(inventory, make_job, options, Output(progress(as_json, out)))
    code = finish(result.recap, as_json, out)
    if code == 0 and not check and stop_services and inventory.local_providers:
        local_down(inventory_name, out=progress(as_json, out))
    return code
