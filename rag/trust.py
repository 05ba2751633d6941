"""One decision per answer: show it, or say the articles do not answer.

Every answer the model writes gets one score, an estimate of the probability that it is right,
from four signals measured on that answer (:class:`Signals`):

- ``relevance``: the best cosine between the question and a retrieved passage;
- ``answer_probability``: the model's own probability of answering rather than saying
  "I don't know" (1 - P("I") at the reply's first token);
- ``confidence``: the mean log-probability of the answer's tokens before its first ``[n]``;
- ``support``: the judge's probability (:mod:`rag.judging`) that a cited passage states the
  answer, the best over its sentences.

The score is a logistic function of them, ``WEIGHTS`` and ``BIAS`` fitted by ``eval/calibrate.py``
on the dev sets (ours and three external ones, each weighted equally), and the answer is shown
when the score reaches ``THRESHOLD``, chosen there from the measured risk-coverage curves
(eval/README.md, "Trust"). An answer with no supported sentence is never shown: every answer
carries a checked citation.

The lexical checks of earlier versions (a number for "how many", a day for "on what date", an
echo of the question, ...) are still computed and recorded as ``flags`` on every answer, so their
worth can be measured, but only those in ``WITHHOLDING_RULES`` withhold an answer.

Generators that give no token probabilities (the transformers and OpenAI-compatible backends)
get no score: their answers are shown when a sentence is supported by the lexical check.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from rag.citations import MARKER, AnswerSentence, Citation, roots
from rag.generation import GenerationStats
from rag.sparse import tokenize

# Fitted by eval/calibrate.py (see eval/README.md, "Trust"): weights of the features of
# :func:`features`, in that order.
WEIGHTS = (2.0, 4.0, 1.5, 0.8)
BIAS = -0.5
THRESHOLD = 0.5


@dataclass(frozen=True)
class Signals:
    """What one answer's score is made of; ``None`` where the generator could not tell."""

    relevance: float
    answer_probability: float | None = None
    confidence: float | None = None
    support: float | None = None

    @classmethod
    def measure(cls, relevance: float, stats: GenerationStats | None, sentences: Iterable[AnswerSentence],
                judged: bool) -> Signals:
        """The signals of an answer from its generation ``stats`` and checked ``sentences``."""
        support = max((s.support for s in sentences), default=0.0) if judged else None
        if stats is None or not stats.token_logprobs:
            return cls(relevance, support=support)
        refusing = sum(p for token, p in stats.first_choices if token.strip() == "I")
        cut = next((i for i, t in enumerate(stats.tokens) if "[" in t), len(stats.tokens))
        core = stats.token_logprobs[:cut] or stats.token_logprobs
        return cls(relevance, 1.0 - refusing, sum(core) / len(core), support)


def features(signals: Signals) -> tuple[float, float, float, float] | None:
    """The signals on the scale the weights apply to, or None when one is missing."""
    s = signals
    if s.answer_probability is None or s.confidence is None or s.support is None:
        return None
    support = min(max(s.support, 1e-4), 1 - 1e-4)
    return (s.relevance, math.log(max(s.answer_probability, 1e-6)), s.confidence, math.log(support / (1 - support)))


def score(signals: Signals, weights: tuple[float, ...] = WEIGHTS, bias: float = BIAS) -> float | None:
    """The estimated probability that the answer is right, or None when a signal is missing."""
    x = features(signals)
    if x is None:
        return None
    z = bias + sum(w * v for w, v in zip(weights, x))
    return 1 / (1 + math.exp(-z))


@dataclass(frozen=True)
class Trust:
    """The decision on one answer: its signals, score, the rules that fired, and why it is withheld."""

    signals: Signals
    score: float | None
    threshold: float
    flags: tuple[str, ...]
    reason: str | None

    @property
    def shown(self) -> bool:
        return self.reason is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": None if self.score is None else round(self.score, 4), "threshold": self.threshold,
            "signals": {k: None if v is None else round(v, 4) for k, v in asdict(self.signals).items()},
            "flags": list(self.flags), "reason": self.reason,
        }


def assess(question: str, answer: str, sentences: list[AnswerSentence], citations: list[Citation],
           signals: Signals, threshold: float = THRESHOLD) -> Trust:
    """Decide whether ``answer`` to ``question`` is shown (see the module docstring)."""
    flags = tuple(name for name, fires in RULES.items() if fires(question, answer, sentences, citations))
    value = score(signals)
    reason = None
    if not any(s.supported for s in sentences):
        reason = "no sentence of the answer is supported by the sources"
    elif value is not None and value < threshold:
        reason = f"the answer is not trusted enough (score {value:.2f} < {threshold:.2f})"
    elif kept := [name for name in flags if name in WITHHOLDING_RULES]:
        reason = RULE_REASONS[kept[0]]
    return Trust(signals, value, threshold, flags, reason)


