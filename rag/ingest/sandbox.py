"""Reading documents in a child process with a time and a memory budget.

A parser fed a hostile file can run for minutes, grow until the machine swaps, or crash in C
code. :class:`Sandbox` runs the reader of one document at a time in a child process
(:func:`rag.core.child.spawn`) whose address space is capped at ``Limits.memory_mb``, and stops it
when a document takes longer than ``Limits.seconds``: the document is refused in one line
(:class:`~rag.ingest.guards.LimitExceeded`), a new child reads the next one, and nothing in the
parent (the index being built, the server) is touched. One child serves a whole batch, and
:func:`borrowed` keeps it for ``IDLE_S`` seconds after, so a folder of small pages, or a test suite
indexing a tiny corpus again and again, pays for one start (about half a second), not one per batch.

Example:
    >>> from rag.ingest.guards import Limits
    >>> with borrowed(Limits()) as sandbox:                      # doctest: +SKIP
    ...     document = sandbox.run(read_html_file, path)
"""

from __future__ import annotations

import resource
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from rag.core.child import connect, describe_exit, spawn
from rag.core.errors import RagError
from rag.ingest.guards import ENVIRONMENT, MB, LimitExceeded, Limits

T = TypeVar("T")

IDLE_S = 30.0  # how long a batch's child is kept for the next batch

# Child -> parent: (OK, result), (RAISE, a RagError to raise as it is), (MEMORY, ""), (BUG, traceback).
OK, RAISE, MEMORY, BUG = "ok", "raise", "memory", "bug"


class ReaderCrashed(RagError, ValueError):
    """The reader's process stopped on its own while it read a document (a crash in a parser)."""


class Sandbox:
    """Runs readers in a child process with ``limits``' time and memory budgets (module docstring).

    The child is started on the first :meth:`run` and stopped by :meth:`close` (or ``with``).
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.started = 0  # children started, the first one included
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in the child (``function`` is module-level, its arguments and result
        picklable); a :class:`~rag.core.errors.RagError` it raises is raised here as it was.

        Raises:
            LimitExceeded: it ran past ``limits.seconds`` or out of ``limits.memory_mb``.
            ReaderCrashed: the child died meanwhile (a crash in native code).
        """
        if self._conn is None:
            self._start()
        assert self._conn is not None and self._process is not None
        try:
            self._conn.send((function, args))
            if not self._conn.poll(self.limits.seconds):
                self._stop(kill=True)
                raise LimitExceeded(f"reading it took longer than {self.limits.seconds:g} s, the limit "
                                    f"({ENVIRONMENT['seconds']})")
            kind, value = self._conn.recv()
        except (EOFError, OSError):
            code = self._process.wait(timeout=10)
            self._stop()
            raise ReaderCrashed(f"the reader stopped ({describe_exit(code)}) while reading it") from None
        if kind == OK:
            return value
        if kind == RAISE:
            raise value
        self._stop()  # after running out of memory or a bug, a fresh child reads the next document
        if kind == MEMORY:
            raise LimitExceeded(f"reading it needs more than {self.limits.memory_mb:,} MB of memory, the limit "
                                f"({ENVIRONMENT['memory_mb']})")
        raise RuntimeError(f"the document reader failed:\n{value}")

    def close(self) -> None:
        """Stop the child (a later :meth:`run` starts a new one)."""
        self._stop()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self._stop()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown: nothing left to report to
            pass

    def _start(self) -> None:
        self._process, self._conn = spawn("rag.ingest.sandbox")
        self._conn.send(self.limits.memory_mb)
        self.started += 1

    def _stop(self, kill: bool = False) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()  # an idle child reads EOF and exits
        if process is not None:
            if kill:
                process.kill()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


_idle: list[tuple[Sandbox, float]] = []  # children kept after their batch, and since when
_idle_lock = threading.Lock()
_reaper: threading.Thread | None = None


@contextmanager
def borrowed(limits: Limits) -> Iterator[Sandbox]:
    """A :class:`Sandbox` with ``limits`` for one batch: one an earlier batch left (its child
    already started) or a new one. After the batch it is kept for ``IDLE_S`` seconds for the next
    one; after a failure it is closed. Batches running at once each get their own."""
    global _reaper
    with _idle_lock:
        found = next((entry for entry in _idle if entry[0].limits == limits), None)
        if found is not None:
            _idle.remove(found)
    sandbox = found[0] if found is not None else Sandbox(limits)
    try:
        yield sandbox
    except BaseException:
        sandbox.close()
        raise
    with _idle_lock:
        _idle.append((sandbox, time.monotonic()))
        if _reaper is None:  # one thread for the process's life, closing children idle too long
            _reaper = threading.Thread(target=_reap, name="rag-reader-reaper", daemon=True)
            _reaper.start()


def close_idle() -> None:
    """Stop every child kept for a next batch (a program about to measure or end)."""
    with _idle_lock:
        kept = list(_idle)
        _idle.clear()
    for sandbox, _ in kept:
        sandbox.close()


def _reap() -> None:
    while True:
        time.sleep(IDLE_S / 3)
        with _idle_lock:
            expired = [entry for entry in _idle if time.monotonic() - entry[1] > IDLE_S]
            for entry in expired:
                _idle.remove(entry)
        for sandbox, _ in expired:
            sandbox.close()


def _child_main(conn: Connection) -> None:
    """The child: cap the address space, then run what the parent sends until it goes."""
    memory_mb = conn.recv()
    limit = int(memory_mb * MB)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    while True:
        try:
            function, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply = (OK, function(*args))
        except RagError as e:
            reply = (RAISE, e)
        except MemoryError:
            reply = (MEMORY, "")
        except RecursionError:
            reply = (RAISE, LimitExceeded("it nests too deeply for the reader"))
        except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
            reply = (BUG, traceback.format_exc())
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
        except MemoryError:
            conn.send((MEMORY, ""))
        except Exception:  # noqa: BLE001 - a result that cannot be pickled: a bug, reported as one
            conn.send((BUG, traceback.format_exc()))


if __name__ == "__main__":
    _child_main(connect(sys.argv))
