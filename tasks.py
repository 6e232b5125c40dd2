"""Invoke entry point: composite tasks and one collection per area.

Tasks are thin: they pass their arguments to healthinfra.commands and turn its
result into an exit code. Nothing heavy is imported here, so `invoke --list`
stays instant; errors become one line on stderr with the error's exit code
(2 for bad input), never a traceback.
"""

import functools

from invoke import Collection, Exit, task

INVENTORY_HELP = "inventory name: inventories/NAME.yml (default: local)"
PHASE_HELP = (
    "phase 1-4; every step of phase <= N runs (default: the inventory's phase; below the deployed one needs"
    " --downgrade)"
)
CHECK_PHASE_HELP = "phase 1-4 (default: the deployed phase, else the inventory's)"
JSON_HELP = "print one JSON document on stdout (progress goes to stderr)"
DESTROY_HELP = "allow deleting tables that hold rows (otherwise refused)"
LIMIT_HELP = "only the host steps, on this one host (a name under `hosts:` in the inventory)"
DOWNGRADE_HELP = (
    "go down to --phase N: also remove everything the phases above N added (needed below the deployed phase)"
)
YES_HELP = "on a protected inventory, go on with the deletions the run shows (otherwise asked, or refused)"
CONTRACT_HELP = (
    "also make the contract changes (migrations marked `-- migration: contract`: drops, renames), after everything"
    " else; without it they wait (docs/zero-downtime.md)"
)


def guarded(body):
    """Run a command; turn its exit code or HealthInfraError into invoke's Exit."""

    @functools.wraps(body)
    def run(c, *args, **kwargs):
        from healthinfra.errors import HealthInfraError

        try:
            code = body(c, *args, **kwargs)
        except HealthInfraError as exc:
            raise Exit(f"error: {exc}", code=exc.exit_code) from None
        if code:
            raise Exit(code=code)

    return run


def commands():
    from healthinfra import commands as module

    return module


def catalog():
    """The playbooks' steps, handed to the engine (which never imports them itself)."""
    from playbooks import catalog as steps

    return steps()


# --- the engine's own tasks ---------------------------------------------------


@task(
    help={
        "phase": PHASE_HELP,
        "inventory": INVENTORY_HELP,
        "check": "plan only: read and diff, change nothing",
        "diff": "show what would change (documents as unified diffs)",
        "json": JSON_HELP,
        "rollback": "undo this run's changes if it fails (default; --no-rollback keeps them)",
        "tags": "only steps with one of these comma-separated tags or playbook names",
        "destroy_data": DESTROY_HELP,
        "limit": LIMIT_HELP,
        "downgrade": DOWNGRADE_HELP,
        "yes": YES_HELP,
        "contract": CONTRACT_HELP,
    }
)
@guarded
def deploy(
    c,
    phase=None,
    inventory="local",
    check=False,
    diff=False,
    json=False,
    rollback=True,
    tags="",
    destroy_data=False,
    limit="",
    downgrade=False,
    yes=False,
    contract=False,
):
    """Converge the inventory to phase N (all steps of phases 1..N)."""
    return commands().deploy(
        inventory,
        phase,
        catalog=catalog(),
        check=check,
        diff=diff,
        as_json=json,
        rollback=rollback,
        tags=tags,
        destroy_data=destroy_data,
        limit=limit,
        downgrade=downgrade,
        yes=yes,
        contract=contract,
    )


@task(
    help={
        "phase": PHASE_HELP,
        "inventory": INVENTORY_HELP,
        "json": JSON_HELP,
        "out": "save the plan (actions and the facts they came from) to FILE, for `invoke apply FILE`",
        "downgrade": DOWNGRADE_HELP,
        "destroy_data": "plan deletions of what holds data too (apply them needs --destroy-data again)",
        "contract": CONTRACT_HELP,
    }
)
@guarded
def plan(c, phase=None, inventory="local", json=False, out="", downgrade=False, destroy_data=False, contract=False):
    """What `deploy` would change, with diffs; touches nothing (same as deploy --check --diff)."""
    return commands().deploy(
        inventory,
        phase,
        catalog=catalog(),
        check=True,
        diff=True,
        as_json=json,
        save_to=out,
        downgrade=downgrade,
        destroy_data=destroy_data,
        contract=contract,
    )


