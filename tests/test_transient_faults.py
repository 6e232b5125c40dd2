"""Transient faults survived: throttling, 5xx, resets and stalls in front of moto, and a
PostgreSQL restart mid-run. The run completes by retrying, creates no duplicates and says
how many retries it made; a permanent error fails at once."""

from __future__ import annotations

import shutil
import threading

import pytest

from healthinfra.local import postgres

from .support.catalog import snapshot
from .support.environment import inventories_with_services, write_inventory
from .support.faultproxy import FaultProxy


@pytest.mark.slow  # minutes of real work: a phase-4 deploy per trial, or through injected stalls
def test_a_run_through_faults_completes_without_duplicates(env, invoke, servers):
    proxy = FaultProxy(servers["aws_port"], seed=7, tls_dir=servers["state"] / "test" / "tls")
    path = write_inventory(servers["inventories"], "faulty", servers["pg_port"], proxy.port)
    state = servers["state"] / "faulty"
    state.mkdir(exist_ok=True)
    (state / "postgres").symlink_to(servers["state"] / "test" / "postgres")
    (state / "tls-front.pid").symlink_to(servers["state"] / "test" / "tls-front.pid")
    (state / "tls").symlink_to(servers["state"] / "test" / "tls")
    (state / "admin.pgpass").symlink_to(servers["state"] / "test" / "admin.pgpass")  # the admin's password
    # the moto check asks the proxy; point the pid at the real server's
    (state / "moto.pid").symlink_to(servers["state"] / "test" / "moto.pid")
    try:
        # a database restart in the middle of the run, too
        restart = threading.Timer(1.5, lambda: (postgres.stop(env), postgres.start(env)))
        restart.start()
        result = invoke("deploy", "-i", "faulty", "--phase", "4", "--json", timeout=900)
        restart.join()
        assert result.code == 0, result
        assert result.json["retries"] > 0 and result.json["failed"] == 0
        assert proxy.counts["503"] and proxy.counts["slowdown"] and proxy.counts["reset"] and proxy.counts["stall"]
        clean = invoke("deploy", "-i", "faulty", "--phase", "4", "--json", timeout=900)
        assert clean.code == 0 and clean.json["changed"] == 0, clean
    finally:
        proxy.close()
        path.unlink()
        shutil.rmtree(state, ignore_errors=True)
    shot = snapshot(env)  # the real server, without the proxy: exactly one of everything
    assert len([b for b in shot["buckets"] if b.startswith("hc-local-")]) == 5
    assert [a for a in shot["kms_aliases"]] == ["alias/hc-local-phi"]
    assert len(shot["iam_roles"]) == 6 and len(shot["iam_policies"]) == 1
    assert len(shot["topics"]) == 1 and len(shot["dashboards"]) == 1
    print(f"\ntransient faults: {dict(proxy.counts)}; the run retried {result.json['retries']} times")


def test_a_permanent_error_fails_at_once_without_retries(env, invoke, workspace, tmp_path):
    broken = inventories_with_services(
        workspace, tmp_path / "inventories", "owns: [users]", "owns: [users, no_such_table]"
    )
    result = invoke("deploy", "-i", "test", "--json", env_overrides={"HEALTHINFRA_INVENTORIES": str(broken)})
    assert result.code == 1 and result.json["retries"] == 0, result
    assert any("table `no_such_table` does not exist" in e for e in result.json["errors"])
