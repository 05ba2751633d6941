from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from rag.core.types import Document, Scope
from rag.ingest.chunking import ChunkConfig
from rag.search.index import FORMAT_VERSION, Index
from rag.stores.base import IndexOpenError
from rag.stores.dense import DenseIndex, nearest_rows
from rag.stores.sparse import BM25Index

from .conftest import FakeEmbedder


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    return tmp_path / "index"


def open_index(path: Path, embedder: FakeEmbedder | None = None, **kw) -> Index:
    return Index.open(path, embedder=embedder or FakeEmbedder(), **kw)


def test_add_search_and_reopen(index_dir: Path, tiny_corpus: Path) -> None:
    index = open_index(index_dir)
    report = index.add([tiny_corpus])
    assert sorted(report.added) == ["bakery", "chess", "volcano"]
    assert report.chunks == len(index) > 0
    hits = index.search("sourdough bakery prize in Ashford", k=2)
    assert hits[0].doc_id == "bakery" and hits[0].rank == 1
    assert hits[0].title == "Village Bakery Wins Bread Prize"
    doc = index.document("bakery")
    assert doc.text[hits[0].start : hits[0].end] == hits[0].text

    reopened = open_index(index_dir)
    assert [d.id for d in reopened.documents()] == [d.id for d in index.documents()]
    assert [h.chunk_id for h in reopened.search("sourdough bakery prize in Ashford", k=2)] == [
        h.chunk_id for h in hits
    ]


def test_reindexing_unchanged_documents_does_nothing(index_dir: Path, tiny_corpus: Path) -> None:
    embedder = FakeEmbedder()
    index = open_index(index_dir, embedder)
    index.add([tiny_corpus])
    generation = (index_dir / "CURRENT").read_text()
    calls = len(embedder.calls)
    report = index.add([tiny_corpus])
    assert sorted(report.unchanged) == ["bakery", "chess", "volcano"] and not report.added
    assert len(embedder.calls) == calls  # nothing embedded
    assert (index_dir / "CURRENT").read_text() == generation  # nothing written


def test_changed_document_replaces_its_chunks(index_dir: Path, tiny_corpus: Path) -> None:
    index = open_index(index_dir)
    index.add([tiny_corpus])
    before = len(index)
    (tiny_corpus / "volcano.txt").write_text("Mount Etna Erupts Again\nOnly one short sentence now.")
    report = index.add([tiny_corpus])
    assert report.updated == ["volcano"] and sorted(report.unchanged) == ["bakery", "chess"]
    volcano = index.chunks("volcano")
    assert len(volcano) == 1 and "one short sentence" in volcano[0].text
    assert len(index) == before  # one chunk replaced by one, none duplicated
    chunk_ids = [c.chunk_id for c in index.chunks()]
    assert len(chunk_ids) == len(set(chunk_ids))
    assert all("Catania" not in h.text for h in index.search("Catania airport closed", k=10))


def test_no_duplicates_across_runs_and_within_one(index_dir: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    index = open_index(index_dir)
    index.add([tiny_corpus])
    index.add([tiny_corpus / "chess.md", tiny_corpus])
    ids = [d.id for d in index.documents()]
    assert sorted(ids) == ["bakery", "chess", "volcano"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "chess.txt").write_text("A different chess article.")
    report = index.add([tiny_corpus, other])
    assert any("duplicate document id 'chess'" in s.reason for s in report.skipped)
    assert len({c.chunk_id for c in index.chunks()}) == len(index)


def test_remove(index_dir: Path, tiny_corpus: Path) -> None:
    index = open_index(index_dir)
    index.add([tiny_corpus])
    index.remove("chess")
    assert [d.id for d in open_index(index_dir).documents()] == ["bakery", "volcano"]
    assert all(h.doc_id != "chess" for h in index.search("chess olympiad Budapest", k=10))
    with pytest.raises(KeyError, match="no document 'chess'"):
        index.remove("chess")


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_modes(index_dir: Path, tiny_corpus: Path, mode: str) -> None:
    index = open_index(index_dir)
    index.add([tiny_corpus])
    hits = index.search("Gukesh top board India", k=3, mode=mode)
    assert hits[0].doc_id == "chess"
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))


