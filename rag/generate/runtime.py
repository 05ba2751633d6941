"""How llama.cpp is loaded here, decided in one place for every x86-64 CPU.

llama.cpp may move a model's weights into "extra" buffer types at load time: its AMX buffer
on Intel Xeons with AMX (Sapphire Rapids and later), else its CPU_REPACK buffer (weights
interleaved for the AVX2/AVX-512 kernels). On an AMX CPU, a natively built llama-cpp-python
0.3.36 repacks Q4_K_M weights into the AMX buffer and crashes in ``ggml_backend_amx_mul_mat``
at the first decode (SIGSEGV or SIGILL): open upstream as ggml-org/llama.cpp issue 20824,
reported by ollama users on AWS m7i too. The model loads and answers without the extra buffer
types (``llama_model_params.use_extra_bufts = False``), and there is no switch for the AMX
buffer alone. Measured on one Xeon with three builds (eval/README.md, "Every x86-64 CPU"):
the native build with them on crashes (SIGILL); a build without AMX using the AVX-512 kernels
was slower with CPU_REPACK (prefill x0.60, decode x0.95); a build limited to AVX2 was faster
with it (prefill x1.12, decode x1.17). So :func:`extra_buffers_allowed` allows them only on
CPUs with neither AMX nor AVX-512, where they are safe and pay.

``Llama()`` does not pass ``use_extra_bufts`` through, so :func:`guard` wraps llama-cpp-python's
``llama_model_default_params`` (what ``Llama.__init__`` starts from) to set it. Everything in
this project that loads llama.cpp calls :func:`guard` first: the generator
(:mod:`rag.generate.llamacpp`), the benchmarks, and ``python -m rag.generate.runtime server ...``, which runs
llama-cpp-python's OpenAI-compatible server with the same protection.

Example:
    >>> from rag.generate.runtime import guard
    >>> guard()                          # then llama_cpp.Llama(...) as usual   # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")
# Any of these flags means llama.cpp's AMX buffer type would be used.
AMX_FLAGS = frozenset({"amx_int8", "amx_tile", "amx_bf16"})
# Forces the decision ("1" allows extra buffer types, "0" forbids them): for measuring them, or
# for a CPU this rule gets wrong. Unset: decided by the CPU.
OVERRIDE_ENV = "RAG_LLAMA_EXTRA_BUFFERS"
# A CPU with any of these runs llama.cpp's AVX-512 kernels, where CPU_REPACK was slower.
AVX512_FLAGS = frozenset({"avx512f"})

_lock = threading.Lock()


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The feature flags of the first CPU listed in ``cpuinfo`` (empty where it cannot be read)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def extra_buffers_allowed(cpuinfo: Path = CPUINFO) -> bool:
    """Whether llama.cpp may load weights into its extra buffer types on this machine: not on a
    CPU with AMX (the crash above) nor with AVX-512 (slower), yes elsewhere (AVX2: faster);
    ``$RAG_LLAMA_EXTRA_BUFFERS`` (0 or 1) overrides."""
    forced = os.environ.get(OVERRIDE_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return not (cpu_flags(cpuinfo) & (AMX_FLAGS | AVX512_FLAGS))


def guard(cpuinfo: Path = CPUINFO) -> bool:
    """Make every ``llama_cpp.Llama`` loaded in this process from now on use extra buffer types
    only where :func:`extra_buffers_allowed`; returns that decision. Safe to call repeatedly
    (the decision is re-read each time, the wrapper installed once)."""
    import llama_cpp
    import llama_cpp.llama_cpp as native

    allowed = extra_buffers_allowed(cpuinfo)
    with _lock:
        current = native.llama_model_default_params
        original = getattr(current, "rag_original", current)

        def default_params() -> Any:
            params = original()
            params.use_extra_bufts = allowed
            return params

        default_params.rag_original = original  # type: ignore[attr-defined]
        default_params.rag_extra_buffers = allowed  # type: ignore[attr-defined]
        # Llama.__init__ reads the submodule's name; the package re-exports it under its own.
        native.llama_model_default_params = default_params
        llama_cpp.llama_model_default_params = default_params
    return allowed


@contextmanager
def context_hook(hook: Callable[[Any], None] | None) -> Iterator[None]:
    """Within the block, every ``llama_cpp.Llama`` created passes its context parameters through
    ``hook`` before making its context (``Llama()`` has no argument for the evaluation callback
    that :class:`rag.generate.hidden.LayerTap` needs). ``None``: nothing changes."""
    if hook is None:
        yield
        return
    import llama_cpp.llama_cpp as native

    with _lock:
        original = native.llama_context_default_params

        def default_params() -> Any:
            params = original()
            hook(params)
            return params

        native.llama_context_default_params = default_params
        try:
            yield
        finally:
            native.llama_context_default_params = original


def describe() -> str:
    """One line on how llama.cpp runs here, for logs and the smoke check."""
    flags = cpu_flags()
    amx = "with AMX" if flags & AMX_FLAGS else "without AMX"
    buffers = "on" if extra_buffers_allowed() else "off"
    return f"CPU {_cpu_model()} ({amx}); llama.cpp extra buffer types (weight repacking) {buffers}"


def _cpu_model() -> str:
    try:
        for line in CPUINFO.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return "unknown"


def serve_main(argv: list[str]) -> None:
    """``python -m llama_cpp.server ARGS``, with :func:`guard` applied first."""
    import runpy

    guard()
    sys.argv = ["llama_cpp.server", *argv]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    if sys.argv[1:2] != ["server"]:
        raise SystemExit("usage: python -m rag.generate.runtime server [llama_cpp.server options]")
    serve_main(sys.argv[2:])
