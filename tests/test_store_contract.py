"""The store contract: every storage backend behaves the same under the Index API.

Each test that takes ``store`` runs once per entry of the ``--store`` table
(rag/stores/factory.py's ``STORES``), on a new store that the entry's ``sample`` makes: the FAISS
files (the default), Milvus Lite (a ``.db`` folder) and a Milvus Lite server started for the test
and stopped after it. A store added to the table is tested here with no edit.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.core.errors import NotFound
from rag.core.registry import Entry
from rag.core.types import Document, Scope
from rag.ingest.chunking import ChunkConfig
from rag.search.index import Index
from rag.stores.base import IndexOpenError
from rag.stores.factory import STORES, open_backend
from rag.stores.faiss_store import FaissBackend

from .conftest import SEEDS, FakeEmbedder
from .contract import entries, sample

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=entries(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URI of a new, empty store of each registered kind."""
    with sample(STORES, request.param, tmp_path / "store") as uri:
        yield uri


def open_index(tmp_path: Path, store: str, embedder: FakeEmbedder | None = None, **kw) -> Index:
    return Index.open(tmp_path / "index", store=store, embedder=embedder or FakeEmbedder(), **kw)


def test_add_search_and_reopen(tmp_path: Path, store: str, tiny_corpus: Path) -> None:
    index = open_index(tmp_path, store)
    report = index.add([tiny_corpus])
    assert sorted(report.added) == ["bakery", "chess", "volcano"] and report.chunks == len(index) > 0
    hits = index.search("sourdough bakery prize in Ashford", k=2)
    assert hits[0].doc_id == "bakery" and [h.rank for h in hits] == [1, 2]
    assert hits[0].title == "Village Bakery Wins Bread Prize"
    assert index.document("bakery").text[hits[0].start : hits[0].end] == hits[0].text
    reopened = open_index(tmp_path, store)
    assert [d.id for d in reopened.documents()] == [d.id for d in index.documents()] == ["bakery", "chess", "volcano"]
    assert reopened.document("chess") == index.document("chess")
    assert [(h.chunk_id, round(h.score, 4)) for h in reopened.search("sourdough bakery prize in Ashford", k=2)] == [
        (h.chunk_id, round(h.score, 4)) for h in hits
    ]


def test_unchanged_documents_are_not_embedded_again_and_ids_stay_unique(
    tmp_path: Path, store: str, tiny_corpus: Path
) -> None:
    embedder = FakeEmbedder()
    index = open_index(tmp_path, store, embedder)
    index.add([tiny_corpus])
    calls, chunks = len(embedder.calls), len(index)
    report = index.add([tiny_corpus])
    assert sorted(report.unchanged) == ["bakery", "chess", "volcano"] and not report.added
    assert len(embedder.calls) == calls and len(index) == chunks
    twice = [Document("dup", "First", "one text"), Document("dup", "Second", "another text")]
    report = index.add_documents(twice)
    assert report.added == ["dup"] and "duplicate document id 'dup'" in report.skipped[0].reason
    assert index.document("dup").title == "First"
    ids = [c.chunk_id for c in index.chunks()]
    assert len(ids) == len(set(ids)) == len(index)


def test_update_replaces_the_documents_chunks(tmp_path: Path, store: str) -> None:
    index = open_index(tmp_path, store)
    long_text = " ".join(f"Sentence {n} is about the harbour of Valletta." for n in range(120))
    index.add_documents([Document("port", "Harbour news", long_text), Document("other", "Other", "Unrelated words.")])
    before = len(index.chunks("port"))
    assert before > 1
    report = index.add_documents([Document("port", "Harbour news", "The harbour closed for repairs on Tuesday.")])
    assert report.updated == ["port"]
    assert [c.text for c in index.chunks("port")] == ["The harbour closed for repairs on Tuesday."]
    assert index.document("port").text == "The harbour closed for repairs on Tuesday."
    assert [d.id for d in index.documents()] == ["other", "port"]  # the new version is the latest added
    assert {h.doc_id for h in index.search("harbour repairs Tuesday", k=10)} == {"port", "other"}
    assert len(index) == 2


def test_ids_with_quotes_and_backslashes(tmp_path: Path, store: str) -> None:
    """Ids are data, never part of a query expression (Milvus filters are strings)."""
    odd = ["Scott's Run", 'say "hi"', "back\\slash", "tab\there", "Café – naïve"]
    index = open_index(tmp_path, store)
    index.add_documents([Document(i, f"Title {n}", f"Article {n} about the harbour {i}.") for n, i in enumerate(odd)])
    assert [d.id for d in index.documents()] == odd
    hits = index.search("harbour article", k=10)
    assert {h.doc_id for h in hits} == set(odd) and all(h.title.startswith("Title") for h in hits)
    index.add_documents([Document("Scott's Run", "Title 0", "A changed article about the harbour.")])
    assert [c.text for c in index.chunks("Scott's Run")] == ["A changed article about the harbour."]
    scoped = index.search("harbour article", k=10, scope=Scope(('say "hi"', "back\\slash")))
    assert {h.doc_id for h in scoped} == {'say "hi"', "back\\slash"}
    index.remove('say "hi"')
    assert {d.id for d in index.documents()} == set(odd) - {'say "hi"'}
    assert len(index) == 4


