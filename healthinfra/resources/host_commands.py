"""The text sent to a service host, built by pure functions: the one-shot fact script,
each shell command that moves one part of the host (user, directories, a file, the
process) from one state to another, and the files it receives (env file, systemd unit
or fallback script, rendered from templates/hosts/). Every value that comes from the
inventory, the registry or the run (paths, user names, owners, modes, checksums) goes
through `shlex.quote`, so a space, a quote or a `$(...)` in a `base_dir` stays one
word; `paths` is always a `layout()` of the host. The templates quote the same way, with
the `sh` filter (shlex.quote) in the run script and `unit` (systemd's own quoting) in the
unit; the start command is split into words once, as data, and each word quoted. The env
file is data for both readers (systemd's EnvironmentFile=, the run script's `read` loop):
its values are refused if either would read them differently (`env_problem`). Service
output that reaches an error goes through `redact` first. Nothing here connects to
anything: `host_service` runs these over SSH, and tests/test_host_commands.py checks them
as a table of inputs and the exact text they give.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .. import names
from ..errors import ProviderError
from ..providers.host_access import check_host, command_words

if TYPE_CHECKING:
    from ..inventory import Host, Inventory

q = shlex.quote


# --- reading ---------------------------------------------------------------------------------


def fact_script(user: str, paths: dict[str, str], directories: list[str]) -> str:
    """One command that prints every fact of the host, a tagged line each (`parse_facts` reads it)."""
    dirs = " ".join(q(d) for d in directories)
    return f"""
if [ -d /run/systemd/system ]; then echo manager systemd; else echo manager pidfile; fi
getent passwd {q(user)} | awk -F: '{{print "user " $6 " " $7}}'
for d in {dirs}; do [ -d "$d" ] && stat -c 'dir %U:%G:%a %n' "$d"; done
if [ -f {q(paths["env_file"])} ]; then stat -c 'envmeta %U:%G:%a' {q(paths["env_file"])};
  sha256sum {q(paths["env_file"])} | sed 's/^/envsha /'; fi
if [ -d {q(paths["models"])} ]; then for f in {q(paths["models"])}/*; do
  [ -f "$f" ] && sha256sum "$f" | sed 's/^/model /'; done; fi
for f in {q(paths["run_script"])} {q(paths["unit"])}; do [ -f "$f" ] && sha256sum "$f" | sed 's/^/definition /'; done
[ -f {q(paths["inputs"])} ] && echo "inputs $(cat {q(paths["inputs"])})"
if [ -d {q(paths["backup"])} ]; then for f in {q(paths["backup"])}/*; do [ -f "$f" ] && echo "backup ${{f##*/}}"; done; fi
if [ -d /run/systemd/system ]; then systemctl is-active --quiet {q(paths["unit_name"])} && echo running;
elif [ -f {q(paths["pid"])} ] && kill -0 "$(cat {q(paths["pid"])})" 2>/dev/null; then echo running; fi
true
"""


# --- user and directories --------------------------------------------------------------------


def ensure_user(user: str, home: str, shell: str) -> str:
    """Create the system user, or set its home and shell. Two hosts of a test may share one
    machine: a user made meanwhile by the other is fine."""
    home, shell = q(home), q(shell)
    return (
        f"getent passwd {q(user)} >/dev/null || useradd --system --user-group --no-create-home"
        f" --home-dir {home} --shell {shell} {q(user)} || getent passwd {q(user)} >/dev/null;"
        f" usermod --home {home} --shell {shell} {q(user)}"
    )


def remove_user(user: str) -> str:
    """The service's own system user, with anything still running as it (the service is stopped
    first; a process left over, or one its init never reaped, would make userdel refuse forever)."""
    return (
        f"pkill -KILL -u {q(user)} 2>/dev/null; userdel -f {q(user)} 2>/dev/null"
        f" || ! getent passwd {q(user)} >/dev/null"
    )


def make_staging(login_user: str, staging: str) -> str:
    """The directory uploads land in: the login user's (SFTP writes as that user), 0700."""
    return f"install -d -o {q(login_user)} -m 700 {q(staging)}"


