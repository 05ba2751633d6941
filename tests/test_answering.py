from __future__ import annotations

import time
from pathlib import Path

import pytest

from rag.answer.assistant import REFUSAL_TEXT, Answer, Assistant
from rag.answer.prompting import fixed_prefix
from rag.core.errors import GeneratorError
from rag.generate.registry import load_generator
from rag.search.index import Index

from .conftest import FakeEmbedder, JudgingGenerator, ScriptedGenerator


def assistant(index: Index, reply: str) -> Assistant:
    return Assistant(index, generator=ScriptedGenerator(reply))


def test_answer_with_verified_citation(index: Index) -> None:
    a = assistant(index, "The Miller bakery in Ashford won the national sourdough prize [1].")
    answer = a.ask("Which bakery won the sourdough prize?")
    assert not answer.refused and answer.supported
    [c] = answer.citations
    assert c.doc_id == "bakery" and c.supported
    assert index.document("bakery").text[c.start : c.end] == c.quote
    [messages] = a.generator.conversations  # type: ignore[union-attr]
    assert messages[:-1] == fixed_prefix()  # the cached prefix, unchanged
    assert messages[0]["content"].startswith("Answer the question using only the numbered sources.")
    prompt = messages[-1]["content"]
    assert "[1] Village Bakery Wins Bread Prize:" in prompt and "Question: Which bakery won" in prompt
    d = answer.to_dict()
    assert set(d) >= {"question", "answer", "refused", "citations", "retrieved", "timings", "model"}
    assert set(d["citations"][0]) >= {"n", "doc_id", "chunk_id", "start", "end", "quote", "supported"}
    assert set(d["timings"]) == {"retrieve_s", "first_token_s", "total_s", "checks_s"}


def test_stream_yields_text_then_answer(index: Index) -> None:
    items = list(assistant(index, "Lava flowed down the eastern slope [1].").stream("Where did the lava flow?"))
    assert all(isinstance(i, str) for i in items[:-1]) and isinstance(items[-1], Answer)
    assert "".join(items[:-1]).strip() == items[-1].raw


def test_model_refusal_has_no_citations(index: Index) -> None:
    answer = assistant(index, "I don't know.").ask("What did the bakery's rye loaf cost?")
    assert answer.refused and answer.citations == () and answer.text == REFUSAL_TEXT


