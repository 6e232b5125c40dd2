"""Every run records what it ran: the commit, the tracked files that differ from it, and one
digest of everything it read from the repository (`history` shows them)."""

from __future__ import annotations

import subprocess

from healthinfra.revision import Revision, digest_of

from .support.environment import INVENTORY, REPO


def test_the_digest_names_and_contents_in_any_order():
    one = digest_of([("a", b"1"), ("b", b"2")])
    assert one == digest_of([("b", b"2"), ("a", b"1")])
    assert one != digest_of([("a", b"1"), ("b", b"3")]), "a content change shows"
    assert one != digest_of([("a", b"1"), ("c", b"2")]), "a rename shows"
    assert digest_of([("ab", b"")]) != digest_of([("a", b"b")]), "names and contents do not run together"


def test_a_revision_is_clean_only_at_a_commit_with_nothing_changed():
    assert Revision("c0ffee", (), "d").clean
    assert not Revision("c0ffee", ("tasks.py",), "d").clean
    assert not Revision(None, (), "d").clean
    assert Revision("c0ffee" * 7, ("a", "b"), "d").short() == "c0ffeec0ffee+2 changed"
    document = Revision("c0ffee", ("a",), "d").to_json()
    assert document == {"commit": "c0ffee", "dirty": True, "changed": ["a"], "digest": "d"}
    assert Revision.from_json(document) == Revision("c0ffee", ("a",), "d")


def test_history_shows_the_revision_each_run_ran(env, invoke, servers):
    assert invoke("deploy", "-i", INVENTORY).code == 0
    run = invoke("history", "-i", INVENTORY, "--json").json["runs"][-1]
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    status = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    )
    changed = sorted(line[3:] for line in status.stdout.splitlines() if line.strip())
    assert run["revision"]["commit"] == head.stdout.strip()
    assert run["revision"]["changed"] == changed and run["revision"]["dirty"] == bool(changed)
    assert len(run["revision"]["digest"]) == 64
    text = invoke("history", "-i", INVENTORY).out
    assert f"rev={head.stdout.strip()[:12]}" in text

    # the digest covers the inventory: an edit shows in the next run's record
    path = servers["inventories"] / f"{INVENTORY}.yml"
    original = path.read_text()
    try:
        path.write_text(original + "# an edit\n")
        assert invoke("deploy", "-i", INVENTORY).code == 0
    finally:
        path.write_text(original)
    after = invoke("history", "-i", INVENTORY, "--json").json["runs"][-1]
    assert after["revision"]["digest"] != run["revision"]["digest"]
