"""Generators that a :class:`rag.generate.process.ModelProcess` builds in its child process (tests/test_engine.py).

They live in a module of their own, importable by a fresh interpreter, and import nothing heavy.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from rag.core.errors import InvalidInput
from rag.core.types import GenerationStats


class ChildGenerator:
    """Streams ``reply`` word by word, ``pause`` seconds apart, like the llama.cpp generator:
    statistics after each stream, judge probabilities, a primed prefix.

    A question containing "segfault" makes the process kill itself with SIGSEGV after the first
    word (a crash in native code); "crash first" makes it do so before any word (and before any
    judge probability); "crash once MARKER" does that only while the file MARKER does not exist
    (creating it), so the next child answers; "bad input" raises :class:`InvalidInput` before any word.
    ``load_s`` is how long building the generator takes (loading a model).
    """

    def __init__(self, reply: str = "The Miller bakery won the prize [1].", pause: float = 0.0, load_s: float = 0.0) -> None:
        time.sleep(load_s)
        self.name = "child"
        self.reply = reply
        self.pause = pause
        self.primed: list[dict[str, str]] | None = None
        self.stats: GenerationStats | None = None

    def stream(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> Iterator[str]:
        question = messages[-1]["content"]
        if "bad input" in question:
            raise InvalidInput("the fake model refuses this input")
        _crash_before_answering(question)
        words = self.reply.split(" ")[: max_tokens or None]
        sent: list[str] = []
        try:
            for i, word in enumerate(words):
                time.sleep(self.pause)
                sent.append(word + " ")
                yield word + " "
                if i == 0 and "segfault" in question:
                    os.kill(os.getpid(), signal.SIGSEGV)
        finally:
            # the primed messages stand for the cached prefix, as in the llama.cpp generator
            self.stats = GenerationStats(prompt_tokens=len(question.split()), cached_tokens=len(self.primed or ()),
                                         tokens=tuple(sent), token_logprobs=tuple(-0.1 for _ in sent), threads=1)

    def next_token_probabilities(self, messages: list[dict[str, str]], candidates: Sequence[str]) -> list[float]:
        _crash_before_answering(messages[-1]["content"])
        return [0.9 if c == "Yes" else 0.1 / len(candidates) for c in candidates]

    def prime(self, messages: list[dict[str, str]]) -> bool:
        self.primed = list(messages)
        return False


def _crash_before_answering(question: str) -> None:
    if "crash first" in question:
        os.kill(os.getpid(), signal.SIGSEGV)
    if "crash once " in question:
        marker = Path(question.split("crash once ", 1)[1].split()[0])
        if not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)


def child_generator(reply: str = "The Miller bakery won the prize [1].", pause: float = 0.0, load_s: float = 0.0) -> ChildGenerator:
    return ChildGenerator(reply, pause, load_s)


def crashing_generator() -> ChildGenerator:
    """A model whose process crashes while it loads (a bad build on this CPU)."""
    os.kill(os.getpid(), signal.SIGSEGV)
    raise AssertionError("unreachable")


def failing_generator() -> ChildGenerator:
    from rag.core.errors import GeneratorError

    raise GeneratorError("cannot load the model /nowhere.gguf")
