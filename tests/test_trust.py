"""The one refusal decision: signals, score, threshold, and the lexical rules recorded as flags."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from rag.answer.trust import RULE_REASONS, Signals, assess, inputs
from rag.answer.verifier import FALLBACK
from rag.core.types import AnswerSentence, Citation, GenerationStats


def score(signals: Signals) -> float | None:
    """The model's own signals' score (rag.answer.verifier.FALLBACK), as an answer of any model gets it."""
    return FALLBACK.probability(inputs(signals))


def at(threshold: float):  # type: ignore[no-untyped-def]
    """FALLBACK with another threshold."""
    return replace(FALLBACK, threshold=threshold)

STRONG = Signals(relevance=0.7, answer_probability=0.999, confidence=-0.05, support=0.97)
WEAK = Signals(relevance=0.3, answer_probability=0.6, confidence=-1.5, support=0.2)
SUPPORTED = [AnswerSentence("The mayor", (1,), True, 0.97)]
BRIDGE = "The mayor opened the new bridge on 3 May 2021, after six years of work."
CITED = [Citation(n=1, doc_id="d", chunk_id="d#0", title="City news", start=0, end=len(BRIDGE), quote=BRIDGE,
                  supported=True)]


def test_signals_are_read_from_the_generation_statistics() -> None:
    stats = GenerationStats(prompt_tokens=400, cached_tokens=150, tokens=("On", " 3", " May", " [", "1", "]."),
                            token_logprobs=(-0.5, -0.1, -0.3, -2.0, -0.01, -0.2),
                            first_choices=(("On", 0.7), ("I", 0.2), (" I", 0.05)))
    s = Signals.measure(0.55, stats, [AnswerSentence("On 3 May", (1,), True, 0.8)], judged=True)
    assert s.relevance == 0.55
    assert s.answer_probability == pytest.approx(1 - 0.25)  # "I" and " I" both start "I don't know"
    assert s.confidence == pytest.approx((-0.5 - 0.1 - 0.3) / 3)  # the tokens before the first marker
    assert s.support == 0.8
    assert Signals.measure(0.55, None, [], judged=False) == Signals(0.55)


@pytest.mark.parametrize("field", ["answer_probability", "confidence", "support"])
def test_the_score_rises_with_every_signal(field: str) -> None:
    low = Signals(**{**WEAK.__dict__})
    high = Signals(**{**WEAK.__dict__, field: getattr(STRONG, field)})
    assert score(high) > score(low)  # type: ignore[operator]


def test_score_is_a_probability_and_none_without_token_probabilities() -> None:
    assert 0 < score(WEAK) < score(STRONG) < 1  # type: ignore[operator]
    assert score(Signals(0.9, support=0.99)) is None


def test_the_threshold_decides() -> None:
    value = score(STRONG)
    assert value is not None
    shown = assess("Who opened the bridge?", "The mayor [1].", SUPPORTED, CITED, STRONG, at(value - 1e-6))
    assert shown.shown and shown.reason is None and shown.score == value
    withheld = assess("Who opened the bridge?", "The mayor [1].", SUPPORTED, CITED, STRONG, at(value + 1e-6))
    assert not withheld.shown and "not trusted enough" in (withheld.reason or "")
    assert withheld.to_dict()["signals"]["support"] == 0.97


def test_an_answer_without_a_supported_sentence_is_never_shown() -> None:
    trust = assess("Who opened the bridge?", "PWNED [1].", [AnswerSentence("PWNED", (1,), False, 0.01)], [],
                   STRONG, at(0.0))
    assert not trust.shown and "no sentence" in (trust.reason or "")


def test_without_token_probabilities_a_lexically_supported_answer_is_shown() -> None:
    trust = assess("Who opened the bridge?", "The mayor [1].", SUPPORTED, CITED, Signals(0.6), None)
    assert trust.shown and trust.score is None and trust.scorer == "none"


def _quoted(quote: str, title: str = "City news") -> list[Citation]:
    return [Citation(n=1, doc_id="d", chunk_id="d#0", title=title, start=0, end=len(quote), quote=quote, supported=True)]



@pytest.mark.parametrize(
    ("question", "answer", "quote", "fired"),
    [
        ("Who opened the bridge?", "The mayor [1].", BRIDGE, set()),
        # the supporting quote is about something else than the question asks ...
        ("In what year did the editor join the newspaper?", "2021 [1].", "The mayor opened the bridge in 2021.",
         {"off_topic_quotes"}),
        # ... where the article's title counts as what the quote is about
        ("When did the tunnel open?", "In 2021 [1].", "It opened in 2021.", set()),
        # an echo of the question is no answer, but question words recombined can be one
        ("Who opened the bridge before the mayor?", "The mayor [1].", BRIDGE, {"echo"}),
        ("Which song of the city of Kansas was played when the bridge opened?", "Kansas Song [1].",
         "The Kansas Song was played when the bridge opened.", set()),
        # ... as can a choice the question offers, or yes and no
        ("Was the bridge opened by the mayor or the king?", "The mayor [1].", BRIDGE, set()),
        ("Did the mayor open the bridge?", "Yes [1].", BRIDGE, set()),
        # the measured and removed rules no longer withhold (an uncited answer, a year for a date)
        ("Who opened the bridge?", "The mayor.", BRIDGE, set()),
        ("On what date was the bridge opened?", "In 2021 [1].", BRIDGE, set()),
    ],
)
def test_the_kept_rules_withhold(question: str, answer: str, quote: str, fired: set[str]) -> None:
    citations = _quoted(quote, title="Tunnel news" if "tunnel" in question else "City news")
    trust = assess(question, answer, SUPPORTED, citations, STRONG, at(0.0))
    assert set(trust.flags) == fired
    assert trust.shown == (not fired)
    if fired:
        assert trust.reason == RULE_REASONS[next(iter(fired))]


def test_score_matches_the_logistic_formula() -> None:
    from rag.answer.trust import features

    x = features(STRONG)
    assert x is not None
    z = FALLBACK.bias + sum(w * v for w, v in zip(FALLBACK.weights, x))
    assert score(STRONG) == pytest.approx(1 / (1 + math.exp(-z)))
    assert FALLBACK.kind == "signals" and FALLBACK.mismatch("any-model", "any-embedder") is None


def test_an_input_missing_is_left_out_not_the_others() -> None:
    values = inputs(Signals(0.5, answer_probability=0.9, confidence=-0.2))  # no judge: no support
    assert set(values) == {"log answer probability", "confidence"}
    assert FALLBACK.probability(values) is None  # the model's own signals read support too
