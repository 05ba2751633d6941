"""Crash-safe storage for an index directory.

An index directory holds numbered generations and a ``CURRENT`` file naming the live
one::

    .rag/index/
      CURRENT          "gen-000003"
      gen-000003/      manifest.json, documents.jsonl, chunks.npy, vectors.npy, dense.faiss, bm25/
      .lock

A write builds a complete new generation in a temporary folder, renames it into place
and then replaces ``CURRENT`` with ``os.replace`` (atomic on POSIX). Until that last
step readers see the previous generation, so a crash or SIGKILL at any point leaves the
index as it was. Older generations are deleted after the switch. One writer at a time
is enforced with an advisory lock.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rag.stores.base import IndexBusyError

CURRENT = "CURRENT"
_GENERATION = re.compile(r"gen-(\d{6,})")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for file in path.rglob("*"):
        if file.is_file():
            with open(file, "rb") as f:
                os.fsync(f.fileno())
    for folder in [path, *[p for p in path.rglob("*") if p.is_dir()]]:
        _fsync_dir(folder)


class GenerationStore:
    """Reads and atomically replaces the live generation of one index directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def current(self) -> Path | None:
        """The live generation folder, or None when nothing was ever committed."""
        pointer = self.root / CURRENT
        if not pointer.is_file():
            return None
        name = pointer.read_text().strip()
        if not _GENERATION.fullmatch(name):
            raise ValueError(f"{pointer} names '{name}', which is not a generation")
        return self.root / name

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """Hold the index's writer lock; raise :class:`IndexBusyError` if another process has it."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as lock:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise IndexBusyError(
                    f"another process is updating the index at {self.root}; try again when it is done"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def commit(self, write: Callable[[Path], None]) -> Path:
        """Write a new generation with ``write(folder)`` and make it the live one."""
        self.root.mkdir(parents=True, exist_ok=True)
        # Number past every generation folder, not just the live one: a rebuild may be
        # replacing an index whose CURRENT is unreadable.
        numbers = [int(m[1]) for p in self.root.iterdir() if (m := _GENERATION.fullmatch(p.name))]
        number = max(numbers, default=0) + 1
        final = self.root / f"gen-{number:06d}"
        tmp = self.root / f".tmp-{final.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)  # left by a crash before CURRENT moved
        tmp.mkdir()
        try:
            write(tmp)
            _fsync_tree(tmp)
            os.rename(tmp, final)
            pointer_tmp = self.root / f".{CURRENT}.tmp-{os.getpid()}"
            with open(pointer_tmp, "w") as f:
                f.write(final.name)
                f.flush()
                os.fsync(f.fileno())
            os.replace(pointer_tmp, self.root / CURRENT)
            _fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._collect(keep=final)
        return final

    def collect(self) -> None:
        """Delete what a killed writer left behind (old generations, temporary folders).

        Call with the writer lock held; the live generation is never touched.
        """
        try:
            live = self.current()
        except (OSError, ValueError):
            return
        if live is not None and live.is_dir():
            self._collect(keep=live)

    def _collect(self, keep: Path) -> None:
        """Delete generations and temporary folders other than ``keep``."""
        for entry in self.root.iterdir():
            if entry == keep or not entry.is_dir():
                continue
            if _GENERATION.fullmatch(entry.name) or entry.name.startswith(".tmp-gen-"):
                shutil.rmtree(entry, ignore_errors=True)
