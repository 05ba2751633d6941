"""What every embedder is: the :class:`EmbeddingModel` protocol, and what the engines share (the
batch and thread settings, the check of a call's texts and its progress bar)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import numpy as np

# Texts per forward pass when indexing. Smaller batches pad less: on 400 HotpotQA passages
# MiniLM encoded 56 / 54 / 52 / 42 / 31 chunks/s at 8 / 16 / 32 / 64 / 128 (eval/bench.py, batch).
DEFAULT_BATCH_SIZE = 16
# Show a progress bar when embedding at least this many texts.
PROGRESS_MIN_TEXTS = 256
# Calls with fewer texts than this (a query) run on one thread.
# subtle: on 2 cores with another process busy, threads wait on each other; one MiniLM query
# took 1.5 s with 2 torch threads and 81 ms with 1 (eval/bench.py, load 7), while idle 2 threads
# save only 2 ms on it (13.5 -> 11 ms). e5-small-q4's OpenMP threads do the same: a query took
# p50/p95 19/26 ms idle and 39/173 ms beside one busy process with 2 threads, 31/34 and 32/38 ms
# with 1. Larger calls gain more from every core when idle (20 sentences for the prompt
# 300 -> 190 ms, 29 passages 490 -> 280 ms with MiniLM; e5 passages 5.2 -> 9.8/s), so they keep them.
SINGLE_THREAD_BELOW = 8


@runtime_checkable
class EmbeddingModel(Protocol):
    """What the index needs from an embedder.

    Asymmetric models embed queries and documents differently (e5's "query: " and
    "passage: " prefixes, EmbeddingGemma's task prompts); symmetric ones make both the same.
    """

    name: str

    @property
    def dim(self) -> int:
        """Dimensions of each vector."""
        ...

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed documents (passages): a float32 array ``(len(texts), dim)`` of unit rows."""
        ...

    def embed_query(self, texts: list[str]) -> np.ndarray:
        """Embed search queries, the same way."""
        ...


def check_texts(texts: list[str]) -> bool:
    """Whether there is anything to embed; a bare string is a caller's mistake, not a list of letters."""
    if isinstance(texts, str):
        raise TypeError("embed() takes a list of strings; wrap a single text in a list")
    return bool(texts)


def show_progress(progress: bool | None, texts: list[str]) -> bool:
    """A progress bar when asked, or by default for inputs of ``PROGRESS_MIN_TEXTS`` or more."""
    return progress if progress is not None else len(texts) >= PROGRESS_MIN_TEXTS


def progress_batches(texts: list[str], batch_size: int, show: bool) -> Iterator[list[str]]:
    """``texts`` in slices of ``batch_size``, with a progress bar counting texts when ``show``."""
    from tqdm import tqdm

    with tqdm(total=len(texts), desc="embedding", unit="text", disable=not show) as bar:
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            yield batch
            bar.update(len(batch))
