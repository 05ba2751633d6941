"""Embedding on a Ray cluster: ``rag index --ray [ADDRESS]`` (issue 29).

Embedding is the first wall past one machine (eval/README.md, "Past one machine"). Here only
that step moves: documents are read, cleaned and chunked in this process as always, and the
index decides what is new, changed or removed as always (so incremental, duplicate-free
indexing is unchanged); the passages to embed go to Ray Data, where each worker process loads
the index's embedder once (``map_batches`` with a class, as Ray's batch-inference guide does)
and embeds blocks of passages; the vectors come back in order and are written to the store
(FAISS files on one machine, Milvus for a cluster). Queries are embedded in this process.

Ray is an optional extra (``pip install '.[ray]'``); without it ``--ray`` is a one-line error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rag.core.errors import InvalidInput
from rag.search.embedding import DEFAULT_BATCH_SIZE, EmbeddingModel, embedder_name, load_embedder

# Passages a Ray task embeds at a time: large enough that the task overhead (a few ms) is small
# against the ~0.5 s MiniLM needs for them on one core, small enough to spread over workers.
BLOCK = 256


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InvalidInput("--ray needs Ray: pip install '.[ray]' (into the project's .venv)") from None
    return ray


class _Encode:
    """One Ray worker: the embedder loaded once, then called on each batch of passages."""

    def __init__(self, spec: str, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.model = load_embedder(spec, batch_size=DEFAULT_BATCH_SIZE, progress=False)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        vectors = self.model.embed([str(t) for t in batch["text"]])
        return {"row": batch["row"], "vector": list(vectors)}


class RayEmbedder:
    """An :class:`~rag.search.embedding.EmbeddingModel` whose passages are embedded on a Ray cluster.

    ``address`` is a cluster's address (``ray://HOST:10001``, ``auto``), or None for a local
    Ray started here with ``workers`` processes of ``threads`` threads each (by default one
    worker per CPU Ray reports, one thread each).
    """

    def __init__(self, spec: str, address: str | None = None, workers: int | None = None, threads: int = 1) -> None:
        ray = _ray()
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.spec, self.name, self.threads = spec, embedder_name(spec), threads
        self.workers = workers or max(1, cpus // threads)
        self._local: EmbeddingModel | None = None

    def _here(self) -> EmbeddingModel:
        if self._local is None:
            self._local = load_embedder(self.spec)
        return self._local

    @property
    def dim(self) -> int:
        return self._here().dim

    def embed(self, texts: list[str]) -> np.ndarray:
        """The passages' vectors, embedded by the cluster's workers, in the order of ``texts``."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ray = _ray()
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        dataset = ray.data.from_items([{"row": i, "text": t} for i, t in enumerate(texts)])
        encoded = dataset.map_batches(
            _Encode, fn_constructor_kwargs={"spec": self.spec, "threads": self.threads}, batch_size=BLOCK,
            concurrency=self.workers, num_cpus=self.threads,
        )
        rows = sorted(encoded.iter_rows(), key=lambda r: int(r["row"]))
        return np.stack([np.asarray(r["vector"], dtype=np.float32) for r in rows])

    def embed_query(self, texts: list[str]) -> np.ndarray:
        return self._here().embed_query(texts)
