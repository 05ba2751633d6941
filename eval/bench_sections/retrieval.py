"""The retrieval section: synthetic clustered 384-d unit vectors and Zipf-distributed synthetic texts
at 1k..1M chunks: FAISS flat / HNSW / IVF build, save size, load time, query latency through
``DenseIndex.search`` against ``faiss.Index.search`` on the same index, recall@10 against flat;
BM25 build/size/load/latency against bm25s given pre-tokenised terms; ``Index.search`` latency
for dense, BM25 and hybrid."""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eval.bench_sections.measure import (
    K,
    dir_bytes,
    load_note,
    log,
    median,
    ms,
    ratio,
    recall_at_k,
    rss_bytes,
    summary,
    timed,
)
from eval.bench_sections.synthetic import (
    SyntheticEmbedder,
    perturb,
    query_from,
    synthetic_texts,
    synthetic_vectors,
)
from eval.common import SEEDS_GOLD, percentile, read_jsonl


def _sweep(index: Any, queries: np.ndarray, exact_ids: np.ndarray | None, set_value: Callable[[int], None],
           values: Sequence[int], name: str) -> list[dict[str, Any]]:
    """Recall@10 (against flat) and ``DenseIndex.search`` latency for each value of one search knob."""
    rows = []
    for value in values:
        set_value(value)
        lat, ids = [], []
        for q in queries:
            seconds, hits = timed(lambda: index.search(q, K))
            lat.append(seconds)
            ids.append([r for r, _ in hits] + [-1] * (K - len(hits)))
        rows.append({name: value, "project": summary(lat),
                     "recall_at_10": recall_at_k(np.array(ids), exact_ids) if exact_ids is not None else None})
        log(f"{name} {value}: p50 {rows[-1]['project']['p50']*1e3:.3f}ms recall {rows[-1]['recall_at_10']}")
    return rows


def nprobe_sweep(index: Any, queries: np.ndarray, exact_ids: np.ndarray | None) -> list[dict[str, Any]]:
    """IVF: lists searched (``nprobe``) of ``nlist``."""
    raw = index._index
    chosen = raw.nprobe
    values = [v for v in (8, 16, 32, 64, 128, 256) if v <= raw.nlist]
    rows = _sweep(index, queries, exact_ids, lambda v: setattr(raw, "nprobe", v), values, "nprobe")
    raw.nprobe = chosen
    return [{**r, "nlist": raw.nlist} for r in rows]


