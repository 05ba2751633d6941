"""Synthetic data at any size: clustered unit vectors with the neighbourhood structure of
sentence embeddings, Zipf-distributed texts, keyword queries drawn from them, documents, and a free
embedder that hands the vectors out, so the index, the stores and retrieval can be measured at
100k-1M chunks without the real model."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

DIM = 384


def synthetic_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """``n`` unit vectors (float32) with the neighbourhood structure of sentence embeddings.

    Uniform random vectors in 384 dimensions have no neighbours at all (every pair is
    nearly orthogonal), which makes approximate search look far worse than on text. Here
    each vector is a topic (about 200 vectors each) plus a sub-topic (about 5) plus noise,
    weighted so the mean cosine to the nearest neighbour is about 0.6, to the 10th about
    0.3 and between random pairs 0, as measured for MiniLM on the HotpotQA passages
    (0.63, 0.32, 0.02).
    """
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((max(2, n // 200), dim), dtype=np.float32) * np.float32(np.sqrt(0.32 / dim))
    leaves = rng.standard_normal((max(2, n // 5), dim), dtype=np.float32) * np.float32(np.sqrt(0.31 / dim))
    leaf_topic = rng.integers(0, len(topics), len(leaves))
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for a in range(0, n, step):
        b = min(n, a + step)
        leaf = rng.integers(0, len(leaves), b - a)
        block = topics[leaf_topic[leaf]] + leaves[leaf]
        block += rng.standard_normal((b - a, dim), dtype=np.float32) * np.float32(np.sqrt(0.37 / dim))
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[a:b] = block
    return out


def perturb(vectors: np.ndarray, seed: int = 1, noise: float = 1.0) -> np.ndarray:
    """Unit vectors near the given ones (cosine about 0.7): queries with a known neighbourhood."""
    rng = np.random.default_rng(seed)
    out = vectors + rng.standard_normal(vectors.shape, dtype=np.float32) * np.float32(noise / np.sqrt(vectors.shape[1]))
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


VOCAB = 50_000


def synthetic_texts(n: int, words: int = 60, seed: int = 0, sentence: int = 15) -> list[str]:
    """``n`` texts of ``words`` Zipf-distributed made-up words, in sentences of ``sentence`` words."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i:x}z" for i in range(VOCAB)], dtype=object)
    p = 1.0 / np.arange(1, VOCAB + 1) ** 1.07
    p /= p.sum()
    out: list[str] = []
    step = 50_000
    for a in range(0, n, step):
        ids = rng.choice(VOCAB, size=(min(n, a + step) - a, words), p=p)
        for row in vocab[ids]:
            parts = [" ".join(row[i : i + sentence]) + "." for i in range(0, words, sentence)]
            out.append(" ".join(w.capitalize() if i == 0 else w for i, w in enumerate(" ".join(parts).split(" "))))
    return out


def query_from(text: str, seed: int, words: int = 4) -> str:
    """A keyword query: ``words`` distinct words picked from ``text``."""
    rng = np.random.default_rng(seed)
    tokens = list(dict.fromkeys(w.strip(".").lower() for w in text.split()))
    picked = rng.choice(len(tokens), size=min(words, len(tokens)), replace=False)
    return " ".join(tokens[i] for i in sorted(picked))



class SyntheticEmbedder:
    """A free embedder: passages get the next rows of a synthetic matrix, known queries their vector.

    Lets the index pipeline and ``Index.search`` run at 100k-1M chunks without the 20+
    minutes the real model would need, so their own overhead is what is measured.
    """

    name = "synthetic"
    dim = DIM

    def __init__(self, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)
        self.queries: dict[str, np.ndarray] = {}
        self.passages: np.ndarray | None = None
        self._next = 0
        self.seconds = 0.0

    def embed(self, texts: list[str]) -> np.ndarray:
        t0 = time.perf_counter()
        if texts and all(t in self.queries for t in texts):
            out = np.stack([self.queries[t] for t in texts])
        elif self.passages is not None and self._next + len(texts) <= len(self.passages):
            out = self.passages[self._next : self._next + len(texts)]
            self._next += len(texts)
        else:
            out = synthetic_vectors(len(texts), seed=int(self._rng.integers(1 << 30)))
        self.seconds += time.perf_counter() - t0
        return out

    embed_query = embed


def synthetic_documents(chunks: int, seed: int = 0) -> list[Any]:
    """Documents of 330 words (4 chunks of the default 120/30 words each)."""
    from rag.core.types import Document

    n_docs = max(1, chunks // 4)
    texts = synthetic_texts(n_docs, words=330, seed=seed)
    return [Document(id=f"syn{i}", title=f"Synthetic {i}", text=t, source="synthetic") for i, t in enumerate(texts)]
