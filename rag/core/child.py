"""Children that run risky native code (a model, a document parser) in a fresh interpreter.

A crash in C code (a segfault, an out-of-memory kill) ends the process it runs in; a parser
fed a hostile file can run for minutes. :func:`spawn` starts ``python -m MODULE FD`` with one end
of a socket pair as a :class:`~multiprocessing.connection.Connection`, so the parent speaks to the
child in pickled messages and reads its death as end-of-file. The child is a fresh interpreter:
no copy of the parent's threads, locks or loaded libraries, and, unlike multiprocessing's "spawn",
no re-import of the parent's main script, so any program may start one.

Used by the model's supervised process (:mod:`rag.generate.process`) and the document reader's
(:mod:`rag.ingest.sandbox`).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from multiprocessing.connection import Connection


def spawn(module: str) -> tuple[subprocess.Popen[bytes], Connection]:
    """Start ``python -m module FD`` and return it with the parent's end of its connection.

    The first message the child reads is the parent's ``sys.path``, so that what it unpickles
    next is importable from where the parent imported it (see :func:`connect`).
    """
    ours, theirs = socket.socketpair()
    process = subprocess.Popen(
        [sys.executable, "-m", module, str(theirs.fileno())], pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
    )
    theirs.close()  # subtle: only the child holds its end now, so its death reads as EOF here
    conn = Connection(ours.detach())
    conn.send(list(sys.path))
    return process, conn


def connect(argv: list[str]) -> Connection:
    """The child's side of :func:`spawn`: its connection, with the parent's ``sys.path`` taken on."""
    conn = Connection(int(argv[1]))
    sys.path[:] = conn.recv()
    # Ctrl-C in the terminal reaches the whole process group: the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return conn


def describe_exit(code: int | None) -> str:
    """A child's exit status in words: "signal 9: SIGKILL", "exit code 1"."""
    if code is not None and code < 0:
        return f"signal {-code}: {signal.Signals(-code).name}" if -code in signal.valid_signals() else f"signal {-code}"
    return f"exit code {code}"
