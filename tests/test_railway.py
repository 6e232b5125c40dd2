"""Railway hosting, end to end through invoke, against a stand-in checked against Railway's schema.

The test inventory (embedded PostgreSQL, moto) is hosted on Railway here: the stand-in
listens on loopback, `RAILWAY_API_URL` points at it and the token comes from the env
var the inventory names. Every request is validated against contracts/railway/schema.json;
a request Railway would refuse fails the test (`violations`).
"""

from __future__ import annotations

import json

import pytest

from healthinfra.secret_store import SecretStore

from .support.environment import INVENTORY
from .support.fakes.railway_server import RailwayStandIn
from .support.invoking import OUTPUTS
from .support.railway import TOKEN_ENV, call, deployments_of, instance, railway_hosting, services, variables_of


@pytest.fixture
def railway():
    stand_in = RailwayStandIn(token="rw-test-token-7f3a").start()
    yield stand_in
    stand_in.stop()
    assert stand_in.violations == [], "requests Railway's schema refuses"


@pytest.fixture
def hosted(workspace, tmp_path, railway):
    """Run invoke on the test inventory hosted on Railway (the stand-in); returns a runner."""
    directory = tmp_path / "inventories"
    directory.mkdir()

    def write(**hosting):
        for name in ("services.yml", "data_types.yml"):
            (directory / name).write_text((workspace["inventories"] / name).read_text())
        text = (workspace["inventories"] / f"{INVENTORY}.yml").read_text().replace("hosting: local", "hosting: railway")
        (directory / f"{INVENTORY}.yml").write_text(text + railway_hosting(**hosting))

    write()

    def run(*args, timeout="10", token=railway.token):
        from .support.invoking import run_invoke

        return run_invoke(
            *args,
            "-i",
            INVENTORY,
            env_overrides={
                "HEALTHINFRA_INVENTORIES": str(directory),
                "RAILWAY_API_URL": railway.url,
                TOKEN_ENV: token,
                "RAILWAY_API_TIMEOUT": timeout,
            },
        )

    run.write = write
    return run


def test_first_run_builds_everything_second_run_sends_no_mutation_rollback_removes_it(env, hosted, railway):
    first = hosted("deploy", "--phase", "2", "--json")
    assert first.code == 0, first
    assert [p["name"] for p in railway.projects.values()] == ["hc-test"]
    assert [e["name"] for e in railway.environments.values()] == ["test"]
    assert sorted(services(railway)) == ["auth", "gateway", "patient", "provider"]  # appointment is phase 3

    secrets = SecretStore(env.state_dir / "secrets.json")
    patient = variables_of(railway, "patient")
    password = secrets.get("pg.patient_svc").reveal()
    assert patient == {
        "DATABASE_URL": f"postgresql://patient_svc:{password}@127.0.0.1:{env.database['port']}/healthcare"
        f"?sslmode=verify-full&sslrootcert={env.state_dir}/tls/server.crt",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"https://127.0.0.1:{env.aws['port']}",
        "AWS_CA_BUNDLE": str(env.state_dir / "tls" / "server.crt"),
        "LOG_GROUP": "/hc/local/patient",
        "PORT": "8002",
        "MEDICAL_DOCUMENTS_BUCKET": "hc-local-medical-documents",
        "MEDICAL_IMAGES_BUCKET": "hc-local-medical-images",
    }
    assert variables_of(railway, "gateway")["DATABASE_URL"].startswith("postgresql://gateway_svc:")
    assert "MEDICAL_DOCUMENTS_BUCKET" not in variables_of(railway, "gateway")
    settings = instance(railway, "auth")
    assert (settings["source"], settings["healthcheckPath"], settings["numReplicas"]) == (
        {"image": "ghcr.io/example/auth:1.0.0"},
        "/health",
        1,
    )
    for name in ("gateway", "auth", "patient", "provider"):  # one deployment each, made after its variables
        deployments = deployments_of(railway, name)
        assert [d["status"] for d in deployments] == ["SUCCESS"], name
        assert deployments[0]["snapshot"]["variables"] == variables_of(railway, name)
    assert not any(password in text for text in OUTPUTS)
    assert password not in (env.state_dir / "journal.jsonl").read_text()

    sent = list(railway.mutations)
    again = hosted("deploy", "--phase", "2", "--json")
    assert again.code == 0 and again.json["changed"] == 0, again
    plan = hosted("plan", "--phase", "2")
    assert plan.code == 0 and "would change" not in plan.out, plan
    assert railway.mutations == sent, "a converged environment gets no mutation"

    # a new image and more replicas for one service: exactly its settings change and it deploys again
    hosted.write(images={"gateway": "ghcr.io/example/gateway:1.1.0"}, replicas={"gateway": 2})
    changed = hosted("deploy", "--phase", "2", "--json")
    assert changed.code == 0, changed
    assert sorted(c["resource"] for c in changed.json["changes"]) == [
        "railway.deployment gateway",
        "railway.instance gateway",
    ]
    assert railway.mutations[len(sent) :] == ["serviceInstanceUpdate", "serviceInstanceDeployV2"]
    assert instance(railway, "gateway")["source"] == {"image": "ghcr.io/example/gateway:1.1.0"}

    # undo that run: the settings back, and the service back on the deployment it ran before
    first_gateway = deployments_of(railway, "gateway")[0]["id"]
    undone = hosted("rollback")
    assert undone.code == 0, undone
    assert instance(railway, "gateway")["source"] == {"image": "ghcr.io/example/gateway:1.0.0"}
    assert instance(railway, "gateway")["numReplicas"] == 1
    assert deployments_of(railway, "gateway")[-1]["rolledBackFrom"] == first_gateway

    # undo the first run: everything it created is gone
    removed = hosted("rollback", "--destroy-data")
    assert removed.code == 0, removed
    assert (railway.projects, railway.services, railway.deployments) == ({}, {}, {})