def test_bm25_only_returns_term_matches(index_dir: Path, tiny_corpus: Path) -> None:
    index = open_index(index_dir)
    index.add([tiny_corpus])
    assert index.search("zzzz qqqq", mode="bm25") == []
    assert index.search("the of and", mode="bm25") == []


def test_search_validates_input(index_dir: Path, tiny_corpus: Path) -> None:
    index = open_index(index_dir)
    index.add([tiny_corpus])
    with pytest.raises(ValueError, match="k must be > 0"):
        index.search("x", k=0)
    with pytest.raises(ValueError, match="unknown retrieval mode"):
        index.search("x", mode="magic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        index.search("   ")
    assert len(index.search("lava", k=100)) == len(index)  # k larger than the corpus


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_dense_index_types(index_dir: Path, tiny_corpus: Path, kind: str) -> None:
    index = open_index(index_dir, dense_index=kind)
    index.add([tiny_corpus])
    assert open_index(index_dir).search("volcano eruption lava Sicily", k=1, mode="dense")[0].doc_id == "volcano"
    manifest = json.loads((index_dir / (index_dir / "CURRENT").read_text() / "manifest.json").read_text())
    assert manifest["dense_index"] == kind and manifest["format_version"] == FORMAT_VERSION
    assert set(manifest["documents"]) == {"bakery", "chess", "volcano"}


def test_mismatched_embedder_chunking_and_version_fail_clearly(index_dir: Path, tiny_corpus: Path) -> None:
    open_index(index_dir).add([tiny_corpus])
    with pytest.raises(IndexOpenError, match="built with embedder 'fake-embedder'.*rag index --rebuild"):
        Index.open(index_dir, embedder=FakeEmbedder(name="other"))
    with pytest.raises(IndexOpenError, match="64-dimensional.*makes 32"):
        Index.open(index_dir, embedder=FakeEmbedder(dim=32))
    with pytest.raises(IndexOpenError, match="chunks of"):
        open_index(index_dir, chunking=ChunkConfig(size=50, overlap=5))
    manifest_path = index_dir / (index_dir / "CURRENT").read_text() / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = 999
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexOpenError, match="format version 999.*rebuild"):
        open_index(index_dir)


def test_rebuild_replaces_everything(index_dir: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    open_index(index_dir).add([tiny_corpus])
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "one.txt").write_text("Only this document remains.")
    index = Index.open(index_dir, embedder=FakeEmbedder(name="other", dim=16), rebuild=True)
    assert [d.id for d in open_index(index_dir).documents()] != []  # old index live until commit
    index.add([fresh])
    reopened = Index.open(index_dir, embedder=FakeEmbedder(name="other", dim=16))
    assert [d.id for d in reopened.documents()] == ["one"]


def test_damaged_index_is_reported(index_dir: Path, tiny_corpus: Path) -> None:
    open_index(index_dir).add([tiny_corpus])
    generation = index_dir / (index_dir / "CURRENT").read_text()
    faiss_file = generation / "dense.faiss"
    faiss_file.write_bytes(faiss_file.read_bytes()[:100])
    with pytest.raises(IndexOpenError, match="damaged.*rebuild"):
        open_index(index_dir)
    (index_dir / "CURRENT").unlink()
    with pytest.raises(IndexOpenError, match="damaged"):
        open_index(index_dir)
    with pytest.raises(IndexOpenError, match="no index at"):
        Index.open(index_dir.parent / "missing", create=False)


