"""Resource types by kind, for rebuilding a resource named in the journal or a saved plan.

The list is explicit (`resources.RESOURCE_TYPES`); nothing registers itself by being
imported. A ref names a kind the registry does not know only if it was written by a
newer version, or edited by hand: that is refused with the kind named.
"""

from __future__ import annotations

from typing import Any

from .errors import UsageError
from .resource import Resource


def resource_types() -> dict[str, type[Resource]]:
    from .resources import RESOURCE_TYPES

    return {cls.kind: cls for cls in RESOURCE_TYPES}


def resource_from_ref(ref: dict[str, Any], desired: dict | None) -> Resource:
    """The resource a journal or plan entry names, with `desired` as its desired state."""
    kind = ref.get("kind") if isinstance(ref, dict) else None
    cls = resource_types().get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise UsageError(
            f"unknown resource kind `{kind}` in a journal or plan entry; was it written by a newer version?"
        )
    return cls.from_ref(ref, desired)
