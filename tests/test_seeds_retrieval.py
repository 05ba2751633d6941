"""Integration: each real bundled embedder puts the right seed article first."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag.cli import main

from .conftest import SEEDS

pytestmark = pytest.mark.integration

QUESTIONS = [
    ("When did Belgian minister Bernard Quintin visit Doha?", "000_309b2881ceff4657"),
    ("Who is Belgium's Minister of Security and the Interior?", "000_309b2881ceff4657"),
    ("When is the follow-up meeting between Qatar and Belgium expected?", "000_309b2881ceff4657"),
    ("Which Italian police force visited Qatar's Ministry of the Interior?", "001_4d964a34be51a00b"),
    ("Which department of Qatar's Ministry of Interior did the Italian delegation visit?", "001_4d964a34be51a00b"),
    ("What experience do the Carabinieri have in investigating cybercrime?", "001_4d964a34be51a00b"),
    ("Which African country partnered with Qatar on cybersecurity?", "002_26a8b3c79e444c21"),
    ("Who is the Qatari Minister of Communications and Information Technology?", "002_26a8b3c79e444c21"),
    ("Which countries signed similar MoUs to improve their cybersecurity posture?", "002_26a8b3c79e444c21"),
    ("Who wrote the Dark Reading article?", "002_26a8b3c79e444c21"),
    ("Which Interpol official met the president of the National Cyber Security Agency?", "003_a8b633391ebd0f97"),
    ("Who from the US Department of Homeland Security met al-Maliki?", "003_a8b633391ebd0f97"),
    ("What differences can hamper seamless international cybersecurity cooperation?", "003_a8b633391ebd0f97"),
    ("Who is the director of the Centre for Cybersecurity Belgium?", "004_b9acc8e520016878"),
    ("What period does Belgium's Cyber Security Strategy 2.0 cover?", "004_b9acc8e520016878"),
    ("Since when has Belgium had its Cyber Emergency Plan?", "004_b9acc8e520016878"),
    ("Which body approved Belgium's Cyber Security Strategy 2.0?", "004_b9acc8e520016878"),
    ("Where will cyber expertise be built up in Belgium to improve prosecution of cybercrime?", "004_b9acc8e520016878"),
]


@pytest.fixture(scope="module", params=["minilm", "e5-small-q4", "embeddinggemma-300m"])
def seeds_index(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeds indexed with each bundled embedder (EmbeddingGemma is fetched, 1.1 GB, once per run)."""
    index_dir = tmp_path_factory.mktemp("seeds") / "index"
    assert main(["index", str(SEEDS), "--index-dir", str(index_dir), "--embedder", request.param, "--quiet"]) == 0
    return index_dir


def search(index_dir: Path, question: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    capsys.readouterr()
    assert main(["search", question, "--json", "--k", "5", "--index-dir", str(index_dir)]) == 0
    return [h["doc_id"] for h in json.loads(capsys.readouterr().out)["hits"]]


def test_right_article_first(seeds_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The retrieval target: the right article first for >= 90% of plain questions, top 5 for all.

    One check per question; the target is over the set, because a retriever that is right
    90% of the time is what we promise, not one tuned until every one of our own questions passes.
    """
    results = {q: (doc_id, search(seeds_index, q, capsys)) for q, doc_id in QUESTIONS}
    first = [q for q, (doc_id, docs) in results.items() if docs[0] == doc_id]
    missing = [q for q, (doc_id, docs) in results.items() if doc_id not in docs]
    assert not missing, f"right article not in the top 5 for: {missing}"
    assert len(first) / len(QUESTIONS) >= 0.9, {q: d for q, d in results.items() if q not in first}


def test_embedder_api() -> None:
    from rag import Embedder

    embedder = Embedder()
    vectors = embedder.embed(["Qatar and Belgium met in Doha.", "Belgian and Qatari officials convened.", "A recipe for bread."])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert Embedder().embed(["Qatar and Belgium met in Doha."]) == pytest.approx(vectors[:1], abs=1e-5)
    with pytest.raises(TypeError, match="list of strings"):
        embedder.embed("not a list")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["e5-small-q4", "embeddinggemma-300m"])
def test_asymmetric_embedders_embed_queries_and_documents_apart(name: str) -> None:
    from rag.search.embedding import load_embedder

    embedder = load_embedder(name)
    question = embedder.embed_query(["Where did the Belgian minister meet Qatari officials?"])
    passages = embedder.embed(["Belgian minister Bernard Quintin met Qatari officials in Doha.", "A recipe for bread."])
    assert question.shape == (1, embedder.dim) and passages.shape == (2, embedder.dim)
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-4)
    assert float(passages[0] @ question[0]) > float(passages[1] @ question[0]) + 0.1
    # the query prompt is applied: the same text embedded as a query is another vector
    same = embedder.embed(["Where did the Belgian minister meet Qatari officials?"])
    assert not np.allclose(same, question, atol=1e-3)


def test_unknown_embedder_directory_is_rejected(tmp_path: Path) -> None:
    from rag import Embedder

    with pytest.raises(ValueError, match="sentence-transformers model directory"):
        Embedder(tmp_path)
