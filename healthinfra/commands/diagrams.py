"""`monitoring.diagrams`: the architecture (network, security, monitoring) as Mermaid files,
drawn from the services table and the inventory at a phase. Reads no server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .common import load, observed_phase

if TYPE_CHECKING:
    from ..step import Catalog

DEFAULT_DIR = "ARCHITECTURE_DIAGRAMS"


def monitoring_diagrams(inventory_name: str, phase=None, *, catalog: Catalog, out_dir: str = "", out=None) -> int:
    """Write `{network,security,monitoring}-diagram.md` to `out_dir` (default ARCHITECTURE_DIAGRAMS/
    at the project root); the phase given, else the deployed one, else the inventory's."""
    from ..diagrams import diagrams_for, markdown
    from ..inventory import project_root

    out = out or sys.stdout
    given = phase not in (None, "")
    # with --phase nothing is read but files; without it the journal says the deployed phase,
    # and reading a shared journal needs the inventory's credentials
    inventory = load(inventory_name, for_providers=not given)
    chosen = observed_phase(inventory, phase)
    target = Path(out_dir) if out_dir else project_root() / DEFAULT_DIR
    target.mkdir(parents=True, exist_ok=True)
    command = f"invoke monitoring.diagrams -i {inventory.name} --phase {chosen}"
    for d in diagrams_for(catalog, inventory, chosen):
        path = target / f"{d.name}-diagram.md"
        path.write_text(markdown(d, command), encoding="utf-8")
        out.write(f"wrote {path}\n")
    return 0
