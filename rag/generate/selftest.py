"""``rag selftest``: one short real answer from a model in its own process, so a machine where
llama.cpp crashes or computes nonsense fails with one line before anything else runs."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from rag.core.errors import GeneratorError
from rag.generate.base import GenerationSettings
from rag.generate.process import ModelProcess
from rag.generate.registry import load_generator
from rag.generate.runtime import describe

SMOKE_QUESTION = "What is the capital of France? Answer in one word."
SMOKE_ANSWER = "paris"
SMOKE_TIME_LIMIT_S = 300.0  # loading included; a healthy 2-core machine needs under 10 s


def smoke_test(model: str, settings: Any = None) -> str:
    """Load ``model`` in its own process, decode a few tokens of a question every bundled model
    gets right, and return one line saying how it went; raise :class:`GeneratorError` with one
    line when the model crashes, cannot load, or answers nonsense (miscomputed on this CPU).
    ``make test`` runs it first (``rag selftest``), so such a machine fails with that line."""
    base = settings or GenerationSettings()
    settings = replace(base, process=True, time_limit_s=base.time_limit_s or SMOKE_TIME_LIMIT_S)
    started = time.perf_counter()
    try:
        generator = load_generator(model, settings)
        if not isinstance(generator, ModelProcess):
            raise GeneratorError(f"{model} is not run by llama.cpp: nothing to check")
        generator.restart = False
        try:
            text = "".join(generator.stream([{"role": "user", "content": SMOKE_QUESTION}], max_tokens=8))
        finally:
            generator.close()
    except GeneratorError as e:
        raise GeneratorError(f"{model} cannot answer on this machine: {e}; {describe()}") from None
    if SMOKE_ANSWER not in text.lower():
        raise GeneratorError(f"{model} answered {text.strip()!r} to {SMOKE_QUESTION!r}: llama.cpp computes "
                             f"nonsense on this machine; {describe()}")
    return f"{model} answers in its own process ({text.strip()!r} in {time.perf_counter() - started:.1f} s with loading); {describe()}"
