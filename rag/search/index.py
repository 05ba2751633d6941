"""The persistent, incremental hybrid index: the one object users open to add and search.

Documents are cleaned, chunked and embedded; the vectors and texts go to a storage
backend (:mod:`rag.stores.factory`: FAISS + BM25 files in an index directory by default, or
Milvus), which searches them; the index decides what to re-embed and ranks the results
(:mod:`rag.search.retrieval`).

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

from rag.core import defaults
from rag.core.defaults import EMBEDDER as DEFAULT_EMBEDDER
from rag.core.errors import InvalidInput, NotFound
from rag.core.types import Change, Chunk, Document, Hit, Scope, Skipped, printable
from rag.ingest.chunking import PASSAGE_FORMATS, ChunkConfig, chunk_document, passage_text
from rag.ingest.loading import came_from, load, source_file
from rag.search.embedding import (
    Embedder,
    EmbeddingModel,
    bundled_embedder,
    check_embedder,
    embedder_name,
    load_embedder,
)
from rag.search.retrieval import Fusion, FusionSettings, Mode, check_fusion, check_k, check_mode, rank
from rag.stores.base import Backend, IndexOpenError, rebuild_hint
from rag.stores.dense import INDEX_KINDS, resolve_kind
from rag.stores.factory import open_backend

# Bump when the on-disk layout or what is embedded changes; old indexes then ask for a rebuild.
FORMAT_VERSION = 1
DEFAULT_INDEX_DIR = Path(".rag") / "index"


def default_index_dir() -> Path:
    """``$RAG_INDEX_DIR`` if set, else ``.rag/index`` under the working directory."""
    return Path(os.environ.get("RAG_INDEX_DIR") or DEFAULT_INDEX_DIR)


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
    passage: str = "title"  # rag.ingest.chunking.PASSAGE_FORMATS

    def to_manifest(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "embedder": self.embedder,
            "dim": self.dim,
            "chunking": {"size": self.chunking.size, "overlap": self.chunking.overlap},
            "dense_index": self.dense_index,
            "fusion": {"alpha": self.fusion.alpha, "depth": self.fusion.depth},
            "passage": self.passage,
        }


class Index:
    """A hybrid (dense + BM25) index over chunked documents, kept by a storage backend.

    Use :meth:`open`; the constructor is internal.
    """

    def __init__(
        self,
        path: Path,
        backend: Backend,
        settings: IndexSettings,
        embedder: EmbeddingModel | None,
        embedder_spec: str,
    ) -> None:
        self.path = path
        self.backend = backend
        self.settings = settings
        self._embedder = embedder
        self._embedder_spec = embedder_spec

    @property
    def location(self) -> str:
        """Where the index lives, as messages name it: the directory, or the Milvus URI and collection."""
        return self.backend.location

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        store: str | None = None,
        embedder: EmbeddingModel | str | None = None,
        chunking: ChunkConfig | None = None,
        dense_index: str | None = None,
        fusion: FusionSettings | None = None,
        passage: str | None = None,
        create: bool = True,
        rebuild: bool = False,
    ) -> Index:
        """Open the index at ``path`` (default :func:`default_index_dir`), creating it if allowed.

        Args:
            store: where the index is kept (:mod:`rag.stores.factory`): ``faiss`` (files in ``path``),
                ``milvus:PATH.db`` or ``milvus:http(s)://HOST:PORT`` (``path``'s folder name
                names the collections). None: ``$RAG_STORE``, else ``faiss``.
            embedder: an embedder object, or a model name/directory for :class:`Embedder`.
                None means the one the index was built with (the bundled default for a new one).
            chunking: chunk sizes for a new index; must match an existing index.
            dense_index: ``auto``, ``flat``, ``hnsw`` or ``ivf`` for a new index.
            fusion: hybrid fusion settings for a new index (default: those measured for its
                embedder); an existing index keeps its own unless these are given.
            passage: what a new index embeds per chunk (rag.ingest.chunking.PASSAGE_FORMATS, default
                "title"); must match an existing index.
            create: when False, a missing index is an error instead of being created.
            rebuild: start a new, empty index with the given settings; the old one stays
                readable until the first :meth:`add` commits the new one in its place.

        Raises:
            IndexOpenError: missing (with ``create=False``), damaged, or built with another
                embedder, dimension, chunking or format version.
        """
        root = Path(path) if path is not None else default_index_dir()
        backend = open_backend(store, root, default_index_dir())
        if rebuild:
            index = cls._new(root, backend, embedder, chunking, dense_index, fusion, passage)
            backend.start_empty()
            return index
        manifest = backend.manifest()
        if manifest is None:
            if not create:
                raise IndexOpenError(f"no index at {backend.location}; create one with: rag index PATH")
            return cls._new(root, backend, embedder, chunking, dense_index, fusion, passage)
        index = cls._from_manifest(root, backend, manifest, embedder, chunking, dense_index, passage)
        if fusion is not None:
            index.settings = replace(index.settings, fusion=fusion)
        backend.open(index.settings.dim, index.settings.dense_index)
        return index

    @classmethod
    def _new(
        cls,
        root: Path,
        backend: Backend,
        embedder: EmbeddingModel | str | None,
        chunking: ChunkConfig | None,
        dense_index: str | None,
        fusion: FusionSettings | None = None,
        passage: str | None = None,
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
            passage=_check_passage(passage or "title"),
        )
        return cls(root, backend, settings, model, spec)

    @classmethod
    def _from_manifest(
        cls,
        root: Path,
        backend: Backend,
        manifest: dict[str, Any],
        embedder: EmbeddingModel | str | None,
        chunking: ChunkConfig | None,
        dense_index: str | None,
        passage: str | None = None,
    ) -> Index:
        where, hint = backend.location, rebuild_hint(backend.options)
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise IndexOpenError(
                f"index at {where} has format version {version}; this version of rag reads "
                f"{FORMAT_VERSION}. {hint}"
            )
        try:
            settings = IndexSettings(
                embedder=str(manifest["embedder"]),
                dim=int(manifest["dim"]),
                chunking=ChunkConfig(**manifest["chunking"]),
                dense_index=str(manifest["dense_index"]),
                # Indexes written before fusion was recorded used the defaults.
                fusion=FusionSettings(**manifest.get("fusion", {})),
                passage=_check_passage(str(manifest.get("passage", "title"))),  # the format before it was recorded
            )
            resolve_kind(settings.dense_index, 0)
        except (KeyError, TypeError, ValueError) as e:
            raise IndexOpenError(f"index at {where} has a damaged manifest ({e}); {hint}") from None
        spec, model = _resolve_embedder(embedder or manifest.get("embedder_spec") or settings.embedder)
        name = model.name if model else embedder_name(spec)
        if name != settings.embedder:
            raise IndexOpenError(
                f"index at {where} was built with embedder '{settings.embedder}' (dim {settings.dim}), "
                f"not '{name}'. Use that embedder, or {hint}"
            )
        if model is not None and not isinstance(model, Embedder) and model.dim != settings.dim:
            raise IndexOpenError(
                f"index at {where} holds {settings.dim}-dimensional vectors; embedder '{name}' makes "
                f"{model.dim}. {hint}"
            )
        if chunking is not None and chunking != settings.chunking:
            raise IndexOpenError(
                f"index at {where} was built with chunks of {settings.chunking.size} words "
                f"(overlap {settings.chunking.overlap}), not {chunking.size} ({chunking.overlap}). {hint}"
            )
        if passage is not None and passage != settings.passage:
            raise IndexOpenError(f"index at {where} embeds passages as '{settings.passage}', not '{passage}'. {hint}")
        if dense_index is not None and dense_index != settings.dense_index:
            raise IndexOpenError(
                f"index at {where} uses dense index type '{settings.dense_index}', not '{dense_index}'. {hint}"
            )
        return cls(root, backend, settings, model, spec)

    # ------------------------------------------------------------------ reading

    @property
    def embedder(self) -> EmbeddingModel:
        if self._embedder is None:
            self._embedder = load_embedder(self._embedder_spec)
        return self._embedder

    @property
    def embedder_spec(self) -> str:
        """The name or directory the index's embedder is loaded from."""
        return self._embedder_spec

    def embed_on(self, embedder: EmbeddingModel) -> None:
        """Embed from now on with ``embedder``, another runner of the index's own model (a
        :class:`rag.search.ray_embedding.RayEmbedder`); a different model is an error."""
        if embedder.name != self.settings.embedder:
            raise IndexOpenError(f"the index at {self.location} was built with embedder '{self.settings.embedder}', "
                                 f"not '{embedder.name}'")
        self._embedder = embedder

    def __len__(self) -> int:
        """Number of chunks."""
        return len(self.backend)

    def documents(self) -> list[Document]:
        """The indexed documents, in the order they were added."""
        return self.backend.documents()

    def document(self, doc_id: str) -> Document:
        doc = self.backend.document(doc_id)
        if doc is None:
            raise NotFound(f"no document '{doc_id}' in the index at {self.location}")
        return doc

    def chunks(self, doc_id: str | None = None) -> list[Chunk]:
        return self.backend.chunks(doc_id)

    def search(
        self, query: str, k: int = defaults.SEARCH_K, mode: Mode = defaults.MODE, fusion: Fusion = "convex",
        alpha: float | None = None, scope: Scope | None = None,
    ) -> list[Hit]:
        """The ``k`` best chunks for ``query``.

        Args:
            mode: ``hybrid`` (dense and BM25 fused), ``dense`` or ``bm25``.
            fusion: how hybrid mode fuses (see :mod:`rag.search.retrieval`): ``convex`` or ``rrf``.
            alpha: the dense weight of convex fusion; None: the index's own (its manifest's).
            scope: only chunks of these documents and dates (:class:`~rag.core.types.Scope`),
                filtered inside the store's search, so up to ``k`` of them still come back.

        Raises:
            NotFound: the scope names a document the index does not hold.

        Example:
            >>> index.search("Who visited Doha?", k=3, scope=Scope(since="2024-01-01"))  # doctest: +SKIP
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("query must be a non-empty string")
        check_k(k)
        check_mode(mode)
        check_fusion(fusion)
        scope = self.check_scope(scope)
        weights = self.settings.fusion if alpha is None else replace(self.settings.fusion, alpha=alpha)
        if not self.settings.dim:
            return []  # nothing was ever embedded (asking the store would cost a count in Milvus)
        vector = self._embed([query], query=True)[0] if mode != "bm25" else None
        ranked = rank(self.backend, query, vector, k, mode=mode, fusion=fusion, settings=weights, scope=scope)
        passages = self.backend.passages([r.key for r in ranked])
        return [
            Hit(
                chunk_id=p.chunk.chunk_id,
                doc_id=p.chunk.doc_id,
                title=p.title,
                text=p.chunk.text,
                start=p.chunk.start,
                end=p.chunk.end,
                score=r.score,
                rank=n,
                date=p.date,
                page=p.page,
                scores=r.scores,
            )
            for n, (r, p) in enumerate(zip(ranked, passages), start=1)
        ]

    def check_scope(self, scope: Scope | None) -> Scope | None:
        """``scope`` if every document it names is in the index (None when it leaves nothing out).

        Raises:
            NotFound: a named document is not in the index (the message names it).
        """
        if scope is None:
            return None
        if not isinstance(scope, Scope):
            raise InvalidInput(f"scope must be a rag.core.types.Scope, got {type(scope).__name__}")
        missing = [doc_id for doc_id in scope.doc_ids if self.backend.document(doc_id) is None]
        if missing:
            names = ", ".join(f"'{printable(doc_id)}'" for doc_id in missing)
            raise NotFound(f"no document{'s' if len(missing) > 1 else ''} {names} in the index at {self.location}; "
                           "`rag docs` lists them")
        return None if scope.everything else scope

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
        docs: list[Document] = []
        skipped: list[Skipped] = []
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
        index changes in one step at the end (atomic with the FAISS store), or not at all.
        """
        report = IndexReport(skipped=list(skipped), removed=None if sync is None else [])
        with self.backend.write_lock():
            self.backend.refresh()
            hashes = self.backend.hashes()
            changed: list[Document] = []
            seen: set[str] = set()
            for doc in docs:
                if doc.id in seen:
                    report.skipped.append(Skipped(doc.source, f"duplicate document id '{doc.id}' (first kept)"))
                    continue
                seen.add(doc.id)
                if hashes.get(doc.id) == content_hash(doc):
                    report.unchanged.append(doc.id)
                    continue
                (report.updated if doc.id in hashes else report.added).append(doc.id)
                changed.append(doc)
            if sync is not None:
                report.removed = [
                    d.id for d in self.backend.documents()
                    if d.id not in seen and came_from(d.source, sync) and not source_file(d.source).exists()
                ]
            gone = set(report.removed or ())
            if not changed and not gone:
                self.backend.collect()  # a writer killed after its switch left the old generation
                return report
            new_chunks = [c for doc in changed for c in chunk_document(doc, self.settings.chunking)]
            by_id = {doc.id: doc for doc in changed}
            passages = [passage_text(by_id[c.doc_id], c, self.settings.passage) for c in new_chunks]
            # Only removals: load no model.
            vectors = self._embed(passages) if passages else np.zeros((0, self.settings.dim), dtype=np.float32)
            report.chunks = len(new_chunks)
            self._commit(Change(
                remove=frozenset(set(report.updated) | gone),
                documents=tuple(changed),
                hashes={doc.id: content_hash(doc) for doc in changed},
                chunks=tuple(new_chunks),
                vectors=vectors,
                passages=tuple(passages),
            ))
        return report

    def remove(self, doc_id: str) -> None:
        """Delete one document and its chunks.

        Raises:
            KeyError: no such document.
        """
        with self.backend.write_lock():
            self.backend.refresh()
            if doc_id not in self.backend.hashes():
                raise NotFound(f"no document '{doc_id}' in the index at {self.location}; `rag docs` lists them")
            empty = np.zeros((0, self.settings.dim), dtype=np.float32)
            self._commit(Change(frozenset({doc_id}), (), {}, (), empty, ()))

    def _commit(self, change: Change) -> None:
        manifest = self.settings.to_manifest()
        manifest["embedder_spec"] = self._embedder_spec
        self.backend.commit(manifest, change, self.settings.dense_index)

    def _embed(self, texts: list[str], query: bool = False) -> np.ndarray:
        vectors = self.embedder.embed_query(texts) if query else self.embedder.embed(texts)
        dim = vectors.shape[1] if vectors.ndim == 2 else -1
        if vectors.shape[0] != len(texts) or (self.settings.dim and dim != self.settings.dim):
            raise IndexOpenError(
                f"embedder '{self.embedder.name}' returned vectors of shape {vectors.shape}; the index at "
                f"{self.location} holds {self.settings.dim}-dimensional vectors. {rebuild_hint(self.backend.options)}"
            )
        if not self.settings.dim:
            self.settings = replace(self.settings, dim=dim)
        return vectors


def _check_passage(passage: str) -> str:
    if passage not in PASSAGE_FORMATS:
        raise IndexOpenError(f"unknown passage format '{passage}'; choose one of {', '.join(PASSAGE_FORMATS)}")
    return passage


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


__all__ = ["Index", "IndexOpenError", "IndexReport", "default_index_dir", "INDEX_KINDS", "passage_text"]
