"""What every generator shares: its settings, its interface, and the judge's."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from rag.core import defaults
from rag.core.errors import GeneratorError, InvalidInput
from rag.core.types import GenerationStats, Message


@dataclass(frozen=True)
class GenerationSettings:
    """Runtime settings shared by every backend."""

    threads: int = defaults.THREADS
    # threads for prompt processing (llama.cpp's n_threads_batch); None: the same as ``threads``
    batch_threads: int | None = None
    # before each answer, use only the cores other processes leave free (rag/core/cpu.py); a
    # --threads given on the command line turns this off
    adapt_threads: bool = True
    context_size: int = defaults.CONTEXT_SIZE
    max_tokens: int = defaults.MAX_TOKENS
    temperature: float = 0.0
    # run a llama.cpp model in a supervised child process (rag/generate/process.py): a crash in native
    # code costs the answer it was writing, and the next question gets a restarted model
    process: bool = False
    # with ``process``: a call to the model (an answer, a judge turn) running longer is cut off
    time_limit_s: float | None = None
    # llama.cpp: the layers whose last-token hidden state each answer keeps, at the prompt's end
    # and at the answer's last token (GenerationStats.hidden), for the fitted verifier's probes
    # (rag/answer/verifier.py); the assistant sets them from rag/answer/verifier-probe.json
    hidden_layers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise InvalidInput(f"threads must be >= 1, got {self.threads}")
        if self.batch_threads is not None and self.batch_threads < 1:
            raise InvalidInput(f"batch threads must be >= 1, got {self.batch_threads}")
        if self.context_size < 256:
            raise InvalidInput(f"context size must be >= 256 tokens, got {self.context_size}")
        if self.max_tokens < 1:
            raise InvalidInput(f"max answer length must be >= 1 token, got {self.max_tokens}")
        if self.time_limit_s is not None and not self.time_limit_s > 0:
            raise InvalidInput(f"the model's time limit must be > 0 seconds, got {self.time_limit_s}")


@runtime_checkable
class Generator(Protocol):
    """Anything that streams a completion for chat messages: the one thing every backend does.

    What else a backend can do, the assistant asks with ``isinstance`` against the protocols below,
    never with ``getattr``: :class:`Primes` (a cached start of every prompt), :class:`KeepsStats`
    (what the last reply cost, its token probabilities and hidden states: the trust score reads
    them), :class:`Serves` (a server's bundled model, scored as that model) and :class:`Scorer`
    (next-token probabilities: the judge).
    """

    name: str

    def stream(self, messages: list[Message], max_tokens: int | None = None) -> Iterator[str]:
        """Yield the reply to ``messages`` piece by piece."""
        ...


@runtime_checkable
class Primes(Protocol):
    """A generator that keeps the fixed start of every prompt in its cache (llama.cpp): the assistant primes it once."""

    def prime(self, messages: list[Message]) -> bool:
        """Put ``messages`` in the cache; whether a state saved by an earlier process was used."""
        ...


@runtime_checkable
class KeepsStats(Protocol):
    """A generator that records what its last reply cost: prompt tokens, the probability of each
    token, and (llama.cpp with ``hidden_layers``) hidden states. Without it an answer gets no trust score."""

    stats: GenerationStats | None


@runtime_checkable
class Serves(Protocol):
    """A client of a server that serves a bundled model under that model's name (rag.generate.remote):
    its answers are scored as that model's."""

    serves: str | None


def as_messages(prompt: str | list[Message]) -> list[Message]:
    """A plain prompt becomes one user message (what the bundled models follow best)."""
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt


@runtime_checkable
class Scorer(Protocol):
    """A generator that can read its next-token distribution: the judge of :mod:`rag.answer.judging`."""

    def next_token_probabilities(self, messages: list[Message], candidates: Sequence[str]) -> list[float]:
        """For each candidate, the probability that the reply to ``messages`` starts with its first token."""
        ...


class ScoresUnavailable(GeneratorError):
    """The backend cannot read next-token probabilities (a server without logprobs)."""
