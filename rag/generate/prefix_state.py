"""The KV state after a prompt's fixed prefix, saved across processes (:meth:`rag.generate.llamacpp.LlamaCppGenerator.prime`).

Evaluating the bundled 1.5B's 228 prefix tokens takes seconds; its saved state (6.5 MB) loads in
milliseconds. ``llm`` is a ``llama_cpp.Llama``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from rag.core.bundled import data_dir


def path(llm: Any, model_path: Path, tokens: list[int]) -> Path:
    """Where the state after ``tokens`` is kept: keyed to the model file, the llama.cpp version,
    the context settings and the tokens."""
    import llama_cpp

    stat = model_path.stat()
    key = hashlib.sha256(
        json.dumps([model_path.name, stat.st_size, stat.st_mtime_ns, llama_cpp.__version__,
                    llm.n_ctx(), llm.n_batch, tokens]).encode()
    ).hexdigest()[:24]
    return data_dir() / "cache" / f"prefix-{key}.state"


def restore(llm: Any, path: Path, tokens: list[int]) -> bool:
    """Set ``llm``'s KV cache from ``path``; False (nothing cached) if it cannot be read or set."""
    import ctypes

    import llama_cpp

    try:
        data = path.read_bytes()
    except OSError:
        return False
    buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    if llama_cpp.llama_state_set_data(llm._ctx.ctx, buffer, len(data)) != len(data):
        llm.n_tokens = 0  # nothing cached: the next evaluation starts from scratch
        return False
    llm.input_ids[: len(tokens)] = tokens
    llm.n_tokens = len(tokens)
    return True


def save(llm: Any, path: Path) -> None:
    """Write ``llm``'s state to ``path``, whole or not at all; skipped where it cannot be written."""
    import ctypes

    import llama_cpp

    ctx = llm._ctx.ctx
    size = llama_cpp.llama_state_get_size(ctx)
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_get_data(ctx, buffer, size)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(ctypes.string_at(buffer, written))
        os.replace(partial, path)  # whole or absent, whatever process reads it
    except OSError:
        pass  # a read-only data directory: the next start evaluates the prefix again
