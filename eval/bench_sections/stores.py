"""The stores section: the FAISS store beside Milvus Lite (``--store milvus:PATH.db``) at 10k and
100k chunks of synthetic documents with synthetic vectors (the same on both):
``Index.add_documents`` build time and disk per chunk, ``Index.search`` p50/p95 for dense, BM25 and
hybrid, each store's dense search against its raw engine (``faiss.Index.search``;
``MilvusClient.search`` on the same collection), and recall@10 of dense search against exact search."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from eval.bench_sections.measure import K, dir_bytes, load_note, log, ms, ratio, summary, timed
from eval.bench_sections.synthetic import (
    SyntheticEmbedder,
    perturb,
    query_from,
    synthetic_documents,
    synthetic_vectors,
)
from eval.common import percentile


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import faiss

    from rag.ingest.chunking import ChunkConfig, chunk_document
    from rag.search.index import Index

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    out: dict[str, Any] = {"k": K, "queries": args.store_queries, "rows": []}
    for n in args.store_sizes:
        docs = synthetic_documents(n, seed=n)
        chunk_ids = [c.chunk_id for d in docs for c in chunk_document(d, ChunkConfig())]
        chunk_text = {c.chunk_id: c.text for d in docs for c in chunk_document(d, ChunkConfig())}
        vectors = synthetic_vectors(len(chunk_ids), seed=n)
        rng = np.random.default_rng(n + 1)
        picked = rng.choice(len(chunk_ids), size=args.store_queries, replace=False)
        query_vectors = perturb(vectors[picked], seed=n + 2)
        texts = [query_from(chunk_text[chunk_ids[i]], seed=int(i)) for i in picked]
        exact = np.argsort(-(query_vectors @ vectors.T), axis=1)[:, :K]
        exact_ids = [[chunk_ids[j] for j in row] for row in exact]
        for name in ("faiss", "milvus"):
            log(f"stores n={len(chunk_ids)}: {name}")
            path = work / f"store-{n}-{name}"
            store = "faiss" if name == "faiss" else f"milvus:{work / f'store-{n}.db'}"
            embedder = SyntheticEmbedder()
            embedder.passages = vectors
            embedder.queries = dict(zip(texts, query_vectors))
            index = Index.open(path, store=store, embedder=embedder)
            build_s, _ = timed(lambda: index.add_documents(docs))
            disk = dir_bytes(path) if name == "faiss" else dir_bytes(work / f"store-{n}.db")
            backend: Any = index.backend
            if name == "faiss":
                raw_index = backend._dense._index

                def raw(q: np.ndarray) -> Any:
                    faiss.omp_set_num_threads(1)  # as DenseIndex.search does
                    try:
                        return raw_index.search(q.reshape(1, -1), K)
                    finally:
                        faiss.omp_set_num_threads(os.cpu_count() or 1)
            else:
                client, collection, params = backend._client._client, backend.chunk_collection, backend._search_params

                def raw(q: np.ndarray) -> Any:
                    return client.search(collection, data=[q.tolist()], anns_field="vector", limit=K,
                                         output_fields=["doc_id"], search_params=params)
            for q, text in list(zip(query_vectors, texts))[:10]:  # warm up both paths
                index.search(text, k=K)
                raw(q)
            lat: dict[str, list[float]] = {"dense": [], "bm25": [], "hybrid": [], "store_dense": [], "raw_dense": [],
                                           "engine_hybrid": []}
            engine_hybrid = milvus_hybrid(backend, index.settings.fusion.alpha) if name == "milvus" else None
            found = []
            for i, (q, text) in enumerate(zip(query_vectors, texts)):
                sides = ["store_dense", "raw_dense"][i % 2:] + ["store_dense", "raw_dense"][: i % 2]
                for side in sides:
                    lat[side].append(timed(lambda: backend.dense_search(q, K) if side == "store_dense" else raw(q))[0])
                if engine_hybrid is not None:
                    lat["engine_hybrid"].append(timed(lambda: engine_hybrid(q, text))[0])
                for mode in ("dense", "bm25", "hybrid"):
                    seconds, hits = timed(lambda: index.search(text, k=K, mode=mode))
                    lat[mode].append(seconds)
                    if mode == "dense":
                        found.append([h.chunk_id for h in hits])
            recall = float(np.mean([len(set(f) & set(e)) / K for f, e in zip(found, exact_ids)]))
            row = {"n": len(chunk_ids), "store": name, "build_s": build_s, "disk_bytes_per_chunk": disk / len(chunk_ids),
                   "recall_at_10": recall, **{m: summary(v) for m, v in lat.items() if v},
                   "store_over_raw_p50": ratio(percentile(lat["store_dense"], 50), percentile(lat["raw_dense"], 50))}
            out["rows"].append(row)
            log(f"  build {build_s:.1f} s, recall@10 {recall:.3f}, hybrid p50 {row['hybrid']['p50']*1e3:.1f} ms, "
                f"dense {row['store_dense']['p50']*1e3:.2f} ms vs raw {row['raw_dense']['p50']*1e3:.2f} ms")
            del index, backend, raw
    return out


def milvus_hybrid(backend: Any, alpha: float) -> Callable[[np.ndarray, str], Any]:
    """Milvus's own hybrid search in one call (dense + BM25, ``WeightedRanker``), the engine's
    equivalent of ``Index.search(mode="hybrid")``, which instead fuses with rag.search.retrieval.rank."""
    from pymilvus import AnnSearchRequest, WeightedRanker

    from rag.core.text import tokenize

    client = backend._client._client

    def search(q: np.ndarray, text: str) -> Any:
        requests = [AnnSearchRequest(data=[q.tolist()], anns_field="vector", param=backend._search_params, limit=50),
                    AnnSearchRequest(data=[" ".join(tokenize([text])[0])], anns_field="sparse", param={}, limit=50)]
        return client.hybrid_search(backend.chunk_collection, requests, WeightedRanker(alpha, 1 - alpha), limit=K,
                                    output_fields=["doc_id"])

    return search


def render(s: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    lines += [f"## Stores: FAISS files and Milvus Lite ({load_note(s)})", "",
              f"Synthetic documents (4 chunks each) with synthetic 384-d vectors, the same in both stores; "
              f"{s['queries']} queries, k={s['k']}. Build is `Index.add_documents` with a free embedder; "
              "search is `Index.search` (query embedding free); the engine's own hybrid is Milvus's "
              "`hybrid_search` (dense + BM25 + `WeightedRanker` in one call); dense vs raw is the store's own dense "
              "search against its engine's call on the same index; recall@10 against exact search.", "",
              "| chunks | store | build | disk / chunk | dense p50 / p95 | BM25 p50 / p95 | hybrid p50 / p95 | "
              "engine's own hybrid p50 / p95 | store dense vs raw engine (p50) | recall@10 |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in s["rows"]:
        lines.append(f"| {r['n']:,} | {r['store']} | {r['build_s']:.1f} s | {r['disk_bytes_per_chunk'] / 1024:.1f} KB | "
                     f"{ms(r['dense'])} | {ms(r['bm25'])} | {ms(r['hybrid'])} | {ms(r.get('engine_hybrid'))} | "
                     f"{ms(r['store_dense'])} vs {ms(r['raw_dense'])} ({r['store_over_raw_p50']}) | "
                     f"{r['recall_at_10']:.3f} |")
    return lines
