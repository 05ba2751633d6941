"""`rag index --ray`: passages embedded on a Ray cluster (rag/search/ray_embedding.py), tested with a
local Ray started by the test; and the one-line error without Ray."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rag.core.errors import InvalidInput
from rag.search.index import Index
from rag.stores.base import IndexOpenError

from .conftest import FakeEmbedder, run_cli


def test_without_ray_the_flag_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tiny_corpus: Path, tmp_path: Path, fake_model: None
) -> None:
    from rag.search.ray_embedding import RayEmbedder

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    with pytest.raises(InvalidInput, match=r"pip install '\.\[ray\]'"):
        RayEmbedder("minilm")
    code, _, err = run_cli(capsys, "index", str(tiny_corpus), "--index-dir", str(tmp_path / "ix"), "--ray")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "needs Ray" in err
    assert not (tmp_path / "ix" / "manifest.json").exists() or Index.open(tmp_path / "ix").documents() == []


def test_an_index_embeds_only_with_its_own_model(index: Index) -> None:
    with pytest.raises(IndexOpenError, match="built with embedder 'fake-embedder'"):
        index.embed_on(FakeEmbedder(name="all-MiniLM-L6-v2"))


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.mark.integration
def test_ray_workers_embed_what_this_process_would(local_ray: None, tiny_corpus: Path, tmp_path: Path) -> None:
    """The same corpus indexed here and on a local Ray (two worker processes): the same passages,
    the same vectors (float32 tolerance), the same search results; re-indexing adds nothing."""
    from rag.search.ray_embedding import RayEmbedder

    here = Index.open(tmp_path / "here")
    here.add([tiny_corpus])
    ray_index = Index.open(tmp_path / "ray")
    embedder = RayEmbedder(ray_index.embedder_spec, workers=2)
    ray_index.embed_on(embedder)
    report = ray_index.add([tiny_corpus])
    assert report.chunks == len(here.chunks()) and len(ray_index.documents()) == len(here.documents())
    texts = [c.text for c in here.chunks()]
    np.testing.assert_allclose(embedder.embed(texts), here.embedder.embed(texts), atol=1e-5)
    for question in ("Which bakery won the sourdough prize?", "Where did the lava flow?"):
        assert [h.chunk_id for h in ray_index.search(question, k=3)] == [h.chunk_id for h in here.search(question, k=3)]
    again = ray_index.add([tiny_corpus])
    assert again.chunks == 0 and len(again.unchanged) == len(here.documents())
