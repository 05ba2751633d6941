"""A GGUF model run by llama-cpp-python, in this process or (see rag/generate/process.py) in a child."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.core.cpu import CpuMeter, free_threads
from rag.core.errors import GeneratorError, InvalidInput
from rag.core.types import GenerationStats, Message
from rag.generate import prefix_state
from rag.generate.base import GenerationSettings
from rag.generate.runtime import context_hook, guard

if TYPE_CHECKING:
    from rag.generate.hidden import LayerTap


def _states(moment: str, rows: dict[int, Any]) -> dict[str, tuple[float, ...]]:
    """A tap's rows as GenerationStats.hidden keys them: ``{"prompt L18": (...), ...}``."""
    return {f"{moment} L{layer}": tuple(map(float, row)) for layer, row in rows.items()}


class LlamaCppGenerator:
    """A GGUF model run in-process by llama-cpp-python, decoded greedily by this class.

    The KV cache of the previous call is kept, so the fixed instruction at the start of every
    prompt (:meth:`prime`) is paid for once, and a judge turn appended to an answer's conversation
    costs only its own tokens. Nothing else is reused: a new prompt is evaluated from the end of
    the fixed instruction even when it shares more with the one before (the same first passage),
    because a token evaluated in another batch rounds differently, and an answer must not depend
    on the question asked before it (eval/README.md, "Soak and fault test").
    The decoding loop is ours (not ``create_chat_completion``) so that each reply records its
    prompt token counts and the probability of every token it chose (:class:`GenerationStats`).
    """

    FIRST_CHOICES = 10

    def __init__(
        self, path: Path, settings: GenerationSettings = GenerationSettings(), name: str | None = None,
        meter: CpuMeter | None = None, tap: LayerTap | None = None,
    ) -> None:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise GeneratorError("the llama-cpp backend needs llama-cpp-python: pip install llama-cpp-python") from None
        if not path.is_file():
            raise InvalidInput(f"no GGUF file at {path}")
        self.name = name or path.name
        self.settings = settings
        guard()  # no llama.cpp AMX buffer on CPUs where it crashes (rag/generate/runtime.py)
        # The tap this generator arms itself (hidden_layers); a caller's tap
        # (eval/verifier_collect.py) is armed by the caller.
        self._own_tap: LayerTap | None = None
        if tap is None and settings.hidden_layers:
            from rag.generate.hidden import LayerTap

            tap = self._own_tap = LayerTap(settings.hidden_layers)
        try:
            with context_hook(tap.install if tap else None):  # hidden states for a probe (rag/generate/hidden.py)
                self._llm = Llama(
                    model_path=str(path),
                    n_ctx=settings.context_size,
                    n_threads=settings.threads,
                    n_threads_batch=settings.batch_threads or settings.threads,
                    n_batch=512,
                    verbose=False,
                )
        except ValueError as e:  # llama-cpp-python's only error for a file it cannot load
            raise GeneratorError(f"cannot load the model {path}: {e} (not a GGUF model llama.cpp can read?)") from None
        self._formatter: Any = None
        self._token_ids: dict[str, int] = {}
        self.stats: GenerationStats | None = None
        self.threads = settings.threads
        self._meter = (meter or CpuMeter()) if settings.adapt_threads else None
        self._path = path
        self._primed: list[int] = []  # the fixed instruction's tokens (prime)

    def stream(self, messages: list[Message], max_tokens: int | None = None) -> Iterator[str]:
        import codecs

        import llama_cpp
        import numpy as np

        llm = self._llm
        prompt = self._chat_tokens(messages)
        limit = max_tokens or self.settings.max_tokens
        if len(prompt) + limit > llm.n_ctx():
            raise GeneratorError(
                f"the prompt has {len(prompt)} tokens; with {limit} for the answer that exceeds the context of "
                f"{llm.n_ctx()} (--context-size)"
            )
        self._fit_threads()
        hidden: dict[str, tuple[float, ...]] = {}
        # With hidden_layers, the tap keeps each evaluation's last row at those layers (rag/generate/hidden.py).
        recording: contextlib.AbstractContextManager[dict[int, Any]] = (
            self._own_tap.armed() if self._own_tap else contextlib.nullcontext({}))
        with recording as rows:
            cached = self._evaluate(prompt, new=True)
            hidden.update(_states("prompt", rows))
            rng = np.random.default_rng(0)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            pieces: list[str] = []
            logprobs: list[float] = []
            first: tuple[tuple[str, float], ...] = ()
            try:
                for _ in range(limit):
                    logp = self._logprobs()
                    if self.settings.temperature > 0:
                        p = np.exp(logp / self.settings.temperature)
                        token = int(rng.choice(len(p), p=p / p.sum()))
                    else:
                        token = int(np.argmax(logp))
                    if not first:
                        top = np.argpartition(-logp, self.FIRST_CHOICES)[: self.FIRST_CHOICES]
                        first = tuple(
                            (llm.detokenize([int(t)]).decode("utf-8", "replace"), float(np.exp(logp[t])))
                            for t in sorted(top, key=lambda t: -logp[t])
                        )
                    if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                        break
                    logprobs.append(float(logp[token]))
                    piece = decoder.decode(llm.detokenize([token]))
                    pieces.append(piece)
                    if piece:
                        yield piece
                    llm.eval([token])
                hidden.update(_states("answer", rows))  # the last evaluation's: the answer's last token
            finally:
                self.stats = GenerationStats(len(prompt), cached, tuple(pieces), tuple(logprobs), first, self.threads, hidden)

    def next_token_probabilities(self, messages: list[Message], candidates: Sequence[str]) -> list[float]:
        import numpy as np

        self._evaluate(self._chat_tokens(messages))
        probs = np.exp(self._logprobs())
        return [float(probs[self._first_token(c)]) for c in candidates]

    def prime(self, messages: list[Message]) -> bool:
        """Put ``messages`` (the fixed start of every prompt) in the KV cache, and say whether a
        state saved by an earlier process was used.

        Evaluating the bundled 1.5B's 228 prefix tokens takes seconds; its saved state (6.5 MB,
        keyed to the model file, the llama.cpp version, the context settings and the tokens)
        loads in milliseconds. A state that cannot be read or set is evaluated afresh; one that
        cannot be written is skipped.
        """
        tokens = self._chat_tokens(messages)
        self._primed = tokens
        path = prefix_state.path(self._llm, self._path, tokens)
        if path.is_file() and prefix_state.restore(self._llm, path, tokens):
            return True
        self._evaluate(tokens)
        prefix_state.save(self._llm, path)
        return False

    def _fit_threads(self) -> None:
        """Run this answer on the cores other processes leave free (:mod:`rag.core.cpu`)."""
        if self._meter is None:
            return
        threads = free_threads(self.settings.threads, self._meter.others())
        if threads != self.threads:
            self._llm._ctx.set_n_threads(threads, min(threads, self.settings.batch_threads or threads))
            self.threads = threads

    def _chat_tokens(self, messages: list[Message]) -> list[int]:
        """``messages`` in the model's chat template, tokenised as ``create_chat_completion`` does."""
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            llm = self._llm
            self._formatter = Jinja2ChatFormatter(
                template=llm.metadata["tokenizer.chat_template"],
                eos_token=self._text(llm.token_eos()),
                bos_token=self._text(llm.token_bos()),
            )
        result = self._formatter(messages=messages)
        return self._llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)

    def _evaluate(self, tokens: list[int], new: bool = False) -> int:
        """Evaluate ``tokens`` after the part of the KV cache they may reuse and return its length:
        all they share with it for a turn that continues the last answer's conversation (a judge
        turn), only what they share with the fixed instruction for a ``new`` prompt (see the class
        docstring), so every answer's prompt is evaluated in the same batches whatever came before."""
        llm = self._llm
        cached = _shared(llm._input_ids, tokens)
        if new:
            cached = min(cached, _shared(self._primed, tokens))
        # subtle: at least one token is evaluated, so the logits belong to the end of ``tokens``.
        reused = min(cached, len(tokens) - 1)
        llm.n_tokens = reused
        llm.eval(tokens[reused:])
        return reused

    def _logprobs(self) -> Any:
        """Log-probabilities of the next token after the last evaluated one."""
        import numpy as np

        llm = self._llm
        logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),)).astype(np.float64)
        shifted = logits - logits.max()
        return shifted - np.log(np.exp(shifted).sum())

    def _text(self, token: int) -> str:
        return self._llm._model.token_get_text(token) if token >= 0 else ""

    def _first_token(self, text: str) -> int:
        if text not in self._token_ids:
            self._token_ids[text] = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)[0]
        return self._token_ids[text]


def _shared(a: Iterable[int], b: Iterable[int]) -> int:
    """How many tokens ``a`` and ``b`` start with in common."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def llama_in_child(path: Path, settings: GenerationSettings, name: str) -> LlamaCppGenerator:
    """The llama.cpp generator as the child of a :class:`rag.generate.process.ModelProcess` builds it: the
    parent's CPU time (search, checks) is counted as the answer's own, not as another process
    keeping a core busy (rag/core/cpu.py)."""
    meter = CpuMeter(family=(os.getppid(),))
    return LlamaCppGenerator(path, settings, name=name, meter=meter)