def test_rollback_restores_the_previous_variables_and_keeps_what_existed(env, hosted, railway):
    project = call(
        railway,
        """mutation($input: ProjectCreateInput!) { projectCreate(input: $input) { id } }""",
        {"input": {"name": "hc-test", "defaultEnvironmentName": "test"}},
    )["projectCreate"]["id"]
    environment = next(iter(railway.environments))
    service = call(
        railway,
        """mutation($input: ServiceCreateInput!) { serviceCreate(input: $input) { id } }""",
        {"input": {"projectId": project, "name": "patient"}},
    )["serviceCreate"]["id"]
    old_url = "postgresql://legacy_app:an-old-password-0123456789@old.example.org/healthcare"  # set by hand
    before = {"DATABASE_URL": old_url, "PORT": "1234", "FEATURE_FLAGS": "beta"}
    call(
        railway,
        """mutation($input: VariableCollectionUpsertInput!) { variableCollectionUpsert(input: $input) }""",
        {
            "input": {
                "projectId": project,
                "environmentId": environment,
                "serviceId": service,
                "variables": before,
                "skipDeploys": True,
            }
        },
    )

    deployed = hosted("deploy", "--phase", "1", "--json")
    assert deployed.code == 0, deployed
    now = variables_of(railway, "patient")
    assert now["PORT"] == "8002" and now["DATABASE_URL"].startswith("postgresql://patient_svc:")
    assert now["FEATURE_FLAGS"] == "beta", "a variable the runner does not manage is left alone"
    journal = (env.state_dir / "journal.jsonl").read_text()
    assert "an-old-password" not in journal and not any("an-old-password" in text for text in OUTPUTS)

    undone = hosted("rollback", "--destroy-data")
    assert undone.code == 0, undone
    assert variables_of(railway, "patient") == before, "the previous collection, old secret included"
    assert sorted(services(railway)) == ["patient"], "what existed before stays; what the run created is gone"
    assert [p["name"] for p in railway.projects.values()] == ["hc-test"]
    assert instance(railway, "patient")["source"] is None


def test_throttling_and_server_errors_are_retried_without_duplicates(env, hosted, railway):
    railway.inject(429, retry_after=1, field="serviceCreate")
    railway.inject(503, field="variableCollectionUpsert", times=2)
    railway.inject(503, field="projects")
    railway.inject(delay=3, after_effect=True, field="serviceInstanceDeployV2")  # takes effect, answer lost
    result = hosted("deploy", "--phase", "1", "--json", timeout="1")
    assert result.code == 0, result
    assert result.json["retries"] >= 5, result
    assert sorted(services(railway)) == ["auth", "gateway", "patient"]
    assert [len(deployments_of(railway, s)) for s in ("auth", "gateway", "patient")] == [1, 1, 1]
    assert railway.faults == []
    sent = list(railway.mutations)
    assert hosted("deploy", "--phase", "1", "--json").json["changed"] == 0
    assert railway.mutations == sent


