"""Issue 15, item 4, against the real sshd on loopback: inventory values never become a shell.

A hostile `start_command` (or address) is refused at load, exit 2, naming the file and the
key, before any host is touched; an allowed one with spaces and quotes reaches the service
word for word; the service listens on 127.0.0.1 only (the kernel's own table says so) and,
where the inventory says `health_tls: true`, answers and is probed over verified TLS; a
service that prints its DATABASE_URL as it dies leaves `***`, never the password, in the
error and the journal. (The env file read as data is shown by the rendered run script itself
in tests/test_host_commands.py.)
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest

from .support.hosts import failures, health

HOSTILE = [
    "{python} {service}; touch {mark}-$RANDOM",
    "{python} {service} $(touch {mark}-subst)",
    "{python} {service} `touch {mark}-tick`",
    "{python} {service}\ntouch {mark}-newline",
    "{python} {service} && touch {mark}-and",
]


@pytest.mark.parametrize("template", HOSTILE, ids=["semicolon", "dollar-paren", "backticks", "newline", "and"])
def test_a_hostile_start_command_is_refused_at_load_and_nothing_runs(env, invoke, ai_hosts, template):
    mark = Path(tempfile.mkdtemp(prefix="hc-pwned-")) / "pwned"
    written = ai_hosts()
    command = template.format(python="/usr/bin/python3", service=written["base"] / "ai_service.py", mark=mark)
    written = ai_hosts({"ai-1": {"start_command": command}})
    for args in (("plan", "-i", "test", "--phase", "4"), ("deploy", "-i", "test", "--phase", "4")):
        result = invoke(*args)
        assert result.code == 2, result
        line = result.err.strip().splitlines()[-1]
        assert "test.yml: `hosts.ai[0].start_command` holds a character a shell would act on" in line, result.err
        assert "use an absolute program path" in line, "the message says the fix"
    assert not list(mark.parent.iterdir()), "nothing of the value was executed"
    assert not any(h["base_dir"].exists() for h in written["hosts"].values()), "no host was touched"


def test_a_hostile_address_is_refused_before_ssh_is_ever_started(env, invoke, ai_hosts):
    mark = Path(tempfile.mkdtemp(prefix="hc-pwned-")) / "pwned"
    ai_hosts({"ai-2": {"address": f"-oProxyCommand=touch {mark}"}})
    result = invoke("deploy", "-i", "test", "--phase", "4")
    assert result.code == 2 and "test.yml: `hosts.ai[1].address` must be a host name" in result.err, result
    assert not list(mark.parent.iterdir())


def listening(port: int) -> set[str]:
    """The local addresses the kernel has a listening TCP socket on for `port` (/proc/net/tcp, tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                if len(address) == 8:
                    found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
                else:
                    found.add(address)
    return found


def certificates(directory: Path) -> dict[str, Path]:
    """A CA, a certificate for 127.0.0.1 it signed, and another CA that signed nothing."""
    directory.mkdir(exist_ok=True)

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    for ca in ("ca", "other-ca"):
        run(
            *"req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2".split(),
            "-subj",
            f"/CN=hc test {ca}",
            "-keyout",
            f"{ca}.key",
            "-out",
            f"{ca}.pem",
        )
    run(
        *"req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1".split(),
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        *"x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2".split(),
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    )
    for name in ("server.pem", "server.key"):
        (directory / name).chmod(0o644)  # the test's key, readable by the service user
    return {name: directory / f"{name}.pem" for name in ("ca", "other-ca")} | {
        "cert": directory / "server.pem",
        "key": directory / "server.key",
    }


def probes_of(result) -> dict[str, dict]:
    document = result.json
    return {p["target"]: p for p in (document["probes"] if isinstance(document, dict) else document)}


def test_the_service_gets_its_words_literally_listens_on_loopback_only_and_is_probed_over_tls(env, invoke, ai_hosts):
    base = ai_hosts()["base"]
    tls = certificates(base / "tls")
    words = ["--label", "ai one", "--note", 'say "hi"', "--opt", "a=b,c:d@e+f"]
    command = f'/usr/bin/python3 {base / "ai_service.py"} --label "ai one" --note \'say "hi"\' --opt a=b,c:d@e+f'
    written = ai_hosts(
        {
            "ai-1": {
                "start_command": command,
                "health_tls": True,
                "health_ca_file": str(tls["ca"]),
                "tls_cert_file": str(tls["cert"]),
                "tls_key_file": str(tls["key"]),
            }
        }
    )
    deployed = invoke("deploy", "-i", "test", "--phase", "4", "--json")
    assert deployed.code == 0, failures(deployed)
    one, two = written["hosts"]["ai-1"], written["hosts"]["ai-2"]

    # words with spaces and quotes reach the service exactly, split once, never by a shell
    context = ssl.create_default_context(cafile=str(tls["ca"]))
    with urllib.request.urlopen(f"https://127.0.0.1:{one['service_port']}/health", context=context) as response:
        body = json.loads(response.read())
    assert response.status == 200 and body["argv"] == words, body
    assert health(two)[1]["argv"] == []

    # both listen on 127.0.0.1 and nowhere else: the kernel's table, and another local address refused
    for host in (one, two):
        assert listening(host["service_port"]) == {"127.0.0.1"}
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.2", host["service_port"]), timeout=3).close()
        settings = dict(
            line.split("=", 1) for line in (host["base_dir"] / "ai.env").read_text().splitlines() if "=" in line
        )
        assert settings["HOST"] == "127.0.0.1"

    # TLS: plain HTTP gets no answer from it; the probe verifies the chain and the name
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{one['service_port']}/health", timeout=3)
    check = invoke("monitoring.check", "-i", "test", "--phase", "4", "--json")
    probes = probes_of(check)
    tls_probe = probes[f"ai@ai-1 https://127.0.0.1:{one['service_port']}/health"]
    assert tls_probe["healthy"] and tls_probe["detail"] == "HTTP 200 over verified TLS", tls_probe
    assert probes[f"ai@ai-2 http://127.0.0.1:{two['service_port']}/health"]["healthy"]

    # the same service, checked against a CA that did not sign its certificate: unhealthy, not trusted
    inventory = written["inventory"]
    inventory.write_text(inventory.read_text().replace(str(tls["ca"]), str(tls["other-ca"])))
    distrusted = invoke("monitoring.check", "-i", "test", "--phase", "4", "--json")
    assert distrusted.code == 1, distrusted
    bad = probes_of(distrusted)[f"ai@ai-1 https://127.0.0.1:{one['service_port']}/health"]
    assert not bad["healthy"] and bad["detail"].startswith("TLS certificate not trusted"), bad


def test_a_failing_service_that_prints_its_database_url_leaves_only_stars(env, invoke, ai_hosts):
    base = ai_hosts()["base"]
    ai_hosts({"ai-1": {"start_command": f"/usr/bin/python3 {base / 'ai_service.py'} --crash"}})
    result = invoke("deploy", "-i", "test", "--phase", "4", "--json")
    assert result.code == 1, result
    password = json.loads((env.state_dir / "secrets.json").read_text())["pg.ai_svc"]
    failure = next(line for line in result.err.splitlines() if line.startswith("failed: [host.service ai@ai-1]"))
    assert "exited right after its start" in failure and "connecting to ***" in failure, failure
    assert "postgresql://" not in failure, failure
    journal = (env.state_dir / "journal.jsonl").read_text()
    assert "connecting to ***" in journal and "password ***" in journal, "the journal keeps the redacted error"
    for text in (result.out, result.err, journal):
        assert password not in text, "the password never reaches an error or the journal"
    assert password in (base / "ai-1" / "opt-ai" / "run" / "ai.log").read_text(), "the host's own log keeps it"
