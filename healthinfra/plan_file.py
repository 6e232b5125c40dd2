"""A saved plan on disk (`plan --out FILE`, `apply FILE`): its format, its digest and its shape.

A plan file is one JSON document:

    format     PLAN_FORMAT (a plan of another format is refused: save it again)
    inventory  the inventory's name; phase (1-TOP_PHASE); downgrade; partial, with the selection
               it was made with (tags, playbooks, limit), so that `apply` can make the same job again
    created    when; changes: how many items change (for people)
    items      per item, in run order: playbook, step, resource (its ref), desired, current (what it
               read), actions; and, for a resource whose desired state is worked out from facts at
               the start of a run (a host service), `unresolved`: its ref and desired state as the
               playbooks produce them, before that resolution
    digest     "sha256:…" over the canonical JSON (`canonical`) of everything else

What each part is trusted for. The digest is checked before anything is read: it detects a
file changed after `plan --out` (an edit, a truncation, a bad merge). It is not a signature:
anyone who can write the file can recompute it, so it cannot stop a forged plan. What stops a
forged plan is `apply` itself (plan.saved_plan_job): the job is made again from the inventory
and the repository, each entry must be the one the inventory produces at that index, and what
is carried out is that regenerated job, never an object built from the file. The file
contributes only what each item read (`current`, for the staleness check) and the order.

Why `unresolved` is saved: `Readings.record()` keeps the state preflight resolved (for a host
service, its models from the model registry, its env file's checksum from the secrets file,
the model sources in its params). Those come from the run's facts, not from the inventory, so
the regenerated job (pure: no facts, no I/O) cannot reproduce them; resolving them again before
the comparison would need SSH and the database and would fail only that host (hosts are
isolated), not the plan. So the unresolved form, which the playbooks produce exactly, is saved
too, and that is what the regenerated job is compared with. The resolved form stays in the file
for people to read, and is never used: at apply the regenerated resource is resolved again
from the facts of that moment, and its current state is checked against the plan's.

Every problem with a file (not JSON, wrong shape, missing keys, wrong types, a phase out of
range, a digest that does not match) is one line naming the file and what is wrong: exit 2.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .deployed import TOP_PHASE
from .errors import UsageError
from .resource import normal

if TYPE_CHECKING:
    from .plan import Item

PLAN_FORMAT = 2
DIGEST = "digest"
TOP_KEYS = {
    "format": int,
    "inventory": str,
    "phase": int,
    "downgrade": bool,
    "partial": bool,
    "tags": list,
    "playbooks": list,
    "limit": (str, type(None)),
    "created": str,
    "changes": int,
    "items": list,
    DIGEST: str,
}
ITEM_KEYS = {
    "playbook": str,
    "step": str,
    "resource": dict,
    "desired": (dict, type(None)),
    "current": object,
    "actions": list,
}
REF_KEYS = {"kind": str, "name": str, "params": dict, "version": int}
SHOWN = 60


def canonical(document: dict[str, Any]) -> str:
    """Everything but the digest, as one canonical JSON text (sorted keys, no spaces, ASCII)."""
    body = {key: value for key, value in document.items() if key != DIGEST}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def digest(document: dict[str, Any]) -> str:
    """sha256 of `canonical(document)`: detects an edit, not a forger (who can recompute it)."""
    return "sha256:" + hashlib.sha256(canonical(document).encode("ascii")).hexdigest()


def plan_document(
    *,
    inventory: str,
    phase: int | None,
    downgrade: bool,
    partial: bool,
    selection: dict[str, Any],
    created: str,
    items: list[dict[str, Any]],
    promotion: dict[str, Any] | None = None,
    contract: bool = False,
) -> dict[str, Any]:
    """The document `plan --out` writes, as it will be read back, with its digest (`promotion`:
    what `invoke promote` planned it from, see promotion.py)."""
    document: dict[str, Any] = {
        "format": PLAN_FORMAT,
        "inventory": inventory,
        "phase": phase,
        "downgrade": downgrade,
        "partial": partial,
        "tags": sorted(selection.get("tags") or ()),
        "playbooks": sorted(selection.get("playbooks") or ()),
        "limit": selection.get("limit") or None,
        "created": created,
        "changes": sum(1 for entry in items if entry["actions"]),
        "items": items,
    }
    if contract:  # made with --contract: its contract changes are made, last (absent: they wait)
        document["contract"] = True
    if promotion is not None:
        document["promotion"] = promotion
    document = json.loads(json.dumps(document, default=str))  # exactly what a reader will see
    document[DIGEST] = digest(document)
    return document


def plan_entries(unresolved: Iterable[tuple[dict, Any]], record: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The saved items: `record` (what preflight read), each with the unresolved ref and desired
    state of its item when they differ from the resolved ones (`unresolved` in the same order)."""
    entries = []
    for (ref, desired), entry in zip(unresolved, record, strict=True):
        entry = dict(entry)
        if _json(ref) != _json(entry["resource"]) or _json(desired) != _json(entry["desired"]):
            entry["unresolved"] = {"resource": ref, "desired": desired}
        entries.append(entry)
    return entries


