"""What every benchmark section measures with: timings and their summaries, memory and disk, the
machine's load and busy-loop processes to raise it, the corpora's passages and the seeds index,
and the figures' formats in bench.md."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eval.common import DEV_SETS, SEEDS, percentile

HOTPOT = DEV_SETS["hotpotqa"][1]
K = 10  # results per query where recall@k is measured


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, p95 and count of a list of timings (seconds)."""
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "n": len(values)}


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each exact top-k row found in the approximate top-k row."""
    if approx.shape[0] != exact.shape[0]:
        raise ValueError(f"{approx.shape[0]} approximate rows, {exact.shape[0]} exact rows")
    hits = [len(set(a.tolist()) & set(e.tolist()) - {-1}) / max(1, len(set(e.tolist()) - {-1})) for a, e in zip(approx, exact)]
    return float(np.mean(hits)) if hits else 0.0


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def dir_bytes(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def ratio(project: float, raw: float) -> float | None:
    return round(project / raw, 3) if raw else None


class TimedEmbedder:
    """Wraps an embedder and adds up the seconds spent in ``embed``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.dim = inner.name, inner.dim
        self.seconds = 0.0

    def embed(self, texts: list[str]) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.inner.embed(texts)
        self.seconds += time.perf_counter() - t0
        return out

    def embed_query(self, texts: list[str]) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.inner.embed_query(texts)
        self.seconds += time.perf_counter() - t0
        return out


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load_average()[:1]}] {msg}", flush=True)


def passages(path: Path) -> list[str]:
    """The exact texts ``Index.add`` embeds for ``path``."""
    from rag.core.types import Document
    from rag.ingest.chunking import ChunkConfig, chunk_document, passage_text
    from rag.ingest.loading import load

    docs = [d for d in load([path]) if isinstance(d, Document)]
    return [passage_text(d, c) for d in docs for c in chunk_document(d, ChunkConfig())]


def seeds_index(work: Path) -> Path:
    """An index of the seeds with the real embedder (built once per run)."""
    from rag.search.index import Index

    folder = work / "seeds-index"
    if not folder.exists():
        Index.open(folder).add([SEEDS])
    return folder


BUSY_LOOP = "import sys, time\nend = time.time() + float(sys.argv[1])\nwhile time.time() < end:\n    pass\n"


class Busy:
    """``n`` single-threaded CPU-bound processes, each ending by itself after ``limit_s`` at the latest."""

    def __init__(self, n: int, limit_s: float = 900.0) -> None:
        self.n, self.limit_s, self.procs = n, limit_s, []

    def __enter__(self) -> Busy:
        self.procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(self.limit_s)]) for _ in range(self.n)]
        time.sleep(0.5 if self.n else 0)  # let the scheduler see them before the first question
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


def ms(s: dict[str, float] | None) -> str:
    """A summary's p50 / p95 in milliseconds, for bench.md's tables."""
    return "-" if not s else f"{s['p50'] * 1e3:.2f} / {s['p95'] * 1e3:.2f}"


def sec(s: dict[str, float] | None) -> str:
    """A summary's p50 / p95 in seconds."""
    return "-" if not s else f"{s['p50']:.2f} / {s['p95']:.2f}"


def load_note(section: dict[str, Any]) -> str:
    """The load average a section saw, before -> after, for its heading."""
    return f"load average {section.get('load_before', ['?'])[0]} -> {section.get('load_after', ['?'])[0]}"
