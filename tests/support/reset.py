"""Emptying the test environment between tests by what a test changed, not by a full cleanup.

The session's servers start empty; `Baseline` records what they hold then (databases, roles,
the files of the inventory's state directory: the servers' own data, certificates, pid files).
`reset` puts them back there: every database and role made since is dropped, moto forgets
every AWS resource at once (its `/moto-api/reset`), and every state file made since (journal,
secrets, env files, run state, a lock) is removed. A few tens of milliseconds, where
`cleanup-dev --destroy-data` through the engine took seconds for a phase-4 environment; the
cleanup command itself is tested where it is the subject (test_nothing_lost, test_phase1 and
the others that run `cleanup-dev`).
"""

from __future__ import annotations

import os
import shutil
import ssl
import urllib.request
from dataclasses import dataclass

import psycopg
from psycopg import sql

from healthinfra.inventory import Inventory
from healthinfra.local.moto import certificate
from healthinfra.local.postgres import admin_conninfo


@dataclass(frozen=True)
class Baseline:
    databases: frozenset[str]
    roles: frozenset[str]
    state_files: frozenset[str]


def _databases(conn) -> set[str]:
    return {r[0] for r in conn.execute("select datname from pg_database")}


def _roles(conn) -> set[str]:
    return {r[0] for r in conn.execute("select rolname from pg_roles")}


def record(inventory: Inventory) -> Baseline:
    with psycopg.connect(**admin_conninfo(inventory), autocommit=True) as conn:
        databases, roles = _databases(conn), _roles(conn)
    files = {p.name for p in inventory.state_dir.iterdir()}
    return Baseline(frozenset(databases), frozenset(roles), frozenset(files))


def reset_moto(inventory: Inventory) -> None:
    context = ssl.create_default_context(cafile=str(certificate(inventory)))
    request = urllib.request.Request(f"{inventory.aws_endpoint_url}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(request, context=context, timeout=30) as answer:
        assert answer.status == 200, answer.status


def reset_postgres(inventory: Inventory, baseline: Baseline) -> None:
    with psycopg.connect(**admin_conninfo(inventory), autocommit=True) as conn:
        for name in sorted(_databases(conn) - baseline.databases):
            conn.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))
        made = sorted(_roles(conn) - baseline.roles)
        if made:  # what they own or were granted in the databases that stay, then the roles
            for name in sorted(baseline.databases - {"template0"}):
                with psycopg.connect(**admin_conninfo(inventory, name), autocommit=True) as db:
                    db.execute(sql.SQL("drop owned by {}").format(sql.SQL(", ").join(map(sql.Identifier, made))))
            for name in made:
                conn.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))


def reset_state_files(inventory: Inventory, baseline: Baseline) -> None:
    for path in inventory.state_dir.iterdir():
        if path.name not in baseline.state_files:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def reset(inventory: Inventory, baseline: Baseline) -> None:
    reset_moto(inventory)
    reset_postgres(inventory, baseline)
    reset_state_files(inventory, baseline)


def empty_environment(servers) -> Inventory:
    """The test inventory's servers running and holding nothing a test made (the `env` fixture)."""
    from healthinfra import commands
    from healthinfra.inventory import load_inventory

    from .environment import INVENTORY

    inventory = load_inventory(INVENTORY)
    with open(os.devnull, "w") as quiet:
        if commands.local_status(INVENTORY, out=quiet) != 0:  # a test ran cleanup-dev, which stops them
            commands.local_up(INVENTORY, out=quiet)
    reset(inventory, servers["baseline"])
    return inventory