def test_failed_write_leaves_previous_index_intact(
    index_dir: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = open_index(index_dir)
    index.add([tiny_corpus])
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "new.txt").write_text("A new document about glaciers melting.")

    def fail(self: BM25Index, folder: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(BM25Index, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        index.add([extra])
    monkeypatch.undo()
    assert sorted(d.id for d in index.documents()) == ["bakery", "chess", "volcano"]
    assert index.search("glaciers melting", k=1)[0].doc_id != "new"
    reopened = open_index(index_dir)
    assert sorted(d.id for d in reopened.documents()) == ["bakery", "chess", "volcano"]
    assert not [p for p in index_dir.iterdir() if p.name.startswith(".tmp-")]
    index.add([extra])  # the same object recovers and can write again
    assert "new" in [d.id for d in open_index(index_dir).documents()]


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    sys.path.insert(0, {tests!r})
    from conftest import FakeEmbedder
    from rag.search.index import Index

    real_save = np.save
    def slow_save(path, array, *a, **kw):
        real_save(path, array, *a, **kw)
        open({marker!r}, "w").close()   # tell the test we are inside the write
        time.sleep(30)
    np.save = slow_save
    Index.open({index!r}, embedder=FakeEmbedder()).add([{extra!r}])
    """
)


def test_sigkill_during_indexing_keeps_previous_index(index_dir: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    open_index(index_dir).add([tiny_corpus])
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "new.txt").write_text("A new document about glaciers melting.")
    marker = tmp_path / "inside-write"
    script = KILL_SCRIPT.format(
        tests=str(Path(__file__).parent), marker=str(marker), index=str(index_dir), extra=str(extra)
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the indexing process never reached the write"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    index = open_index(index_dir)
    assert sorted(d.id for d in index.documents()) == ["bakery", "chess", "volcano"]
    assert index.search("Gukesh chess", k=1)[0].doc_id == "chess"
    index.add([extra])  # the leftover temporary folder does not get in the way
    assert "new" in [d.id for d in open_index(index_dir).documents()]
    assert not [p for p in index_dir.iterdir() if p.name.startswith(".tmp-")]


def test_vectors_are_stored_normalised(index_dir: Path, tiny_corpus: Path) -> None:
    open_index(index_dir).add([tiny_corpus])
    vectors = np.load(index_dir / (index_dir / "CURRENT").read_text() / "vectors.npy")
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_bm25_search_matches_bm25s_retrieve() -> None:
    # different lengths, so no two texts tie and the top 10 is one set of rows
    texts = [f"alpha {'beta ' * (i % 5)}gamma " + " ".join(f"filler{i}x{j}" for j in range(i)) for i in range(40)]
    texts.append("unrelated words only")
    bm25 = BM25Index.build(texts)
    for query in ["beta gamma", "filler7x3 alpha", "alpha"]:
        terms = bm25._terms(query)
        rows, scores = bm25._retriever.retrieve([terms], k=10, show_progress=False, n_threads=0)
        expected = {int(r): float(s) for r, s in zip(rows[0], scores[0]) if s > 0}
        got = bm25.search(query, 10)
        assert [s for _, s in got] == sorted(expected.values(), reverse=True)
        assert {r: s for r, s in got} == pytest.approx(expected)


def test_hybrid_fuses_both_retrievers_scores_over_their_candidates(index_dir: Path, tiny_corpus: Path) -> None:
    index = open_index(index_dir)
    index.add([tiny_corpus])
    query = "Gukesh top board India"
    hits = index.search(query, k=len(index))
    query_vector = index.embedder.embed([query])[0]
    keyword = index.backend._bm25.score_all(query)
    for hit in hits:
        row = next(i for i, c in enumerate(index.chunks()) if c.chunk_id == hit.chunk_id)
        assert hit.scores["dense"] == pytest.approx(float(index.backend._vectors[row] @ query_vector), abs=1e-5)
        assert hit.scores.get("bm25", 0.0) == pytest.approx(float(keyword[row]))


def test_vectors_are_memory_mapped_and_survive_later_writes(index_dir: Path, tiny_corpus: Path) -> None:
    index = open_index(index_dir)
    index.add([tiny_corpus])
    assert isinstance(index.backend._vectors, np.memmap)  # one copy in memory: FAISS's
    before = index.search("volcano eruption lava", k=2, mode="hybrid")
    index.remove("chess")  # rebuilds from the mapped vectors; deletes the old generation's files
    index.remove("bakery")
    assert isinstance(open_index(index_dir).backend._vectors, np.memmap)
    after = index.search("volcano eruption lava", k=2, mode="hybrid")
    assert [h.doc_id for h in after] == ["volcano"] * len(after) and before[0].doc_id == "volcano"


def test_sync_removes_only_documents_whose_file_is_gone(index_dir: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "note.txt").write_text("A note about the harbour ferry timetable.", encoding="utf-8")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "j1", "title": "Jay", "text": "A line about comets."}\n', encoding="utf-8")
    index = open_index(index_dir)
    index.add([tiny_corpus, other, corpus])
    (tiny_corpus / "chess.md").unlink()
    (tiny_corpus / "volcano.txt").write_bytes(b"\x00\x01 now binary")  # still there, unreadable: kept
    plain = index.add([tiny_corpus])
    assert plain.removed is None and "removed" not in plain.summary()
    assert "chess" in {d.id for d in index.documents()}  # without sync nothing is removed

    report = open_index(index_dir).add([tiny_corpus], sync=True)
    assert report.removed == ["chess"] and report.summary().endswith("1 skipped, 1 removed (0 chunks embedded)")
    reopened = open_index(index_dir)
    assert {d.id for d in reopened.documents()} == {"bakery", "volcano", "note", "j1"}
    assert not [c for c in reopened.chunks() if c.doc_id == "chess"]
    assert all(h.doc_id != "chess" for h in reopened.search("chess olympiad budapest", k=5))

    corpus.unlink()
    assert open_index(index_dir).add([other], sync=True).removed == []  # documents from other paths are untouched
    (other / "lines.jsonl").write_text('{"_id": "l1", "text": "Comets."}\n{"_id": "l2", "text": "Moons."}\n', encoding="utf-8")
    open_index(index_dir).add([other])
    (other / "lines.jsonl").unlink()
    assert sorted(open_index(index_dir).add([other], sync=True).removed or []) == ["l1", "l2"]  # a JSONL's lines
    with pytest.raises(FileNotFoundError):
        open_index(index_dir).add([corpus], sync=True)  # a missing path changes nothing
    assert "j1" in {d.id for d in open_index(index_dir).documents()}


def test_reciprocal_rank_fusion_ranks_by_both_lists(index_dir: Path, tiny_corpus: Path) -> None:
    index = open_index(index_dir)
    index.add([tiny_corpus])
    query = "Gukesh chess olympiad Budapest"
    hits = index.search(query, k=3, fusion="rrf")
    assert hits[0].doc_id == "chess"
    dense = [h.chunk_id for h in index.search(query, k=50, mode="dense")]
    sparse = [h.chunk_id for h in index.search(query, k=50, mode="bm25")]
    for hit in hits:  # the RRF score of each hit, from its rank in each list (k = 60)
        expected = sum(1 / (60 + ranks.index(hit.chunk_id) + 1) for ranks in (dense, sparse) if hit.chunk_id in ranks)
        assert hit.score == pytest.approx(expected)
    with pytest.raises(ValueError, match="unknown fusion"):
        index.search(query, fusion="mean")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_faiss_skips_rows_outside_the_scope_in_its_search(kind: str) -> None:
    """The bitmap FAISS reads (one bit per row, little-endian) selects exactly the allowed rows;
    an approximate index may find fewer, never others."""
    vectors = np.random.default_rng(7).normal(size=(2000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    allowed = np.zeros(len(vectors), dtype=bool)
    allowed[[3, 8, 9, 700, 1999]] = True
    found = DenseIndex.build(vectors, kind).search(vectors[8], 10, allowed)
    exact = nearest_rows(vectors, np.flatnonzero(allowed), vectors[8], 10)
    assert found[0][0] == 8 and {row for row, _ in found} <= {3, 8, 9, 700, 1999}
    if kind == "flat":
        assert [row for row, _ in found] == [row for row, _ in exact] and len(found) == 5


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_a_wide_scope_is_searched_by_faiss_and_still_gets_k(
    index_dir: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above EXACT_ROWS allowed rows the FAISS index searches with a selector; when an approximate
    index comes back short, the allowed rows are scored exactly."""
    import rag.stores.faiss_store

    monkeypatch.setattr(rag.stores.faiss_store, "EXACT_ROWS", 0)
    index = open_index(index_dir, dense_index=kind, chunking=ChunkConfig(size=8, overlap=0))
    topics = ["harbour ferry", "volcano lava", "chess olympiad", "bakery bread"]
    index.add_documents([Document(f"d{n}", f"Doc {n}", " ".join(f"Note {i} on the {topics[n % 4]} story." for i in range(6)))
                         for n in range(40)])
    scope = Scope(tuple(f"d{n}" for n in range(0, 40, 4)))  # the harbour ferry documents
    allowed = {c.chunk_id for d in scope.doc_ids for c in index.chunks(d)}
    hits = index.search("volcano lava eruption", k=12, mode="dense", scope=scope)
    assert len(hits) == 12 and {h.chunk_id for h in hits} <= allowed
