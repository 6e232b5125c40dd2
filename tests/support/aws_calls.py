"""A recording boto3 client for table tests of `apply`: each call (method, kwargs) recorded and
answered from a table, no server; `Ctx` is what apply uses of a run."""

from __future__ import annotations

import datetime

from botocore.exceptions import ClientError

WHEN = datetime.datetime(2025, 3, 1, 12, 0, tzinfo=datetime.UTC)


# --- a recording client ------------------------------------------------------


def client_error(code: str, operation: str = "Operation") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, operation)


class Recorder:
    """A boto3 client stand-in: records each call (method name, kwargs) and answers from a
    table (an answer that is an exception is raised). Paginators record `paginate NAME`."""

    def __init__(self, answers: dict | None = None):
        self.calls: list[tuple[str, dict]] = []
        self.answers = answers or {}

    def _answer(self, method: str, kwargs: dict):
        self.calls.append((method, kwargs))
        answer = self.answers.get(method, {})
        if isinstance(answer, Exception):
            raise answer
        return answer

    def __getattr__(self, method: str):
        if method.startswith("_"):
            raise AttributeError(method)
        return lambda **kwargs: self._answer(method, kwargs)

    def get_paginator(self, operation: str):
        recorder = self

        class Paginator:
            def paginate(self, **kwargs):
                return recorder._answer(f"paginate {operation}", kwargs) or []

        return Paginator()


class Ctx:
    """What apply uses of a run: AWS clients (one recorder per service) and memoised facts."""

    def __init__(self, facts: dict | None = None, **clients: Recorder):
        self.clients = clients
        self.facts = dict(facts or {})
        self.planned_deletions: set[str] = set()
        self.destroy_data = False

        class Aws:
            @staticmethod
            def client(service: str) -> Recorder:
                return clients.setdefault(service, Recorder())

        self.aws = Aws()

    def fact(self, key, loader):
        if key not in self.facts:
            self.facts[key] = loader()
        return self.facts[key]


def calls_of(resource, actions, service: str, answers: dict | None = None, facts: dict | None = None):
    recorder = Recorder(answers)
    resource.apply(Ctx(facts, **{service: recorder}), actions)
    return recorder.calls
