"""local.env_file, as tables: the file's text -> variables, the parse into state (secret values
by reference or digest only, the mode as four octal digits), and diff. Pure: no file is read."""

from __future__ import annotations

import pytest

from healthinfra.resource import Action
from healthinfra.resources.local_env import EnvFile, parse_env_file, render_env_file
from healthinfra.secret_store import Secret
from healthinfra.service_env import DATABASE_URL_REF, DATABASE_URL_STALE, digest

URL = "postgresql://auth_svc:s3cret@127.0.0.1:5432/healthcare?sslmode=require"
OLD_URL = "postgresql://auth_svc:0ld@127.0.0.1:5432/healthcare?sslmode=require"
OTHER_URL = "postgresql://someone:x@db.example.com:5432/other?sslmode=require"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", {}),
        ("PORT=8002\n", {"PORT": "8002"}),
        # comments, blank lines and lines without `=` are not variables
        ("# Written by healthcare-infra\n\n   \nPORT=8002\n  # indented comment\ngarbage\n", {"PORT": "8002"}),
        # only the first `=` splits: a URL's query string stays whole
        (f"DATABASE_URL={URL}\n", {"DATABASE_URL": URL}),
        ("A==b\n", {"A": "=b"}),
        # the name is trimmed, the value kept as written (spaces, quotes and all)
        (" PORT =8002 \n", {"PORT": "8002 "}),
        ('GREETING="hello world"\n', {"GREETING": '"hello world"'}),
        ("EMPTY=\n", {"EMPTY": ""}),
        # a name given twice: the last one wins, as a shell's `source` would have it
        ("PORT=1\nPORT=2\n", {"PORT": "2"}),
        # no trailing newline, CRLF line ends
        ("PORT=8002", {"PORT": "8002"}),
        ("PORT=8002\r\nREGION=us-east-1\r\n", {"PORT": "8002", "REGION": "us-east-1"}),
    ],
)
def test_parse_env_file(text, expected):
    assert parse_env_file(text) == expected


def test_a_rendered_file_parses_back_to_its_variables():
    variables = {"PORT": "8002", "DATABASE_URL": URL, "AWS_REGION": "us-east-1"}
    assert parse_env_file(render_env_file("auth", "local", variables)) == variables


@pytest.mark.parametrize(
    "raw, mode, wanted, expected",
    [
        ({}, 0o600, None, {"variables": {}, "mode": "0600"}),
        # the mode as four octal digits, whatever the file has
        ({"PORT": "8002"}, 0o644, None, {"variables": {"PORT": "8002"}, "mode": "0644"}),
        ({"PORT": "8002"}, 0o7, None, {"variables": {"PORT": "8002"}, "mode": "0007"}),
        # the service's own URL: the reference, never the value
        (
            {"DATABASE_URL": URL, "PORT": "8002"},
            0o600,
            Secret(URL),
            {"variables": {"DATABASE_URL": DATABASE_URL_REF, "PORT": "8002"}, "mode": "0600"},
        ),
        # the same URL with a password the role no longer has (after a rotation)
        (
            {"DATABASE_URL": OLD_URL},
            0o600,
            Secret(URL),
            {"variables": {"DATABASE_URL": DATABASE_URL_STALE}, "mode": "0600"},
        ),
        # someone else's URL, or no password to compare with yet: a digest
        (
            {"DATABASE_URL": OTHER_URL},
            0o600,
            Secret(URL),
            {"variables": {"DATABASE_URL": digest(OTHER_URL)}, "mode": "0600"},
        ),
        ({"DATABASE_URL": URL}, 0o600, None, {"variables": {"DATABASE_URL": digest(URL)}, "mode": "0600"}),
        # variables come out sorted by name
        ({"Z": "1", "A": "2"}, 0o600, None, {"variables": {"A": "2", "Z": "1"}, "mode": "0600"}),
    ],
)
def test_env_file_parse(raw, mode, wanted, expected):
    parsed = EnvFile.parse(raw, mode, wanted)
    assert parsed == expected
    assert list(parsed["variables"]) == sorted(raw)
    assert "s3cret" not in repr(parsed) and "0ld" not in repr(parsed)


STATE = {"variables": {"AWS_REGION": "us-east-1", "DATABASE_URL": DATABASE_URL_REF, "PORT": "8002"}, "mode": "0600"}


@pytest.mark.parametrize(
    "current, desired, expected",
    [
        (None, None, []),
        (None, STATE, [Action("create", after=STATE)]),
        (STATE, None, [Action("delete", before=STATE)]),
        (STATE, {"variables": dict(STATE["variables"]), "mode": "0600"}, []),
        ({**STATE, "mode": "0644"}, STATE, [Action("set", "mode", "0644", "0600")]),
        (
            {**STATE, "variables": {**STATE["variables"], "PORT": "9999"}},
            STATE,
            [Action("set", "variables", {**STATE["variables"], "PORT": "9999"}, STATE["variables"])],
        ),
        # a variable added by hand is removed; one removed by hand comes back
        (
            {**STATE, "variables": {**STATE["variables"], "DEBUG": "1"}},
            STATE,
            [Action("set", "variables", {**STATE["variables"], "DEBUG": "1"}, STATE["variables"])],
        ),
        (
            {**STATE, "variables": {"AWS_REGION": "us-east-1", "DATABASE_URL": DATABASE_URL_REF}},
            STATE,
            [
                Action(
                    "set",
                    "variables",
                    {"AWS_REGION": "us-east-1", "DATABASE_URL": DATABASE_URL_REF},
                    STATE["variables"],
                )
            ],
        ),
        # a stale password in the file is a change (the file gets the URL as it is now)
        (
            {**STATE, "variables": {**STATE["variables"], "DATABASE_URL": DATABASE_URL_STALE}},
            STATE,
            [
                Action(
                    "set",
                    "variables",
                    {**STATE["variables"], "DATABASE_URL": DATABASE_URL_STALE},
                    STATE["variables"],
                )
            ],
        ),
        # the order lines were written in is no change
        ({**STATE, "variables": dict(reversed(list(STATE["variables"].items())))}, STATE, []),
    ],
)
def test_env_file_diff(current, desired, expected):
    assert EnvFile("auth", desired, inventory="local").diff(current, desired) == expected
