"""The name -> (check, load) tables of generators, embedders and stores (rag/core/registry.py):
which entry claims a name, what a bad name says, and that help and validation read the same table."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.cli import EMBEDDER_HELP, MODEL_HELP
from rag.core.errors import InvalidInput
from rag.core.registry import Entry, Registry
from rag.generate.registry import GENERATORS, check_model
from rag.search.embedding import EMBEDDERS, EMBEDDING_MODELS, check_embedder
from rag.stores.factory import STORE_HELP, STORES, open_backend


@pytest.mark.parametrize(("spec", "entry"), [
    ("qwen-1.5b", "qwen-1.5b"),
    ("qwen-0.5b", "qwen-0.5b"),
    ("/models/x.gguf", "PATH.gguf"),
    ("hf:/models/dir", "hf:DIR"),
    ("hf:/models/dir/x.gguf", "hf:DIR"),  # a GGUF read by transformers, not llama.cpp
    ("openai:http://localhost:8080/v1#x.gguf", "openai:URL#MODEL"),
])
def test_each_model_name_is_claimed_by_the_entry_that_loads_it(spec: str, entry: str) -> None:
    assert GENERATORS.find(spec).name == entry


def test_an_unknown_model_lists_every_entry_in_order() -> None:
    with pytest.raises(InvalidInput, match=r"unknown model 'gpt-9'; known models: qwen-1\.5b \(.*\), qwen-0\.5b .*PATH\.gguf .*hf:DIR .*openai:URL#MODEL"):
        check_model("gpt-9")


def test_a_pattern_entry_checks_what_its_name_points_at(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no GGUF file at"):
        check_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(InvalidInput, match="no model directory at"):
        check_model(f"hf:{tmp_path / 'missing'}")
    with pytest.raises(InvalidInput, match="openai:URL#MODEL"):
        check_model("openai:http://localhost:8080/v1")  # no #MODEL
    check_model(f"hf:{tmp_path}")  # a directory is enough to pass the check; nothing loads


def test_bundled_embedders_are_claimed_by_short_or_recorded_name_and_anything_else_is_a_directory(tmp_path: Path) -> None:
    for key, bundled in EMBEDDERS.items():
        assert EMBEDDING_MODELS.find(key).name == key
        assert EMBEDDING_MODELS.find(bundled.name).name == key
    assert EMBEDDING_MODELS.find(str(tmp_path)).name == "DIR"
    with pytest.raises(InvalidInput, match="neither one of minilm, e5-small-q4, embeddinggemma-300m"):
        check_embedder(tmp_path)  # a directory without a model in it
    (tmp_path / "modules.json").write_text("[]")
    check_embedder(tmp_path)


def test_stores_by_uri(tmp_path: Path) -> None:
    assert [STORES.find(uri).name for uri in ("faiss", "milvus:x.db", "milvus:http://h:19530")] == [
        "faiss", "milvus:PATH.db", "milvus:http(s)://HOST:PORT"]
    with pytest.raises(InvalidInput, match="unknown store 'redis:x'"):
        open_backend("redis:x", tmp_path, tmp_path)
    with pytest.raises(InvalidInput, match="write a Milvus store as"):
        open_backend("milvus:", tmp_path, tmp_path)


def test_the_cli_help_reads_the_same_tables() -> None:
    assert MODEL_HELP.split(" | ") == GENERATORS.names()
    assert EMBEDDER_HELP.startswith(" | ".join(EMBEDDING_MODELS.names()))
    assert [part.split(" (")[0] for part in STORE_HELP.split(" | ")] == STORES.names()


def test_an_entry_added_later_can_go_ahead_of_a_catch_all_and_come_out_again() -> None:
    colours = Registry[str]("colour")
    colours.add(Entry("red", "warm", load=str.upper))
    colours.add(Entry("ANY", "every other name", load=str.lower, matches=lambda spec: True))
    blue = colours.add(Entry("blue", "cold", load=str.title), before="ANY")
    assert colours.names() == ["red", "blue", "ANY"] and colours.load("blue") == "Blue"
    colours.remove(blue)
    assert colours.names() == ["red", "ANY"] and colours.load("blue") == "blue"
