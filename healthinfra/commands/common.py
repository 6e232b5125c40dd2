"""What every command does before it runs: load and check the inventory, validate its
arguments, make sure the local servers are up; and how it ends: a recap and an exit code.

Every argument is validated before any I/O (a misspelt `--tags` exits 2 even while the
local servers are down); errors are raised as `HealthInfraError`, which the task layer
turns into one line on stderr and the error's exit code.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from ..errors import LocalServiceError, UsageError
from ..inventory import Inventory, load_inventory, parse_phase

if TYPE_CHECKING:
    from ..recap import Recap
    from ..step import Catalog


def load(name: str, *, for_providers: bool = True) -> Inventory:
    """Load an inventory; with `for_providers`, refuse, before any call, a missing credential."""
    inventory = load_inventory(name)
    if for_providers:
        require_credentials(inventory)
    return inventory


def require_credentials(inventory: Inventory) -> None:
    """Every provider's credential, named by the inventory, must be there: exit 2 before any call."""
    for area in ("hosting", "database", "aws", "hosts"):  # the order people have always been told them in
        inventory.provider(area).check_credentials(inventory)


def require_local_services(inventory: Inventory) -> None:
    """For providers whose servers run here: refuse at once, naming the fix, if one is down."""
    down = [p.local_service for p in inventory.local_providers if not p.status(inventory)["running"]]
    if down:
        raise LocalServiceError(
            f"{' and '.join(down)} for `{inventory.name}` {'is' if len(down) == 1 else 'are'} not running;"
            f" start {'it' if len(down) == 1 else 'them'} with `invoke local.up -i {inventory.name}`,"
            " nothing was changed"
        )


def deletion_confirmation(inventory: Inventory, yes: bool) -> Callable[[list[str]], bool] | None:
    """On a protected inventory, a run that deletes anything asks first: at a terminal, a typed
    `yes`; elsewhere (CI, a pipe) only `--yes` lets it go on. None: nothing to ask."""
    if not inventory.protected or yes:
        return None

    def ask(deleted: list[str]) -> bool:
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            return False
        sys.stderr.write(f"`{inventory.name}` is protected: delete the {len(deleted)} resources above? [type yes] ")
        sys.stderr.flush()
        return sys.stdin.readline().strip() == "yes"

    return ask


def resolve_phase(inventory: Inventory, phase) -> int:
    if phase is None or phase == "":
        return inventory.phase
    return parse_phase(phase)


def observed_phase(inventory: Inventory, phase) -> int:
    """The phase a reading command looks at: the one given, else the deployed one (from the
    journal), else the inventory's `phase:`."""
    if phase is not None and phase != "":
        return parse_phase(phase)
    from ..deployed import deployed_phase
    from ..state import open_state

    deployed = deployed_phase(open_state(inventory).journal().runs())
    return inventory.phase if deployed is None else deployed


def split(value: str | None) -> set[str]:
    return {v.strip() for v in (value or "").split(",") if v.strip()}


def known_tags(catalog: Catalog, value: str | None) -> set[str]:
    """`--tags`: refuse a tag no step has: a typo would otherwise run nothing and say ok."""
    tags = split(value)
    known = catalog.tags
    unknown = sorted(tags - known)
    if unknown:
        raise UsageError(f"--tags: unknown tag `{unknown[0]}`; known tags: {', '.join(sorted(known))}")
    return tags


def known_host(inventory: Inventory, limit: str | None) -> str | None:
    """`--limit HOST`: a host the inventory lists, or exit 2 naming the ones it does."""
    if not limit:
        return None
    names = [h.name for hosts in inventory.hosts.values() for h in hosts]
    if limit not in names:
        known = ", ".join(names) if names else "none: the inventory has no `hosts:`"
        raise UsageError(f"--limit: `{limit}` is not a host of {inventory.path.name} (hosts: {known})")
    return limit


def whole_number(value, flag: str, *, digits: int, what: str) -> int:
    """A count from the command line (`--limit 20`), or exit 2."""
    if not re.fullmatch(rf"[1-9][0-9]{{0,{digits - 1}}}", str(value).strip()):
        raise UsageError(f"{flag}: must be a whole number {what}from 1, got `{value}`")
    return int(str(value).strip())


def finish(recap: Recap, as_json: bool, out: TextIO) -> int:
    if as_json:
        out.write(json.dumps(recap.to_json(), indent=2) + "\n")
    else:
        recap.render(out)
    return 1 if recap.failed else 0


def progress(as_json: bool, out: TextIO) -> TextIO:
    """Where progress lines go: stderr in JSON mode (stdout stays one document)."""
    return sys.stderr if as_json else out
