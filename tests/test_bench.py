"""The benchmark script (eval/bench.py, its sections in eval/bench_sections/): the pure helpers and
the retrieval section on tiny sizes (no timing asserted), the options, and each section's part of the
report."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from eval.bench_sections import measure, retrieval, synthetic
from eval.common import percentile


@pytest.fixture(scope="module")
def bench():
    from eval import bench

    return bench


def test_percentiles_and_summary() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    s = measure.summary([0.1] * 19 + [1.0])
    assert s["p50"] == pytest.approx(0.1) and s["p95"] > 0.1 and s["n"] == 20
    with pytest.raises(ValueError):
        percentile([], 50)


def test_synthetic_vectors_are_unit_rows_with_neighbours() -> None:
    x = synthetic.synthetic_vectors(1000, dim=64, seed=3)
    assert x.shape == (1000, 64) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    sims = x @ x.T
    np.fill_diagonal(sims, -1)
    nearest = sims.max(axis=1).mean()
    assert nearest > 0.4 > abs(sims[np.triu_indices(1000, 1)].mean())  # structure, unlike uniform noise
    np.testing.assert_array_equal(x, synthetic.synthetic_vectors(1000, dim=64, seed=3))
    q = synthetic.perturb(x[:5])
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5) and ((q * x[:5]).sum(axis=1) > 0.5).all()


def test_synthetic_texts_and_queries() -> None:
    texts = synthetic.synthetic_texts(20, words=30, seed=1)
    assert len(texts) == 20 and all(len(t.split()) == 30 for t in texts)
    assert texts[0].count(".") == 2  # sentences of 15 words
    query = synthetic.query_from(texts[0], seed=0)
    assert len(query.split()) == 4 and set(query.split()) <= {w.strip(".").lower() for w in texts[0].split()}


def test_recall_at_k() -> None:
    exact = np.array([[1, 2, 3], [4, 5, 6]])
    assert measure.recall_at_k(exact, exact) == 1.0
    assert measure.recall_at_k(np.array([[1, 2, 9], [7, 8, 9]]), exact) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        measure.recall_at_k(exact[:1], exact)


def test_synthetic_embedder_hands_out_passages_then_queries() -> None:
    fake = synthetic.SyntheticEmbedder()
    fake.passages = synthetic.synthetic_vectors(10, seed=0)
    fake.queries = {"q": fake.passages[3]}
    np.testing.assert_array_equal(fake.embed(["a", "b"]), fake.passages[:2])
    np.testing.assert_array_equal(fake.embed(["q"])[0], fake.passages[3])
    assert fake.embed(["c"] * 20).shape == (20, synthetic.DIM)  # past the matrix: fresh vectors


def test_every_section_runs_and_renders_its_own_part_of_the_report(bench) -> None:
    """Each section is a module with ``run`` and ``render``, placed once in bench.md; the figures in
    eval/results/bench.json (every section) render one heading per section, in the report's order."""
    assert sorted(bench.REPORT) == sorted(bench.SECTIONS)
    assert all(callable(module.run) and callable(module.render) for module in bench.SECTIONS.values())
    results = json.loads((Path(__file__).parent.parent / "eval" / "results" / "bench.json").read_text())
    text = bench.render_markdown(results)
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert len(headings) == len(bench.SECTIONS) and headings[0].startswith("## Indexing")
    assert headings[-1].startswith("## Embedding on a local Ray") and "\n\n\n" not in text
    assert text.endswith("[eval/README.md](../README.md#performance).\n")


def test_retrieval_section_and_report_on_tiny_sizes(bench, tmp_path: Path) -> None:
    args = bench.parse_args(["--quick", "--only", "retrieval"])
    args.sizes, args.queries, args.repeats, args.bm25_max, args.hnsw_max = [300], 8, 1, 300, 300
    args.query_embedding = False
    section = retrieval.run(args, tmp_path)
    assert [r["kind"] for r in section["dense"]] == ["flat", "hnsw", "ivf"]
    assert section["dense"][0]["recall_at_10"] == 1.0
    assert all(0.0 <= r["recall_at_10"] <= 1.0 for r in section["dense"])
    assert section["bm25"][0]["n"] == 300 and section["index"][0]["hybrid"]["n"] == 8
    section.update(load_before=[0.5], load_after=[0.6])
    text = bench.render_markdown({"machine": bench.machine(), "retrieval": section})
    assert "| 300 | hnsw |" in text and "## Retrieval at scale" in text and "## Generation" not in text


