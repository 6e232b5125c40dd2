"""Reading the Railway stand-in as a test does: the inventory's `hosting:` block for the hosted
services, a request of the test's own through the stand-in's validation, and the stand-in's
services, instances, variables and deployments by service name."""

from __future__ import annotations

import httpx

TOKEN_ENV = "HC_TEST_RAILWAY_TOKEN"
HOSTED = ("gateway", "auth", "patient", "provider", "appointment")


def railway_hosting(project: str = "hc-test", images: dict | None = None, replicas: dict | None = None) -> str:
    images, replicas = images or {}, replicas or {}
    rows = "".join(
        f"    {s}: {{image: {images.get(s, f'ghcr.io/example/{s}:1.0.0')}, replicas: {replicas.get(s, 1)}}}\n"
        for s in HOSTED
    )
    return f"hosting:\n  project: {project}\n  environment: test\n  token_env: {TOKEN_ENV}\n  services:\n{rows}"


def call(railway, query, variables=None):
    """A request of the test's own, through the stand-in's validation, like any client's."""
    answer = httpx.post(
        railway.url,
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {railway.token}"},
    ).json()
    assert "errors" not in answer, answer
    return answer["data"]


def services(railway):
    return {s["name"]: s for s in railway.services.values()}


def instance(railway, name):
    service = services(railway)[name]
    return next(i for (sid, _), i in railway.instances.items() if sid == service["id"])


def variables_of(railway, name):
    service = services(railway)[name]
    return next(v for (sid, _), v in railway.variables.items() if sid == service["id"])


def deployments_of(railway, name):
    service = services(railway)[name]
    return sorted(
        (d for d in railway.deployments.values() if d["serviceId"] == service["id"]), key=lambda d: d["order"]
    )
