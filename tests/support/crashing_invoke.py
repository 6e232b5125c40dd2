"""Run invoke, and SIGKILL this process right after the N-th journal line is durably written.

    python -m tests.support.crashing_invoke N deploy -i test --phase 4

from the repository's root, as `python -m invoke` is run: invoke finds tasks.py from the
working directory. `FileJournal.append` is wrapped: the original writes and fsyncs the line,
then the N-th call kills the process with SIGKILL, so nothing after it runs (no finally, no
lock release, no flush), as with a power cut or the OOM killer. N = 0 never kills.

No hook in the package: the patch is made here, before invoke loads tasks.py.
"""

from __future__ import annotations

import os
import signal
import sys
import threading


def kill_after_line(n: int) -> None:
    from healthinfra.journal import FileJournal

    original = FileJournal.append
    lock = threading.Lock()  # a batch's threads append too: the N-th line is the N-th written
    written = 0

    def append(self, event):
        nonlocal written
        with lock:
            original(self, event)
            written += 1
            if written == n:
                os.kill(os.getpid(), signal.SIGKILL)

    FileJournal.append = append


def main(argv: list[str]) -> None:
    if len(argv) < 2 or not argv[0].isdigit():
        sys.exit("usage: python -m tests.support.crashing_invoke N TASK [ARGS...]  (N: the journal line to die after)")
    kill_after_line(int(argv[0]))
    from invoke.main import program

    program.run(["invoke", *argv[1:]])


if __name__ == "__main__":
    main(sys.argv[1:])
