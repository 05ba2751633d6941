"""The Milvus store: chunks, vectors and Milvus's own BM25 index in the engine, through pymilvus.

``milvus:PATH.db`` opens Milvus Lite inside this process (pymilvus starts it); a
``milvus:http(s)://HOST:PORT`` URI connects to a Milvus server or cluster, with the token in
``$RAG_MILVUS_TOKEN``. One index is two collections:

- ``<name>_chunks``: one row per chunk (key: a hash of the chunk id ``doc#n``; the chunk id,
  document id, offsets, page, title, date, text, the passage's BM25 terms, the dense vector,
  and the sparse BM25 vector Milvus derives from the terms with its BM25 function).
- ``<name>_documents``: each document's text in parts of at most ``TEXT_PART`` characters
  (Milvus strings hold 64 KiB), with its metadata and content hash on part 0, and the
  index's manifest in the row ``manifest``. Milvus requires a vector field in every
  collection; ``_`` is a constant 2-d vector that nothing searches.

The engine runs dense and BM25 search; :func:`rag.search.retrieval.rank` fuses them as it does for
FAISS, so the fusion weights measured per embedder hold here too (Milvus's own
``WeightedRanker`` normalises scores differently and would need its own measurement).

Milvus has no transaction across rows, so a write is ordered to be safe to repeat: new
chunks are upserted, stale ones deleted, and only then is the document's row (its content
hash) written. A crash in between leaves the old hash, so the next ``rag index`` redoes it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from rag.core.errors import InvalidInput
from rag.core.text import tokenize
from rag.core.types import Change, Chunk, Document, Passage, Scope
from rag.stores.base import IndexBusyError, IndexOpenError, Key, StoreError, rebuild_hint
from rag.stores.dense import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M, ivf_nprobe

IVF_NLIST = 1024
TEXT_PART = 16_000  # characters: at most 64,000 UTF-8 bytes, under Milvus's 65,535-byte strings
MANIFEST_KEY = "manifest"  # no document part can have it: their keys are hexadecimal
BATCH = 500  # rows per insert or id lookup
# BM25 sees the passage as rag.core.text.tokenize's terms (lower case, stemmed, no stop words),
# joined by spaces, and queries likewise: the same terms as the FAISS store's bm25s and on
# every Milvus (Milvus Lite 3.2 has no stemmer), with bm25s's k1 and b. The scores still
# differ a little: Milvus Lite keeps BM25 statistics per segment.
ANALYZER = {"tokenizer": "standard"}
BM25_PARAMS = {"bm25_k1": 1.5, "bm25_b": 0.75}
# Dense index per `--dense-index`, with the parameters measured for FAISS (rag/stores/dense.py). The
# index type is fixed when the collection is created, so "auto" is HNSW from the start.
INDEX_TYPES = {
    "auto": ("HNSW", {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION}),
    "flat": ("FLAT", {}),
    "hnsw": ("HNSW", {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION}),
    "ivf": ("IVF_FLAT", {"nlist": IVF_NLIST}),
}
_WRITERS: dict[str, threading.Lock] = {}  # one writer per index within this process


class _QuietPymilvus(logging.Filter):
    """Drops two pymilvus log records: the traceback it logs for every failed call (the error is
    raised too, and reported once as a StoreError) and its warning, on every query iterator
    against Milvus Lite, that the server gave no snapshot timestamp (the iterator then uses the
    client's clock, which is what we want)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "mvccTs" not in message and "RPC error" not in message


def _quiet_pymilvus() -> None:
    """Filter pymilvus's console handler (its child loggers' records reach only the handler), and
    Milvus Lite's traceback when it cannot start (the error is reported once, as a sentence)."""
    logging.getLogger("milvus_lite.server_manager").setLevel(logging.CRITICAL)
    for handler in logging.getLogger("pymilvus").handlers:
        if not any(isinstance(f, _QuietPymilvus) for f in handler.filters):
            handler.addFilter(_QuietPymilvus())


class _Guarded:
    """A MilvusClient whose every method raises :class:`StoreError` (one line, with the store's
    URI) instead of pymilvus's own exception types, so the CLI reports it like any other error."""

    def __init__(self, client: Any, uri: str) -> None:
        self._client, self._uri = client, uri

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - pymilvus raises many types; all mean the store failed
                raise StoreError(f"the Milvus store at {self._uri} failed ({name}): {_reason(e)}") from e

        return call


def _key(name: str) -> str:
    """The primary key of a chunk or document part: a hash of its id, so that no key ever needs
    quoting (pymilvus's ``get``/``delete`` by ids and its query iterator's paging put primary keys
    into expressions unescaped: an id with a quote broke them)."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:32]


def iter_batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _literal(values: list[str]) -> str:
    """A Milvus filter list literal: JSON strings are valid Milvus string literals (document ids
    in filters go through here)."""
    return "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"


class MilvusBackend:
    """An index in two Milvus collections (see the module docstring)."""

    def __init__(self, uri: str, name: str, index_dir: str | None = None) -> None:
        """``index_dir``: the ``--index-dir`` that named the collections, when not the default."""
        self.uri = uri
        self.name = name
        self.location = f"milvus:{uri} (collections {name}_*)"
        self.options = f"--store milvus:{uri}" + (f" --index-dir {index_dir}" if index_dir else "")
        self.chunk_collection = f"{name}_chunks"
        self.doc_collection = f"{name}_documents"
        self._client_: Any = None
        self._fresh = False  # after start_empty(): the next commit replaces everything
        self._search_params: dict[str, Any] = {}

    # ------------------------------------------------------------------ connecting

    @property
    def _client(self) -> Any:
        if self._client_ is None:
            try:
                from pymilvus import MilvusClient
            except ImportError as e:
                raise IndexOpenError(f"the Milvus store needs pymilvus and milvus-lite ({e}); run make test or pip install -e .") from None
            _quiet_pymilvus()
            local = not self.uri.startswith(("http://", "https://", "tcp://", "grpc://"))
            if local and not self.uri.endswith(".db"):
                raise InvalidInput(f"Milvus Lite needs a path ending in .db or a server http(s)://HOST:PORT, got '{self.uri}'")
            try:
                # Milvus Lite's in-process server keeps gRPC's default ping policy (at most one ping
                # every 5 minutes) while pymilvus pings every 10 s: during a write of more than a
                # few seconds the server answered GOAWAY "too_many_pings", logged as an error.
                options = {"grpc.keepalive_time_ms": 300_000} if local else {}
                client = MilvusClient(uri=self.uri, token=os.environ.get("RAG_MILVUS_TOKEN", ""), grpc_options=options)
            except Exception as e:  # noqa: BLE001 - pymilvus raises its own types for every way this fails
                if local and _locked(self.uri):
                    raise IndexBusyError(
                        f"another process has the Milvus Lite store {self.uri} open (Milvus Lite allows one); "
                        "stop it, or serve the store with `milvus-lite server` and use milvus:http://HOST:PORT"
                    ) from None
                raise IndexOpenError(f"cannot open the Milvus store at {self.uri}: {_reason(e)}") from None
            self._client_ = _Guarded(client, self.uri)
            self._load()
        return self._client_

    def _load(self) -> None:
        """Load the collections into memory: a Milvus collection must be loaded before it is
        searched, and one opened by a new process starts released."""
        for collection in (self.chunk_collection, self.doc_collection):
            if self._client_.has_collection(collection):
                self._client_.load_collection(collection)

    def manifest(self) -> dict[str, Any] | None:
        client = self._client
        if not client.has_collection(self.doc_collection):
            if client.has_collection(self.chunk_collection):
                raise IndexOpenError(f"index at {self.location} is damaged (no documents collection); "
                                     f"{rebuild_hint(self.options)}")
            return None
        rows = client.query(self.doc_collection, filter=f"key in {_literal([MANIFEST_KEY])}", output_fields=["meta"])
        if not rows:
            raise IndexOpenError(f"index at {self.location} is damaged (no manifest); {rebuild_hint(self.options)}")
        manifest = rows[0]["meta"]
        if not isinstance(manifest, dict):
            raise IndexOpenError(f"index at {self.location} has a damaged manifest; {rebuild_hint(self.options)}")
        return manifest

    def open(self, dim: int, dense_index: str) -> None:
        self._search_params = _search_params(dense_index)
        if not dim:
            return
        client = self._client
        if not client.has_collection(self.chunk_collection):
            raise IndexOpenError(f"index at {self.location} is damaged (no chunks collection); {rebuild_hint(self.options)}")
        fields = {f["name"]: f for f in client.describe_collection(self.chunk_collection)["fields"]}
        stored = int(fields.get("vector", {}).get("params", {}).get("dim", 0))
        if stored != dim:
            raise IndexOpenError(f"index at {self.location} is inconsistent (vectors have {stored} dimensions, "
                                 f"the manifest says {dim}); {rebuild_hint(self.options)}")

    def start_empty(self) -> None:
        self._fresh = True

    def refresh(self) -> None:
        """Nothing to do: every read asks the engine."""

    # ------------------------------------------------------------------ reading

    def _rows(self, collection: str, filter: str, fields: list[str]) -> Iterator[dict[str, Any]]:
        """Every row matching ``filter``, in batches (a single Milvus query returns at most 16,384)."""
        if self._fresh or not self._client.has_collection(collection):
            return
        iterator = self._client.query_iterator(collection, batch_size=BATCH * 2, filter=filter, output_fields=fields)
        try:
            while batch := iterator.next():
                yield from batch
        finally:
            iterator.close()

    def _document_rows(self) -> list[dict[str, Any]]:
        rows = self._rows(self.doc_collection, "part == 0", ["doc_id", "seq", "hash"])
        return sorted(rows, key=lambda r: r["seq"])

    def hashes(self) -> dict[str, str]:
        return {r["doc_id"]: r["hash"] for r in self._document_rows()}

    def documents(self) -> list[Document]:
        return self._documents("part >= 0")

    def document(self, doc_id: str) -> Document | None:
        docs = self._documents(f"doc_id == {json.dumps(doc_id, ensure_ascii=False)}")
        return docs[0] if docs else None

    def _documents(self, filter: str) -> list[Document]:
        parts: dict[str, dict[int, str]] = {}
        heads: dict[str, dict[str, Any]] = {}
        for row in self._rows(self.doc_collection, filter, ["doc_id", "part", "seq", "meta", "text"]):
            parts.setdefault(row["doc_id"], {})[row["part"]] = row["text"]
            if row["part"] == 0:
                heads[row["doc_id"]] = row
        docs = []
        for doc_id, head in sorted(heads.items(), key=lambda kv: kv[1]["seq"]):
            text = "".join(parts[doc_id][n] for n in sorted(parts[doc_id]))
            docs.append(Document.from_dict({**head["meta"], "id": doc_id, "text": text}))
        return docs

    def chunks(self, doc_id: str | None = None) -> list[Chunk]:
        filter = 'id != ""' if doc_id is None else f"doc_id == {json.dumps(doc_id, ensure_ascii=False)}"
        order = {r["doc_id"]: r["seq"] for r in self._document_rows()}
        rows = self._rows(self.chunk_collection, filter, ["chunk_id", "doc_id", "start", "end", "text"])
        chunks = [Chunk(r["chunk_id"], r["doc_id"], r["start"], r["end"], r["text"]) for r in rows]
        return sorted(chunks, key=lambda c: (order.get(c.doc_id, -1), int(c.chunk_id.rsplit("#", 1)[1])))

    def __len__(self) -> int:
        if self._fresh or not self._client.has_collection(self.chunk_collection):
            return 0
        rows = self._client.query(self.chunk_collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def dense_search(self, vector: np.ndarray, depth: int, scope: Scope | None = None) -> list[tuple[Key, float]]:
        params = {**self._search_params}
        if "ef" in params.get("params", {}):
            params["params"] = {"ef": max(params["params"]["ef"], depth)}
        found = self._client.search(
            self.chunk_collection, data=[vector.astype(np.float32).tolist()], anns_field="vector",
            limit=depth, output_fields=["doc_id"], search_params=params, filter=_scope_filter(scope),
        )
        return [(hit["id"], float(hit["distance"])) for hit in found[0]]

    def bm25_search(
        self, query: str, depth: int, scope: Scope | None = None, ids: list[str] | None = None
    ) -> list[tuple[Key, float]]:
        terms = " ".join(tokenize([query])[0])
        if not terms:
            return []
        filters = [_scope_filter(scope), "" if ids is None else f"id in {_literal(ids)}"]
        found = self._client.search(
            self.chunk_collection, data=[terms], anns_field="sparse", limit=depth, output_fields=["doc_id"],
            filter=" and ".join(f"({f})" for f in filters if f),
        )
        # BM25 scores are never negative; Milvus Lite 3.2 reports them negated (a distance).
        return [(hit["id"], abs(float(hit["distance"]))) for hit in found[0]]

    def dense_scores(self, vector: np.ndarray, keys: list[Key]) -> np.ndarray:
        rows = {r["id"]: r["vector"] for r in self._get(keys, ["vector"])}
        return np.array([np.dot(rows[k], vector) if k in rows else 0.0 for k in keys], dtype=np.float32)

    def bm25_scores(self, query: str, keys: list[Key]) -> np.ndarray:
        scores = dict(self.bm25_search(query, len(keys), ids=[str(k) for k in keys]))
        return np.array([scores.get(k, 0.0) for k in keys], dtype=np.float64)

    def passages(self, keys: list[Key]) -> list[Passage]:
        rows = {r["id"]: r for r in self._get(keys, ["chunk_id", "doc_id", "start", "end", "text", "title", "date", "page"])}
        out = []
        for key in keys:
            r = rows[key]
            chunk = Chunk(r["chunk_id"], r["doc_id"], r["start"], r["end"], r["text"])
            out.append(Passage(chunk, r["title"], r["date"] or None, r["page"] if r["page"] >= 0 else None))
        return out

    def _get(self, keys: list[Key], fields: list[str]) -> list[dict[str, Any]]:
        if not keys:
            return []
        ids = [str(k) for k in keys]
        return list(self._client.query(self.chunk_collection, filter=f"id in {_literal(ids)}", output_fields=fields))

    # ------------------------------------------------------------------ writing

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        # Milvus Lite lets one process open a .db; within it, and against a server, writes to
        # one index are serialised here. Writers in other processes against a server are not.
        lock = _WRITERS.setdefault(self.location, threading.Lock())
        with lock:
            yield

    def collect(self) -> None:
        """Nothing is left behind: a crashed write is redone by the next one."""

    def commit(self, manifest: dict[str, Any], change: Change, dense_index: str) -> None:
        client = self._client
        if self._fresh:
            for collection in (self.chunk_collection, self.doc_collection):
                if client.has_collection(collection):
                    client.drop_collection(collection)
            self._fresh = False
        self._create(int(manifest["dim"]), dense_index)
        heads = {r["doc_id"]: r for r in self._document_rows()}
        # Removed documents: chunks first, then the rows that say they exist.
        stored: list[str] = []
        if change.remove:
            stored = [r["id"] for r in self._rows(self.chunk_collection, f"doc_id in {_literal(sorted(change.remove))}", ["doc_id"])]
        new_ids = {_key(c.chunk_id) for c in change.chunks}
        by_id = {d.id: d for d in change.documents}
        rows = []
        terms = [" ".join(t) for t in tokenize(list(change.passages))] if change.passages else []
        for chunk, vector, passage_terms in zip(change.chunks, change.vectors, terms):
            doc = by_id[chunk.doc_id]
            page = doc.page_of(chunk.start)
            rows.append({
                "id": _key(chunk.chunk_id), "chunk_id": chunk.chunk_id, "doc_id": chunk.doc_id,
                "start": chunk.start, "end": chunk.end,
                "page": -1 if page is None else page, "title": doc.title, "date": doc.date or "",
                "text": chunk.text, "terms": passage_terms, "vector": vector.astype(np.float32).tolist(),
            })
        for batch in iter_batches(rows, BATCH):
            client.upsert(self.chunk_collection, batch)
        stale = [key for key in stored if key not in new_ids]
        for batch in iter_batches(stale, BATCH):
            client.delete(self.chunk_collection, filter=f"id in {_literal(batch)}")
        gone = sorted(change.remove - set(by_id))
        if gone:
            client.delete(self.doc_collection, filter=f"doc_id in {_literal(gone)}")
        next_seq = max((r["seq"] for r in heads.values()), default=-1) + 1
        doc_rows = []
        for seq, doc in enumerate(change.documents, start=next_seq):  # a new version is the latest added
            meta = {k: v for k, v in doc.to_dict().items() if k not in ("id", "text")}
            texts = [doc.text[i : i + TEXT_PART] for i in range(0, len(doc.text), TEXT_PART)] or [""]
            for part, text in enumerate(texts):
                head = part == 0
                doc_rows.append({
                    "key": _key(f"{doc.id}#p{part}"), "doc_id": doc.id, "part": part, "seq": seq,
                    "hash": change.hashes[doc.id] if head else "", "meta": meta if head else {}, "text": text,
                    "_": [1.0, 0.0],
                })
        if change.documents:
            # Parts a shorter new version no longer has.
            updated = sorted(d.id for d in change.documents if d.id in heads)
            if updated:
                keep = {r["key"] for r in doc_rows}
                old = self._rows(self.doc_collection, f"doc_id in {_literal(updated)}", ["part"])
                extra = [r["key"] for r in old if r["key"] not in keep]
                for batch in iter_batches(extra, BATCH):
                    client.delete(self.doc_collection, filter=f"key in {_literal(batch)}")
            # Later parts first, so a document's head row (its hash) is written last.
            for batch in iter_batches(sorted(doc_rows, key=lambda r: -r["part"]), BATCH):
                client.upsert(self.doc_collection, batch)
        client.upsert(self.doc_collection, [{
            "key": MANIFEST_KEY, "doc_id": "", "part": -1, "seq": -1, "hash": "", "meta": manifest, "text": "",
            "_": [1.0, 0.0],
        }])
        # Seal what was written into indexed segments: Milvus Lite otherwise searches its in-memory
        # table row by row (1k chunks: dense search 37 -> 9 ms, BM25 197 -> 30 ms after a flush).
        for collection in (self.chunk_collection, self.doc_collection):
            client.flush(collection)
        self._search_params = _search_params(dense_index)

    def _create(self, dim: int, dense_index: str) -> None:
        """Create the two collections if they do not exist yet."""
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        client = self._client
        if not client.has_collection(self.chunk_collection):
            schema = MilvusClient.create_schema(auto_id=False)
            schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)  # _key(chunk_id)
            schema.add_field("chunk_id", DataType.VARCHAR, max_length=2048)
            schema.add_field("doc_id", DataType.VARCHAR, max_length=2048)
            for name in ("start", "end", "page"):
                schema.add_field(name, DataType.INT64)
            schema.add_field("title", DataType.VARCHAR, max_length=65535)
            schema.add_field("date", DataType.VARCHAR, max_length=256)
            schema.add_field("text", DataType.VARCHAR, max_length=65535)
            schema.add_field("terms", DataType.VARCHAR, max_length=65535, enable_analyzer=True,
                             analyzer_params=ANALYZER)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                         input_field_names=["terms"], output_field_names=["sparse"]))
            kind, params = INDEX_TYPES[dense_index]
            indexes = client.prepare_index_params()
            indexes.add_index(field_name="vector", index_type=kind, metric_type="IP", params=params)
            indexes.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                              params=BM25_PARAMS)
            indexes.add_index(field_name="doc_id", index_type="INVERTED")
            client.create_collection(self.chunk_collection, schema=schema, index_params=indexes,
                                     consistency_level="Strong")
        if not client.has_collection(self.doc_collection):
            schema = MilvusClient.create_schema(auto_id=False)
            schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=64)  # _key("<doc id>#p<part>")
            schema.add_field("doc_id", DataType.VARCHAR, max_length=2048)
            schema.add_field("part", DataType.INT64)
            schema.add_field("seq", DataType.INT64)
            schema.add_field("hash", DataType.VARCHAR, max_length=64)
            schema.add_field("meta", DataType.JSON)
            schema.add_field("text", DataType.VARCHAR, max_length=65535)
            schema.add_field("_", DataType.FLOAT_VECTOR, dim=2)
            indexes = client.prepare_index_params()
            indexes.add_index(field_name="_", index_type="FLAT", metric_type="L2")
            client.create_collection(self.doc_collection, schema=schema, index_params=indexes,
                                     consistency_level="Strong")


def _scope_filter(scope: Scope | None) -> str:
    """The Milvus filter expression that keeps the chunks inside ``scope`` ("" keeps all): the
    scope's documents by id, and its dates compared as strings (ISO dates sort as they read; each
    chunk row carries its document's date, "" for none, since the collection was first made)."""
    if scope is None:
        return ""
    parts = [f"doc_id in {_literal(list(scope.doc_ids))}"] if scope.doc_ids else []
    if scope.dated:
        parts.append('date != ""')
    if scope.since:
        parts.append(f"date >= {json.dumps(scope.since)}")
    if scope.before:
        parts.append(f"date < {json.dumps(scope.before)}")
    return " and ".join(parts)


def _locked(path: str) -> bool:
    """Whether another process holds Milvus Lite's lock on the ``.db`` folder at ``path``."""
    lock = os.path.join(path, "LOCK")
    if not os.path.exists(lock):
        return False
    with open(lock, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return False


def _search_params(dense_index: str) -> dict[str, Any]:
    kind = INDEX_TYPES.get(dense_index, INDEX_TYPES["auto"])[0]
    if kind == "HNSW":
        return {"metric_type": "IP", "params": {"ef": HNSW_EF_SEARCH}}
    if kind == "IVF_FLAT":
        return {"metric_type": "IP", "params": {"nprobe": ivf_nprobe(IVF_NLIST)}}
    return {"metric_type": "IP", "params": {}}


def _reason(error: Exception) -> str:
    """pymilvus's message for an error, on one line."""
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return " ".join(str(message).split())


@contextmanager
def lite_server(data_dir: Path, wait_s: float = 60.0) -> Iterator[str]:
    """A Milvus Lite server on 127.0.0.1 keeping its data in ``data_dir``, given as the store URI
    ``milvus:http://127.0.0.1:PORT``; stopped on exit. This is how the contract tests open the
    server entry of ``--store`` (:mod:`rag.stores.factory`); by hand it is
    ``python -m milvus_lite server --data-dir DIR --port PORT``.

    Raises:
        StoreError: the server did not listen within ``wait_s`` (its output is in the message).
    """
    import socket
    import subprocess
    import sys
    import time

    data_dir.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    log = data_dir / "server.log"  # a file, not a pipe nobody reads: a full pipe would stall the server
    command = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data_dir),
               "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "w") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + wait_s
        while server.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            said = " ".join(log.read_text(errors="replace").split())[-500:]
            raise StoreError(f"milvus-lite server did not listen on 127.0.0.1:{port} within {wait_s:.0f} s: {said}")
        yield f"milvus:http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)