@task(
    help={
        "file": "a plan saved by `invoke plan --out FILE`",
        "json": JSON_HELP,
        "rollback": "undo this run's changes if it fails (default)",
        "destroy_data": DESTROY_HELP,
        "yes": YES_HELP,
    }
)
@guarded
def apply(c, file, json=False, rollback=True, destroy_data=False, yes=False):
    """Carry out a saved plan exactly; refuse, changing nothing, if anything it read has changed since."""
    return commands().apply_plan(
        file, catalog=catalog(), as_json=json, rollback=rollback, destroy_data=destroy_data, yes=yes
    )


@task(
    name="rollback",
    help={
        "inventory": INVENTORY_HELP,
        "run": "the run id to undo (default: the latest run)",
        "destroy_data": DESTROY_HELP,
        "json": JSON_HELP,
        "check": "show the undo plan only",
        "yes": YES_HELP,
    },
)
@guarded
def rollback_(c, inventory="local", run="", destroy_data=False, json=False, check=False, yes=False):
    """Undo the last run (or --run ID) from the journal, newest change first."""
    return commands().rollback(inventory, run_id=run, destroy_data=destroy_data, as_json=json, check=check, yes=yes)


@task(
    help={
        "to": "the inventory to promote to (it names its source with `promotes_from:`)",
        "out": "where to save the plan (default promote-TARGET-COMMIT.json), for `invoke apply FILE --yes`",
        "json": JSON_HELP,
        "downgrade": "the source is at a lower phase than the target: plan the target down to it",
        "contract": CONTRACT_HELP,
    }
)
@guarded
def promote(c, to="", out="", json=False, downgrade=False, contract=False):
    """Plan the target at what its source ran successfully (a clean checkout at that commit); save the plan."""
    return commands().promote(to, catalog=catalog(), path=out, as_json=json, downgrade=downgrade, contract=contract)


@task(help={"inventory": INVENTORY_HELP, "json": JSON_HELP, "limit": "how many recent runs (default 20)"})
@guarded
def history(c, inventory="local", json=False, limit="20"):
    """Runs and their changes, from the journal."""
    return commands().history(inventory, as_json=json, limit=limit)


# --- composite tasks ----------------------------------------------------------


@task(name="setup-dev", help={"inventory": INVENTORY_HELP})
@guarded
def setup_dev(c, inventory="local"):
    """Start the embedded services, converge phase 1, check health."""
    cmd, steps = commands(), catalog()
    if cmd.load(inventory).local_providers:
        cmd.local_up(inventory)
    return cmd.deploy(inventory, 1, catalog=steps) or cmd.monitoring_check(inventory, 1, catalog=steps)


@task(name="deploy-dev", help={"inventory": INVENTORY_HELP, "phase": PHASE_HELP})
@guarded
def deploy_dev(c, inventory="local", phase=None):
    """Start the embedded services if needed, converge to the phase, check health."""
    cmd, steps = commands(), catalog()
    if cmd.load(inventory).local_providers:
        cmd.local_up(inventory)
    return cmd.deploy(inventory, phase, catalog=steps) or cmd.monitoring_check(inventory, phase, catalog=steps)


@task(
    name="cleanup-dev",
    help={
        "inventory": INVENTORY_HELP,
        "destroy_data": DESTROY_HELP,
        "json": JSON_HELP,
        "check": "show what would be removed only",
    },
)
@guarded
def cleanup_dev(c, inventory="local", destroy_data=False, json=False, check=False):
    """Tear the environment down in reverse (refuses prod and tables with rows), then stop local services."""
    return commands().cleanup(inventory, catalog=catalog(), destroy_data=destroy_data, as_json=json, check=check)


# --- one collection per area --------------------------------------------------


