"""The remote command builder as a table: these inputs give exactly these commands, and a
hostile inventory value (spaces, quotes, `$(...)`, backticks) stays one quoted word."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from healthinfra.resources import host_commands as cmd
from healthinfra.resources.host_facts import layout

INV = SimpleNamespace(prefix="hc", environment="dev")  # all `layout` reads of an inventory
SAFE = layout(INV, SimpleNamespace(base_dir="/opt/hc-dev-ai", group="ai"))
HOSTILE_BASE = "/opt/hc ai/$(reboot)"
HOSTILE = layout(INV, SimpleNamespace(base_dir=HOSTILE_BASE, group="ai"))
H = "'/opt/hc ai/$(reboot)"  # how the hostile base_dir starts once quoted: `H + "/run/ai.pid'"`
USER = "hc-dev-ai"

TABLE = [
    (
        "a user is created or its home and shell set",
        cmd.ensure_user(USER, "/nonexistent", "/usr/sbin/nologin"),
        "getent passwd hc-dev-ai >/dev/null || useradd --system --user-group --no-create-home"
        " --home-dir /nonexistent --shell /usr/sbin/nologin hc-dev-ai || getent passwd hc-dev-ai >/dev/null;"
        " usermod --home /nonexistent --shell /usr/sbin/nologin hc-dev-ai",
    ),
    (
        "a hostile user name is one word everywhere",
        cmd.ensure_user("x y'$(reboot)", "/no where", "/bin/sh -c"),
        "getent passwd 'x y'\"'\"'$(reboot)' >/dev/null || useradd --system --user-group --no-create-home"
        " --home-dir '/no where' --shell '/bin/sh -c' 'x y'\"'\"'$(reboot)'"
        " || getent passwd 'x y'\"'\"'$(reboot)' >/dev/null;"
        " usermod --home '/no where' --shell '/bin/sh -c' 'x y'\"'\"'$(reboot)'",
    ),
    (
        "a user is removed, or was not there",
        cmd.remove_user(USER),
        "pkill -KILL -u hc-dev-ai 2>/dev/null; userdel -f hc-dev-ai 2>/dev/null || ! getent passwd hc-dev-ai >/dev/null",
    ),
    (
        "directories in path order, then the login user's staging directory",
        cmd.make_directories(
            {"/opt/hc-dev-ai/run": "root:root:700", "/opt/hc-dev-ai": f"root:{USER}:750"}, "deploy", SAFE["staging"]
        ),
        "install -d -o root -g hc-dev-ai -m 750 /opt/hc-dev-ai && install -d -o root -g root -m 700 /opt/hc-dev-ai/run"
        " && install -d -o deploy -m 700 /opt/hc-dev-ai/.hc-staging",
    ),
    (
        "hostile directories and owners",
        cmd.make_directories({HOSTILE_BASE: "root:a b:7`id`"}, "deploy", HOSTILE["staging"]),
        f"install -d -o root -g 'a b' -m '7`id`' {H}' && install -d -o deploy -m 700 {H}/.hc-staging'",
    ),
    (
        "a file is kept by checksum, checked, and moved into place",
        cmd.install_file(
            "/opt/hc-dev-ai/.hc-staging/ai.env",
            SAFE["env_file"],
            "root:root:600",
            "sha256:" + "a" * 8,
            staged="/opt/hc-dev-ai/.hc-staging/ai.env",
            backup=SAFE["backup"],
        ),
        "set -e; umask 077; if [ -f /opt/hc-dev-ai/ai.env ]; then s=$(sha256sum /opt/hc-dev-ai/ai.env | cut -d' ' -f1);"
        " [ -f /opt/hc-dev-ai/.hc-backup/$s ] || cp -p /opt/hc-dev-ai/ai.env /opt/hc-dev-ai/.hc-backup/$s; fi;"
        ' tmp=/opt/hc-dev-ai/ai.env.hc-new; cp /opt/hc-dev-ai/.hc-staging/ai.env "$tmp";'
        ' chown root:root "$tmp"; chmod 600 "$tmp";'
        ' test "$(sha256sum "$tmp" | cut -d\' \' -f1)" = aaaaaaaa;'
        ' mv -f "$tmp" /opt/hc-dev-ai/ai.env; rm -f /opt/hc-dev-ai/.hc-staging/ai.env',
    ),
    (
        "a hostile file, owner and checksum",
        cmd.install_file(
            HOSTILE["env_file"],
            HOSTILE["env_file"],
            "root:a'b:600",
            "sha256:$(reboot)",
            staged=HOSTILE["staging"] + "/ai.env",
            backup=HOSTILE["backup"],
        ),
        f"set -e; umask 077; if [ -f {H}/ai.env' ]; then s=$(sha256sum {H}/ai.env' | cut -d' ' -f1);"
        f" [ -f {H}/.hc-backup'/$s ] || cp -p {H}/ai.env' {H}/.hc-backup'/$s; fi;"
        f" tmp={H}/ai.env'.hc-new; cp {H}/ai.env' \"$tmp\";"
        ' chown root:\'a\'"\'"\'b\' "$tmp"; chmod 600 "$tmp";'
        " test \"$(sha256sum \"$tmp\" | cut -d' ' -f1)\" = '$(reboot)';"
        f" mv -f \"$tmp\" {H}/ai.env'; rm -f {H}/.hc-staging/ai.env'",
    ),
    (
        "a file is kept, then removed",
        cmd.remove_file(HOSTILE["models"] + "/risk-1.onnx", HOSTILE["backup"]),
        f"if [ -f {H}/models/risk-1.onnx' ]; then s=$(sha256sum {H}/models/risk-1.onnx' | cut -d' ' -f1);"
        f" [ -f {H}/.hc-backup'/$s ] || cp -p {H}/models/risk-1.onnx' {H}/.hc-backup'/$s; fi;"
        f" rm -f {H}/models/risk-1.onnx'",
    ),
    (
        "uploads land in staging under the target's name",
        cmd.staged_path(SAFE["staging"], SAFE["unit"]),
        "/opt/hc-dev-ai/.hc-staging/hc-dev-ai.service",
    ),
    (
        "a kept copy is named by its checksum",
        cmd.backup_path(SAFE["backup"], "sha256:" + "e" * 8),
        "/opt/hc-dev-ai/.hc-backup/eeeeeeee",
    ),
    (
        "systemd: reload, enable",
        cmd.enable_unit(SAFE["unit_name"]),
        "systemctl daemon-reload && systemctl enable --quiet hc-dev-ai.service",
    ),
    ("systemd: restart", cmd.restart_unit(SAFE["unit_name"]), "systemctl restart hc-dev-ai.service"),
    (
        "the fallback starts detached, its pid in the pid file",
        cmd.start_detached(HOSTILE),
        f"cd {H}' && (setsid sh {H}/run/ai.sh' >> {H}/run/ai.log' 2>&1 < /dev/null & echo $! > {H}/run/ai.pid')",
    ),
    (
        "the inputs are written down, hostile or not",
        cmd.record_inputs("x'; reboot #", SAFE),
        "printf '%s\\n' 'x'\"'\"'; reboot #' > /opt/hc-dev-ai/run/inputs",
    ),
    ("no inputs: an empty line", cmd.record_inputs(None, SAFE), "printf '%s\\n' '' > /opt/hc-dev-ai/run/inputs"),
    (
        "alive, by pid file",
        cmd.still_alive("pidfile", HOSTILE),
        f'sleep 1; p=$(cat {H}/run/ai.pid\') && kill -0 "$p" 2>/dev/null'
        ' && ! grep -qs "^State:[[:space:]]*Z" "/proc/$p/status"',
    ),
    (
        "alive, by systemd",
        cmd.still_alive("systemd", SAFE),
        "sleep 1; systemctl is-active --quiet hc-dev-ai.service",
    ),
    ("the log's last lines", cmd.log_tail(HOSTILE), f"tail -n 5 {H}/run/ai.log' 2>/dev/null"),
    (
        "stop: the unit if systemd runs it, then the pid (TERM, then KILL after 5 s)",
        cmd.stop_process(HOSTILE),
        "if [ -d /run/systemd/system ] && [ -f /etc/systemd/system/hc-dev-ai.service ]; then"
        " systemctl stop hc-dev-ai.service; fi;"
        f" if [ -f {H}/run/ai.pid' ]; then p=$(cat {H}/run/ai.pid'); kill \"$p\" 2>/dev/null || true;"
        ' for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done;'
        f' kill -9 "$p" 2>/dev/null || true; rm -f {H}/run/ai.pid\'; fi',
    ),
    (
        "remove the unit",
        cmd.remove_unit(SAFE),
        "if [ -f /etc/systemd/system/hc-dev-ai.service ]; then systemctl disable --quiet hc-dev-ai.service"
        " 2>/dev/null || true; rm -f /etc/systemd/system/hc-dev-ai.service; systemctl daemon-reload 2>/dev/null"
        " || true; fi",
    ),
    (
        "remove the runner's files, never anyone else's",
        cmd.remove_files(HOSTILE),
        f"rm -f {H}/run/ai.sh' {H}/run/inputs' {H}/run/ai.log' {H}/ai.env'"
        f" && rm -rf {H}/.hc-backup' {H}/.hc-staging'"
        f" && if [ -d {H}/models' ]; then find {H}/models' -maxdepth 1 -type f -delete; fi",
    ),
    (
        "remove the directories if empty, else say what is left",
        cmd.remove_directories(HOSTILE),
        f"rmdir {H}/models' {H}/run' 2>/dev/null; rmdir {H}' 2>/dev/null || ls -A {H}' 2>/dev/null",
    ),
]


@pytest.mark.parametrize("built, expected", [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_these_inputs_give_these_commands(built, expected):
    assert built == expected


def test_the_fact_script_quotes_the_user_and_every_path():
    script = cmd.fact_script("it's", HOSTILE, [HOSTILE["base"], HOSTILE["run"]])
    lines = script.strip().splitlines()
    assert lines[1] == "getent passwd 'it'\"'\"'s' | awk -F: '{print \"user \" $6 \" \" $7}'"
    assert lines[2] == f"for d in {H}' {H}/run'; do [ -d \"$d\" ] && stat -c 'dir %U:%G:%a %n' \"$d\"; done"
    assert f"[ -f {H}/run/inputs' ] && echo \"inputs $(cat {H}/run/inputs')\"" in lines
    assert expanded(script).count("reboot") == 0


def expanded(command: str) -> str:
    """What the shell expands in `command`: all of it but single-quoted text and escaped
    characters (inside `"$(...)"` single quotes quote again, as in sh)."""
    out, i, stack = [], 0, [""]  # "": unquoted (or inside $(...)), '"': inside double quotes
    while i < len(command):
        ch = command[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "'" and stack[-1] == "":
            i = command.index("'", i + 1) + 1
            continue
        if command.startswith("$(", i):
            stack.append("")
        elif ch == ")" and len(stack) > 1 and stack[-1] == "":
            stack.pop()
        elif ch == '"' and stack[-1] == '"':
            stack.pop()
        elif ch == '"':
            stack.append('"')
        out.append(ch)
        i += 1
    return "".join(out)


def every_command(paths: dict[str, str], value: str) -> list[str]:
    """Each builder, with `value` in every argument that is not a layout path."""
    return [
        cmd.fact_script(value, paths, [paths["base"], value]),
        cmd.ensure_user(value, value, value),
        cmd.remove_user(value),
        cmd.make_staging(value, paths["staging"]),
        cmd.make_directories({paths["base"]: f"{value}:{value}:{value}"}, value, paths["staging"]),
        cmd.keep_copy(paths["env_file"], paths["backup"]),
        cmd.install_file(value, paths["env_file"], f"{value}:{value}:{value}", value, staged=value, backup=value),
        cmd.remove_file(paths["env_file"], paths["backup"]),
        cmd.enable_unit(value),
        cmd.restart_unit(value),
        cmd.start_detached(paths),
        cmd.record_inputs(value, paths),
        cmd.still_alive("systemd", {**paths, "unit_name": value}),
        cmd.still_alive("pidfile", paths),
        cmd.log_tail(paths),
        cmd.stop_process({**paths, "unit_name": value}),
        cmd.remove_unit({**paths, "unit_name": value}),
        cmd.remove_files(paths),
        cmd.remove_directories(paths),
    ]


def test_the_check_below_sees_an_unquoted_value():
    assert "reboot" in expanded("rm -f /opt/$(reboot)") and "reboot" in expanded('echo "$(cat /x/`reboot`)"')
    assert "reboot" in expanded("echo \"$(cat '/x')\" $(reboot)") and "reboot" in expanded("a 'b' \"reboot\"")
    assert "reboot" not in expanded("echo '$(reboot)' \"$(cat '/x/$(reboot)')\" 'a'\"'\"'reboot'")


@pytest.mark.parametrize(
    "value", ["a b", "it's", 'say "hi"', "$(reboot)", "`reboot`", "x; reboot", "a\nreboot", "${IFS}reboot"]
)
def test_no_hostile_value_is_ever_expanded_by_the_shell(value):
    paths = layout(INV, SimpleNamespace(base_dir=f"/opt/{value}", group="ai"))
    for command in every_command(paths, f"reboot{value}"):
        assert "reboot" not in expanded(command), command


def test_a_real_shell_keeps_a_hostile_path_one_word(tmp_path):
    """Not a table, but the proof of one: `sh` runs the file commands on a hostile base_dir."""
    base = tmp_path / "hc ai $(touch pwned) 'q' `touch pwned2`"
    paths = layout(INV, SimpleNamespace(base_dir=str(base), group="ai"))
    for key in ("run", "backup", "models"):
        (base / paths[key].rsplit("/", 1)[-1]).mkdir(parents=True)
    (base / "ai.env").write_text("A=1\n")
    for command in (
        cmd.record_inputs("sha256:$(touch pwned3)", paths),
        cmd.remove_file(paths["env_file"], paths["backup"]),
        cmd.remove_files(paths),
    ):
        subprocess.run(["sh", "-c", command], cwd=tmp_path, check=True)
    assert not list(tmp_path.rglob("pwned*"))
    assert not (base / "ai.env").exists() and not (base / ".hc-backup").exists()
    assert subprocess.run(["sh", "-c", cmd.remove_directories(paths)], cwd=tmp_path).returncode == 0
    assert not base.exists()


# --- the files sent: quoting for their readers, the env file as data, redaction ---------------


@pytest.mark.parametrize(
    "word, unit",
    [
        ("/usr/bin/python3", "/usr/bin/python3"),
        ("a=b,c:d@e+f", "a=b,c:d@e+f"),
        ("ai one", '"ai one"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("it's", '"it\'s"'),
        ("50%", '"50%%"'),
        ("$HOME", '"$$HOME"'),
        ("a\\b", '"a\\\\b"'),
    ],
)
def test_a_unit_word_is_quoted_as_systemd_reads_it(word, unit):
    assert cmd.unit_quote(word) == unit


@pytest.mark.parametrize(
    "text, problem",
    [
        ("# c\nA=1\nB=postgresql://u:p@h:5/d?sslmode=require&x=y\nMODELS=a.onnx,b.onnx\nEMPTY=\n\n", None),
        ("A=1\nnot a setting\n", "line 2 is not KEY=VALUE"),
        ("A=$(id)\n", "the value of A holds a quote"),
        ("A=`id`\n", "the value of A holds a quote"),
        ("A='x'\n", "the value of A holds a quote"),
        ('A="x"\n', "the value of A holds a quote"),
        ("A=x\\\n", "the value of A holds a quote"),
        ("A=x \n", "the value of A holds a quote"),
        ("A=x\x1b[2J\n", "the value of A holds a quote"),
        ("1A=x\n", "line 1 is not KEY=VALUE"),
    ],
)
def test_the_env_file_is_data_both_readers_read_alike(text, problem):
    found = cmd.env_problem(text)
    assert found == problem if problem is None else (found or "").startswith(problem), found


def test_service_output_is_redacted_of_every_secret_longest_first():
    url = "postgresql://ai_svc:s3cr%2Ft@db:5432/healthcare"
    text = f"connecting to {url}\nFATAL: password s3cr/t rejected; s3cr%2Ft\nok"
    assert cmd.redact(text, [url, "s3cr%2Ft", "s3cr/t", "", "ab"]) == (
        "connecting to ***\nFATAL: password *** rejected; ***\nok"
    )


def rendered_run_script(tmp_path, start_command: str) -> tuple[str, dict]:
    from healthinfra.providers.host_access import Host

    host = Host(
        group="ai",
        name="ai-1",
        address="127.0.0.1",
        port=22,
        user="root",
        key_file="/k",
        known_hosts="/kh",
        base_dir=str(tmp_path / "base"),
        service_port=8005,
        start_command=start_command,
    )
    paths = layout(INV, host)
    (tmp_path / "base").mkdir()
    script = cmd.definition_file(INV, host, paths, user="daemon", manager="pidfile").decode()
    (tmp_path / "run.sh").write_text(script)
    return str(tmp_path / "run.sh"), paths


@pytest.mark.skipif(os.geteuid() != 0, reason="the run script drops from root with setpriv")
def test_the_real_run_script_reads_a_hostile_env_file_as_data_and_runs_nothing_of_it(tmp_path):
    """The rendered fallback script, run by `sh` as root, with an env file whose values would each
    run a command if it were sourced: nothing runs; each value reaches the service literally, as
    the service user, with no variable of root's environment."""
    script, paths = rendered_run_script(tmp_path, "/usr/bin/env")
    mark = tmp_path / "pwned"
    values = {
        "A": "1",
        "X": f"$(touch {mark}-1)",
        "Y": f"`touch {mark}-2`",
        "Z": f"a b 'c' \"d\"; touch {mark}-3",
        "W": f"x\\ y & touch {mark}-4 |",
        "EMPTY": "",
    }
    Path(paths["env_file"]).write_text("# comment\n\n" + "".join(f"{k}={v}\n" for k, v in values.items()))
    done = subprocess.run(["sh", script], capture_output=True, text=True, env={**os.environ, "ROOTS_OWN": "1"})
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.glob("pwned*")), "a value of the env file was executed"
    got = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert got == {"PATH": "/usr/local/bin:/usr/bin:/bin", **values}, "exactly the env file, literally"

    Path(paths["env_file"]).write_text(f"A=1\ntouch {mark}-5\n")
    refused = subprocess.run(["sh", script], capture_output=True, text=True)
    assert refused.returncode == 78 and refused.stdout == "", refused
    assert f"{paths['env_file']}: line 2 is not KEY=VALUE; not started" in refused.stderr
    assert not list(tmp_path.glob("pwned*"))


@pytest.mark.skipif(os.geteuid() != 0, reason="the run script drops from root with setpriv")
def test_the_real_run_script_passes_an_allowed_command_literally_as_the_service_user(tmp_path):
    script, paths = rendered_run_script(tmp_path, """/usr/bin/echo "ai  one" 'say "hi"' a=b,c""")
    Path(paths["env_file"]).write_text("A=1\n")
    done = subprocess.run(["sh", script], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == 'ai  one say "hi" a=b,c\n', done
    last = Path(script).read_text().rstrip().rsplit('"$@" ', 1)[1]
    assert last == """/usr/bin/echo 'ai  one' 'say "hi"' a=b,c"""