# ---------------------------------------------------------------------- lexical rules

# Questions whose answer is a number, an amount or a date.
_ASKS_QUANTITY = re.compile(
    r"\b(how (many|much|long|old)|(what|which) (year|date|percentage|number|amount)|in what year|on what date)\b",
    re.IGNORECASE,
)
_QUANTITY = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundreds?"
    r"|thousands?|millions?|billions?|dozens?|several|few|january|february|march|april|may|june|july|august"
    r"|september|october|november|december)\b",
    re.IGNORECASE,
)
_CHOICE = re.compile(r"\b(or|whether)\b", re.IGNORECASE)
# Month and weekday names, full or abbreviated.
_CALENDAR = (
    r"jan(uary)?|feb(ruary)?|mar(ch)?|apr(il)?|may|june?|july?|aug(ust)?|sep(t|tember)?|oct(ober)?"
    r"|nov(ember)?|dec(ember)?|monday|tuesday|wednesday|thursday|friday|saturday|sunday"
)
# Questions for a calendar date, whose answer needs more than a year.
_ASKS_DATE = re.compile(r"\b(what|which) (date|day)\b", re.IGNORECASE)
_DAY_LEVEL = re.compile(rf"\b({_CALENDAR}|today|yesterday)\b|\d{{1,4}}[-/.]\d{{1,2}}[-/.]\d{{1,4}}", re.IGNORECASE)
# Questions for a place, and answers made only of time expressions.
_ASKS_PLACE = re.compile(r"^\s*where\b|\b(in|at|to) (what|which) (city|country|place|town|venue|location)\b",
                         re.IGNORECASE)
_TIME_WORDS = re.compile(
    r"\b(\d+(st|nd|rd|th|s)?|first|second|third|fourth|last|next|previous|early|earlier|late|later|mid|half"
    r"|quarter|beginning|end|start|year|years|month|months|week|weeks|day|days|decade|century|today|tomorrow"
    rf"|yesterday|spring|summer|autumn|fall|winter|morning|evening|night|{_CALENDAR}"
    r"|in|on|at|of|the|a|an|during|by|around|about|and|or|to|from|until|since|between)\b",
    re.IGNORECASE,
)


def _only_time(text: str) -> bool:
    """Whether ``text`` has words and every one of them belongs to a time expression."""
    return bool(re.search(r"\w", text)) and not re.search(r"\w", _TIME_WORDS.sub(" ", text))


def _echoes(answer: str, question: str) -> bool:
    """Whether the answer's content words are a phrase of the question ("Who was director
    before Miguel De Bruycker?" -> "Miguel De Bruycker."). Words of the question recombined
    ("fight song ... Lawrence, Kansas" -> "Kansas Song") are an answer."""
    said = tokenize([answer])[0]
    if not said:
        return True
    return f" {' '.join(said)} " in f" {' '.join(tokenize([question])[0])} "


def _off_topic(question: str, citations: list[Citation]) -> bool:
    asked = roots(tokenize([question])[0])
    quotes = [c for c in citations if c.supported]
    return bool(asked) and not any(asked & roots(tokenize([f"{c.title} {c.quote}"])[0]) for c in quotes)


def _echo(question: str, answer: str) -> bool:
    text = MARKER.sub("", answer)
    return _echoes(text, question) and not _CHOICE.search(question) and text.strip(" .!").lower() not in ("yes", "no")


Rule = Callable[[str, str, list[AnswerSentence], list[Citation]], bool]
RULES: dict[str, Rule] = {
    "uncited": lambda q, a, s, c: not MARKER.search(a),
    "off_topic_quotes": lambda q, a, s, c: _off_topic(q, c),
    "echo": lambda q, a, s, c: _echo(q, a),
    "no_quantity": lambda q, a, s, c: bool(_ASKS_QUANTITY.search(q)) and not _QUANTITY.search(MARKER.sub("", a)),
    "no_day": lambda q, a, s, c: bool(_ASKS_DATE.search(q)) and not _DAY_LEVEL.search(MARKER.sub("", a)),
    "time_for_place": lambda q, a, s, c: bool(_ASKS_PLACE.search(q)) and _only_time(MARKER.sub("", a)),
}
RULE_REASONS = {
    "uncited": "the answer cites no source",
    "off_topic_quotes": "the cited passages are not about what the question asks",
    "echo": "the answer only repeats the question",
    "no_quantity": "the question asks for a number or date and the answer gives none",
    "no_day": "the question asks for a date and the answer gives no day or month",
    "time_for_place": "the question asks where and the answer only says when",
}
# The rules that still withhold an answer beside the score: those that paid on every dev set.
# "uncited" never does: a sentence the model left uncited keeps its answer when the checker
# finds and attaches a source that states it.
WITHHOLDING_RULES: frozenset[str] = frozenset(RULES) - {"uncited"}
