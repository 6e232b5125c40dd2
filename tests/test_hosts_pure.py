"""The hosts playbook's pure parts: inventory keys, fact parsing, names, the restart decision."""

from __future__ import annotations

import pytest

from healthinfra.errors import InventoryError
from healthinfra.inventory import load_inventory
from healthinfra.resource import Action
from healthinfra.resources.host_facts import layout, model_file_name, parse_facts, service_user
from healthinfra.resources.host_service import HostService, inputs_fingerprint

from .support.environment import REPO

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
    assert "done < /opt/hc-local-ai/ai.env" in script, "the env file is read, line by line, as data"
    assert not any(line.lstrip().startswith((". ", "source ", "eval ")) for line in script.splitlines())
    assert script.rstrip().endswith(
        "setpriv --reuid=hc-local-ai --regid=hc-local-ai --init-groups --no-new-privs -- \\\n"
        '  /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin "$@" /opt/hc-local-ai/app/run'
    )


def test_a_start_command_is_split_once_and_each_word_quoted_for_its_reader(inventories):
    from types import SimpleNamespace

    command = """/usr/bin/python3 /srv/ai/app.py --label "ai one" --note 'say "hi"' a=b,c:d@e+f"""
    inventory = load_text(
        inventories, GOOD + HOST + f"      start_command: {command}\n".replace(": /usr", ": >-\n        /usr")
    )
    (host,) = inventory.hosts["ai"]
    assert host.start_command == command
    resource = HostService("ai@ai-1", None, host=host.ref())
    ctx = SimpleNamespace(inventory=inventory)
    unit = resource.definition_content(ctx, "systemd").decode()
    assert 'ExecStart=/usr/bin/python3 /srv/ai/app.py --label "ai one" --note "say \\"hi\\"" a=b,c:d@e+f' in unit
    script = resource.definition_content(ctx, "pidfile").decode()
    assert script.rstrip().endswith(
        """"$@" /usr/bin/python3 /srv/ai/app.py --label 'ai one' --note 'say "hi"' a=b,c:d@e+f"""
    )


def test_the_service_listens_where_the_inventory_says_and_only_there(inventories):
    from types import SimpleNamespace

    from healthinfra.health import host_health_url

    def env_of(extra):
        inventory = load_text(inventories, GOOD + HOST + extra)
        (host,) = inventory.hosts["ai"]
        data = HostService("ai@ai-1", None, host=host.ref())
        ctx = SimpleNamespace(inventory=inventory)
        text = __import__("healthinfra.resources.host_commands", fromlist=["x"]).env_file(
            inventory, host, data.paths(inventory), database_url="postgresql://a:b@h/d", model_files=[]
        )
        return host, dict(line.split("=", 1) for line in text.decode().splitlines() if "=" in line), ctx

    host, env, _ = env_of("")
    assert env["HOST"] == "127.0.0.1" and "TLS_CERT_FILE" not in env
    assert host_health_url(host) == "http://10.0.0.5:8005/health"
    tls = "      listen: 10.0.0.5\n      health_tls: true\n      health_ca_file: ~/ca.pem\n"
    tls += "      tls_cert_file: /etc/hc/cert.pem\n      tls_key_file: /etc/hc/key.pem\n"
    host, env, _ = env_of(tls)
    assert env["HOST"] == "10.0.0.5" and env["TLS_CERT_FILE"] == "/etc/hc/cert.pem"
    assert env["TLS_KEY_FILE"] == "/etc/hc/key.pem"
    assert host_health_url(host) == "https://10.0.0.5:8005/health" and host.health_ca_file == "~/ca.pem"


KEY = r"x.yml: `hosts.ai\[0\]"
HOSTILE = [
    ("start_command", "/bin/x; touch /tmp/pwned-$RANDOM", KEY + r".start_command` holds a character a shell"),
    ("start_command", "/bin/echo $(id)", KEY + r".start_command` holds a character a shell"),
    ("start_command", "/bin/echo `id`", KEY + r".start_command` holds a character a shell"),
    ("start_command", "/bin/echo ok\nid", KEY + r".start_command` holds a character a shell.*got `/bin/echo ok\?id`"),
    ("start_command", "/bin/echo a | sh", KEY + r".start_command` holds a character a shell"),
    ("start_command", "/bin/echo a > /etc/passwd", KEY + r".start_command` holds a character a shell"),
    ("start_command", "/bin/echo a && id", KEY + r".start_command` holds a character a shell"),
    ("start_command", "/bin/echo 'unclosed", KEY + r".start_command` has an unclosed quote"),
    ("start_command", "python3 app.py", KEY + r".start_command` must start with the absolute path"),
    ("start_command", "/bin/x=y", KEY + r".start_command` must start with the absolute path"),
    ("address", "10.0.0.5; id", KEY + r".address` must be a host name .* or an IP address"),
    ("address", "-oProxyCommand=id", KEY + r".address` must be a host name"),
    ("user", "root\nid", KEY + r".user` must be a login name"),
    ("base_dir", "/opt/hc $(id)", KEY + r".base_dir` must be a path of letters, digits"),
    ("base_dir", "/opt/hc-ai/../../etc", KEY + r".base_dir` must not contain `.` or `..`"),
    ("base_dir", "/opt/x'y", KEY + r".base_dir` must be a path of letters"),
    ("key_file", "~/.ssh/k`id`", KEY + r".key_file` must be a path of letters"),
    ("listen", "0.0.0.0; id", KEY + r".listen` must be an IP address to listen on"),
    ("tls_cert_file", "/etc/$(id)", KEY + r".tls_cert_file` must be a path of letters"),
]


@pytest.mark.parametrize("key, value, message", HOSTILE, ids=[f"{k}={v!r}" for k, v, _ in HOSTILE])
def test_a_hostile_host_value_is_refused_at_load_naming_the_file_the_key_and_the_fix(inventories, key, value, message):
    import json

    entry = (
        HOST
        if key not in ("address", "user", "key_file")
        else "\n".join(line for line in HOST.splitlines() if not line.strip().startswith(key + ":")) + "\n"
    )
    with pytest.raises(InventoryError, match=message) as caught:
        load_text(inventories, GOOD + entry + f"      {key}: {json.dumps(value)}\n")
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)


def test_tls_keys_go_together(inventories):
    with pytest.raises(InventoryError, match=r"`hosts.ai\[0\].health_tls` needs `hosts.ai\[0\].tls_cert_file`"):
        load_text(inventories, GOOD + HOST + "      health_tls: true\n")
    with pytest.raises(InventoryError, match=r"`hosts.ai\[0\].tls_key_file` is set but `hosts.ai\[0\].health_tls`"):
        load_text(inventories, GOOD + HOST + "      tls_key_file: /etc/k.pem\n")