def test_unknown_section_is_refused(bench) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(["--only", "indexing,warp"])


def test_busy_processes_run_and_are_stopped() -> None:
    with measure.Busy(2, limit_s=30) as busy:
        assert len(busy.procs) == 2 and all(p.poll() is None for p in busy.procs)
    assert all(p.returncode is not None for p in busy.procs)
    with measure.Busy(1, limit_s=0.2) as busy:  # bounded: ends by itself
        busy.procs[0].wait(timeout=10)
        assert busy.procs[0].returncode == 0


def test_contention_options_and_report(bench) -> None:
    args = bench.parse_args(["--only", "contention", "--contention-threads", "2/1,1", "--busy", "0,2"])
    assert args.contention_threads == ["2/1", "1"] and args.busy == [0, 2] and args.contention_questions == 12
    run = lambda busy, p50: {"busy": busy, "first_token": None, "total": {"p50": p50, "p95": p50, "n": 3},  # noqa: E731
                             "total_over_idle_p50": round(p50 / 2.0, 3)}
    section = {"model": "qwen-1.5b", "questions": 3, "busy": [0, 2], "load_before": [0.1], "load_after": [2.0],
               "variants": [{"threads": 2, "batch_threads": 1, "runs": [run(0, 2.0), run(2, 5.0)]}]}
    text = bench.render_markdown({"machine": bench.machine(), "contention": section})
    assert "## Busy machine" in text and "| 2 / 1 | 2 | - | 5.00 / 5.00 | 2.5 |" in text


def test_embedders_options_and_report(bench) -> None:
    args = bench.parse_args(["--only", "embedders", "--embedders", "minilm,e5-small-q4"])
    assert args.sections == ["embedders"] and args.embedders == ["minilm", "e5-small-q4"]
    assert (args.embedder_passages, args.queries_per_embedder) == (96, 40)
    query = {"p50": 0.02, "p95": 0.03, "n": 40}
    row = {"embedder": "e5-small-q4", "dim": 384, "load_s": 0.2, "rss_mb": 54.0, "raw_passages_per_s": 10.0,
           "passages_per_s": 9.5, "ratio": 0.95, "query_idle": query, "query_busy1": query, "index_seeds_cli_s": 7.5}
    section = {"passages": 96, "queries": 40, "embedders": [row], "load_before": [0.1], "load_after": [0.2]}
    text = bench.render_markdown({"machine": bench.machine(), "embedders": section})
    assert "## Embedders" in text
    assert "| e5-small-q4 | 384 | 0.2 s | 54 MB | 9.5 (10.0) | 0.95 | 20.00 / 30.00 | 20.00 / 30.00 | 7.5 s |" in text


def test_a_run_updates_only_the_sections_it_ran(bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def section(title: str) -> SimpleNamespace:
        return SimpleNamespace(run=lambda args, work: {"value": 1},
                               render=lambda s: [f"## {title}", "", f"value {s.get('value', 'kept')}"])

    monkeypatch.setitem(bench.SECTIONS, "batch", section("Ran"))
    monkeypatch.setitem(bench.SECTIONS, "cold", section("Kept"))
    (tmp_path / "bench.json").write_text(json.dumps({"cold": {"note": "from an earlier run"}}))
    bench.main(["--only", "batch", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "bench.json").read_text())
    assert results["cold"] == {"note": "from an earlier run"} and results["batch"]["value"] == 1
    assert {"load_before", "load_after", "seconds", "finished"} <= set(results["batch"])
    text = (tmp_path / "bench.md").read_text()
    assert "## Ran\n\nvalue 1" in text and "## Kept\n\nvalue kept" in text and text.index("## Ran") < text.index("## Kept")