@pytest.mark.parametrize(("question", "message"), [("", "empty"), ("   \n", "empty"), ("x" * 1001, "limit is 1000")])
def test_bad_questions(index: Index, question: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        assistant(index, "unused").ask(question)


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown model 'gpt-9'.*qwen-1.5b.*qwen-0.5b.*openai:URL#MODEL"):
        load_generator("gpt-9")
    with pytest.raises(ValueError, match="openai:URL#MODEL"):
        load_generator("openai:http://127.0.0.1:1")


def judged(index: Index, reply: str, **kwargs: object) -> Assistant:
    return Assistant(index, generator=JudgingGenerator(reply, **kwargs))  # type: ignore[arg-type]


def test_the_judge_is_asked_after_the_answers_own_conversation(index: Index) -> None:
    a = judged(index, "The Miller bakery in Ashford [1].", yes=0.95)
    answer = a.ask("Which bakery won the sourdough prize?")
    assert not answer.refused
    generator = a.generator
    assert isinstance(generator, JudgingGenerator)
    prompt, judge = generator.conversations[0], generator.conversations[1]
    assert judge[: len(prompt)] == prompt  # the answer's messages (and their KV cache) come first
    assert judge[len(prompt)] == {"role": "assistant", "content": "The Miller bakery in Ashford [1]."}
    assert "Which bakery won the sourdough prize?" in judge[-1]["content"]
    assert answer.sentences[0].support == 0.95
    assert answer.trust is not None and answer.trust.score is not None and answer.trust.signals.support == 0.95
    assert answer.tokens is not None and (answer.tokens.prompt, answer.tokens.cached) == (300, 200)
    assert 0 <= answer.timings.checks_s <= answer.timings.total_s
    shown = answer.to_dict()
    assert shown["trust"]["score"] == round(answer.trust.score, 4) and shown["tokens"]["prompt"] == 300


def test_an_uncited_answer_a_source_supports_is_kept_with_an_added_citation(index: Index) -> None:
    answer = judged(index, "The Miller bakery in Ashford won the national sourdough prize.", yes=0.95).ask(
        "Which bakery won the sourdough prize?"
    )
    assert not answer.refused, answer.refusal_reason
    [c] = answer.citations
    assert c.added and c.supported and c.doc_id == "bakery"
    assert index.document("bakery").text[c.start : c.end] == c.quote


def test_an_answer_the_judge_rejects_is_withheld(index: Index) -> None:
    answer = judged(index, "The Miller bakery in Ashford [1].", yes=0.05).ask("Which bakery won the sourdough prize?")
    assert answer.refused and answer.text == REFUSAL_TEXT and answer.citations == ()
    assert answer.raw == "The Miller bakery in Ashford [1]."  # the model's words stay for the curious
    assert answer.refusal_reason is not None and answer.trust is not None and not answer.trust.shown


def test_a_low_trust_score_withholds_a_supported_answer(index: Index) -> None:
    # the judge says yes, but the model was about to say "I don't know" and unsure of every word
    answer = judged(index, "The Miller bakery in Ashford [1].", yes=0.95, refusing=0.9, logprob=-3.0).ask(
        "Which bakery won the sourdough prize?"
    )
    assert answer.refused and "not trusted enough" in (answer.refusal_reason or "")


def test_a_withheld_answer_is_kept_with_its_citations_reason_and_score(index: Index) -> None:
    answer = judged(index, "The Miller bakery in Ashford [1].", yes=0.95, refusing=0.9, logprob=-3.0).ask(
        "Which bakery won the sourdough prize?"
    )
    assert answer.refused and answer.text == REFUSAL_TEXT and answer.citations == ()  # the refusal stays the answer
    withheld = answer.withheld
    assert withheld is not None and withheld.text == "The Miller bakery in Ashford [1]."
    assert answer.trust is not None and withheld.score == answer.trust.score and withheld.reason == answer.refusal_reason
    [c] = withheld.citations
    assert c.doc_id == "bakery" and index.document("bakery").text[c.start : c.end] == c.quote
    shown = answer.to_dict()["withheld"]
    assert shown["text"] == withheld.text and shown["citations"][0]["quote"] == c.quote
    assert shown["score"] == round(withheld.score, 4) and shown["threshold"] == answer.trust.threshold  # type: ignore[arg-type]


def test_a_refusal_before_any_answer_has_nothing_withheld(index: Index) -> None:
    answer = judged(index, "I don't know.", yes=0.95).ask("Which bakery won the sourdough prize?")
    assert answer.refused and answer.withheld is None and answer.to_dict()["withheld"] is None


def test_without_the_judge_only_the_lexical_check_runs(index: Index) -> None:
    a = judged(index, "The Miller bakery in Ashford [1].", yes=0.0)
    a.judge = False
    answer = a.ask("Which bakery won the sourdough prize?")
    assert a.generator.turns == []  # type: ignore[union-attr]
    assert answer.trust is not None and answer.trust.signals.support is None and answer.trust.score is None
    assert not answer.refused


class LoadCounting(Assistant):
    """Counts real loads; each takes a moment, like a model being mapped."""

    loads = 0

    def _load_now(self):  # type: ignore[no-untyped-def]
        if self.generator is None:
            time.sleep(0.2)
            type(self).loads += 1
            self.generator = ScriptedGenerator("Lava flowed down the eastern slope [1].")
        return self.generator


def test_background_load_is_waited_for_and_happens_once(index: Index) -> None:
    LoadCounting.loads = 0
    a = LoadCounting(index)
    a.load_in_background()
    a.load_in_background()  # a second call does not start a second load
    assert a.generator is None  # returned at once, still loading
    answer = a.ask("Where did the lava flow?")
    assert not answer.refused and LoadCounting.loads == 1
    a.load_in_background()  # loaded: nothing to do
    assert a.load() is a.generator and LoadCounting.loads == 1


def test_an_error_while_loading_in_the_background_reaches_the_question(index: Index) -> None:
    a = Assistant(index, model="gpt-9")
    a.load_in_background()
    with pytest.raises(ValueError, match="unknown model 'gpt-9'"):
        a.ask("Where did the lava flow?")
    with pytest.raises(ValueError, match="unknown model 'gpt-9'"):  # asked again: loads again, same error
        a.load()


def test_a_file_llama_cpp_cannot_read_is_a_generator_error(index: Index, tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_text("not a model")
    a = Assistant(index, model=str(broken))  # a GGUF path: known only when llama.cpp reads it
    a.load_in_background()
    with pytest.raises(GeneratorError, match="cannot load the model .*broken.gguf"):
        a.ask("Where did the lava flow?")
    with pytest.raises(GeneratorError, match="cannot load the model"):  # asked again: loads again, same error
        a.load()


def test_a_citation_of_a_pdf_names_the_page_of_its_quote(tmp_path: Path) -> None:
    from .conftest import make_pdf

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "report.pdf").write_bytes(make_pdf([
        "Annual Cyber Report. The agency counted incidents across the country in the year.",
        "Ransomware attacks on hospitals doubled in the year, the agency said.",
    ]))
    index = Index.open(tmp_path / "ix", embedder=FakeEmbedder())
    index.add([folder])
    answer = assistant(index, "The agency said they doubled in the year [1].").ask("Ransomware attacks on hospitals in the year?")
    [c] = answer.citations
    assert c.supported and "hospitals doubled" in c.quote
    assert c.page == 2 == index.document("report").page_of(c.start)
    assert answer.to_dict()["citations"][0]["page"] == 2
    from rag.serve.render import render_sources

    assert "report · no date · p. 2</small>" in render_sources(answer)  # the sources panel names it too


def test_a_response_knows_its_prompt_before_generating(index: Index) -> None:
    reply = "Lava flowed down the eastern slope [1]."
    assistant = Assistant(index, generator=ScriptedGenerator(reply))
    response = assistant.respond("Where did the lava flow?")
    assert response.prompt is not None and "Where did the lava flow?" in response.prompt.text
    assert response.text() == ""  # nothing generated yet
    pieces = list(response)
    answer = response.answer()
    assert "".join(pieces) == response.text() and answer.prompt == response.prompt.text
    assert list(response) == pieces  # iterated again: the same text, not a second answer
    off_topic = assistant.respond("zzzz qqqq xxxx")
    assert off_topic.prompt is None  # refused before any prompt is sent
    assert off_topic.answer().refused and off_topic.answer().prompt == ""



class TwoMinded(JudgingGenerator):
    """Answers from the whole prompt with the wrong bakery (its judge says no), and from a prompt of
    one passage with the right one (its judge says yes): what a second try is for."""

    def stream(self, messages: list[dict[str, str]], max_tokens: int | None = None):  # type: ignore[no-untyped-def]
        self.reply = "The Oak bakery won it [2]." if "[2]" in messages[-1]["content"] else "The Miller bakery in Ashford [1]."
        return super().stream(messages, max_tokens)


def yes_for_miller(turn: str) -> float:
    return 0.95 if "Miller" in turn.split("answer")[-1] else 0.05


def test_a_withheld_answer_gets_a_second_try_that_is_shown_when_it_is_trusted(index: Index) -> None:
    from rag.answer.retry import RETRY_WORDS

    generator = TwoMinded("", yes=yes_for_miller)
    answer = Assistant(index, k=2, generator=generator, retry=("alone",)).ask("Which bakery won the sourdough prize?")  # type: ignore[arg-type]
    assert not answer.refused and answer.text.startswith("The Miller bakery in Ashford")
    assert answer.retry == "alone" and answer.first is not None and answer.first.text.startswith("The Oak bakery")
    assert answer.trust is not None and answer.trust.shown and answer.first.score is not None
    assert [s.n for s in answer.sources] == [1] and answer.citations[0].doc_id == "bakery"  # the one passage it was asked with
    assert answer.to_dict()["retry"]["how"] == "alone" and answer.to_dict()["retry"]["first"]["text"].startswith("The Oak")
    assert answer.after_stream().startswith(f"(withheld: {answer.first.reason}; a second try, {RETRY_WORDS['alone']}:) The Miller")


def test_without_a_second_try_the_withheld_answer_is_refused_and_a_shown_answer_never_pays_for_one(index: Index) -> None:
    generator = TwoMinded("", yes=yes_for_miller)
    refused = Assistant(index, k=2, generator=generator, retry=()).ask("Which bakery won the sourdough prize?")  # type: ignore[arg-type]
    assert refused.refused and refused.withheld is not None and refused.retry is None
    shown = Assistant(index, k=1, generator=(one := TwoMinded("", yes=yes_for_miller)), retry=("alone", "reversed"))  # type: ignore[arg-type]
    answer = shown.ask("Which bakery won the sourdough prize?")
    assert not answer.refused and answer.retry is None and sum(c[-1]["content"].startswith("Sources:") for c in one.conversations) == 1  # written once
