"""The local AWS endpoint: moto, served over TLS only, with S3 bucket policies evaluated as AWS does.

moto 5.2 applies every Deny statement of a bucket policy to object requests and
ignores the statements' conditions, so a TLS-only policy (`aws:SecureTransport`)
or a KMS-header policy refuses every object read and write, and moto serves plain
HTTP besides. That made the PHI and model buckets unusable locally. Here moto
runs behind TLS (the local certificate, TLS 1.2+), and object requests are
judged by `evaluate()` below: the policy's statements with their conditions,
against the request's own context (`aws:SecureTransport` is true because the
server speaks nothing else; `s3:x-amz-server-side-encryption` is the request's
header). A plain-HTTP client cannot connect at all, which is AWS's answer too.

Run as `python -m healthinfra.local.moto_server HOST PORT CERT KEY`.
"""

from __future__ import annotations

import fnmatch
import json
import sys
import threading

EVERYONE = ("*", {"AWS": "*"})
KNOWN_OPERATORS = (
    "Bool",
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringLike",
    "ArnLike",
    "ArnEquals",
    "StringNotLike",
    "ArnNotLike",
    "ArnNotEquals",
)
_request = threading.local()  # the request being served on this thread: its condition context


def _values(value) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def _matches(patterns, value: str, *, case: bool = True) -> bool:
    if not case:
        return any(fnmatch.fnmatchcase(value.lower(), p.lower()) for p in _values(patterns))
    return any(fnmatch.fnmatchcase(value, p) for p in _values(patterns))


def condition_holds(operator: str, key: str, expected, context: dict[str, str]) -> bool:
    """One condition of a statement, by IAM's rules for a present or missing key (pure)."""
    base = operator.removesuffix("IfExists")
    if base not in KNOWN_OPERATORS:
        raise ValueError(f"condition operator {operator} is not evaluated locally")
    if key not in context:
        if operator.endswith("IfExists"):
            return True
        return base.startswith(("StringNot", "ArnNot"))  # negated operators hold when the key is absent
    actual = context[key]
    wanted = _values(expected)
    if base == "Bool":
        return actual.lower() in [w.lower() for w in wanted]
    if base == "StringEquals":
        return actual in wanted
    if base == "StringNotEquals":
        return actual not in wanted
    if base == "StringEqualsIgnoreCase":
        return actual.lower() in [w.lower() for w in wanted]
    if base in ("StringLike", "ArnLike", "ArnEquals"):
        return _matches(wanted, actual)
    return not _matches(wanted, actual)  # StringNotLike, ArnNotLike, ArnNotEquals


def statement_applies(statement: dict, action: str, resource: str, context: dict[str, str]) -> bool:
    if statement.get("Principal") not in EVERYONE:
        return False  # service principals (log delivery) and named accounts are not the local caller
    if not _matches(statement.get("Action", []), action, case=False):
        return False
    if not _matches(statement.get("Resource", []), resource):
        return False
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, expected in keys.items():
            try:
                if not condition_holds(operator, key, expected, context):
                    return False
            except ValueError:
                return statement.get("Effect") == "Deny"  # fail closed: an unknown condition never opens access
    return True


def evaluate(policy: dict, action: str, resource: str, context: dict[str, str]) -> str:
    """`deny`, `allow` or `neutral` for one request, an explicit Deny winning (pure)."""
    verdict = "neutral"
    for statement in policy.get("Statement", []):
        if statement_applies(statement, action, resource, context):
            if statement.get("Effect") == "Deny":
                return "deny"
            verdict = "allow"
    return verdict


def request_context(environ: dict) -> dict[str, str]:
    context = {"aws:SecureTransport": "true" if environ.get("wsgi.url_scheme") == "https" else "false"}
    encryption = environ.get("HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION")
    if encryption is not None:
        context["s3:x-amz-server-side-encryption"] = encryption
    return context


def _install_policy_evaluation() -> None:
    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket

    results = {
        "deny": PermissionResult.DENIED,
        "allow": PermissionResult.PERMITTED,
        "neutral": PermissionResult.NEUTRAL,
    }

    def get_permission(bucket, action: str, resource: str):
        if bucket.policy is None:
            return PermissionResult.NEUTRAL
        context = getattr(_request, "context", {"aws:SecureTransport": "false"})
        return results[evaluate(json.loads(bucket.policy), action, resource, context)]

    FakeBucket.get_permission = get_permission  # type: ignore[method-assign,assignment]


def main(argv: list[str]) -> None:
    import signal
    import ssl

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    host, port, cert, key = argv
    _install_policy_evaluation()
    moto_app = DomainDispatcherApplication(create_backend_app)

    def app(environ, start_response):
        _request.context = request_context(environ)
        return moto_app(environ, start_response)

    class Handler(MotoRequestHandler):
        # werkzeug closes every connection, so each request is a new TLS session, whose small writes
        # Nagle's algorithm holds back for the peer's delayed ACK: 18 ms a request, 8 ms without it
        disable_nagle_algorithm = True

    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    tls.load_cert_chain(cert, key)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run_simple(host, int(port), app, threaded=True, ssl_context=tls, request_handler=Handler)


if __name__ == "__main__":
    main(sys.argv[1:])
