"""The AI hosts of the tests: an inventory's `hosts: ai:` naming the suite's two sshd, the stand-in
service's /health, and the lines of a run that say what failed."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from .environment import free_port


def hosts_inventory(original: str, ssh_hosts, extra: dict | None = None) -> tuple[str, dict]:
    """The inventory `original` with `hosts: ai:` naming the two sshd; `extra` adds or replaces
    keys of a host (`{"ai-1": {"start_command": ...}}`)."""
    base = ssh_hosts["base"]
    hosts = {}
    lines = ["hosts:", "  ai:"]
    for name, server in ssh_hosts["servers"].items():
        if server.process is None:
            server.start()
        hosts[name] = {"base_dir": base / name / "opt-ai", "service_port": free_port(), "server": server}
        entry = {
            "address": "127.0.0.1",
            "port": server.port,
            "user": "root",
            "key_file": str(base / "id_ed25519"),
            "known_hosts": str(base / "known_hosts"),
            "base_dir": str(hosts[name]["base_dir"]),
            "service_port": hosts[name]["service_port"],
            "start_command": f"/usr/bin/python3 {base / 'ai_service.py'}",
            **(extra or {}).get(name, {}),
        }
        lines.append(f"    - name: {name}")
        lines += [f"      {key}: {json.dumps(value)}" for key, value in entry.items()]  # JSON is YAML
    return original + "\n".join(lines) + "\n", hosts


def health(host) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{host['service_port']}/health", timeout=3) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def failures(result) -> str:
    return "\n".join(
        line
        for line in (result.out + result.err).splitlines()
        if line.startswith(("failed:", "refused:", "retry", "error:"))
    )