def test_railway_rollback_returns_a_service_to_its_previous_successful_deployment(env, hosted, railway):
    assert hosted("deploy", "--phase", "1").code == 0
    only_one = hosted("railway.rollback", "--service", "auth")
    assert only_one.code == 1 and "no earlier successful deployment" in only_one.err, only_one

    first = deployments_of(railway, "auth")[0]["id"]
    hosted.write(images={"auth": "ghcr.io/example/auth:2.0.0"})
    assert hosted("deploy", "--phase", "1").code == 0
    assert instance(railway, "auth")["source"] == {"image": "ghcr.io/example/auth:2.0.0"}
    assert [d["status"] for d in deployments_of(railway, "auth")] == ["REMOVED", "SUCCESS"]

    back = hosted("railway.rollback", "--service", "auth")
    assert back.code == 0, back
    assert f"rolled `auth` back to deployment {first}" in back.out
    latest = deployments_of(railway, "auth")[-1]
    assert (latest["status"], latest["rolledBackFrom"]) == ("SUCCESS", first)
    assert instance(railway, "auth")["source"] == {"image": "ghcr.io/example/auth:1.0.0"}
    history = hosted("history", "--json").json["runs"]
    assert history[-1]["kind"] == "railway-rollback" and history[-1]["status"] == "ok"
    # the inventory still says 2.0.0: the next deploy puts it back
    redeploy = hosted("deploy", "--phase", "1", "--json")
    assert [c["resource"] for c in redeploy.json["changes"]] == ["railway.instance auth", "railway.deployment auth"], (
        redeploy
    )
    assert instance(railway, "auth")["source"] == {"image": "ghcr.io/example/auth:2.0.0"}

    for bad in ("billing", "ai"):  # unknown, or not on Railway
        refused = hosted("railway.rollback", "--service", bad)
        assert refused.code == 2 and "--service" in refused.err, refused


def test_a_missing_or_refused_token_stops_before_any_change(env, hosted, railway):
    missing = hosted("deploy", "--phase", "1", token="")
    assert missing.code == 2, missing
    assert f"`hosting.token_env` names `{TOKEN_ENV}`, which is not set" in missing.err
    assert railway.requests == []
    wrong = hosted("deploy", "--phase", "1", token="not-the-token")
    assert wrong.code == 1 and "Not Authorized" in wrong.out and "not-the-token" not in wrong.out + wrong.err
    assert "nothing was changed" in wrong.out
    railway.violations.clear()  # the stand-in counts an unauthorised request as one; here it was the point
    assert railway.mutations == []


def test_a_project_holding_a_service_the_inventory_does_not_list_is_not_deleted_blind(env, hosted, railway):
    assert hosted("deploy", "--phase", "1").code == 0
    project = next(iter(railway.projects))
    call(
        railway,
        """mutation($input: ServiceCreateInput!) { serviceCreate(input: $input) { id } }""",
        {"input": {"projectId": project, "name": "postgres-by-hand"}},
    )
    refused = hosted("rollback")
    assert refused.code == 1 and "nothing was changed" in refused.out, refused
    assert (
        "refusing to delete Railway environment `test`: it also holds service(s) postgres-by-hand" in refused.out
        or "refusing to delete Railway project `hc-test`: it also holds service(s) postgres-by-hand" in refused.out
    ), refused
    assert "postgres-by-hand" in services(railway) and "patient" in services(railway)
    done = hosted("rollback", "--destroy-data")
    assert done.code == 0, done
    assert railway.projects == {}


def test_a_downgrade_removes_the_hosted_service_and_variables_of_the_phase_above(env, hosted, railway):
    assert hosted("deploy", "--phase", "2").code == 0
    fresh = {name: variables_of(railway, name) for name in services(railway)}
    up = hosted("deploy", "--phase", "3", "--json")
    assert up.code == 0, up
    assert "appointment" in services(railway)

    refused = hosted("deploy", "--phase", "2")
    assert refused.code == 2 and "--downgrade" in refused.err, refused
    down = hosted("deploy", "--phase", "2", "--downgrade", "--destroy-data", "--json")
    assert down.code == 0, down
    assert sorted(services(railway)) == sorted(fresh), "the phase-3 service is gone"
    assert {name: variables_of(railway, name) for name in services(railway)} == fresh
    sent = list(railway.mutations)
    again = hosted("deploy", "--phase", "2", "--json")
    assert again.code == 0 and again.json["changed"] == 0, again
    assert railway.mutations == sent, "a downgraded environment is converged at its phase"


