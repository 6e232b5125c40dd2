"""Rendering the project's Jinja2 templates (templates/), strictly: an undefined
variable is an error, never an empty string in a policy."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .inventory import project_root


def render(name: str, filters: dict[str, Callable[[Any], str]] | None = None, **variables: Any) -> str:
    """Template `name` with `variables`; `filters` adds Jinja filters (the host templates' quoting)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(project_root() / "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        extensions=["jinja2.ext.do"],
    )
    env.filters.update(filters or {})
    return env.get_template(name).render(**variables)


def render_json(name: str, **variables: Any) -> Any:
    return json.loads(render(name, **variables))
