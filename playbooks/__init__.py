"""Playbooks: ordered steps per area, each with its phase and tags. Read top to bottom.

`catalog()` hands them to the engine, in run order within a phase.
"""

from __future__ import annotations

from healthinfra.step import Catalog


def catalog() -> Catalog:
    from . import db, hosts, monitoring, railway, security, storage

    return Catalog.of(
        (module.__name__.rsplit(".", 1)[-1], module.STEPS)
        for module in (db, storage, security, monitoring, railway, hosts)
    )
