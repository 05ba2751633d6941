"""The persistent, incremental hybrid index: the one object users open to add and search.

Documents are cleaned, chunked and embedded; the vectors go into FAISS and the texts
into BM25, and both are saved with the chunk table and a manifest under one index
directory (see :mod:`rag.store` for how writes stay atomic).

Example:
    >>> from rag import Index
    >>> index = Index.open(".rag/index")          # created on first use
    >>> report = index.add(["seeds"])             # unchanged documents cost nothing
    >>> for hit in index.search("Who visited Doha?", k=3):
    ...     print(hit.rank, hit.doc_id, round(hit.score, 3))
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from rag.chunking import ChunkConfig, chunk_document
from rag.dense import INDEX_KINDS, DenseIndex, resolve_kind
from rag.embedding import (
    DEFAULT_EMBEDDER,
    Embedder,
    EmbeddingModel,
    bundled_embedder,
    check_embedder,
    embedder_name,
    load_embedder,
)
from rag.loading import Skipped, came_from, load, source_file
from rag.retrieval import (
    Fusion,
    FusionSettings,
    Mode,
    check_fusion,
    check_mode,
    convex_fusion,
    reciprocal_rank_fusion,
)
from rag.sparse import BM25Index, top_rows
from rag.store import GenerationStore
from rag.types import Chunk, Document, Hit

# Bump when the on-disk layout or what is embedded changes; old indexes then ask for a rebuild.
FORMAT_VERSION = 1
DEFAULT_INDEX_DIR = Path(".rag") / "index"


class IndexOpenError(RuntimeError):
    """The index directory cannot be used as it is; the message says how to rebuild."""


def default_index_dir() -> Path:
    """``$RAG_INDEX_DIR`` if set, else ``.rag/index`` under the working directory."""
    return Path(os.environ.get("RAG_INDEX_DIR") or DEFAULT_INDEX_DIR)


def passage_text(doc: Document, chunk: Chunk) -> str:
    """What is embedded and keyword-indexed for a chunk: the document title, then the chunk.

    The title gives a chunk its topic when the text itself only says "the ministry" or
    "he" (measured in eval/README.md, "Chunking").
    """
    return f"{doc.title}\n{chunk.text}"


def content_hash(doc: Document) -> str:
    """Identifies a document's indexed content: unchanged hash, nothing to re-embed."""
    payload = json.dumps([doc.title, doc.text, doc.date, list(doc.page_starts)], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class IndexReport:
    """What one :meth:`Index.add` call did, by document id."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    chunks: int = 0
    removed: list[str] | None = None  # documents whose file is gone; None unless syncing

    def summary(self) -> str:
        removed = "" if self.removed is None else f", {len(self.removed)} removed"
        return (
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.unchanged)} unchanged, "
            f"{len(self.skipped)} skipped{removed} ({self.chunks} chunks embedded)"
        )


@dataclass(frozen=True)
class IndexSettings:
    """Choices fixed when an index is created and recorded in its manifest."""

    embedder: str
    dim: int
    chunking: ChunkConfig
    dense_index: str
    fusion: FusionSettings = FusionSettings()

    def to_manifest(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "embedder": self.embedder,
            "dim": self.dim,
            "chunking": {"size": self.chunking.size, "overlap": self.chunking.overlap},
            "dense_index": self.dense_index,
            "fusion": {"alpha": self.fusion.alpha, "depth": self.fusion.depth},
        }


class Index:
    """A hybrid (FAISS + BM25) index over chunked documents, stored in one directory.

    Use :meth:`open`; the constructor is internal.
    """

    def __init__(
        self,
        path: Path,
        settings: IndexSettings,
        embedder: EmbeddingModel | None,
        embedder_spec: str,
    ) -> None:
        self.path = path
        self.settings = settings
        self._store = GenerationStore(path)
        self._embedder = embedder
        self._embedder_spec = embedder_spec
        self._generation: Path | None = None
        self._docs: dict[str, Document] = {}
        self._hashes: dict[str, str] = {}
        self._chunks: list[Chunk] = []
        self._vectors = np.zeros((0, settings.dim or 0), dtype=np.float32)
        self._dense: DenseIndex | None = None
        self._bm25 = BM25Index(None, 0)

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        embedder: EmbeddingModel | str | None = None,
        chunking: ChunkConfig | None = None,
        dense_index: str | None = None,
        fusion: FusionSettings | None = None,
        create: bool = True,
        rebuild: bool = False,
    ) -> Index:
        """Open the index at ``path`` (default :func:`default_index_dir`), creating it if allowed.

        Args:
            embedder: an embedder object, or a model name/directory for :class:`Embedder`.
                None means the one the index was built with (the bundled default for a new one).
            chunking: chunk sizes for a new index; must match an existing index.
            dense_index: ``auto``, ``flat``, ``hnsw`` or ``ivf`` for a new index.
            fusion: hybrid fusion settings for a new index (default: those measured for its
                embedder); an existing index keeps its own unless these are given.
            create: when False, a missing index is an error instead of being created.
            rebuild: start a new, empty index with the given settings; the old one stays
                readable until the first :meth:`add` commits the new one in its place.

        Raises:
            IndexOpenError: missing (with ``create=False``), damaged, or built with another
                embedder, dimension, chunking or format version.
        """
        root = Path(path) if path is not None else default_index_dir()
        if root.exists() and not root.is_dir():
            raise IndexOpenError(f"index path {root} is a file, not a directory")
        store = GenerationStore(root)
        try:
            live = store.current()
        except (OSError, ValueError) as e:
            if not rebuild:
                raise IndexOpenError(f"index at {root} is damaged ({e}); {_rebuild_hint(root)}") from None
            live = None
        if rebuild:
            # Start empty; the old index stays live until the first commit replaces it.
            index = cls._new(root, embedder, chunking, dense_index, fusion)
            index._generation = live
            return index
        if live is None:
            if root.is_dir() and any(p.name.startswith("gen-") for p in root.iterdir()):
                raise IndexOpenError(f"index at {root} is damaged (no {root}/CURRENT); {_rebuild_hint(root)}")
            if not create:
                raise IndexOpenError(f"no index at {root}; create one with: rag index PATH")
            return cls._new(root, embedder, chunking, dense_index, fusion)
        manifest = _read_manifest(live, root)
        index = cls._from_manifest(root, manifest, embedder, chunking, dense_index)
        if fusion is not None:
            index.settings = replace(index.settings, fusion=fusion)
        index._load(live)
        return index

    @classmethod
    def _new(
        cls,
        root: Path,
        embedder: EmbeddingModel | str | None,
        chunking: ChunkConfig | None,
        dense_index: str | None,
        fusion: FusionSettings | None = None,
    ) -> Index:
        spec, model = _resolve_embedder(embedder or DEFAULT_EMBEDDER)
        kind = dense_index or "auto"
        resolve_kind(kind, 0)  # validates the name
        name = model.name if model else embedder_name(spec)
        bundled = bundled_embedder(name)
        settings = IndexSettings(
            embedder=name,
            dim=0,  # known after the first embedding
            chunking=chunking or ChunkConfig(),
            dense_index=kind,
            fusion=fusion or (FusionSettings(alpha=bundled.alpha) if bundled else FusionSettings()),
        )
        return cls(root, settings, model, spec)

    @classmethod
    def _from_manifest(
        cls,
        root: Path,
        manifest: dict[str, Any],
        embedder: EmbeddingModel | str | None,
        chunking: ChunkConfig | None,
        dense_index: str | None,
    ) -> Index:
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise IndexOpenError(
                f"index at {root} has format version {version}; this version of rag reads "
                f"{FORMAT_VERSION}. {_rebuild_hint(root)}"
            )
        try:
            settings = IndexSettings(
                embedder=str(manifest["embedder"]),
                dim=int(manifest["dim"]),
                chunking=ChunkConfig(**manifest["chunking"]),
                dense_index=str(manifest["dense_index"]),
                # Indexes written before fusion was recorded used the defaults.
                fusion=FusionSettings(**manifest.get("fusion", {})),
            )
            resolve_kind(settings.dense_index, 0)
        except (KeyError, TypeError, ValueError) as e:
            raise IndexOpenError(f"index at {root} has a damaged manifest ({e}); {_rebuild_hint(root)}") from None
        spec, model = _resolve_embedder(embedder or manifest.get("embedder_spec") or settings.embedder)
        name = model.name if model else embedder_name(spec)
        if name != settings.embedder:
            raise IndexOpenError(
                f"index at {root} was built with embedder '{settings.embedder}' (dim {settings.dim}), "
                f"not '{name}'. Use that embedder, or {_rebuild_hint(root)}"
            )
        if model is not None and not isinstance(model, Embedder) and model.dim != settings.dim:
            raise IndexOpenError(
                f"index at {root} holds {settings.dim}-dimensional vectors; embedder '{name}' makes "
                f"{model.dim}. {_rebuild_hint(root)}"
            )
        if chunking is not None and chunking != settings.chunking:
            raise IndexOpenError(
                f"index at {root} was built with chunks of {settings.chunking.size} words "
                f"(overlap {settings.chunking.overlap}), not {chunking.size} ({chunking.overlap}). "
                f"{_rebuild_hint(root)}"
            )
        if dense_index is not None and dense_index != settings.dense_index:
            raise IndexOpenError(
                f"index at {root} uses dense index type '{settings.dense_index}', not '{dense_index}'. "
                f"{_rebuild_hint(root)}"
            )
        return cls(root, settings, model, spec)

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
            dense = DenseIndex.load(generation / "dense.faiss", resolve_kind(self.settings.dense_index, len(chunks)))
            bm25 = BM25Index.load(generation / "bm25")
        except Exception as e:  # noqa: BLE001 - any damage to any file means the same thing to the user
            raise IndexOpenError(
                f"index at {self.path} is damaged ({type(e).__name__}: {e}); {_rebuild_hint(self.path)}"
            ) from None
        sizes = {"chunks": len(chunks), "vectors": len(vectors), "faiss": dense.size, "bm25": bm25.size}
        problem = "" if len(set(sizes.values())) == 1 else f"row counts differ: {sizes}"
        if len(vectors) and vectors.shape[1] != self.settings.dim:
            problem = f"vectors have {vectors.shape[1]} dimensions, the manifest says {self.settings.dim}"
        if problem:
            raise IndexOpenError(f"index at {self.path} is inconsistent ({problem}); {_rebuild_hint(self.path)}")
        self._generation = generation
        self._docs, self._hashes, self._chunks = docs, hashes, chunks
        self._vectors, self._dense, self._bm25 = vectors, dense, bm25

    def _refresh(self) -> None:
        """Reload if another process committed a newer generation since we loaded."""
        try:
            live = self._store.current()
        except (OSError, ValueError):
            return  # damaged pointer: the next commit replaces it
        if live is not None and live != self._generation:
            self._load(live)

    # ------------------------------------------------------------------ reading

    @property
    def embedder(self) -> EmbeddingModel:
        if self._embedder is None:
            self._embedder = load_embedder(self._embedder_spec)
        return self._embedder

    def __len__(self) -> int:
        """Number of chunks."""
        return len(self._chunks)

    def documents(self) -> list[Document]:
        """The indexed documents, in the order they were added."""
        return list(self._docs.values())

    def document(self, doc_id: str) -> Document:
        try:
            return self._docs[doc_id]
        except KeyError:
            raise KeyError(f"no document '{doc_id}' in the index at {self.path}") from None

    def chunks(self, doc_id: str | None = None) -> list[Chunk]:
        return [c for c in self._chunks if doc_id is None or c.doc_id == doc_id]

    def search(
        self, query: str, k: int = 5, mode: Mode = "hybrid", fusion: Fusion = "convex", alpha: float | None = None
    ) -> list[Hit]:
        """The ``k`` best chunks for ``query``.

        Args:
            mode: ``hybrid`` (dense and BM25 fused), ``dense`` or ``bm25``.
            fusion: how hybrid mode fuses (see :mod:`rag.retrieval`): ``convex`` or ``rrf``.
            alpha: the dense weight of convex fusion; None: the index's own (its manifest's).
        """
        if not isinstance(query, str) or not query.strip():
            raise ValueError("query must be a non-empty string")
        if k < 1:
            raise ValueError(f"k must be > 0, got {k}")
        check_mode(mode)
        check_fusion(fusion)
        weights = self.settings.fusion if alpha is None else replace(self.settings.fusion, alpha=alpha)
        if not self._chunks:
            return []
        depth = max(k, weights.depth) if mode == "hybrid" else k
        dense: list[tuple[int, float]] = []
        sparse: list[tuple[int, float]] = []
        if mode in ("hybrid", "dense"):
            assert self._dense is not None
            query_vector = self._embed([query], query=True)[0]
            dense = self._dense.search(query_vector, depth)
        if mode in ("hybrid", "bm25"):
            keyword_scores = self._bm25.score_all(query)
            sparse = top_rows(keyword_scores, depth)
        if mode == "dense":
            ranked = dense
        elif mode == "bm25":
            ranked = sparse
        elif fusion == "rrf":
            ranked = reciprocal_rank_fusion([[r for r, _ in dense], [r for r, _ in sparse]])
        else:
            # Score every candidate with both retrievers, so a chunk missing from one list
            # gets its real score there rather than none.
            candidates = list(dict.fromkeys([r for r, _ in dense] + [r for r, _ in sparse]))
            dense_all = self._vectors[candidates] @ query_vector
            sparse_all = keyword_scores[candidates]
            dense = list(zip(candidates, map(float, dense_all)))
            sparse = [(r, float(s)) for r, s in zip(candidates, sparse_all) if s > 0]
            ranked = convex_fusion(candidates, dense_all, sparse_all, weights.alpha)
        dense_scores, sparse_scores = dict(dense), dict(sparse)
        hits = []
        for rank, (row, score) in enumerate(ranked[:k], start=1):
            chunk = self._chunks[row]
            doc = self._docs[chunk.doc_id]
            parts = {"dense": dense_scores.get(row), "bm25": sparse_scores.get(row)}
            hits.append(
                Hit(
                    chunk_id=chunk.chunk_id,
                    doc_id=chunk.doc_id,
                    title=doc.title,
                    text=chunk.text,
                    start=chunk.start,
                    end=chunk.end,
                    score=float(score),
                    rank=rank,
                    date=doc.date,
                    page=doc.page_of(chunk.start),
                    scores={name: s for name, s in parts.items() if s is not None},
                )
            )
        return hits

    # ------------------------------------------------------------------ writing

    def add(self, paths: Iterable[str | Path], progress: bool = False, sync: bool = False) -> IndexReport:
        """Load, clean, chunk and embed the files under ``paths``; see :meth:`add_documents`.

        With ``sync``, documents read from ``paths`` before whose file is now gone are removed
        (a file that is still there but cannot be read keeps its indexed version).

        Raises:
            FileNotFoundError: a path does not exist (nothing is changed).
        """
        from tqdm import tqdm

        paths = list(paths)
        docs, skipped = [], []
        items = load(paths)
        for item in tqdm(items, desc="reading", unit=" docs", disable=None if progress else True, leave=False):
            (docs if isinstance(item, Document) else skipped).append(item)
        return self.add_documents(docs, skipped=skipped, sync=paths if sync else None)

    def add_documents(
        self, docs: Iterable[Document], skipped: Sequence[Skipped] = (), sync: Sequence[str | Path] | None = None
    ) -> IndexReport:
        """Add new documents and replace changed ones; unchanged ones cost nothing.

        A document id seen twice in one call keeps its first occurrence. ``sync`` names the
        paths being synced: indexed documents from them whose file is gone are removed. The
        index on disk changes in one atomic step at the end, or not at all.
        """
        report = IndexReport(skipped=list(skipped), removed=None if sync is None else [])
        with self._store.write_lock():
            self._refresh()
            changed: list[Document] = []
            seen: set[str] = set()
            for doc in docs:
                if doc.id in seen:
                    report.skipped.append(Skipped(doc.source, f"duplicate document id '{doc.id}' (first kept)"))
                    continue
                seen.add(doc.id)
                if self._hashes.get(doc.id) == content_hash(doc):
                    report.unchanged.append(doc.id)
                    continue
                (report.updated if doc.id in self._docs else report.added).append(doc.id)
                changed.append(doc)
            if sync is not None:
                report.removed = [
                    d.id for d in self._docs.values()
                    if d.id not in seen and came_from(d.source, sync) and not source_file(d.source).exists()
                ]
            gone = set(report.removed or ())
            if not changed and not gone:
                self._store.collect()  # a writer killed after its switch left the old generation
                return report
            new_chunks = [c for doc in changed for c in chunk_document(doc, self.settings.chunking)]
            by_id = {doc.id: doc for doc in changed}
            texts = [passage_text(by_id[c.doc_id], c) for c in new_chunks]
            vectors = self._embed(texts) if texts else self._vectors[:0]  # only removals: load no model
            report.chunks = len(new_chunks)
            self._apply(remove=set(report.updated) | gone, docs=changed, chunks=new_chunks, vectors=vectors)
        return report

    def remove(self, doc_id: str) -> None:
        """Delete one document and its chunks.

        Raises:
            KeyError: no such document.
        """
        with self._store.write_lock():
            self._refresh()
            if doc_id not in self._docs:
                raise KeyError(f"no document '{doc_id}' in the index at {self.path}; `rag docs` lists them")
            self._apply(remove={doc_id}, docs=[], chunks=[], vectors=self._vectors[:0])

    def _embed(self, texts: list[str], query: bool = False) -> np.ndarray:
        vectors = self.embedder.embed_query(texts) if query else self.embedder.embed(texts)
        dim = vectors.shape[1] if vectors.ndim == 2 else -1
        if vectors.shape[0] != len(texts) or (self.settings.dim and dim != self.settings.dim):
            raise IndexOpenError(
                f"embedder '{self.embedder.name}' returned vectors of shape {vectors.shape}; the index at "
                f"{self.path} holds {self.settings.dim}-dimensional vectors. {_rebuild_hint(self.path)}"
            )
        if not self.settings.dim:
            self.settings = replace(self.settings, dim=dim)
        return vectors

    def _apply(self, remove: set[str], docs: list[Document], chunks: list[Chunk], vectors: np.ndarray) -> None:
        """Build the next state, commit it to disk, and only then make it this object's state."""
        keep = [i for i, c in enumerate(self._chunks) if c.doc_id not in remove]
        all_docs = {i: d for i, d in self._docs.items() if i not in remove}
        all_docs.update({d.id: d for d in docs})
        all_chunks = [self._chunks[i] for i in keep] + chunks
        all_vectors = np.vstack([self._vectors[keep].reshape(len(keep), -1), vectors]) if keep else vectors
        all_vectors = np.ascontiguousarray(all_vectors, dtype=np.float32)
        hashes = {i: h for i, h in self._hashes.items() if i not in remove}
        hashes.update({d.id: content_hash(d) for d in docs})

        kind = resolve_kind(self.settings.dense_index, len(all_chunks))
        if self._dense is not None and not remove and kind == self._dense.kind:
            # Appending keeps rows aligned, so the existing index (and HNSW graph) is extended.
            dense = self._dense
            dense.add(vectors)
        else:
            dense = DenseIndex.build(all_vectors, kind)
        bm25 = BM25Index.build([passage_text(all_docs[c.doc_id], c) for c in all_chunks])

        def write(folder: Path) -> None:
            manifest = self.settings.to_manifest()
            manifest["embedder_spec"] = self._embedder_spec
            manifest["documents"] = hashes
            (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
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


def _map_vectors(generation: Path) -> np.ndarray:
    """The generation's vectors, memory-mapped read-only.

    FAISS holds its own copy for search; this matrix is only read for the few candidates
    that hybrid fusion rescores and when a removal rebuilds the index, so mapping it keeps
    one copy of the vectors in memory instead of two (1.5 KB per chunk saved with MiniLM).
    On POSIX the mapping stays valid after a later commit deletes the generation's files.
    """
    return np.load(generation / "vectors.npy", mmap_mode="r")


def _resolve_embedder(embedder: EmbeddingModel | str | Path) -> tuple[str, EmbeddingModel | None]:
    """``(spec, model)``: a name or path is kept as a spec and loaded on first use."""
    if isinstance(embedder, (str, Path)):
        spec = str(embedder)
        try:
            check_embedder(spec)
        except ValueError as e:
            raise IndexOpenError(str(e)) from None
        return spec, None
    if not isinstance(embedder, EmbeddingModel):
        raise TypeError(f"embedder must be a name, a path or an embedding model, got {type(embedder).__name__}")
    return embedder.name, embedder


def _read_manifest(generation: Path, root: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((generation / "manifest.json").read_text())
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
        return manifest
    except (OSError, ValueError) as e:
        raise IndexOpenError(f"index at {root} has a damaged manifest ({e}); {_rebuild_hint(root)}") from None


def _rebuild_hint(root: Path) -> str:
    return f"rebuild it with: rag index --rebuild --index-dir {root} PATH..."


__all__ = ["Index", "IndexOpenError", "IndexReport", "default_index_dir", "INDEX_KINDS"]
