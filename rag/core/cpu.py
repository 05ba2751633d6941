"""How many cores are free for the model: the thread rule for a shared machine.

llama.cpp's threads wait for each other many times per token. When another process keeps a
core busy, a thread on that core runs only part of the time and the others wait for it: on
2 cores with one busy process beside it, an answer on 2 threads took 2.3x its idle time, on
1 thread 1.9x (eval/README.md, "Busy machine"). So before each answer the generator counts the
cores other processes kept busy since the previous answer and uses the rest, at least one.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

# A reading older than this says nothing about now: sample afresh for FRESH_S seconds.
STALE_S = 10.0
FRESH_S = 0.1
_STAT = Path("/proc/stat")


class CpuMeter:
    """Cores kept busy by other processes between two readings (Linux; None elsewhere).

    ``family``: processes whose CPU time counts as this one's, not as others' (the model
    process of :mod:`rag.generate.process` counts its parent's: the search and the checks of the same
    answers, never run beside the model's threads).
    """

    def __init__(self, family: tuple[int, ...] = ()) -> None:
        self.family = family
        self._last = self._read()

    def _read(self) -> tuple[float, float, float] | None:
        """(monotonic time, CPU seconds busy on the whole machine, CPU seconds of this process
        and its family)."""
        try:
            fields = [int(v) for v in _STAT.read_text().split("\n", 1)[0].split()[1:9]]
        except (OSError, ValueError):
            return None
        # user nice system idle iowait irq softirq steal: idle and iowait are not busy
        ticks = os.sysconf("SC_CLK_TCK")
        busy = (sum(fields) - fields[3] - fields[4]) / ticks
        times = os.times()
        return time.monotonic(), busy, times.user + times.system + sum(_process_ticks(p) for p in self.family) / ticks

    def others(self) -> float | None:
        """Cores other processes kept busy since the last call (a fresh short sample when that
        was long ago); None where /proc/stat cannot be read."""
        last = self._last
        if last is None or time.monotonic() - last[0] > STALE_S:
            last = self._read()
            time.sleep(FRESH_S)
        now = self._read()
        if last is None or now is None:
            return None
        self._last = now
        wall = now[0] - last[0]
        return max(0.0, (now[1] - last[1]) - (now[2] - last[2])) / wall if wall > 0 else None


def _process_ticks(pid: int) -> int:
    """User and system clock ticks of process ``pid`` so far (0 once it is gone)."""
    try:
        # the command name (field 2) may hold spaces and parentheses: count from the last ")"
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime and stime, fields 14 and 15 of the line
    except (OSError, IndexError, ValueError):
        return 0


def free_threads(threads: int, others: float | None, cores: int | None = None) -> int:
    """Threads to use out of ``threads`` when other processes keep ``others`` cores busy."""
    if others is None:
        return threads
    cores = cores or os.cpu_count() or threads
    return max(1, min(threads, round(cores - others)))


M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Keep glibc to ``arenas`` malloc arenas in this process (a long-running server); False where
    this is not glibc.

    glibc gives each new thread its own arena, up to 8 per core, and memory freed in one arena
    is not reused by a thread allocating in another. A server that answers each question in a
    thread of its own grew by about 15 MB per 100 answers that way (resident memory, no Python
    object left behind), and stayed flat over 1,000 answers with 2 arenas
    (eval/README.md, "Soak and fault test"). Arenas made before the call stay; call it at start-up.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None)
    except OSError:
        return False
    return bool(mallopt is not None and mallopt(M_ARENA_MAX, arenas) == 1)