def make_directories(directories: dict[str, str], login_user: str, staging: str) -> str:
    """Each `{path: "owner:group:mode"}`, then the staging directory."""
    commands = []
    for path, meta in sorted(directories.items()):
        owner, group, mode = meta.split(":")
        commands.append(f"install -d -o {q(owner)} -g {q(group)} -m {q(mode)} {q(path)}")
    commands.append(make_staging(login_user, staging))
    return " && ".join(commands)


# --- files -----------------------------------------------------------------------------------


def staged_path(staging: str, target: str) -> str:
    """Where the upload for `target` lands before it is checked and moved into place."""
    return f"{staging}/{target.rsplit('/', 1)[-1]}"


def backup_path(backup: str, sha: str) -> str:
    """The host's kept copy of the bytes whose checksum is `sha` ("sha256:…")."""
    return f"{backup}/{sha.removeprefix('sha256:')}"


def keep_copy(path: str, backup: str) -> str:
    """Keep the file's bytes under `{backup}/{sha256}` (once) before it is replaced or removed."""
    return (
        f"if [ -f {q(path)} ]; then s=$(sha256sum {q(path)} | cut -d' ' -f1);"
        f" [ -f {q(backup)}/$s ] || cp -p {q(path)} {q(backup)}/$s; fi"
    )


def install_file(origin: str, target: str, meta: str, sha: str, *, staged: str, backup: str) -> str:
    """Copy `origin` (an upload or a kept copy) next to `target` with its owner, group and mode,
    check its sha256, then rename it over `target`, keeping a copy of what was there."""
    owner, group, mode = meta.split(":")
    return (
        f'set -e; umask 077; {keep_copy(target, backup)}; tmp={q(target)}.hc-new; cp {q(origin)} "$tmp";'
        f' chown {q(owner)}:{q(group)} "$tmp"; chmod {q(mode)} "$tmp";'
        f' test "$(sha256sum "$tmp" | cut -d\' \' -f1)" = {q(sha.removeprefix("sha256:"))};'
        f' mv -f "$tmp" {q(target)}; rm -f {q(staged)}'
    )


def remove_file(path: str, backup: str) -> str:
    return f"{keep_copy(path, backup)}; rm -f {q(path)}"


# --- the process -----------------------------------------------------------------------------


def enable_unit(unit_name: str) -> str:
    return f"systemctl daemon-reload && systemctl enable --quiet {q(unit_name)}"


def restart_unit(unit_name: str) -> str:
    return f"systemctl restart {q(unit_name)}"


def start_detached(paths: dict[str, str]) -> str:
    """The fallback: the run script, detached, its output in the log and its pid in the pid file."""
    return (
        f"cd {q(paths['base'])} && (setsid sh {q(paths['run_script'])}"
        f" >> {q(paths['log'])} 2>&1 < /dev/null & echo $! > {q(paths['pid'])})"
    )


def record_inputs(inputs: str | None, paths: dict[str, str]) -> str:
    """Write down what the process was started with (the inputs fingerprint)."""
    return f"printf '%s\\n' {q(inputs or '')} > {q(paths['inputs'])}"


def still_alive(manager: str, paths: dict[str, str]) -> str:
    """Exit 0 when the process is still running a second after its start (not a zombie: where
    nothing reaps orphans at once, as in a container, `kill -0` alone sees a dead one alive)."""
    alive = (
        "systemctl is-active --quiet " + q(paths["unit_name"])
        if manager == "systemd"
        else f'p=$(cat {q(paths["pid"])}) && kill -0 "$p" 2>/dev/null'
        ' && ! grep -qs "^State:[[:space:]]*Z" "/proc/$p/status"'  # a zombie nobody reaped yet is dead
    )
    return f"sleep 1; {alive}"


def log_tail(paths: dict[str, str]) -> str:
    return f"tail -n 5 {q(paths['log'])} 2>/dev/null"


def stop_process(paths: dict[str, str]) -> str:
    """Stop the unit where systemd runs it, and the pid-file process: TERM, then KILL after 5 s."""
    pid = q(paths["pid"])
    return (
        f"if [ -d /run/systemd/system ] && [ -f {q(paths['unit'])} ]; then"
        f" systemctl stop {q(paths['unit_name'])}; fi;"
        f' if [ -f {pid} ]; then p=$(cat {pid}); kill "$p" 2>/dev/null || true;'
        f' for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done;'
        f' kill -9 "$p" 2>/dev/null || true; rm -f {pid}; fi'
    )


# --- removing everything ---------------------------------------------------------------------


