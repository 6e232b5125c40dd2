"""Providers: the only modules that know which server, cloud or platform is in use.

`PROVIDERS` is the explicit registry: per area of the inventory's `providers:` mapping,
the provider classes by the name written there. Adding a provider is a class in this
package and a line here. Each class's module imports nothing heavy; clients (psycopg,
boto3, httpx, fabric) are made inside methods.
"""

from __future__ import annotations

from .base import Provider, Where
from .cloud import MotoAws, RealAws
from .database import EmbeddedDatabase, NeonDatabase
from .host_access import SshHosts
from .hosting import LocalHosting, RailwayHosting
from .own_postgres import PostgresServer

PROVIDERS: dict[str, dict[str, type[Provider]]] = {
    area: {cls.name: cls for cls in classes}
    for area, classes in (
        ("database", (EmbeddedDatabase, NeonDatabase, PostgresServer)),
        ("aws", (MotoAws, RealAws)),
        ("hosting", (LocalHosting, RailwayHosting)),
        ("hosts", (SshHosts,)),
    )
}
DEFAULTS = {"hosts": SshHosts.name}  # areas an inventory may leave out of `providers:`

__all__ = ["DEFAULTS", "PROVIDERS", "Provider", "Where"]
