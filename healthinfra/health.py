"""Health checks: probe, concurrently, everything the environment has at its phase.

Each probe retries transient faults within a small bound, then gives a verdict
with its latency. Probes only read: a health check never changes anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from . import names
from .errors import HealthInfraError
from .faults import provider_call
from .inventory import Inventory
from .state import Secrets


@dataclass
class Verdict:
    probe: str
    target: str
    healthy: bool
    detail: str
    latency_ms: float

    def to_json(self) -> dict:
        return {
            "probe": self.probe,
            "target": self.target,
            "healthy": self.healthy,
            "detail": self.detail,
            "latency_ms": round(self.latency_ms, 1),
        }


def probes(
    inventory: Inventory, phase: int, buckets: list[str], secrets: Secrets
) -> list[tuple[str, str, Callable[[], str]]]:
    """(probe, target, function) for every check that applies at this phase; `buckets` are the
    buckets the playbooks want at it."""
    checks: list[tuple[str, str, Callable[[], str]]] = []
    for service in inventory.services_at(phase):
        checks.append(("database", service.db_role, _database_probe(inventory, secrets, service.db_role)))
    checks.append(("aws", inventory.aws_endpoint_url or f"aws {inventory.aws['region']}", _aws_probe(inventory)))
    for service in inventory.services_at(phase):
        name = names.iam_role(inventory, service.name)
        checks.append(("iam role", name, _iam_role_probe(inventory, name)))
    for bucket in buckets:
        checks.append(("bucket", bucket, _bucket_probe(inventory, bucket)))
    for service in inventory.services_at(phase):  # services on their own hosts: each host's /health
        for host in inventory.hosts.get(service.name, ()):
            url = host_health_url(host)
            ca_file = host.health_ca_file if host.health_tls else None
            checks.append(("http", f"{service.name}@{host.name} {url}", _http_probe(url, ca_file)))
    for service, url in sorted(inventory.monitoring.get("endpoints", {}).items()):
        if any(s.name == service for s in inventory.services_at(phase)):
            checks.append(("http", f"{service} {url.rstrip('/')}/health", _http_probe(url.rstrip("/") + "/health")))
    return checks


def _bucket_probe(inventory, bucket):
    def probe() -> str:
        from .providers.aws import AwsClients

        with provider_call(f"head bucket {bucket}"):
            AwsClients(inventory).client("s3").head_bucket(Bucket=bucket)
        return "exists"

    return probe


def host_health_url(host) -> str:
    """A service host's /health: over TLS when the inventory says `health_tls: true` (pure)."""
    scheme = "https" if host.health_tls else "http"
    address = f"[{host.address}]" if ":" in host.address else host.address
    return f"{scheme}://{address}:{host.service_port}/health"


def _http_probe(url, ca_file: str | None = None):
    """GET url; an https URL is verified (hostname and chain) against `ca_file`, else the system roots."""

    def probe() -> str:
        import os
        import ssl
        import urllib.error
        import urllib.request

        from .errors import TransientProviderError

        context = None
        if url.startswith("https://"):
            try:
                context = ssl.create_default_context(cafile=os.path.expanduser(ca_file) if ca_file else None)
            except (OSError, ssl.SSLError) as exc:
                raise HealthInfraError(f"cannot read the CA file {ca_file}: {exc}; fix `health_ca_file`") from None
        try:
            with urllib.request.urlopen(url, timeout=3, context=context) as response:
                return f"HTTP {response.status}" + (" over verified TLS" if context else "")
        except urllib.error.HTTPError as exc:
            if exc.code >= 500:
                raise TransientProviderError(f"HTTP {exc.code}") from None
            raise HealthInfraError(f"HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise HealthInfraError(f"TLS certificate not trusted: {reason.verify_message}") from None
            raise TransientProviderError(f"unreachable: {getattr(exc, 'reason', exc)}") from None

    return probe


def _database_probe(inventory, secrets, role):
    def probe() -> str:
        password = secrets.get(f"pg.{role}")
        if password is None:
            raise HealthInfraError(f"no password for `{role}` in {secrets.location}; run `invoke deploy` first")
        with provider_call(f"connect as {role}"):
            return inventory.provider("database").probe_login(inventory, role, password)

    return probe


def _aws_probe(inventory):
    def probe() -> str:
        with provider_call("aws endpoint"):
            return inventory.provider("aws").probe(inventory)

    return probe


def _iam_role_probe(inventory, name):
    def probe() -> str:
        from .providers.aws import AwsClients

        with provider_call(f"iam role {name}"):
            role = AwsClients(inventory).client("iam").get_role(RoleName=name)["Role"]
        return f"exists ({role['Arn']})"

    return probe


def run_checks(
    inventory: Inventory, phase: int, buckets: list[str], secrets: Secrets, attempts: int = 3
) -> list[Verdict]:
    from .faults import with_retries

    def measure(probe, target, fn) -> Verdict:
        started = time.perf_counter()
        tries = [1]
        try:
            detail = with_retries(fn, lambda exc, attempt: tries.append(attempt + 1), attempts=attempts)
            healthy = True
        except HealthInfraError as exc:
            detail, healthy = str(exc), False
            if len(tries) > 1:
                detail += f" (after {len(tries)} attempts)"
        return Verdict(probe, target, healthy, detail, (time.perf_counter() - started) * 1000)

    checks = probes(inventory, phase, buckets, secrets)
    with ThreadPoolExecutor(max_workers=min(8, len(checks))) as pool:
        return list(pool.map(lambda c: measure(*c), checks))


def render(verdicts: list[Verdict]) -> str:
    width = max(len(v.target) for v in verdicts)
    lines = [f"{'probe':<10} {'target':<{width}} {'status':<9} {'ms':>7}  detail"]
    for v in verdicts:
        status = "healthy" if v.healthy else "UNHEALTHY"
        lines.append(f"{v.probe:<10} {v.target:<{width}} {status:<9} {v.latency_ms:>7.1f}  {v.detail}")
    return "\n".join(lines)


def alert_message(inventory: Inventory, phase: int, unhealthy: list[Verdict], secrets: Secrets) -> tuple[str, str]:
    """(subject, message) listing the unhealthy probes: probe, target, detail. Any secret of the
    environment that a detail might echo is masked (a message leaves for people's inboxes)."""
    subject = f"{inventory.name}: {len(unhealthy)} unhealthy probe{'s' if len(unhealthy) != 1 else ''}"
    lines = [
        f"{len(unhealthy)} unhealthy at phase {phase} of `{inventory.name}` ({inventory.environment}),"
        f" from `invoke monitoring.check --alert -i {inventory.name}`:",
        "",
    ]
    lines += [f"- {v.probe} {v.target}: {v.detail}" for v in unhealthy]
    message = "\n".join(lines) + "\n"
    for name in secrets.names():
        value = secrets.get(name)
        if value is not None and value.reveal() and value.reveal() in message:
            message = message.replace(value.reveal(), "***")
    return subject[:100], message


def publish_alert(inventory: Inventory, phase: int, unhealthy: list[Verdict], secrets: Secrets) -> None:
    """One message to the environment's alert topic listing every unhealthy probe."""
    from .providers.aws import AwsClients

    subject, message = alert_message(inventory, phase, unhealthy, secrets)
    with provider_call("publish to the alert topic"):
        AwsClients(inventory).client("sns").publish(
            TopicArn=names.alert_topic_arn(inventory), Subject=subject, Message=message
        )
