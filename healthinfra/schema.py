"""Checking a mapping read from YAML against a schema, with messages a person can act on.

Shared by the inventory loader and every provider's settings: an unknown key gets the
closest valid spelling, a missing one says what to add, a wrong type says which type,
and every message names the file and the key (`inventories/dev.yml: unknown key
`database.prot`; did you mean `database.port`?`).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from .errors import InventoryError

Schema = dict[str, tuple[type, bool]]  # key -> (type, required)

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
DNS_LABEL = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
ENV_VAR = re.compile(r"^[A-Z][A-Z0-9_]{0,60}$")


def check_keys(data: Any, schema: Schema, shown: str, prefix: str) -> None:
    if not isinstance(data, dict):
        raise InventoryError(f"{shown}: `{prefix.rstrip('.')}` must be a mapping, got {kind_of(data)}")
    for key in data:
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f"did you mean `{prefix}{close[0]}`?" if close else f"valid keys: {one_of(schema, prefix)}"
            raise InventoryError(f"{shown}: unknown key `{prefix}{show(key)}`; {hint}")
    for key, (kind, required) in schema.items():
        if key not in data or data[key] is None:
            if required:
                raise InventoryError(f"{shown}: missing key `{prefix}{key}`; add it ({kind_name(kind)})")
            continue
        value = data[key]
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            if key == "phase":
                continue  # parse_phase gives the phase-specific message
            raise InventoryError(f"{shown}: `{prefix}{key}` must be a number, got `{show(value)}`")
        if kind is not int and not isinstance(value, kind):
            raise InventoryError(f"{shown}: `{prefix}{key}` must be {kind_name(kind)}, got {kind_of(value)}")


def kind_name(kind: type) -> str:
    return {str: "text", int: "a number", bool: "true or false", dict: "a mapping", list: "a list"}[kind]


def kind_of(value: Any) -> str:
    if value is None:
        return "nothing"
    return {str: "text", int: "a number", bool: "true/false", dict: "a mapping", list: "a list", float: "a number"}.get(
        type(value), type(value).__name__
    )


def show(value: Any, limit: int = 40) -> str:
    """A value made safe for a one-line message: printable, short."""
    text = str(value)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_of(values: Any, prefix: str = "") -> str:
    values = [f"`{prefix}{v}`" for v in values]
    if not values:
        return "(none)"
    return ", ".join(values[:-1]) + (" or " if len(values) > 1 else "") + values[-1]


def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


PHASES = (1, 2, 3, 4)


def parse_phase(value: Any, source: str = "--phase") -> int:
    """A phase from the command line or a file: an int 1..4, else a clean error."""
    if isinstance(value, bool):
        ok = False
    elif isinstance(value, int):
        ok = value in PHASES
    elif isinstance(value, str) and re.fullmatch(r"[1-4]", value.strip()):
        value, ok = int(value.strip()), True
    else:
        ok = False
    if not ok:
        raise InventoryError(f"{source}: `phase` must be 1, 2, 3 or 4, got `{show(value)}`")
    return int(value)


def read_yaml(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise InventoryError(f"{rel(path)}: malformed YAML{where}: {problem}; fix the syntax there") from None
    except UnicodeDecodeError:
        raise InventoryError(f"{rel(path)}: not UTF-8 text; save the file as UTF-8") from None
    if not isinstance(data, dict):
        raise InventoryError(f"{rel(path)}: must be a mapping of keys at the top level, got {kind_of(data)}")
    return data
