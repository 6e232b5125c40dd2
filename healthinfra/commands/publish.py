"""`monitoring.publish`: the business metrics (aggregates only) to CloudWatch, once per day-period."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from ..context import RunContext
from ..errors import UsageError
from ..options import RunOptions
from ..state import open_state
from .common import load, observed_phase, require_local_services

if TYPE_CHECKING:
    from ..step import Catalog

COMMAND = "monitoring.publish"


def monitoring_publish(inventory_name: str, *, catalog: Catalog, as_json=False, out=None) -> int:
    """Count per day by SQL, send what CloudWatch does not have yet, under the environment's lock
    (two publishes at once could both send the same difference)."""
    from ..business_metrics import publish

    out = out or sys.stdout
    inventory = load(inventory_name)
    phase = observed_phase(inventory, None)
    if phase < 3:
        raise UsageError(
            f"monitoring.publish: business metrics come with phase 3; `{inventory.name}` is at phase {phase}"
            f" (invoke deploy -i {inventory.name} --phase 3)"
        )
    require_local_services(inventory)
    state = open_state(inventory)
    with state.lock(COMMAND), RunContext(inventory, RunOptions(check=True, command=COMMAND), state=state) as ctx:
        result = publish(ctx, phase)
    if as_json:
        out.write(json.dumps({"inventory": inventory.name, **result}, indent=2) + "\n")
        return 0
    today = result["days"][-1]
    out.write(f"business metrics of `{inventory.name}` (phase {phase}) in {result['namespace']}, today {today}:\n")
    for series, value in sorted(result["counts"][today].items()):
        out.write(f"  {series:<40} {value:>8g}\n")
    sent = result["sent"]
    out.write(
        f"sent {len(sent)} data points over {len({s['day'] for s in sent})} days\n"
        if sent
        else "nothing new to send: every day-period is published\n"
    )
    return 0