def test_remove(tmp_path: Path, store: str, tiny_corpus: Path) -> None:
    index = open_index(tmp_path, store)
    index.add([tiny_corpus])
    index.remove("volcano")
    assert [d.id for d in index.documents()] == ["bakery", "chess"]
    assert index.chunks("volcano") == [] and all(h.doc_id != "volcano" for h in index.search("Etna lava", k=10))
    with pytest.raises(KeyError, match="no document 'volcano'"):
        index.remove("volcano")
    assert [d.id for d in open_index(tmp_path, store).documents()] == ["bakery", "chess"]


def test_sync_removes_documents_whose_file_is_gone(tmp_path: Path, store: str, tiny_corpus: Path) -> None:
    index = open_index(tmp_path, store)
    index.add([tiny_corpus])
    (tiny_corpus / "chess.md").unlink()
    report = index.add([tiny_corpus], sync=True)
    assert report.removed == ["chess"] and sorted(report.unchanged) == ["bakery", "volcano"]
    assert [d.id for d in index.documents()] == ["bakery", "volcano"]


def test_search_modes(tmp_path: Path, store: str, tiny_corpus: Path) -> None:
    index = open_index(tmp_path, store)
    index.add([tiny_corpus])
    for mode in ("dense", "bm25", "hybrid"):
        hits = index.search("Gukesh chess olympiad Budapest", k=2, mode=mode)
        assert hits[0].doc_id == "chess", mode
        assert len(hits) <= 2
    hybrid = index.search("Gukesh chess olympiad Budapest", k=3)
    assert all("dense" in h.scores for h in hybrid) and "bm25" in hybrid[0].scores
    assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)
    assert index.search("zzzz qqqq", k=3, mode="bm25") == []  # no shared term: no keyword hit
    with pytest.raises(ValueError, match="unknown retrieval mode"):
        index.search("chess", mode="fuzzy")  # type: ignore[arg-type]


def test_a_question_scoped_to_one_document_gets_k_of_its_passages(tmp_path: Path, store: str) -> None:
    """The scope is applied inside the store's search: better matches elsewhere do not use up k."""
    index = open_index(tmp_path, store, chunking=ChunkConfig(size=20, overlap=0))
    history = " ".join(f"In year {n} the harbour of Valletta grew again." for n in range(12))
    ferries = [Document(f"ferry-{n}", f"Ferry {n}", f"The harbour ferry timetable changed, timetable {n}.") for n in range(3)]
    index.add_documents([*ferries, Document("port", "Port history", history)])
    port = {c.chunk_id for c in index.chunks("port")}
    assert len(port) >= 4
    query = "harbour ferry timetable"
    assert {h.doc_id for h in index.search(query, k=3)} == {"ferry-0", "ferry-1", "ferry-2"}
    for mode in ("hybrid", "dense", "bm25"):
        hits = index.search(query, k=len(port), mode=mode, scope=Scope(("port",)))
        assert {h.chunk_id for h in hits} == port and len(hits) == len(port), mode
        assert [h.rank for h in hits] == list(range(1, len(port) + 1))
    two = index.search(query, k=len(port) + 1, scope=Scope(("port", "ferry-1")))
    assert {h.doc_id for h in two} == {"port", "ferry-1"} and len(two) == len(port) + 1
    with pytest.raises(NotFound, match="no document 'nope'"):
        index.search(query, scope=Scope(("port", "nope")))


def test_a_date_range_keeps_the_documents_dated_inside_it(tmp_path: Path, store: str) -> None:
    index = open_index(tmp_path, store)
    index.add_documents([
        Document("jan", "January", "The harbour opened in January.", date="2024-01-10"),
        Document("mar", "March", "The harbour closed in March.", date="2024-03-05"),
        Document("end", "End of March", "The harbour reopened at the end of March.", date="2024-03-31"),
        Document("undated", "Undated", "The harbour is very old."),
    ])

    def found(scope: Scope, mode: str = "hybrid") -> set[str]:
        return {h.doc_id for h in index.search("harbour", k=10, mode=mode, scope=scope)}

    assert found(Scope()) == {"jan", "mar", "end", "undated"}
    for mode in ("hybrid", "dense", "bm25"):
        assert found(Scope(since="2024-03-01", until="2024-03-31"), mode) == {"mar", "end"}, mode  # both days inclusive
    assert found(Scope(until="2024-03-30")) == {"jan", "mar"}  # no date: outside every range
    assert found(Scope(since="2024-03-31")) == {"end"}
    assert found(Scope(since="2024-04-01")) == set()
    assert found(Scope(("jan", "undated", "end"), since="2024-01-01", until="2024-02-01")) == {"jan"}
    assert {h.date for h in index.search("harbour", k=10, scope=Scope(since="2024-03-01"))} == {"2024-03-05", "2024-03-31"}


