"""`history`: the runs of an environment and their changes, from its journal."""

from __future__ import annotations

import json
import sys
from typing import Any

from ..journal import RunRecord
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
    runs = journal.runs()[-count:]
    if as_json:
        document = [run_document(r) for r in runs]
        out.write(json.dumps({"inventory": inventory.name, "runs": document}, indent=2) + "\n")
        return 0
    if not runs:
        out.write(f"no runs yet in {journal.location}\n")
        return 0
    for r in runs:
        target = f" of {r.start['target']}" if r.start.get("target") else ""
        out.write(
            f"{r.run_id}  {r.kind}{target}  phase={r.start.get('phase')}  {r.status}  "
            f"{r.start.get('user')}@{r.start.get('host')}  {r.start.get('at')}  changes={len(r.changes)}\n"
        )
        for c in r.changes:
            outcome = r.outcomes.get(c["seq"], {}).get("status", "unknown")
            out.write(
                f"    {c['seq']:>3}. [{c['playbook']}] {c['resource']['kind']} {c['resource']['name']}:"
                f" {', '.join(_ops(c))} ({outcome})\n"
            )
    return 0
