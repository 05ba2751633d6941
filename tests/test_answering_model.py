"""Integration: the bundled Qwen 1.5B answers seed questions with citations and refuses the rest."""

from __future__ import annotations

import pytest

from rag.answer.assistant import Assistant
from rag.evaluate.metrics import is_correct
from rag.generate.base import GenerationSettings
from rag.search.index import Index

from .conftest import SEEDS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def assistant(tmp_path_factory: pytest.TempPathFactory) -> Assistant:
    index = Index.open(tmp_path_factory.mktemp("seeds") / "index")
    index.add([SEEDS])
    assistant = Assistant(index, settings=GenerationSettings(threads=2))
    assistant.load()
    return assistant


@pytest.mark.parametrize(
    ("question", "answers", "doc_id"),
    [
        ("When did Bernard Quintin visit Doha?", ["December 6, 2023"], "000_309b2881ceff4657"),
        ("What period does Belgium's Cyber Security Strategy 2.0 cover?", ["2021 to 2025", "2021-2025"], "004_b9acc8e520016878"),
        ("Which country did Qatar partner with to improve public key infrastructure?", ["Rwanda"], "002_26a8b3c79e444c21"),
    ],
)
def test_answers_with_citation_to_the_right_article(
    assistant: Assistant, question: str, answers: list[str], doc_id: str
) -> None:
    answer = assistant.ask(question)
    assert not answer.refused, answer.raw
    assert is_correct(answer.text, {"answers": answers}), answer.text
    supported = [c for c in answer.citations if c.supported]
    assert supported and {c.doc_id for c in supported} == {doc_id}, answer.citations
    # scored by the fitted probes on the model's own hidden states (rag/answer/verifier-probe.json)
    assert answer.trust is not None and answer.trust.scorer == "probes", answer.trust
    assert answer.trust.signals.probes and len(answer.trust.signals.probes) == 2
    assert answer.timings.first_token_s is not None and answer.timings.total_s >= answer.timings.first_token_s


@pytest.mark.parametrize(
    "question",
    [
        "What is the total budget allocated to Belgium's Cyber Security Strategy 2.0?",
        "What is the capital of Australia?",
    ],
)
def test_refuses_what_the_articles_do_not_say(assistant: Assistant, question: str) -> None:
    answer = assistant.ask(question)
    assert answer.refused and answer.citations == (), answer.raw


def test_a_busy_machine_gets_one_thread_and_an_idle_one_all(assistant: Assistant, monkeypatch: pytest.MonkeyPatch) -> None:
    generator = assistant.load()
    question = "When did Bernard Quintin visit Doha?"
    monkeypatch.setattr(generator._meter, "others", lambda: 1.0)  # type: ignore[attr-defined]
    busy = assistant.ask(question)
    assert generator.stats.threads == 1 and is_correct(busy.text, {"answers": ["December 6, 2023"]})  # type: ignore[attr-defined]
    monkeypatch.setattr(generator._meter, "others", lambda: 0.0)  # type: ignore[attr-defined]
    assistant.ask(question)
    assert generator.stats.threads == 2  # type: ignore[attr-defined]


def test_a_second_process_restores_the_warmed_prefix_and_answers_the_same(assistant: Assistant) -> None:
    from rag.answer.prompting import SOURCES_HEADER, fixed_prefix
    from rag.core.bundled import data_dir
    from rag.generate.registry import load_generator

    warm = [*fixed_prefix(), {"role": "user", "content": SOURCES_HEADER}]
    question = "When did Bernard Quintin visit Doha?"
    prompt = assistant.prompt(question, assistant.retrieve(question))

    def primed_answer(generator, restored: bool) -> str:  # type: ignore[no-untyped-def]
        assert generator.prime(warm) is restored
        text = "".join(generator.stream(list(prompt.messages)))
        assert generator.stats.cached_tokens > 200  # the prefix was in the cache
        return text

    # as new processes would: load, prime, answer
    first = load_generator("qwen-1.5b", GenerationSettings(threads=2))
    expected = primed_answer(first, restored=False)  # evaluated, then saved
    assert is_correct(expected, {"answers": ["December 6, 2023"]})
    del first
    [saved] = list((data_dir() / "cache").glob("prefix-*.state"))
    second = load_generator("qwen-1.5b", GenerationSettings(threads=2))
    assert primed_answer(second, restored=True) == expected  # from the file
    saved.write_bytes(b"not a state")
    assert primed_answer(second, restored=False) == expected  # damaged: evaluated afresh


def test_an_answer_does_not_depend_on_the_question_asked_before_it(assistant: Assistant) -> None:
    # Both questions retrieve the same first passage, so their prompts share more than the fixed
    # instruction; only the instruction is reused from the cache, so the first answer comes back
    # the same, token for token, after the other question and after itself.
    first = "What ministerial post does Bernard Quintin hold in the Belgian government?"
    other = "When did Bernard Quintin visit Doha?"
    runs = [assistant.ask(q) for q in (first, other, first, first)]
    a, _, b, c = runs
    assert a.raw == b.raw == c.raw and a.trust is not None
    assert a.trust.to_dict() == b.trust.to_dict() == c.trust.to_dict()
    assert a.tokens == b.tokens == c.tokens  # the same tokens evaluated each time, none reused past the instruction
    assert a.tokens is not None and 200 < a.tokens.cached < 240