def test_railway_rollback_after_a_rotation_runs_the_old_code_with_the_live_password(env, hosted, railway):
    """Railway's rollback restores the old deployment's variables, a DATABASE_URL with the password
    `security.rotate` replaced among them: the live URL is written back and the service redeployed."""
    secrets = SecretStore(env.state_dir / "secrets.json")
    assert hosted("deploy", "--phase", "1").code == 0
    old = secrets.get("pg.patient_svc").reveal()
    first = deployments_of(railway, "patient")[0]
    assert old in first["snapshot"]["variables"]["DATABASE_URL"]

    rotated = hosted("security.rotate", "--service", "patient")
    assert rotated.code == 0, rotated
    new = secrets.get("pg.patient_svc").reveal()
    assert new != old
    hosted.write(images={"patient": "ghcr.io/example/patient:2.0.0"})
    assert hosted("deploy", "--phase", "1").code == 0  # the new password and the new image
    assert new in variables_of(railway, "patient")["DATABASE_URL"]

    back = hosted("railway.rollback", "--service", "patient")
    assert back.code == 0, back
    *_, rolled, latest = deployments_of(railway, "patient")
    assert rolled["rolledBackFrom"] == first["id"], "Railway's rollback brought the old variables back..."
    assert old in rolled["snapshot"]["variables"]["DATABASE_URL"]
    url = variables_of(railway, "patient")["DATABASE_URL"]
    assert new in url and old not in url, "...and the live URL was written back over them"
    assert latest["order"] > rolled["order"] and latest["status"] == "SUCCESS"
    assert latest["snapshot"]["variables"] == variables_of(railway, "patient"), "deployed after the write-back"
    assert latest["snapshot"]["source"] == {"image": "ghcr.io/example/patient:1.0.0"}, "the rolled-back code"
    assert instance(railway, "patient")["source"] == {"image": "ghcr.io/example/patient:1.0.0"}
    assert f"runs in deployment {latest['id']}" in back.out, back

    run = hosted("history", "--json").json["runs"][-1]
    assert run["kind"] == "railway-rollback" and run["status"] == "ok", run
    journal = (env.state_dir / "journal.jsonl").read_text()
    events = [json.loads(line) for line in journal.splitlines()]
    ours = [e for e in events if e.get("run_id") == run["run_id"]]
    change = next(e for e in ours if e["event"] == "change")
    assert change["resource"]["kind"] == "railway.variables" and change["resource"]["name"] == "patient"
    assert change["actions"][0]["attribute"] == "DATABASE_URL"
    assert any(e["event"] == "change_done" and e["status"] == "ok" for e in ours)
    assert ours[-1]["event"] == "run_end" and ours[-1]["redeployed"] == latest["id"]
    for password in (old, new):
        assert password not in journal
        assert not any(password in text for text in OUTPUTS)

    again = hosted("railway.rollback", "--service", "patient")  # to the rollback's deployment: the old password again
    assert again.code == 0, again
    assert new in variables_of(railway, "patient")["DATABASE_URL"]
    assert deployments_of(railway, "patient")[-1]["snapshot"]["variables"] == variables_of(railway, "patient")


def test_undoing_a_deploy_after_a_rotation_does_not_bring_the_old_password_back(env, hosted, railway):
    """`invoke rollback` rolls a deployment back too (deploymentRollback): the same write-back."""
    secrets = SecretStore(env.state_dir / "secrets.json")
    assert hosted("deploy", "--phase", "1").code == 0
    old = secrets.get("pg.patient_svc").reveal()
    assert hosted("security.rotate", "--service", "patient").code == 0
    new = secrets.get("pg.patient_svc").reveal()
    hosted.write(images={"patient": "ghcr.io/example/patient:2.0.0"})
    assert hosted("deploy", "--phase", "1").code == 0

    undone = hosted("rollback")
    assert undone.code == 0, undone
    latest = deployments_of(railway, "patient")[-1]
    url = variables_of(railway, "patient")["DATABASE_URL"]
    assert new in url and old not in url
    assert latest["snapshot"]["variables"] == variables_of(railway, "patient")
    assert latest["snapshot"]["source"] == {"image": "ghcr.io/example/patient:1.0.0"}
    journal = (env.state_dir / "journal.jsonl").read_text()
    for password in (old, new):
        assert password not in journal and not any(password in text for text in OUTPUTS)
