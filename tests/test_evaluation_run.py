"""`rag eval` end to end on the tiny corpus, with the fake embedder and a scripted model."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import rag.answer.assistant
import rag.search.index
from rag.answer.assistant import Assistant
from rag.cli import main
from rag.evaluate.metrics import LOSSES, Setting, load_gold
from rag.evaluate.report import evaluate
from rag.search.embedding import embedder_name
from rag.search.index import Index

from .conftest import FakeEmbedder

GOLD = [
    {"id": "t1", "question": "Which bakery won the sourdough prize?", "answers": ["Miller bakery"],
     "sources": ["bakery"], "answerable": True, "type": "single-fact"},
    {"id": "t2", "question": "Where did the lava of Mount Etna flow?", "answers": ["eastern slope"],
     "sources": ["volcano"], "answerable": True},
    {"id": "t3", "question": "How much did the rye loaf of the bakery cost?", "answers": [], "sources": [],
     "answerable": False},
]
REPLIES = {
    "t1": "The Miller bakery in Ashford won the national sourdough prize [1].",
    "t2": "Lava flowed down the western slope [1].",
    "t3": "I don't know.",
}


class ByQuestionGenerator:
    """Replies by which gold question is in the prompt; can stop with Ctrl-C at one of them."""

    name = "scripted"

    def __init__(self, interrupt_at: str | None = None) -> None:
        self.interrupt_at = interrupt_at
        self.calls = 0
        self.prompts: list[str] = []

    def stream(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> Iterator[str]:
        prompt = messages[-1]["content"]
        self.calls += 1
        self.prompts.append(prompt)
        for row in GOLD:
            if row["question"] in prompt:
                if row["id"] == self.interrupt_at:
                    raise KeyboardInterrupt
                yield REPLIES[row["id"]]
                return
        yield "ok"  # the warm-up call with the bare instruction


@pytest.fixture
def gold_file(tmp_path: Path) -> Path:
    path = tmp_path / "gold.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in GOLD), encoding="utf-8")
    return path


def scripted(generator: ByQuestionGenerator, index: Index) -> Callable[[Setting, Assistant | None], Assistant]:
    return lambda setting, previous: Assistant(index, model=setting.model, k=setting.k, mode=setting.mode,
                                               generator=generator)


def test_answers_metrics_report_and_chart(index: Index, gold_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    [result] = evaluate(load_gold(gold_file), index, [Setting(mode="bm25", k=2)], out,
                        make_assistant=scripted(ByQuestionGenerator(), index))
    lines = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert [row["id"] for row in lines] == ["t1", "t2", "t3"]
    first = lines[0]
    top = first["retrieved"][0]
    assert (top["rank"], top["doc_id"], top["chunk_id"]) == (1, "bakery", "bakery#0") and top["bm25"] > 0
    assert first["citations"][0]["doc_id"] == "bakery" and first["citations"][0]["supported"]
    assert first["model"] == "scripted" and set(first["timings"]) == {"retrieve_s", "first_token_s", "total_s", "checks_s"}
    m = result.metrics
    assert m["retrieval"]["hit@1"] == 1.0
    assert m["answers"]["accuracy"] == 0.5  # "western slope" is wrong
    assert m["refusals"] == {"unanswerable": 1, "refusal_accuracy": 1.0, "false_refusals": 0.0,
                             "wrong_shown": pytest.approx(1 / 3), "right_kept": 1.0, "conflicts": 0.0}
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["interrupted"] is False and saved["settings"][0]["metrics"]["answers"]["accuracy"] == 0.5
    text = (out / "report.md").read_text()
    assert "| accuracy | 0.50 |" in text and "| refusal accuracy (unanswerable) | 1.00 |" in text
    assert (out / "chart.png").read_bytes().startswith(b"\x89PNG")
    # the wrong answer is placed: its gold document was in the prompt, the model wrote another place
    assert m["losses"]["right"] == 1 and m["losses"]["causes"]["model wrote a wrong answer from a prompt that held it"] == 1
    assert [row["loss"] for row in lines] == [None, "model wrote a wrong answer from a prompt that held it", None]
    assert "## Where answers were lost" in text and "![where answers were lost](losses.png)" in text
    assert (out / "losses.png").read_bytes().startswith(b"\x89PNG")


def test_ctrl_c_keeps_what_is_done(index: Index, gold_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        evaluate(load_gold(gold_file), index, [Setting()], out,
                 make_assistant=scripted(ByQuestionGenerator(interrupt_at="t3"), index))
    assert len((out / "answers.jsonl").read_text().splitlines()) == 2
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["interrupted"] is True and saved["settings"][0]["answered"] == 2
    assert "**Interrupted**" in (out / "report.md").read_text()


def test_compare_writes_one_folder_per_setting_and_loads_the_model_once(
    index: Index, gold_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str] = []

    def fake_load(name: str, settings: object = None) -> ByQuestionGenerator:
        loads.append(name)
        return ByQuestionGenerator()

    monkeypatch.setattr(rag.answer.assistant, "load_generator", fake_load)
    out = tmp_path / "out"
    settings = [Setting(mode=m, model="qwen-0.5b") for m in ("bm25", "dense", "hybrid")]
    results = evaluate(load_gold(gold_file), index, settings, out)
    assert loads == ["qwen-0.5b"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["qwen-0.5b-bm25-k4", "qwen-0.5b-dense-k4", "qwen-0.5b-hybrid-k4"]
    assert len(results) == 3 and all(r.complete for r in results)
    header = (out / "report.md").read_text().split("| metric |")[1].splitlines()[0]
    assert "qwen-0.5b bm25 k=4" in header and "qwen-0.5b hybrid k=4" in header


def test_compare_words_sends_the_model_fewer_source_words(
    index: Index, gold_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = ByQuestionGenerator()
    monkeypatch.setattr(rag.answer.assistant, "load_generator", lambda name, settings=None: generator)
    out = tmp_path / "out"
    results = evaluate(load_gold(gold_file), index, [Setting(k=2), Setting(k=2, words=8)], out)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["qwen-1.5b-hybrid-k2", "qwen-1.5b-hybrid-k2-w8"]
    assert "qwen-1.5b hybrid k=2 words=8" in (out / "report.md").read_text()
    asked = [p for p in generator.prompts if GOLD[0]["question"] in p]
    full, short = (len(p.split("Question:")[0].split()) for p in asked)
    assert short < full
    # the best sentence is kept even when it alone is longer than the budget
    assert results[1].records[0].citations and results[1].records[0].citations[0]["doc_id"] == "bakery"


def test_a_setting_shapes_the_assistants_prompt(index: Index) -> None:
    from rag.answer.prompting import build_prompt, select_sources
    from rag.evaluate.report import _assistant

    assistant = _assistant(index, Setting(k=2, words=8, labels="title-if-new"), None, None)
    assert (assistant.context_words, assistant.source_labels) == (8, "title-if-new")
    question = GOLD[0]["question"]
    hits = assistant.retrieve(question)
    expected = build_prompt(question, select_sources(question, hits, index.embedder, 8), "title-if-new")
    assert assistant.prompt(question, hits) == expected
    assert assistant.prompt(question, hits) != build_prompt(question, select_sources(question, hits, index.embedder))


# ---------------------------------------------------------------------- the command


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rag.search.index, "load_embedder", lambda spec: FakeEmbedder(name=embedder_name(spec)))
    monkeypatch.setattr(rag.answer.assistant, "load_generator", lambda name, settings=None: ByQuestionGenerator())


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_rag_eval_with_corpus(
    capsys: pytest.CaptureFixture[str], fake_models: None, gold_file: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "eval", "--gold", str(gold_file), "--corpus", str(tiny_corpus), "--out", str(out))
    assert code == 0, err
    assert "3 added" in err and "eval-index" in err
    assert "accuracy 0.50" in stdout and "refusal accuracy 1.00" in stdout
    assert len((out / "answers.jsonl").read_text().splitlines()) == 3
    assert "`rag eval --gold" in (out / "report.md").read_text()
    # the corpus index is reused: nothing is embedded again
    code, _, err = run_cli(capsys, "eval", "--gold", str(gold_file), "--corpus", str(tiny_corpus), "--out", str(out),
                           "--retrieval-only", "--compare", "mode=bm25,dense,hybrid")
    assert code == 0 and "0 added, 0 updated, 3 unchanged" in err
    assert {"bm25-k4", "dense-k4", "hybrid-k4"} <= {p.name for p in out.iterdir()}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "no index at"),
        (["--corpus", "{corpus}", "--compare", "model=a,b", "--retrieval-only"], "drop --retrieval-only"),
        (["--corpus", "{corpus}", "--limit", "0"], "--limit must be > 0"),
        (["--corpus", "{corpus}", "--compare", "speed=1,2"], "AXIS one of"),
        (["--corpus", "{other}"], "none of the 2 source documents"),
    ],
)
def test_rag_eval_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], fake_models: None, gold_file: Path, tiny_corpus: Path, tmp_path: Path,
    argv: list[str], message: str,
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "note.txt").write_text("An unrelated note about gardening and tomatoes.", encoding="utf-8")
    argv = [a.format(corpus=tiny_corpus, other=other) for a in argv]
    code, _, err = run_cli(capsys, "eval", "--gold", str(gold_file), "--out", str(tmp_path / "out"), *argv)
    assert code == 1
    last = err.strip().splitlines()[-1]  # after the indexing summary, when there is one
    assert message in last and last.startswith("rag: error:") and err.count("rag: error") == 1


def test_the_loss_table_counts_the_answers_a_second_try_showed() -> None:
    from types import SimpleNamespace

    from rag.evaluate.report import losses_section

    causes = dict.fromkeys(LOSSES, 0)
    tried = SimpleNamespace(setting=SimpleNamespace(label="retry on"), metrics={
        "losses": {"questions": 10, "right": 6, "causes": causes, "evidence_in_prompt": 0.9},
        "retry": {"shown": 3, "right": 2, "wrong": 1, "how": {"alone": 3}}})
    plain = SimpleNamespace(setting=SimpleNamespace(label="retry off"), metrics={
        "losses": {"questions": 10, "right": 4, "causes": causes, "evidence_in_prompt": 0.9}, "retry": None})
    lines = losses_section([tried, plain], None)  # type: ignore[list-item]
    assert "| shown by a second try (right / wrong; each would be a refusal without it) | 3 (2 / 1) | – |" in lines
    assert not any("second try" in line for line in losses_section([plain], None))  # type: ignore[list-item]