def planned_form(entry: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """An entry's ref and desired state as the playbooks produce them (before resolution)."""
    unresolved = entry.get("unresolved")
    if unresolved is not None:
        return unresolved["resource"], unresolved["desired"]
    return entry["resource"], entry["desired"]


def first_difference(items: Sequence[Item], entries: list[dict[str, Any]]) -> str | None:
    """The first saved entry that is not the item the job has at its index, or None (pure):
    its index, its resource key, and which of playbook, step, resource ref, desired state differs."""
    for index in range(max(len(items), len(entries))):
        if index >= len(entries):
            item = items[index]
            return (
                f"entry {index} ({item.resource.key}) is missing (the plan ends after {len(entries)} entries;"
                f" the job has {item.resource.key} of {item.playbook}: {item.step} there)"
            )
        entry = entries[index]
        ref, desired = planned_form(entry)
        key = entry_key(ref)
        if index >= len(items):
            return f"entry {index} ({key}) is not in the job (the job ends after {len(items)} entries)"
        item = items[index]
        for what, ours, theirs in (
            ("playbook", item.playbook, entry["playbook"]),
            ("step", item.step, entry["step"]),
            ("resource ref", item.resource.ref(), ref),
            ("desired state", item.resource.desired, desired),
        ):
            if normal(ours) != normal(theirs):
                return f"entry {index} ({key}): its {what} differs (the job has {item.resource.key} there)"
    return None


def parse_plan(text: str, path: str) -> dict[str, Any]:
    """A plan file's text, checked in this order: JSON, its format, its digest, its shape."""
    again = f"save one with `invoke plan --out {path}`"
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise UsageError(f"{path}: not a saved plan (not JSON); {again}") from None
    if not isinstance(document, dict):
        raise UsageError(f"{path}: not a saved plan (a JSON {_type(document)}, not an object); {again}")
    version = document.get("format")
    if version != PLAN_FORMAT or isinstance(version, bool):
        if isinstance(version, int) and not isinstance(version, bool) and 0 < version < PLAN_FORMAT:
            raise UsageError(
                f"{path}: a plan of format {version}, saved by an older version (this one reads format"
                f" {PLAN_FORMAT} only); save it again with `invoke plan --out {path}`"
            )
        raise UsageError(
            f"{path}: not a saved plan of this version (format {_shown(version)}, this version reads format"
            f" {PLAN_FORMAT}); save it again with `invoke plan --out {path}`"
        )
    saved = document.get(DIGEST)
    try:
        actual = digest(document)
    except (ValueError, RecursionError):  # not representable as canonical JSON
        actual = None
    if not isinstance(saved, str) or saved != actual:
        what = "has no digest" if saved is None else "does not match its digest"
        raise UsageError(
            f"{path}: {what}: it was changed after `invoke plan --out`; nothing was read or changed;"
            f" save it again with `invoke plan --out {path}`"
        )
    problem = shape_problem(document)
    if problem:
        raise UsageError(f"{path}: not a saved plan: {problem}; {again}")
    return document


def shape_problem(document: dict[str, Any]) -> str | None:
    """What is wrong with a plan document's shape, or None (pure)."""
    problem = _keys_problem(document, TOP_KEYS, "", optional={"promotion": dict, "contract": bool})
    if problem:
        return problem
    phase = document["phase"]
    if not 1 <= phase <= TOP_PHASE:
        return f"`phase` must be 1-{TOP_PHASE}, got {_shown(phase)}"
    for key in ("tags", "playbooks"):
        if not all(isinstance(value, str) and value for value in document[key]):
            return f"`{key}` must be a list of names, got {_shown(document[key])}"
    selected = bool(document["tags"] or document["playbooks"] or document["limit"])
    if document["limit"] == "" or document["partial"] != selected:
        return "`partial` must be true exactly when `tags`, `playbooks` or `limit` select something"
    if document["downgrade"] and document["partial"]:
        return "a downgrade takes the whole environment: it cannot be partial"
    for index, entry in enumerate(document["items"]):
        problem = _item_problem(entry, f"items[{index}]")
        if problem:
            return problem
    return None


def _item_problem(entry: Any, where: str) -> str | None:
    if not isinstance(entry, dict):
        return f"`{where}` must be an object, got {_shown(entry)}"
    extra = {"unresolved": dict, "review": list}  # review: for the reader, never read back
    problem = _keys_problem(entry, ITEM_KEYS, f"{where}.", optional=extra) or _keys_problem(
        entry["resource"], REF_KEYS, f"{where}.resource."
    )
    if problem or "unresolved" not in entry:
        return problem
    unresolved = entry["unresolved"]
    return _keys_problem(
        unresolved, {"resource": dict, "desired": (dict, type(None))}, f"{where}.unresolved."
    ) or _keys_problem(unresolved["resource"], REF_KEYS, f"{where}.unresolved.resource.")


def _keys_problem(value: dict, keys: dict[str, Any], where: str, optional: dict[str, Any] | None = None) -> str | None:
    optional = optional or {}
    unknown = sorted(set(value) - set(keys) - set(optional))
    if unknown:
        return f"unknown key `{where}{_shown(unknown[0])[1:-1]}`"
    missing = [key for key in keys if key not in value]
    if missing:
        return f"missing key `{where}{missing[0]}`"
    for key, kind in {**keys, **optional}.items():
        if key in value and not _is(value[key], kind):
            return f"`{where}{key}` must be {_kind_name(kind)}, got {_shown(value[key])}"
    return None


def _is(value: Any, kind: Any) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds and object not in kinds:
        return False  # JSON's true is not a number
    return isinstance(value, kinds)


def _kind_name(kind: Any) -> str:
    names = {str: "a string", int: "a whole number", bool: "true or false", list: "a list", dict: "an object"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, "null") for k in kinds)


def _type(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(value), "null")


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _shown(value: Any) -> str:
    """A value from the file, as one short line whatever it holds (control characters escaped)."""
    text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def entry_key(ref: dict[str, Any]) -> str:
    """The resource key a (shape-checked) entry's ref names, as one short line."""
    return _shown(f"{ref['kind']} {ref['name']}")[1:-1]
