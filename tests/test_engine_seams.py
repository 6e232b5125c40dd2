"""The engine's seams, without servers: the resource registry and journal refs, typed journal
events, the file state backend, the step catalog and the provider registry."""

from __future__ import annotations

import json

import pytest

from healthinfra import journal as events
from healthinfra.errors import UsageError
from healthinfra.journal import Journal, runs_of
from healthinfra.providers import PROVIDERS
from healthinfra.registry import resource_from_ref, resource_types
from healthinfra.resource import Resource
from healthinfra.resources import RESOURCE_TYPES
from healthinfra.resources.postgres import PgRole
from healthinfra.state import FileState
from healthinfra.step import Catalog, Step


def test_every_resource_type_is_listed_once_and_every_provider_kind_exists():
    kinds = [cls.kind for cls in RESOURCE_TYPES]
    assert len(kinds) == len(set(kinds)) == len(resource_types())
    offered = {kind for classes in PROVIDERS.values() for cls in classes.values() for kind in cls.resource_kinds}
    assert offered - set(kinds) == set(), "a provider offers a kind no resource type has"
    assert set(kinds) - offered == set(), "a resource type no provider offers"


def test_a_ref_round_trips_and_an_older_one_without_a_version_still_rebuilds():
    role = PgRole("auth_svc", {"login": True}, database="healthcare")
    ref = role.ref()
    assert ref == {"kind": "pg.role", "name": "auth_svc", "params": {"database": "healthcare"}, "version": 1}
    again = resource_from_ref(json.loads(json.dumps(ref)), {"login": True})
    assert (again.key, again.params, again.desired) == (role.key, role.params, role.desired)
    older = {"kind": "pg.role", "name": "auth_svc", "params": {"database": "healthcare"}}  # journals before versions
    assert resource_from_ref(older, None).params == {"database": "healthcare"}


def test_a_type_that_renames_a_parameter_upgrades_older_refs():
    class Renamed(Resource):
        kind = "test.renamed"
        ref_version = 2

        @classmethod
        def upgrade_params(cls, params, version):
            if version < 2:
                params = {"database": params.pop("dbname"), **params}
            return params

    rebuilt = Renamed.from_ref({"kind": "test.renamed", "name": "x", "params": {"dbname": "healthcare"}}, None)
    assert rebuilt.params == {"database": "healthcare"} and rebuilt.ref()["version"] == 2


@pytest.mark.parametrize("ref", [{"kind": "pg.nonsense", "name": "x"}, {"name": "x"}, "pg.role"])
def test_an_unknown_kind_is_refused_with_exit_2(ref):
    with pytest.raises(UsageError, match="unknown resource kind") as refused:
        resource_from_ref(ref, None)
    assert refused.value.exit_code == 2


def test_typed_events_make_runs_the_journal_reads_back(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append(events.run_start("r1", kind="deploy", phase=2, inventory="t", command="deploy --phase 2"))
    ref = PgRole("auth_svc", None, database="db").ref()
    journal.append(events.change("r1", seq=1, playbook="db", step="s", resource=ref, actions=[], converge_to=None))
    journal.append(events.change_done("r1", seq=1))
    journal.append(events.change("r1", seq=2, playbook="db", step="s", resource=ref, actions=[], converge_to={"a": 1}))
    journal.append(events.change_done("r1", seq=2, error="refused"))
    journal.append(events.run_end("r1", ok=False))
    journal.append(events.run_start("r2", kind="rollback", phase=2, inventory="t", command="rollback", target="r1"))
    journal.append(events.run_end("r2", ok=True))
    journal.append(events.rolled_back("r2", target="r1"))
    first, second = journal.runs()
    assert (first.run_id, first.status, [c["seq"] for c in first.changes]) == ("r1", "rolled back", [1, 2])
    assert first.outcomes[2]["status"] == "failed" and first.outcomes[2]["error"] == "refused"
    assert first.outcomes[1]["status"] == "ok" and "error" not in first.outcomes[1]
    assert (second.kind, second.status, first.rolled_back_by) == ("rollback", "ok", "r2")
    assert [r.run_id for r in runs_of(journal.events())] == ["r1", "r2"]
    assert all(line.endswith("}") for line in (tmp_path / "journal.jsonl").read_text().splitlines())


def test_the_file_state_keeps_documents_private_and_updates_them_whole(tmp_path):
    state = FileState(tmp_path / "state", "t")
    assert state.read_document("record") is None
    state.update_document("record", lambda d: {**d, "a": 1})
    state.update_document("record", lambda d: {**d, "b": 2})
    assert state.read_document("record") == {"a": 1, "b": 2}
    path = tmp_path / "state" / "record.json"
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_text("not json")
    assert state.read_document("record") is None  # damaged: rebuilt by its owner, never a traceback
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_the_catalog_orders_by_phase_then_playbook_and_knows_its_tags():
    def none(inv, phase):
        return []

    catalog = Catalog.of(
        [
            ("db", [Step("db 1", "db", 1, none, tags=("roles",)), Step("db 3", "db", 3, none)]),
            ("storage", [Step("storage 2", "storage", 2, none, tags=("buckets",))]),
            ("monitoring", [Step("monitoring 1", "monitoring", 1, none)]),
        ]
    )
    assert [s.name for s in catalog.steps()] == ["db 1", "monitoring 1", "storage 2", "db 3"]
    assert [s.name for s in catalog.steps_for(2, tags={"buckets"})] == ["storage 2"]
    assert [s.name for s in catalog.steps_for(4, playbooks={"db"})] == ["db 1", "db 3"]
    assert catalog.tags == {"db", "storage", "monitoring", "roles", "buckets"}
