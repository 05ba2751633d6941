"""The default store: FAISS + bm25s files in one index directory, written as atomic generations.

A generation folder holds ``manifest.json`` (settings and content hashes),
``documents.jsonl``, ``chunks.npy`` (document position, start, end per chunk),
``vectors.npy``, ``dense.faiss`` and ``bm25/``; :mod:`rag.stores.generations` makes each write atomic.
The live generation is held in memory; a search key is a chunk's row number.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np

from rag.core.types import Change, Chunk, Document, Passage, Scope
from rag.ingest.chunking import passage_text
from rag.stores.base import IndexOpenError, Key, rebuild_hint
from rag.stores.dense import EXACT_ROWS, DenseIndex, nearest_rows, resolve_kind
from rag.stores.generations import GenerationStore
from rag.stores.sparse import BM25Index, top_rows


class FaissBackend:
    """The chunk table, vectors, FAISS and BM25 indexes of one index directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)
        self.options = f"--index-dir {root}"
        self._store = GenerationStore(root)
        self._generation: Path | None = None
        self._dim = 0
        self._dense_index = "auto"
        self._docs: dict[str, Document] = {}
        self._hashes: dict[str, str] = {}
        self._chunks: list[Chunk] = []
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        self._dense: DenseIndex | None = None
        self._bm25 = BM25Index(None, 0)
        self._last_query: tuple[str, np.ndarray] | None = None  # (query, BM25 score of every chunk)
        self._last_scope: tuple[Scope, list[Chunk], np.ndarray] | None = None  # (scope, chunks, allowed rows)

    # ------------------------------------------------------------------ opening

    def manifest(self) -> dict[str, Any] | None:
        root = self.root
        if root.exists() and not root.is_dir():
            raise IndexOpenError(f"index path {root} is a file, not a directory")
        live = self._live()
        if live is None:
            if root.is_dir() and any(p.name.startswith("gen-") for p in root.iterdir()):
                raise IndexOpenError(f"index at {root} is damaged (no {root}/CURRENT); {rebuild_hint(self.options)}")
            return None
        try:
            manifest = json.loads((live / "manifest.json").read_text())
            if not isinstance(manifest, dict):
                raise ValueError("not a JSON object")
            return manifest
        except (OSError, ValueError) as e:
            raise IndexOpenError(f"index at {root} has a damaged manifest ({e}); {rebuild_hint(self.options)}") from None

    def _live(self) -> Path | None:
        try:
            return self._store.current()
        except (OSError, ValueError) as e:
            raise IndexOpenError(f"index at {self.root} is damaged ({e}); {rebuild_hint(self.options)}") from None

    def open(self, dim: int, dense_index: str) -> None:
        self._dim, self._dense_index = dim, dense_index
        live = self._live()
        if live is not None:
            self._load(live)

    def start_empty(self) -> None:
        # Keep the live generation's name, so refresh() does not load it back.
        try:
            self._generation = self._store.current()
        except (OSError, ValueError):
            self._generation = None

    def _load(self, generation: Path) -> None:
        try:
            docs: dict[str, Document] = {}
            hashes: dict[str, str] = {}
            with open(generation / "documents.jsonl", encoding="utf-8") as f:
                for line in f:
                    record = json.loads(line)
                    hashes[record["id"]] = record.pop("hash")
                    docs[record["id"]] = Document.from_dict(record)
            table = np.load(generation / "chunks.npy")
            vectors = _map_vectors(generation)
            ordered = list(docs.values())
            chunks, counters = [], [0] * len(ordered)
            for d, start, end in table.tolist():
                doc = ordered[d]
                chunks.append(Chunk(f"{doc.id}#{counters[d]}", doc.id, start, end, doc.text[start:end]))
                counters[d] += 1
            dense = DenseIndex.load(generation / "dense.faiss", resolve_kind(self._dense_index, len(chunks)))
            bm25 = BM25Index.load(generation / "bm25")
        except Exception as e:  # noqa: BLE001 - any damage to any file means the same thing to the user
            raise IndexOpenError(
                f"index at {self.root} is damaged ({type(e).__name__}: {e}); {rebuild_hint(self.options)}"
            ) from None
        sizes = {"chunks": len(chunks), "vectors": len(vectors), "faiss": dense.size, "bm25": bm25.size}
        problem = "" if len(set(sizes.values())) == 1 else f"row counts differ: {sizes}"
        if len(vectors) and vectors.shape[1] != self._dim:
            problem = f"vectors have {vectors.shape[1]} dimensions, the manifest says {self._dim}"
        if problem:
            raise IndexOpenError(f"index at {self.root} is inconsistent ({problem}); {rebuild_hint(self.options)}")
        self._generation = generation
        self._docs, self._hashes, self._chunks = docs, hashes, chunks
        self._vectors, self._dense, self._bm25 = vectors, dense, bm25
        self._last_query = None

    def refresh(self) -> None:
        """Reload if another process committed a newer generation since we loaded."""
        try:
            live = self._store.current()
        except (OSError, ValueError):
            return  # damaged pointer: the next commit replaces it
        if live is not None and live != self._generation:
            self._load(live)

    # ------------------------------------------------------------------ reading

    def hashes(self) -> dict[str, str]:
        return dict(self._hashes)

    def documents(self) -> list[Document]:
        return list(self._docs.values())

    def document(self, doc_id: str) -> Document | None:
        return self._docs.get(doc_id)

    def chunks(self, doc_id: str | None = None) -> list[Chunk]:
        return [c for c in self._chunks if doc_id is None or c.doc_id == doc_id]

    def __len__(self) -> int:
        return len(self._chunks)

    def dense_search(self, vector: np.ndarray, depth: int, scope: Scope | None = None) -> list[tuple[Key, float]]:
        if self._dense is None:
            return []
        allowed = self._allowed(scope)
        if allowed is None:
            return list(self._dense.search(vector, depth))
        rows = np.flatnonzero(allowed)
        if len(rows) <= EXACT_ROWS:
            return list(nearest_rows(self._vectors, rows, vector, depth))
        found = self._dense.search(vector, depth, allowed)
        if len(found) < min(depth, len(rows)):  # HNSW or IVF missed rows of a narrow scope
            return list(nearest_rows(self._vectors, rows, vector, depth))
        return list(found)

    def _allowed(self, scope: Scope | None) -> np.ndarray | None:
        """Whether each row's chunk is inside ``scope`` (None when nothing is left out). Hybrid
        search asks twice per query (dense, then BM25), so the last scope's rows are kept."""
        if scope is None or scope.everything:
            return None
        chunks, last = self._chunks, self._last_scope  # one read each: a commit may replace them meanwhile
        if last is None or last[0] != scope or last[1] is not chunks:
            inside = {doc.id: scope.admits(doc.id, doc.date) for doc in self._docs.values()}
            allowed = np.fromiter((inside.get(c.doc_id, False) for c in chunks), dtype=bool, count=len(chunks))
            last = (scope, chunks, allowed)
            self._last_scope = last
        return last[2]

    def _bm25_all(self, query: str) -> np.ndarray:
        """BM25 scores of every chunk; hybrid search asks twice per query (top rows, then the
        candidates), so the last query's scores are kept."""
        last = self._last_query  # one read: another thread may replace it meanwhile
        if last is None or last[0] != query:
            last = (query, self._bm25.score_all(query))
            self._last_query = last
        return last[1]

    def bm25_search(self, query: str, depth: int, scope: Scope | None = None) -> list[tuple[Key, float]]:
        scores = self._bm25_all(query)
        allowed = self._allowed(scope)
        if allowed is not None:
            scores = np.where(allowed, scores, 0.0)  # top_rows keeps positive scores only
        return list(top_rows(scores, depth))

    def dense_scores(self, vector: np.ndarray, keys: list[Key]) -> np.ndarray:
        return np.asarray(self._vectors[_rows(keys)] @ vector)

    def bm25_scores(self, query: str, keys: list[Key]) -> np.ndarray:
        return np.asarray(self._bm25_all(query)[_rows(keys)])

    def passages(self, keys: list[Key]) -> list[Passage]:
        out = []
        for row in _rows(keys):
            chunk = self._chunks[row]
            doc = self._docs[chunk.doc_id]
            out.append(Passage(chunk, doc.title, doc.date, doc.page_of(chunk.start)))
        return out

    # ------------------------------------------------------------------ writing

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        with self._store.write_lock():
            yield

    def collect(self) -> None:
        self._store.collect()

    def commit(self, manifest: dict[str, Any], change: Change, dense_index: str) -> None:
        """Build the next state, commit it to disk, and only then make it this object's state."""
        remove = change.remove
        keep = [i for i, c in enumerate(self._chunks) if c.doc_id not in remove]
        all_docs = {i: d for i, d in self._docs.items() if i not in remove}
        all_docs.update({d.id: d for d in change.documents})
        all_chunks = [self._chunks[i] for i in keep] + list(change.chunks)
        vectors = change.vectors
        all_vectors = np.vstack([self._vectors[keep].reshape(len(keep), -1), vectors]) if keep else vectors
        all_vectors = np.ascontiguousarray(all_vectors, dtype=np.float32)
        hashes = {i: h for i, h in self._hashes.items() if i not in remove}
        hashes.update(change.hashes)
        self._dim = all_vectors.shape[1] if all_vectors.ndim == 2 else self._dim
        self._dense_index = dense_index

        kind = resolve_kind(dense_index, len(all_chunks))
        if self._dense is not None and not remove and kind == self._dense.kind:
            # Appending keeps rows aligned, so the existing index (and HNSW graph) is extended.
            dense = self._dense
            dense.add(vectors)
        else:
            dense = DenseIndex.build(all_vectors, kind)
        passage_of = dict(zip((c.chunk_id for c in change.chunks), change.passages))
        bm25 = BM25Index.build([passage_of.get(c.chunk_id) or passage_text(all_docs[c.doc_id], c, manifest.get("passage", "title")) for c in all_chunks])

        def write(folder: Path) -> None:
            (folder / "manifest.json").write_text(json.dumps({**manifest, "documents": hashes}, indent=1))
            with open(folder / "documents.jsonl", "w", encoding="utf-8") as f:
                for doc in all_docs.values():
                    f.write(json.dumps({**doc.to_dict(), "hash": hashes[doc.id]}, ensure_ascii=False) + "\n")
            position = {doc_id: n for n, doc_id in enumerate(all_docs)}
            table = np.array([(position[c.doc_id], c.start, c.end) for c in all_chunks], dtype=np.int64)
            np.save(folder / "chunks.npy", table.reshape(-1, 3))
            np.save(folder / "vectors.npy", all_vectors)
            dense.save(folder / "dense.faiss")
            bm25.save(folder / "bm25")

        try:
            self._generation = self._store.commit(write)
        except BaseException:
            # The extended FAISS index no longer matches what is on disk: reload it.
            if self._generation is not None:
                self._load(self._generation)
            raise
        self._docs, self._hashes, self._chunks = all_docs, hashes, all_chunks
        self._vectors, self._dense, self._bm25 = _map_vectors(self._generation), dense, bm25
        self._last_query = None


def _rows(keys: list[Key]) -> list[int]:
    """This store's search keys are row numbers (rag.stores.base.Key is any hashable)."""
    return cast(list[int], keys)


def _map_vectors(generation: Path) -> np.ndarray:
    """The generation's vectors, memory-mapped read-only.

    FAISS holds its own copy for search; this matrix is only read for the few candidates
    that hybrid fusion rescores and when a removal rebuilds the index, so mapping it keeps
    one copy of the vectors in memory instead of two (1.5 KB per chunk saved with MiniLM).
    On POSIX the mapping stays valid after a later commit deletes the generation's files.
    """
    return np.load(generation / "vectors.npy", mmap_mode="r")
