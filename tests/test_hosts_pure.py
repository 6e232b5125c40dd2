"""The hosts playbook's pure parts: inventory keys, fact parsing, names, the restart decision."""

from __future__ import annotations

import pytest

from healthinfra.errors import InventoryError
from healthinfra.inventory import load_inventory
from healthinfra.resource import Action
from healthinfra.resources.host_facts import layout, model_file_name, parse_facts, service_user
from healthinfra.resources.host_service import HostService, inputs_fingerprint

from .conftest import REPO

GOOD = (REPO / "inventories" / "local.yml").read_text()
HOST = """hosts:
  ai:
    - name: ai-1
      address: 10.0.0.5
      user: deploy
      key_file: /home/me/.ssh/hc-ai
"""


@pytest.fixture
def inventories(tmp_path):
    for name in ("services.yml", "data_types.yml"):
        (tmp_path / name).write_text((REPO / "inventories" / name).read_text())
    return tmp_path


def load_text(inventories, text):
    (inventories / "x.yml").write_text(text)
    return load_inventory("x", inventories)


def test_hosts_default_from_the_services_table(inventories):
    inventory = load_text(inventories, GOOD + HOST)
    (host,) = inventory.hosts["ai"]
    assert (host.port, host.service_port, host.base_dir, host.known_hosts) == (
        22,
        8005,
        "/opt/hc-local-ai",
        "~/.ssh/known_hosts",
    )
    assert host.start_command == "/opt/hc-local-ai/app/run"
    assert service_user(inventory, "ai") == "hc-local-ai"
    paths = layout(inventory, host)
    assert paths["env_file"] == "/opt/hc-local-ai/ai.env" and paths["unit"] == "/etc/systemd/system/hc-local-ai.service"


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            HOST.replace("  ai:", "  patient:"),
            r"`hosts.patient` is not a service that runs on its own hosts; use one of `ai`",
        ),
        (HOST.replace("      user: deploy\n", ""), r"x.yml: missing key `hosts.ai\[0\].user`"),
        (HOST.replace("key_file: /home", "key_file: home"), r"`hosts.ai\[0\].key_file` must be an absolute path"),
        (HOST + "      base_dir: /opt\n", r"`hosts.ai\[0\].base_dir` must be a directory of the service's own"),
        (HOST + "      service_port: 70000\n", r"`hosts.ai\[0\].service_port` must be between 1 and 65535"),
        (HOST + HOST.split("\n", 2)[2], r"`hosts.ai\[1\].name` repeats host `ai-1`"),
        (HOST + "      tags: [a]\n", r"`hosts.ai\[0\].tags`"),
    ],
)
def test_bad_hosts_are_refused_naming_the_key(inventories, bad, message):
    with pytest.raises(InventoryError, match=message) as caught:
        load_text(inventories, GOOD + bad)
    assert caught.value.exit_code == 2


def test_facts_are_parsed_from_one_script_output():
    text = "\n".join(
        [
            "manager pidfile",
            "user /nonexistent /usr/sbin/nologin",
            "dir root:hc-local-ai:750 /opt/x",
            "envmeta root:root:600",
            "envsha " + "a" * 64 + "  /opt/x/ai.env",
            "model " + "b" * 64 + "  /opt/x/models/risk-1.onnx",
            "definition " + "c" * 64 + "  /opt/x/run/ai.sh",
            "inputs sha256:" + "d" * 64,
            "running",
            "backup " + "e" * 64,
        ]
    )
    facts = parse_facts(text)
    assert facts["user"] == {"home": "/nonexistent", "shell": "/usr/sbin/nologin"}
    assert facts["directories"] == {"/opt/x": "root:hc-local-ai:750"}
    assert facts["env_file"] == {"content": "sha256:" + "a" * 64, "meta": "root:root:600"}
    assert facts["models"] == {"risk-1.onnx": "sha256:" + "b" * 64}
    assert facts["definitions"] == {"/opt/x/run/ai.sh": "sha256:" + "c" * 64}
    assert facts["running"] and facts["inputs"] == "sha256:" + "d" * 64
    assert facts["backups"] == {"sha256:" + "e" * 64}
    empty = parse_facts("manager systemd\n")
    assert empty["manager"] == "systemd" and empty["env_file"] is None and not empty["running"]


def test_model_file_names_are_safe():
    assert model_file_name("risk", "1.2", "models/risk/1.2/model.onnx") == "risk-1.2.onnx"
    assert model_file_name("risk", "7", "models/risk/weights") == "risk-7"
    with pytest.raises(Exception, match="unsafe file name"):
        model_file_name("risk", "1", "models/x/a.b c")


def test_a_restart_follows_any_input_and_only_an_input():
    env = {"content": "sha256:1", "meta": "root:root:600"}
    definition = {"manager": "pidfile", "content": "sha256:2"}
    base = inputs_fingerprint(env, {"a.onnx": "sha256:3"}, definition)
    assert base == inputs_fingerprint(dict(env), {"a.onnx": "sha256:3"}, dict(definition))
    assert base != inputs_fingerprint(env, {"a.onnx": "sha256:4"}, definition)
    assert base != inputs_fingerprint({**env, "content": "sha256:9"}, {"a.onnx": "sha256:3"}, definition)
    assert base != inputs_fingerprint(env, {"a.onnx": "sha256:3"}, {**definition, "content": "sha256:8"})


def test_the_diff_names_each_part_that_differs():
    desired = {
        "user": {"home": "/nonexistent", "shell": "/usr/sbin/nologin"},
        "directories": {"/opt/x": "a"},
        "env_file": {"content": "sha256:1", "meta": "root:root:600"},
        "models": {"m": "sha256:2"},
        "definition": {"manager": "pidfile", "content": "sha256:3"},
        "process": {"running": True, "inputs": "sha256:4"},
    }
    resource = HostService("ai@ai-1", desired, host={})
    assert resource.diff(desired, desired) == []
    current = {**desired, "models": {"m": "sha256:0"}, "process": {"running": True, "inputs": "sha256:5"}}
    assert [a.attribute for a in resource.diff(current, desired)] == ["models", "process"]
    assert resource.diff(None, desired) == [Action("create", after=desired)]
    assert resource.diff(desired, None) == [Action("delete", before=desired)]


def test_the_systemd_unit_and_the_fallback_script_run_the_service_as_its_own_user(inventories):
    from types import SimpleNamespace

    inventory = load_text(inventories, GOOD + HOST)
    (host,) = inventory.hosts["ai"]
    resource = HostService("ai@ai-1", None, host=host.ref())
    ctx = SimpleNamespace(inventory=inventory)
    unit = resource.definition_content(ctx, "systemd").decode()
    for line in (
        "User=hc-local-ai",
        "EnvironmentFile=/opt/hc-local-ai/ai.env",
        "ExecStart=/opt/hc-local-ai/app/run",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ):
        assert line in unit.splitlines(), line
    script = resource.definition_content(ctx, "pidfile").decode()
    assert ". /opt/hc-local-ai/ai.env" in script
    assert script.rstrip().endswith(
        "exec setpriv --reuid=hc-local-ai --regid=hc-local-ai --init-groups /opt/hc-local-ai/app/run"
    )