def remove_unit(paths: dict[str, str]) -> str:
    return (
        f"if [ -f {q(paths['unit'])} ]; then systemctl disable --quiet {q(paths['unit_name'])} 2>/dev/null || true;"
        f" rm -f {q(paths['unit'])}; systemctl daemon-reload 2>/dev/null || true; fi"
    )


def remove_files(paths: dict[str, str]) -> str:
    """Every file the runner put there, and the kept copies; nobody else's."""
    p = paths
    return (
        f"rm -f {q(p['run_script'])} {q(p['inputs'])} {q(p['log'])} {q(p['env_file'])}"
        f" && rm -rf {q(p['backup'])} {q(p['staging'])}"
        f" && if [ -d {q(p['models'])} ]; then find {q(p['models'])} -maxdepth 1 -type f -delete; fi"
    )


def remove_directories(paths: dict[str, str]) -> str:
    """Remove the directories if empty; else list what is left in base_dir (on stdout)."""
    p = paths
    return (
        f"rmdir {q(p['models'])} {q(p['run'])} 2>/dev/null; rmdir {q(p['base'])} 2>/dev/null"
        f" || ls -A {q(p['base'])} 2>/dev/null"
    )


# --- the files sent --------------------------------------------------------------------------


UNIT_WORD = re.compile(r"[A-Za-z0-9._/+@:,=-]+")
ENV_LINE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=(.*)")
ENV_UNSAFE = re.compile(r"[\x00-\x1f\x7f\"'\\$`]")


def unit_quote(word: str) -> str:
    """One word of a systemd ExecStart= line, as systemd reads it back: double quotes with
    `"` and `\\` escaped, `$` and `%` doubled (no variable or specifier expansion)."""
    word = word.replace("$", "$$").replace("%", "%%")
    if UNIT_WORD.fullmatch(word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def env_problem(text: str) -> str | None:
    """Why the env file would not be read as the same data by systemd and by the run script
    (a quote, a backslash, `$`, a backtick, a control character, spaces at an end), or None."""
    for number, line in enumerate(text.splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        match = ENV_LINE.fullmatch(line)
        if match is None:
            return f"line {number} is not KEY=VALUE"
        value = match.group(1)
        if ENV_UNSAFE.search(value) or value != value.strip():
            return f"the value of {line.split('=', 1)[0]} holds a quote, `\\`, `$`, a backtick or a control character"
    return None


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret value in it replaced by `***`, longest first (pure)."""
    for value in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def _render(name: str, **variables: Any) -> str:
    """A template of templates/hosts/, strictly, with the quoting filters `sh` and `unit`."""
    from ..templates import render

    return render(name, filters={"sh": shlex.quote, "unit": unit_quote}, **variables)


def env_file(inv: Inventory, host: Host, paths: dict[str, str], *, database_url: str, model_files: list[str]) -> bytes:
    """The service's env file (templates/hosts/service.env.j2): data, KEY=VALUE a line."""
    check_host(host)
    text = _render(
        "hosts/service.env.j2",
        service=host.group,
        host=host.name,
        database_url=database_url,
        region=inv.aws["region"],
        model_bucket=names.bucket(inv, "ml-models"),
        model_dir=paths["models"],
        models=model_files,
        log_group=names.log_group(inv, host.group),
        listen=host.listen,
        port=host.service_port,
        tls_cert_file=host.tls_cert_file if host.health_tls else None,
        tls_key_file=host.tls_key_file if host.health_tls else None,
    )
    problem = env_problem(text)
    if problem:  # e.g. an `aws.region` with a quote in it: never written where a reader could misread it
        raise ProviderError(f"host {host.name}: the env file is not plain KEY=VALUE data: {problem}; not sent")
    return text.encode()


def definition_file(inv: Inventory, host: Host, paths: dict[str, str], *, user: str, manager: str) -> bytes:
    """The systemd unit (manager `systemd`) or the fallback run script (`pidfile`)."""
    check_host(host)
    variables = dict(
        service=host.group,
        env=inv.environment,
        user=user,
        base_dir=paths["base"],
        env_file=paths["env_file"],
        command=command_words(host.start_command),
        pid_file=paths["pid"],
    )
    template = "hosts/service.unit.j2" if manager == "systemd" else "hosts/service.run.j2"
    return _render(template, **variables).encode()
