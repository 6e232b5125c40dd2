"""The recap: ok / changed / failed / skipped per playbook, as text or one JSON document."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any, TextIO

from .resource import Action

STATUSES = ("ok", "changed", "failed", "skipped")


@dataclass
class Recap:
    inventory: str
    phase: int | None
    run_id: str | None
    kind: str
    check: bool = False
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    changes: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    retries: int = 0
    rolled_back: bool = False

    def count(self, playbook: str, status: str) -> None:
        self.counts.setdefault(playbook, {s: 0 for s in STATUSES})[status] += 1

    def total(self, status: str) -> int:
        return sum(c[status] for c in self.counts.values())

    @property
    def failed(self) -> bool:
        return self.total("failed") > 0 or bool(self.errors)

    def to_json(self) -> dict[str, Any]:
        return {
            "inventory": self.inventory,
            "phase": self.phase,
            "run_id": self.run_id,
            "kind": self.kind,
            "check": self.check,
            **{s: self.total(s) for s in STATUSES},
            "playbooks": self.counts,
            "changes": self.changes,
            "errors": self.errors,
            "retries": self.retries,
            "rolled_back": self.rolled_back,
        }

    def render(self, out: TextIO) -> None:
        mode = " (check mode: nothing was changed)" if self.check else ""
        out.write(f"\nRECAP {self.kind} inventory={self.inventory} phase={self.phase} run={self.run_id}{mode}\n")
        for playbook, c in self.counts.items():
            out.write(
                f"{playbook:<12} ok={c['ok']:<4} changed={c['changed']:<4} failed={c['failed']:<4} skipped={c['skipped']}\n"
            )
        if self.retries:
            out.write(f"transient faults retried: {self.retries}\n")
        if self.rolled_back:
            out.write("the run failed and its changes were rolled back\n")
        for error in self.errors[:10]:
            out.write(f"error: {error}\n")
        if len(self.errors) > 10:
            out.write(f"… and {len(self.errors) - 10} more (see above, or --json)\n")


def describe_actions(actions: list[Action], show_diff: bool) -> list[str]:
    """Human lines for a change; with show_diff, documents as unified JSON diffs."""
    lines = []
    for action in actions:
        if action.op == "create":
            lines.append("  + create")
            if show_diff:
                lines.extend(_unified(None, action.after))
        elif action.op == "delete":
            lines.append("  - delete")
        else:
            if show_diff and (isinstance(action.before, (dict, list)) or isinstance(action.after, (dict, list))):
                lines.append(f"  ~ {action.attribute}:")
                lines.extend(_unified(action.before, action.after))
            elif show_diff:
                lines.append(f"  ~ {action.attribute}: {json.dumps(action.before)} -> {json.dumps(action.after)}")
            else:
                lines.append(f"  ~ {action.attribute}")
    return lines


def _unified(before: Any, after: Any) -> list[str]:
    a = json.dumps(before, indent=2, sort_keys=True).splitlines() if before is not None else []
    b = json.dumps(after, indent=2, sort_keys=True).splitlines() if after is not None else []
    diff = difflib.unified_diff(a, b, "current", "desired", lineterm="", n=3)
    return ["      " + line for line in diff]


SQL_LINES_SHOWN = 12  # of one statement in a plan; the JSON and saved plans carry all of it


def review_lines(reviewed: list[dict[str, Any]]) -> list[str]:
    """Human lines for what a resource gives a reviewer (`Resource.review`): per entry its
    summary, its SQL (the first SQL_LINES_SHOWN lines) and its findings (pure)."""
    lines = []
    for entry in reviewed:
        lines.append(f"    {entry['summary']}")
        sql = entry.get("sql", "").splitlines()
        lines.extend(f"        {text}" for text in sql[:SQL_LINES_SHOWN])
        if len(sql) > SQL_LINES_SHOWN:
            lines.append(f"        … {len(sql) - SQL_LINES_SHOWN} more lines ({entry.get('where', 'see --json')})")
        for finding in entry.get("findings", ()):
            accepted = finding.get("accepted")
            verdict = f"accepted: {accepted}" if accepted else "not accepted (invoke db.lint)"
            lines.append(f"      ! {finding['rule']} (line {finding['line']}): {finding['message']} [{verdict}]")
    return lines
