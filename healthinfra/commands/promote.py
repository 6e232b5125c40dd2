"""`promote --to TARGET`: plan the target at what its source environment ran successfully.

The target inventory names its source (`promotes_from: dev`). From a clean checkout at the
commit of the source's last successful whole deploy at its deployed phase, the target is
planned at that phase and the plan saved (like `plan --out`), marked as a promotion; `apply
FILE --yes` then carries it out (commands/run.py checks the mark against the source's
journal again). Anything else exits 2, saying why and what to do; nothing is planned.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..state import open_state
from .common import load, progress

if TYPE_CHECKING:
    from ..step import Catalog


def promote(
    target_name: str, *, catalog: Catalog, path: str = "", as_json=False, downgrade=False, contract=False, out=None
) -> int:
    import yaml

    from .. import revision
    from ..promotion import last_source_run, refusal, settings_diff
    from .run import deploy

    out = out or sys.stdout
    if not target_name:
        raise UsageError("--to: name the inventory to promote to, e.g. `invoke promote --to prod`")
    target = load(target_name)
    source_name = target.promotes_from
    if not source_name:
        raise UsageError(
            f"{target.path.name}: `{target.name}` names no environment it is promoted from; add"
            " `promotes_from: NAME` (e.g. `promotes_from: dev`) to it, or plan it with `invoke plan --out FILE`"
        )
    source = load(source_name, for_providers=False)
    found = last_source_run(open_state(source).journal().runs())
    here = revision.current(target)
    reason = refusal(source_name, target.name, found, here)
    if reason or found is None:
        raise UsageError(f"promote --to {target.name}: {reason}; nothing was planned")
    saved_to = path or f"promote-{target.name}-{found.revision.commit[:12] if found.revision.commit else 'x'}.json"
    notes = progress(as_json, out)
    notes.write(
        f"Promoting {found.revision.commit} to `{target.name}` at phase {found.phase}: what `{source_name}` ran"
        f" successfully in run {found.run_id} ({found.at}).\n"
    )
    differences = settings_diff(_settings(source.path, yaml), _settings(target.path, yaml))
    if differences:
        notes.write(f"How {source.path.name} and {target.path.name} differ:\n")
        for key, was, now in differences:
            notes.write(f"  {key}: {json.dumps(was, default=str)} -> {json.dumps(now, default=str)}\n")
    promotion = {"from": source_name, "source_run": found.to_json(), "revision": here.to_json()}
    code = deploy(
        target.name,
        found.phase,
        catalog=catalog,
        check=True,
        diff=True,
        as_json=as_json,
        save_to=saved_to,
        promotion=promotion,
        downgrade=downgrade,
        contract=contract,
        out=out,
    )
    if code == 0:
        notes.write(
            f"Have the plan reviewed, then: `invoke apply {saved_to} --yes` (it is checked again against"
            f" `{source_name}`'s journal and the inventory before anything changes)\n"
        )
    return code


def _settings(path, yaml) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}