def area_collection(area: str, extra=()) -> Collection:
    """`AREA.deploy` and `AREA.plan`: the same engine, only this playbook's steps."""

    @task(
        name="deploy",
        help={
            "phase": PHASE_HELP,
            "inventory": INVENTORY_HELP,
            "check": "plan only",
            "diff": "show what would change",
            "json": JSON_HELP,
            "rollback": "undo this run's changes if it fails (default)",
            "destroy_data": DESTROY_HELP,
            "limit": LIMIT_HELP,
        },
    )
    @guarded
    def area_deploy(
        c,
        phase=None,
        inventory="local",
        check=False,
        diff=False,
        json=False,
        rollback=True,
        destroy_data=False,
        limit="",
    ):
        return commands().deploy(
            inventory,
            phase,
            catalog=catalog(),
            check=check,
            diff=diff,
            as_json=json,
            playbooks=area,
            rollback=rollback,
            destroy_data=destroy_data,
            limit=limit,
        )

    area_deploy.__doc__ = f"Converge only the {area} playbook's steps."

    @task(name="plan", help={"phase": PHASE_HELP, "inventory": INVENTORY_HELP, "json": JSON_HELP})
    @guarded
    def area_plan(c, phase=None, inventory="local", json=False):
        return commands().deploy(
            inventory, phase, catalog=catalog(), check=True, diff=True, as_json=json, playbooks=area
        )

    area_plan.__doc__ = f"What the {area} playbook would change; touches nothing."
    return Collection(area, area_deploy, area_plan, *extra)


@task(
    help={
        # invoke's parser has no optional positional arguments: the files come as one option
        "files": "only these migration files, separated by commas (default: every up and down migration)",
    },
)
@guarded
def lint(c, files=""):
    """Lint the migrations with squawk and the project's checks; exit 1 on a finding not accepted."""
    from playbooks.db import MIGRATIONS_DIR

    return commands().db_lint(files, directory=MIGRATIONS_DIR)


@task(
    help={
        "inventory": INVENTORY_HELP,
        "phase": CHECK_PHASE_HELP,
        "json": JSON_HELP,
        "watch": "repeat every SECONDS until interrupted",
        "alert": "publish unhealthy probes to the environment's alert topic (SNS)",
    }
)
@guarded
def check(c, inventory="local", phase=None, json=False, watch="", alert=False):
    """Probe everything the environment has at its phase; exit 1 if anything is unhealthy."""
    return commands().monitoring_check(inventory, phase, catalog=catalog(), as_json=json, watch=watch, alert=alert)


@task(help={"inventory": INVENTORY_HELP, "json": JSON_HELP})
@guarded
def usage(c, inventory="local", json=False):
    """Object counts and sizes per bucket (every version counted); reads only."""
    return commands().storage_usage(inventory, catalog=catalog(), as_json=json)


@task(help={"inventory": INVENTORY_HELP, "json": JSON_HELP})
@guarded
def compliance(c, inventory="local", json=False):
    """HIPAA Security Rule safeguards, each with its checks and the evidence read live; exit 1 on a failure."""
    from healthinfra.commands.compliance import security_compliance

    return security_compliance(inventory, catalog=catalog(), as_json=json)


@task(help={"inventory": INVENTORY_HELP, "json": JSON_HELP})
@guarded
def publish(c, inventory="local", json=False):
    """Business metrics (aggregates only, never PHI) computed by SQL, published to CloudWatch; idempotent per period."""
    from healthinfra.commands.publish import monitoring_publish

    return monitoring_publish(inventory, catalog=catalog(), as_json=json)


@task(
    help={
        "inventory": INVENTORY_HELP,
        "phase": CHECK_PHASE_HELP,
        "out": "the directory to write them to (default ARCHITECTURE_DIAGRAMS/)",
    }
)
@guarded
def diagrams(c, inventory="local", phase=None, out=""):
    """Network, security and monitoring diagrams (Mermaid) drawn from the services table and the inventory."""
    from healthinfra.commands.diagrams import monitoring_diagrams

    return monitoring_diagrams(inventory, phase, catalog=catalog(), out_dir=out)


@task(help={"inventory": INVENTORY_HELP, "json": JSON_HELP})
@guarded
def audit(c, inventory="local", json=False):
    """Find public or unencrypted buckets, wildcard policies, unbounded roles, over-privileged DB roles."""
    return commands().security_audit(inventory, as_json=json)