def test_rebuild_replaces_everything(tmp_path: Path, store: str, tiny_corpus: Path) -> None:
    index = open_index(tmp_path, store)
    index.add([tiny_corpus])
    rebuilt = open_index(tmp_path, store, rebuild=True)
    assert [d.id for d in open_index(tmp_path, store).documents()] != []  # old index readable until commit
    rebuilt.add_documents([Document("one", "One", "A single new document.")])
    assert [d.id for d in open_index(tmp_path, store).documents()] == ["one"]
    assert len(open_index(tmp_path, store)) == 1


def test_mismatched_embedder_is_a_clear_error(tmp_path: Path, store: str, tiny_corpus: Path) -> None:
    open_index(tmp_path, store).add([tiny_corpus])
    with pytest.raises(IndexOpenError, match="built with embedder 'fake-embedder'.*rebuild it with: rag index --rebuild"):
        open_index(tmp_path, store, FakeEmbedder(name="other-embedder"))
    with pytest.raises(IndexOpenError, match="no index at"):
        Index.open(tmp_path / "elsewhere", store=store, create=False)


def test_reopen_from_a_new_process(tmp_path: Path, store: str, tiny_corpus: Path) -> None:
    """A process writes and exits; another one reads what it wrote (Milvus Lite: one process at a time).
    Each process imports the module that registered the store, as a plugin's user would."""
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(ROOT)!r})
        import {STORES.find(store).load.__module__}
        from tests.conftest import FakeEmbedder
        from rag.search.index import Index
        index = Index.open({str(tmp_path / "index")!r}, store={store!r}, embedder=FakeEmbedder())
        if sys.argv[1] == "write":
            index.add([{str(tiny_corpus)!r}])
        print(json.dumps([[d.id for d in index.documents()], [h.doc_id for h in index.search("Etna lava eruption", k=1)]]))
    """)
    run = [sys.executable, "-c", script]
    written = subprocess.run([*run, "write"], capture_output=True, text=True, timeout=120)
    assert written.returncode == 0, written.stderr
    read = subprocess.run([*run, "read"], capture_output=True, text=True, timeout=120)
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout) == json.loads(written.stdout) == [["bakery", "chess", "volcano"], ["volcano"]]


@pytest.mark.integration
def test_seeds_rank_the_same_first_article_on_both_backends(tmp_path: Path) -> None:
    """With the real embedder, every seeds gold question gets the same first article from FAISS
    and from Milvus Lite in each mode (both BM25s see the same terms, rag/stores/milvus_store.py)."""
    faiss = Index.open(tmp_path / "index", store="faiss")
    milvus = Index.open(tmp_path / "index", store=f"milvus:{tmp_path / 'seeds.db'}")
    for index in (faiss, milvus):
        index.add([SEEDS])
    gold = Path(__file__).parent.parent / "eval" / "gold" / "seeds.jsonl"
    questions = [json.loads(line)["question"] for line in gold.read_text().splitlines()]
    for mode in ("hybrid", "dense", "bm25"):
        first = [(faiss.search(q, k=1, mode=mode)[0].doc_id, milvus.search(q, k=1, mode=mode)[0].doc_id) for q in questions]
        assert all(a == b for a, b in first), (mode, [q for q, (a, b) in zip(questions, first) if a != b])


def test_a_new_store_entry_is_picked_up_with_no_test_edit(tmp_path: Path) -> None:
    """A store registered from outside (a plugin: here the FAISS backend under another name) is
    one more case of every contract test above, and they pass on it; nothing here names it."""
    entry = STORES.add(Entry("plugin-store", "a store from a plugin",
                             load=lambda uri, index_dir, default_dir: FaissBackend(Path(index_dir))))
    try:
        assert [p.id for p in entries(STORES)][-1] == "plugin-store"  # what the `store` fixture is made from
        with sample(STORES, entry, tmp_path / "store") as uri:
            assert isinstance(open_backend(uri, tmp_path / "index", tmp_path), FaissBackend)
    finally:
        STORES.remove(entry)
    assert "plugin-store" not in STORES.names()

    # The same entry from a plugin module that pytest loads before it collects this file.
    (tmp_path / "plugin_store.py").write_text(textwrap.dedent("""
        from pathlib import Path

        from rag.core.registry import Entry
        from rag.stores.factory import STORES
        from rag.stores.faiss_store import FaissBackend


        class PluginBackend(FaissBackend):
            \"\"\"The FAISS files, as a store no test knows.\"\"\"


        STORES.add(Entry("plugin-store", "a store from a plugin",
                         load=lambda uri, index_dir, default_dir: PluginBackend(Path(index_dir))))
    """))
    contract = [name for name, test in globals().items()
                if name.startswith("test_") and "store" in inspect.signature(test).parameters]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "plugin_store", "-p", "no:cacheprovider", "-m", "not integration",
         "-k", "plugin-store", str(Path(__file__))],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert f"{len(contract)} passed" in run.stdout, run.stdout[-2000:]
