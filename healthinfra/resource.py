"""The resource contract: read, a pure diff, apply, and undo by converging back.

A resource type knows one kind of thing (a database, a role, an IAM role…):

- `read(ctx)` returns its current managed attributes, or None when it is absent;
- `diff(current, desired)` is pure: it returns the actions that turn current into
  desired, an empty list meaning "no change";
- `apply(ctx, actions)` carries out exactly those actions;
- undo needs no code of its own: the journal records the state *before* a change,
  and undoing it is converging the same resource back to that state (read, diff,
  apply). That makes undo idempotent and safe to replay after a crash.

`desired = None` means "absent": cleanup and rollback of a creation are the same
diff as any other. Attributes a type does not manage are listed in `unmanaged`
(and documented), never silently ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class Action:
    """One change: create the resource, delete it, or set one attribute."""

    op: str  # "create" | "delete" | "set"
    attribute: str | None = None
    before: Any = None
    after: Any = None

    def to_json(self) -> dict:
        return {"op": self.op, "attribute": self.attribute, "before": self.before, "after": self.after}

    def describe(self) -> str:
        if self.op == "set":
            return f"set {self.attribute}"
        return self.op


def diff_attributes(
    current: dict | None, desired: dict | None, *, open_keys: bool = False, missing: Any = None
) -> list[Action]:
    """The generic pure diff: create, delete, or one `set` per differing attribute.

    With `open_keys`, attributes present only in `current` are compared with
    `missing` (for example a table a role holds privileges on that it should not).
    """
    if current is None and desired is None:
        return []
    if current is None:
        return [Action("create", after=desired)]
    if desired is None:
        return [Action("delete", before=current)]
    keys = list(desired)
    if open_keys:
        keys += sorted(k for k in current if k not in desired)
    actions = []
    for key in keys:
        want = desired.get(key, missing)
        have = current.get(key, missing)
        if normal(want) != normal(have):
            actions.append(Action("set", key, have, want))
    return actions


def normal(value: Any) -> str:
    """A value as canonical JSON, for comparing states whatever their key order (pure)."""
    return json.dumps(value, sort_keys=True, default=str)


class Resource:
    """Base of every resource type. Subclasses set `kind` and the contract methods."""

    kind: ClassVar[str] = ""
    uses_postgres: ClassVar[bool] = False  # its reads share the run's connection: never read concurrently
    parallel_group: ClassVar[str | None] = None  # consecutive resources of one group are applied at once
    isolated: ClassVar[bool] = False  # its failure fails it alone (a host): the rest of the run goes on
    unmanaged: ClassVar[tuple[str, ...]] = ()

    ref_version: ClassVar[int] = 1  # of `params` in journal refs; raise it with `upgrade_params` when they change

    def __init__(self, name: str, desired: dict | None, **params: Any):
        self.name = name
        self.desired = desired
        self.params = params

    @property
    def key(self) -> str:
        return f"{self.kind} {self.name}"

    def ref(self) -> dict:
        """Enough to rebuild this resource from the journal (no secrets: references only)."""
        return {"kind": self.kind, "name": self.name, "params": self.params, "version": self.ref_version}

    @classmethod
    def upgrade_params(cls, params: dict[str, Any], version: int) -> dict[str, Any]:
        """A journal ref's params written at an older `ref_version`, as this version takes them.
        A type that renames or adds a parameter raises `ref_version` and converts here, so an
        older journal can still be undone."""
        return params

    @classmethod
    def from_ref(cls, ref: dict, desired: dict | None) -> Resource:
        """Rebuild from a journal ref (`version` absent: written before refs had one, version 1)."""
        params = cls.upgrade_params(dict(ref.get("params") or {}), int(ref.get("version", 1)))
        return cls(ref["name"], desired, **params)

    def with_desired(self, desired: dict | None) -> Resource:
        return type(self)(self.name, desired, **self.params)

    @property
    def contract(self) -> bool:
        """A contract change (expand, then contract): it removes or changes what older instances
        of the services still use, so only `deploy --contract` makes it (plan.with_contracts)."""
        return bool(self.params.get("contract"))

    def waiting(self) -> Resource:
        """This contract change held back: the same resource, whose diff makes nothing that is
        missing (what exists is kept, and checked, as any other)."""
        return type(self)(self.name, self.desired, **{**self.params, "waiting": True})

    @property
    def is_waiting(self) -> bool:
        return bool(self.params.get("waiting"))

    # The contract -------------------------------------------------------
    def resolve(self, ctx) -> Resource:
        """The resource with its desired state worked out, where that needs facts of the run
        (a registry's rows, a rendered file's checksum). Most types know it up front."""
        return self

    def read(self, ctx) -> dict | None:
        raise NotImplementedError

    def diff(self, current: dict | None, desired: dict | None) -> list[Action]:
        return diff_attributes(current, desired)

    def actions_for(self, current: dict | None) -> list[Action]:
        """What converges this resource from `current` (what the engine runs): its diff to the
        desired state, except that a waiting contract change creates nothing. Pure."""
        if self.is_waiting and current is None:
            return []
        return self.diff(current, self.desired)

    def apply(self, ctx, actions: list[Action]) -> None:
        raise NotImplementedError

    def depends_on(self) -> list[str]:
        """Keys of resources this one lives in or needs (a policy's role, a grant's role…).
        In check mode, a change to a resource whose dependency is only planned is shown
        as happening "after apply": read now, it could only be read as absent."""
        return []

    def guard(self, ctx, actions: list[Action]) -> None:
        """Refuse (raise DataLossRefused) actions that would delete data; checked for
        every resource before a run changes anything. Most types hold no data."""

    def review(self, actions: list[Action]) -> list[dict[str, Any]]:
        """What a reviewer reads of these actions beyond the attributes (a migration's statements,
        each with its lock and lint findings), shown by plans and kept in the JSON and saved plan."""
        return []

    def noop_reason(self, current: dict | None) -> str:
        if self.is_waiting and current is None and self.desired is not None:
            return "waiting: a contract change, made only by `deploy --contract` (after everything else)"
        return "absent, as wanted" if current is None else "up to date"

    def __repr__(self) -> str:
        return f"<{self.key}>"
