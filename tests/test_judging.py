"""The semantic support check: the judge turn, its probability, and how verify uses it."""

from __future__ import annotations

import pytest

from rag.answer.citations import ATTACH_PROBABILITY, SUPPORT_PROBABILITY, verify
from rag.answer.judging import Judge
from rag.answer.prompting import sentence_spans
from rag.core.types import Hit, Source

from .conftest import JudgingGenerator

QUESTION = "Who ran Acme in 2021?"
ACME = "Acme opened a plant in Ghent in 2021. Jane Roe ran Bolt Ltd until 2022."
OTHER = "Acme was run by John Doe from 2019 to 2023."
CONVERSATION = [{"role": "user", "content": f"Sources: ...\n\nQuestion: {QUESTION}"},
                {"role": "assistant", "content": "Jane Roe [1]."}]


def source(n: int, text: str, doc_id: str) -> Source:
    hit = Hit(chunk_id=f"{doc_id}#0", doc_id=doc_id, title=doc_id.title(), text=text, start=0, end=len(text),
              score=1.0, rank=n)
    return Source(n=n, hit=hit, sentences=tuple(sentence_spans(hit)))


SOURCES = (source(1, ACME, "acme"), source(2, OTHER, "other"))


def test_judge_reads_p_yes_after_the_answers_own_conversation() -> None:
    scorer = JudgingGenerator("unused", yes=0.3)
    judge = Judge(scorer, CONVERSATION, QUESTION)
    assert judge("Jane Roe", 1, "Jane Roe ran Bolt Ltd until 2022.") == 0.3
    [asked] = scorer.conversations
    assert asked[:-1] == CONVERSATION  # the answer's messages first, so their KV cache is reused
    turn = asked[-1]["content"]
    assert '"Jane Roe ran Bolt Ltd until 2022."' in turn and f'"{QUESTION}"' in turn and '"Jane Roe"' in turn
    assert "[1]" in turn and turn.endswith("Reply yes or no.")
    assert judge.calls == 1


def test_p_yes_is_normalised_over_yes_and_no() -> None:
    class Fixed(JudgingGenerator):
        def next_token_probabilities(self, messages, candidates):  # type: ignore[no-untyped-def]
            return [{"Yes": 0.2, "yes": 0.1, "No": 0.05, "no": 0.05}[c] for c in candidates]

    assert Judge(Fixed("x"), CONVERSATION, QUESTION)("Jane Roe", 1, "q") == pytest.approx(0.75)


def test_a_near_miss_with_every_word_in_the_passage_is_unsupported() -> None:
    # Lexically "Jane Roe" is fully in source [1]; the judge says the source does not state it.
    judge = Judge(JudgingGenerator("unused", yes=SUPPORT_PROBABILITY - 0.2), CONVERSATION, QUESTION)
    _, sentences, citations = verify("Jane Roe [1].", SOURCES, QUESTION, judge=judge)
    assert not sentences[0].supported
    assert sentences[0].support == SUPPORT_PROBABILITY - 0.2
    assert all(not c.supported for c in citations)
    # the lexical check alone passes it: this is what the judge is for
    assert verify("Jane Roe [1].", SOURCES, QUESTION)[1][0].supported


def test_a_source_the_judge_confirms_supports_the_sentence() -> None:
    judge = Judge(JudgingGenerator("unused", yes=0.9), CONVERSATION, "Who ran Acme until 2023?")
    _, sentences, citations = verify("John Doe [2].", SOURCES, "Who ran Acme until 2023?", judge=judge)
    assert sentences[0].supported and sentences[0].support == 0.9
    [c] = citations
    assert (c.n, c.supported, c.added) == (2, True, False)
    assert OTHER[c.start : c.end] == c.quote


def test_an_uncited_sentence_a_shown_source_states_gets_an_added_citation() -> None:
    scorer = JudgingGenerator("unused", yes=lambda turn: 0.95 if "Source [2]" in turn else 0.1)
    judge = Judge(scorer, CONVERSATION, "Who ran Acme?")
    text, sentences, citations = verify("John Doe ran Acme.", SOURCES, "Who ran Acme?", judge=judge)
    assert sentences[0].supported and sentences[0].citations == (2,)
    [c] = citations
    assert c.added and c.supported and c.n == 2
    assert text == "John Doe ran Acme."  # the text keeps the model's words; the citation is marked added


def test_an_uncited_sentence_the_judge_rejects_stays_unsupported() -> None:
    judge = Judge(JudgingGenerator("unused", yes=ATTACH_PROBABILITY - 0.1), CONVERSATION, "Who ran Acme?")
    _, sentences, citations = verify("John Doe ran Acme.", SOURCES, "Who ran Acme?", judge=judge)
    assert not sentences[0].supported and citations == []


def test_a_number_missing_from_the_source_is_not_sent_to_the_judge() -> None:
    scorer = JudgingGenerator("unused", yes=1.0)
    judge = Judge(scorer, CONVERSATION, QUESTION)
    _, sentences, _ = verify("Acme opened a plant in Ghent in 2020 [1].", SOURCES, QUESTION, judge=judge)
    assert not sentences[0].supported
    assert scorer.turns == []


def test_the_judge_checks_at_most_its_budget_then_the_lexical_check_decides() -> None:
    scorer = JudgingGenerator("unused", yes=0.99)
    judge = Judge(scorer, CONVERSATION, QUESTION, budget=1)
    answer = "Acme opened a plant in Ghent [1]. Jane Roe ran Bolt Ltd [1]. Zed Quux founded Bolt [1]."
    _, sentences, _ = verify(answer, SOURCES, QUESTION, judge=judge)
    assert len(scorer.turns) == 1 and judge.calls == 1
    assert [s.supported for s in sentences] == [True, True, False]  # the last shares one word of four
    assert sentences[0].support == 0.99 and sentences[1].support == SUPPORT_PROBABILITY