def ef_search_sweep(index: Any, queries: np.ndarray, exact_ids: np.ndarray | None) -> list[dict[str, Any]]:
    """HNSW: candidate list size (``efSearch``)."""
    raw = index._index
    chosen = raw.hnsw.efSearch
    rows = _sweep(index, queries, exact_ids, lambda v: setattr(raw.hnsw, "efSearch", v),
                  (16, 32, 64, 128, 256, 512), "ef_search")
    raw.hnsw.efSearch = chosen
    return rows


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import faiss

    from rag.core.types import Chunk, Document
    from rag.search.index import Index
    from rag.stores.dense import DenseIndex, resolve_kind
    from rag.stores.faiss_store import FaissBackend
    from rag.stores.sparse import BM25Index, tokenize

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    out: dict[str, Any] = {"k": K, "queries": args.queries, "dense": [], "bm25": [], "index": []}
    for n in args.sizes:
        log(f"retrieval n={n}: data")
        vectors = synthetic_vectors(n, seed=n)
        rng = np.random.default_rng(n + 1)
        # Fewer queries at 1M: exact search there takes ~0.1 s a query, twice (project and raw).
        qrows = rng.choice(n, size=args.queries if n < 1_000_000 else args.queries // 2, replace=n < args.queries)
        queries = perturb(vectors[qrows], seed=n + 2)
        keep: DenseIndex | None = None
        exact_ids: np.ndarray | None = None
        kinds = ["flat", "hnsw", "ivf"] if n <= args.hnsw_max else ["flat", "ivf"]
        for kind in kinds:
            builds = []
            for _ in range(args.repeats if n <= 10_000 else 1):
                rss0 = rss_bytes()
                seconds, index = timed(lambda: DenseIndex.build(vectors, kind))
                rss_delta = rss_bytes() - rss0
                builds.append(seconds)
            file = work / f"dense-{n}-{kind}.faiss"
            index.save(file)
            size = dir_bytes(file)
            loads = [timed(lambda: DenseIndex.load(file, kind))[0] for _ in range(args.repeats)]
            file.unlink()
            raw = index._index
            project_lat, raw_lat, raw1_lat, project_ids = [], [], [], []

            def raw_one_thread(q: np.ndarray) -> Any:
                faiss.omp_set_num_threads(1)
                try:
                    return raw.search(q.reshape(1, -1), K)
                finally:
                    faiss.omp_set_num_threads(os.cpu_count() or 1)

            for q in queries[: min(20, len(queries))]:  # warm caches on both paths
                index.search(q, K)
                raw.search(q.reshape(1, -1), K)
            for i, q in enumerate(queries):
                # Rotate which of the three goes first: a later search of the same query finds
                # the index pages it touches already in the CPU cache.
                timings: dict[str, float] = {}
                order = ["project", "raw", "raw1"][i % 3:] + ["project", "raw", "raw1"][: i % 3]
                for side in order:
                    if side == "project":
                        timings[side], hits = timed(lambda: index.search(q, K))
                    elif side == "raw":
                        timings[side] = timed(lambda: raw.search(q.reshape(1, -1), K))[0]
                    else:
                        timings[side] = timed(lambda: raw_one_thread(q))[0]
                project_lat.append(timings["project"])
                raw_lat.append(timings["raw"])
                raw1_lat.append(timings["raw1"])
                project_ids.append([r for r, _ in hits] + [-1] * (K - len(hits)))
            ids = np.array(project_ids)
            if kind == "flat":
                exact_ids = ids
            row = {
                "n": n, "kind": kind, "build_s": median(builds), "build_repeats": len(builds),
                "open_s": median(loads), "file_bytes_per_chunk": size / n, "build_rss_bytes_per_chunk": rss_delta / n,
                "project": summary(project_lat), "raw": summary(raw_lat), "raw_1_thread": summary(raw1_lat),
                "ratio_p50": ratio(percentile(project_lat, 50), min(percentile(raw_lat, 50), percentile(raw1_lat, 50))),
                "recall_at_10": 1.0 if kind == "flat" else recall_at_k(ids, exact_ids),
            }
            if kind == "ivf":
                row["nprobe_sweep"] = nprobe_sweep(index, queries, exact_ids)
            if kind == "hnsw":
                row["ef_search_sweep"] = ef_search_sweep(index, queries, exact_ids)
            out["dense"].append(row)
            log(f"dense {n} {kind}: build {row['build_s']:.2f}s p50 {row['project']['p50']*1e3:.3f}ms "
                f"raw {row['raw']['p50']*1e3:.3f}ms recall {row['recall_at_10']:.3f}")
            if kind == resolve_kind("auto", n) or (kind == "flat" and keep is None):
                keep = index  # what Index.search uses at this size
            del index, raw

        if n > args.bm25_max:
            log(f"retrieval n={n}: BM25 and Index.search skipped (--bm25-max {args.bm25_max})")
            continue
        log(f"retrieval n={n}: texts")
        texts = synthetic_texts(n, seed=n)
        text_queries = [query_from(texts[r], seed=i) for i, r in enumerate(qrows)]
        rss0 = rss_bytes()
        bm25_build, bm25 = timed(lambda: BM25Index.build(texts))
        bm25_rss = rss_bytes() - rss0
        folder = work / f"bm25-{n}"
        bm25.save(folder)
        bm25_size = dir_bytes(folder)
        bm25_loads = [timed(lambda: BM25Index.load(folder))[0] for _ in range(args.repeats)]
        shutil.rmtree(folder)
        retriever = bm25._retriever
        terms = [bm25._terms(q) for q in text_queries]
        project_lat, raw_lat = [], []
        for i, (q, t) in enumerate(zip(text_queries, terms)):
            def engine() -> Any:
                return retriever.retrieve([t], k=K, show_progress=False, n_threads=0)

            if i % 2:
                raw_lat.append(timed(engine)[0])
                project_lat.append(timed(lambda: bm25.search(q, K))[0])
            else:
                project_lat.append(timed(lambda: bm25.search(q, K))[0])
                raw_lat.append(timed(engine)[0])
        tok_lat = [timed(lambda: tokenize([q]))[0] for q in text_queries]
        row = {
            "n": n, "build_s": bm25_build, "open_s": median(bm25_loads), "file_bytes_per_chunk": bm25_size / n,
            "build_rss_bytes_per_chunk": bm25_rss / n, "project": summary(project_lat), "raw": summary(raw_lat),
            "tokenize_query": summary(tok_lat),
            "ratio_p50": ratio(percentile(project_lat, 50), percentile(raw_lat, 50)),
        }
        out["bm25"].append(row)
        log(f"bm25 {n}: build {bm25_build:.2f}s p50 {row['project']['p50']*1e3:.3f}ms raw {row['raw']['p50']*1e3:.3f}ms")

        # Index.search over an in-memory index holding the same vectors and texts.
        fake = SyntheticEmbedder()
        fake.queries = {q: v for q, v in zip(text_queries, queries)}
        backend = FaissBackend(work / f"mem-{n}")
        index = Index._new(work / f"mem-{n}", backend, fake, None, "auto")
        docs = {f"d{i}": Document(id=f"d{i}", title=f"Synthetic {i}", text=t) for i, t in enumerate(texts)}
        backend._docs = docs
        backend._chunks = [Chunk(f"d{i}#0", f"d{i}", 0, len(t), t) for i, t in enumerate(texts)]
        backend._vectors, backend._dense, backend._bm25 = vectors, keep, bm25
        lat: dict[str, list[float]] = {"dense": [], "bm25": [], "hybrid": []}
        for q in text_queries[:10]:
            index.search(q, k=4, mode="hybrid")
        for q in text_queries:
            for mode in lat:
                lat[mode].append(timed(lambda: index.search(q, k=4, mode=mode))[0])
        row = {"n": n, "dense_kind": keep.kind, **{m: summary(v) for m, v in lat.items()}}
        row["hybrid_over_parts_p50"] = ratio(row["hybrid"]["p50"], row["dense"]["p50"] + row["bm25"]["p50"])
        out["index"].append(row)
        log(f"Index.search {n}: " + ", ".join(f"{m} {row[m]['p50']*1e3:.2f}ms" for m in lat))
        del index, docs, texts, bm25, keep, vectors
    if not args.query_embedding:
        return out
    # The query embedding that dense and hybrid search add on a real index.
    from rag.search.embedding import Embedder

    embedder = Embedder()
    embedder.embed(["warm up"])
    questions = [g["question"] for g in read_jsonl(SEEDS_GOLD)]
    out["query_embedding"] = summary([timed(lambda: embedder.embed([q]))[0] for q in questions])
    return out



def _sweep_table(rows: list[dict[str, Any]], key: str, knob: str, caption: str) -> list[str]:
    sweeps = [r for r in rows if r.get(key)]
    if not sweeps:
        return []
    values = sorted({x[knob] for r in sweeps for x in r[key]})
    lines = ["", caption + ":", "", "| chunks | " + " | ".join(f"{knob} {v}" for v in values) + " |",
             "|---|" + "---|" * len(values)]
    for r in sweeps:
        found = {x[knob]: x for x in r[key]}
        cells = [f"{found[v]['recall_at_10']:.3f}, {found[v]['project']['p50'] * 1e3:.2f} ms" if v in found else "-"
                 for v in values]
        lines.append(f"| {r['n']:,} | " + " | ".join(cells) + " |")
    return lines


def render(s: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    lines += [f"## Retrieval at scale ({load_note(s)})", "",
              f"Synthetic clustered 384-d unit vectors and Zipf texts (60 words); {s['queries']} queries per size, "
              f"k={s['k']}; latency p50 / p95 in ms. 'project' is `DenseIndex.search`, 'raw' is "
              "`faiss.Index.search` on the same index object with FAISS's default threads (all cores) and "
              "with one OpenMP thread, timed alternately per query; the ratio is against the faster raw figure.", "",
              "| chunks | FAISS index | build | open | file per chunk | project p50 / p95 | raw p50 / p95 | raw, 1 thread | ratio (p50) | recall@10 vs flat |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in s["dense"]:
        lines.append(f"| {r['n']:,} | {r['kind']} | {r['build_s']:.2f} s | {r['open_s'] * 1e3:.1f} ms | "
                     f"{r['file_bytes_per_chunk']:,.0f} B | {ms(r['project'])} | {ms(r['raw'])} | "
                     f"{ms(r.get('raw_1_thread'))} | {r['ratio_p50']} | {r['recall_at_10']:.3f} |")
    lines += _sweep_table(s["dense"], "nprobe_sweep", "nprobe", "IVF: recall@10 against flat, and p50, by "
                          "`nprobe` (lists searched; nlist = sqrt(n))")
    lines += _sweep_table(s["dense"], "ef_search_sweep", "ef_search", "HNSW (M=32): recall@10 against flat, "
                          "and p50, by `efSearch`")
    if s["bm25"]:
        lines += ["", "BM25: 'project' is `BM25Index.search` (tokenise, stem, drop stopwords, retrieve); 'raw' is "
                  "bm25s `retrieve` given the already-tokenised terms, in the calling thread (`n_threads=0`).", "",
                  "| chunks | build | open | files per chunk | project p50 / p95 | raw p50 / p95 | ratio (p50) |",
                  "|---|---|---|---|---|---|---|"]
        for r in s["bm25"]:
            lines.append(f"| {r['n']:,} | {r['build_s']:.2f} s | {r['open_s'] * 1e3:.1f} ms | "
                         f"{r['file_bytes_per_chunk']:,.0f} B | {ms(r['project'])} | {ms(r['raw'])} | {r['ratio_p50']} |")
    if s["index"]:
        lines += ["", "`Index.search` (k=4; the query vector is looked up, so the model's query embedding, "
                  f"{ms(s.get('query_embedding'))} ms p50 / p95 for one MiniLM query"
                  + (f", {s['query_embedding']['note']}" if (s.get("query_embedding") or {}).get("note") else "")
                  + ", comes on top of dense and hybrid):", "",
                  "| chunks | dense index | dense p50 / p95 | BM25 p50 / p95 | hybrid p50 / p95 | hybrid / (dense + BM25) |",
                  "|---|---|---|---|---|---|"]
        for r in s["index"]:
            lines.append(f"| {r['n']:,} | {r['dense_kind']} | {ms(r['dense'])} | {ms(r['bm25'])} | "
                         f"{ms(r['hybrid'])} | {r['hybrid_over_parts_p50']} |")
    return lines