@task(help={"inventory": INVENTORY_HELP, "service": "the service whose database password to rotate"})
@guarded
def rotate(c, service="", inventory="local"):
    """A new database password for one service, set on the server and kept in the secrets file."""
    return commands().security_rotate(inventory, service)


@task(
    name="audit-trail",
    help={"inventory": INVENTORY_HELP, "since": "how far back: 30m, 1h, 7d (default 1h)", "json": JSON_HELP},
)
@guarded
def audit_trail(c, inventory="local", since="1h", json=False):
    """Who touched which PHI table, when (from the audit trail; never PHI values)."""
    return commands().monitoring_audit_trail(inventory, since=since, as_json=json)


@task(
    name="slow-queries",
    help={"inventory": INVENTORY_HELP, "limit": "how many statements (default 10)", "json": JSON_HELP},
)
@guarded
def slow_queries(c, inventory="local", limit="10", json=False):
    """The top statements by total time, from pg_stat_statements (phase 3+)."""
    return commands().monitoring_slow_queries(inventory, limit=limit, as_json=json)


@task(
    help={
        "inventory": INVENTORY_HELP,
        "phase": CHECK_PHASE_HELP,
        "out": "where to write the page (default state/INVENTORY/report.html)",
    }
)
@guarded
def report(c, inventory="local", phase=None, out=""):
    """One self-contained HTML page: the environment at a glance."""
    return commands().monitoring_report(inventory, phase, catalog=catalog(), path=out)


@task(help={"inventory": INVENTORY_HELP})
@guarded
def up(c, inventory="local"):
    """Start embedded PostgreSQL and the moto server (idempotent)."""
    return commands().local_up(inventory)


@task(help={"inventory": INVENTORY_HELP})
@guarded
def down(c, inventory="local"):
    """Stop embedded PostgreSQL (data kept) and the moto server."""
    return commands().local_down(inventory)


@task(help={"inventory": INVENTORY_HELP, "json": "print state and connection details as JSON"})
@guarded
def status(c, inventory="local", json=False):
    """State and connection details of the local services; exit 1 if one is down."""
    return commands().local_status(inventory, as_json=json)


@task(name="rollback", help={"inventory": INVENTORY_HELP, "service": "the Railway-hosted service to roll back"})
@guarded
def railway_rollback(c, service="", inventory="local"):
    """Return a Railway service to its previous successful deployment."""
    return commands().railway_rollback(inventory, service)


@task(name="init", help={"inventory": INVENTORY_HELP})
@guarded
def state_init(c, inventory="local"):
    """Create the state bucket and its KMS key (idempotent; never removed by cleanup-dev)."""
    return commands().state_init(inventory)


@task(
    name="migrate", help={"inventory": INVENTORY_HELP, "from": "where the state is now: `local` (files under state/)"}
)
@guarded
def state_migrate(c, inventory="local", from_="local"):
    """Move a file-backed environment's journal, run state and secrets into the configured backends."""
    return commands().state_migrate(inventory, from_)


@task(name="unlock", help={"inventory": INVENTORY_HELP, "id": "the lock id a refused run named"})
@guarded
def state_unlock(c, inventory="local", id=""):
    """Remove the environment's lock by its id (Terraform's force-unlock); a wrong id is refused."""
    return commands().state_unlock(inventory, id)


ns = Collection(deploy, plan, apply, rollback_, history, promote, setup_dev, deploy_dev, cleanup_dev)
ns.add_collection(area_collection("db", extra=(lint,)))
ns.add_collection(area_collection("storage", extra=(usage,)))
ns.add_collection(area_collection("security", extra=(audit, compliance, rotate)))
ns.add_collection(area_collection("monitoring", extra=(check, audit_trail, slow_queries, report, publish, diagrams)))
ns.add_collection(area_collection("railway", extra=(railway_rollback,)))
ns.add_collection(area_collection("hosts"))
ns.add_collection(Collection("local", up, down, status))
ns.add_collection(Collection("state", state_init, state_migrate, state_unlock))
