"""`history`: the runs of an environment and their changes, from its journal."""

from __future__ import annotations

import json
import sys
from typing import Any

from ..deployed import deployed_phase, phase_run, phase_set_by
from ..journal import RunRecord
from ..revision import Revision
from ..state import open_state
from .common import load, whole_number


def _ops(change: dict[str, Any]) -> list[str]:
    return [a["op"] if a["op"] != "set" else f"set {a['attribute']}" for a in change["actions"]]


def run_document(r: RunRecord) -> dict[str, Any]:
    return {
        "run_id": r.run_id,
        "kind": r.kind,
        "status": r.status,
        "phase": r.start.get("phase"),
        "command": r.start.get("command"),
        "user": r.start.get("user"),
        "host": r.start.get("host"),
        "at": r.start.get("at"),
        "target": r.start.get("target"),
        "rolled_back_by": r.rolled_back_by,
        "revision": r.start.get("revision"),
        "sets_deployed_phase": phase_set_by(r)[0],
        "deployed_phase": phase_set_by(r)[1],
        "changes": [
            {
                "seq": c["seq"],
                "playbook": c["playbook"],
                "step": c["step"],
                "resource": f"{c['resource']['kind']} {c['resource']['name']}",
                "actions": _ops(c),
                "outcome": r.outcomes.get(c["seq"], {}).get("status", "unknown"),
            }
            for c in r.changes
        ],
    }


def history(inventory_name: str, *, as_json=False, limit=20, out=None) -> int:
    out = out or sys.stdout
    inventory = load(inventory_name, for_providers=False)
    count = whole_number(limit, "--limit", digits=6, what="of runs ")
    journal = open_state(inventory).journal()
    every = journal.runs()
    deployed, setter = deployed_phase(every), phase_run(every)
    runs = every[-count:]
    if as_json:
        document = [run_document(r) for r in runs]
        out.write(
            json.dumps(
                {"inventory": inventory.name, "deployed_phase": deployed, "deployed_by": setter, "runs": document},
                indent=2,
            )
            + "\n"
        )
        return 0
    if not runs:
        out.write(f"no runs yet in {journal.location}\n")
        return 0
    shown = "none (nothing deployed)" if deployed is None else str(deployed)
    out.write(f"deployed phase: {shown}" + (f" (set by run {setter})" if setter else "") + "\n")
    for r in runs:
        target = f" of {r.start['target']}" if r.start.get("target") else ""
        sets, value = phase_set_by(r)
        moved = f"  -> deployed phase {value if value is not None else 'none'}" if sets else ""
        revision = Revision.from_json(r.start.get("revision"))
        ran = f"  rev={revision.short()}" if revision is not None else ""
        out.write(
            f"{r.run_id}  {r.kind}{target}  phase={r.start.get('phase')}  {r.status}  "
            f"{r.start.get('user')}@{r.start.get('host')}  {r.start.get('at')}  changes={len(r.changes)}{ran}{moved}\n"
        )
        for c in r.changes:
            outcome = r.outcomes.get(c["seq"], {}).get("status", "unknown")
            out.write(
                f"    {c['seq']:>3}. [{c['playbook']}] {c['resource']['kind']} {c['resource']['name']}:"
                f" {', '.join(_ops(c))} ({outcome})\n"
            )
    return 0
