"""Read the generator's hidden states at chosen layers, for a probe (the verifier of trust.py).

llama.cpp names each layer's output tensor ``l_out-<layer>`` in its compute graph and, when a
context is created with an evaluation callback (``llama_context_params.cb_eval``), asks the
callback before computing each tensor whether it wants its data, then hands the data over
(how llama.cpp's own imatrix and eval-callback tools read intermediate tensors). A
:class:`LayerTap` answers "yes" only for the layers it was built for and only while armed, and
keeps the last row of each (the last token of the batch just decoded): after evaluating a prompt,
the hidden state of its last token at each layer.

Disarmed, the callback costs one Python call per graph node and forces nothing to be copied.

Example:
    >>> tap = LayerTap(layers=(14, 20))
    >>> generator = LlamaCppGenerator(path, settings, tap=tap)      # doctest: +SKIP
    >>> with tap.armed():
    ...     generator.next_token_probabilities(messages, ["Yes"])  # doctest: +SKIP
    >>> tap.rows[14].shape                                           # doctest: +SKIP
    (1536,)
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

PREFIX = b"l_out-"


def _ggml() -> ctypes.CDLL:
    """llama-cpp-python's own libggml-base (the one its libllama uses)."""
    import llama_cpp

    lib = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
    lib.ggml_get_name.restype = ctypes.c_char_p
    lib.ggml_get_name.argtypes = [ctypes.c_void_p]
    lib.ggml_nbytes.restype = ctypes.c_size_t
    lib.ggml_nbytes.argtypes = [ctypes.c_void_p]
    lib.ggml_nrows.restype = ctypes.c_int64
    lib.ggml_nrows.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_tensor_get.restype = None
    lib.ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
    return lib


class LayerTap:
    """Keeps the last token's hidden state at ``layers`` while armed (see the module docstring)."""

    def __init__(self, layers: tuple[int, ...]) -> None:
        import llama_cpp

        self.layers = tuple(layers)
        self._wanted = {PREFIX + str(layer).encode(): layer for layer in self.layers}
        self._lib = _ggml()
        self._armed = False
        self.rows: dict[int, np.ndarray] = {}
        # Kept on the instance: ctypes must not free the callback while llama.cpp holds it.
        self.callback = llama_cpp.ggml_backend_sched_eval_callback(self._on_tensor)

    @contextmanager
    def armed(self) -> Iterator[dict[int, np.ndarray]]:
        """Record the layers' rows for the decodes inside the block; yields :attr:`rows`."""
        self.rows = {}
        self._armed = True
        try:
            yield self.rows
        finally:
            self._armed = False

    def install(self, context_params: Any) -> None:
        """Set this tap as the evaluation callback of ``context_params`` (before the context is made)."""
        context_params.cb_eval = self.callback
        context_params.cb_eval_user_data = None

    def _on_tensor(self, tensor: int, ask: bool, _user_data: Any) -> bool:
        if not self._armed:
            return False if ask else True  # returning False when not asked would stop the graph
        layer = self._wanted.get(self._lib.ggml_get_name(tensor))
        if ask:
            return layer is not None
        if layer is not None:
            size = self._lib.ggml_nbytes(tensor)
            rows = self._lib.ggml_nrows(tensor)
            width = size // rows // 4  # float32 rows, n_embd wide
            row = np.empty(width, dtype=np.float32)
            self._lib.ggml_backend_tensor_get(tensor, row.ctypes.data, (rows - 1) * width * 4, width * 4)
            self.rows[layer] = row
        return True
