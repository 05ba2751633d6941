"""Check an answer against its sources: parse ``[n]`` markers, verify every sentence, find quotes.

For each answer sentence:

1. its markers are parsed (``[1]``, ``[1, 2]``, ``[1][3]``); a marker naming no source
   is dropped;
2. each cited source is checked for a sentence that supports it (:func:`support`);
   the best one becomes the citation's quote, with character offsets into the document;
3. a sentence whose cited sources do not support it, or that cites nothing, gets the
   best supporting *shown* source attached if one clearly supports it, else it is marked
   unsupported.

Support is lexical and deliberately plain, so a reader can see why a sentence passed: the
share of the sentence's content words found in one source sentence or a pair of adjacent
ones, and no number or date in the answer that the source does not contain (invented
figures are the commonest hallucination in our runs). Discounting words the answer merely
restates from the question was measured and rejected: it let wrong citations through
(citation precision 1.00 -> 0.88 on the seeds gold set). See eval/README.md, "Answers".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rag.chunking import split_sentences
from rag.prompting import Source, Span
from rag.sparse import tokenize

MARKER = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
SUPPORT_THRESHOLD = 0.5  # share of the sentence's content words found in one source sentence
ATTACH_THRESHOLD = 0.6  # stricter bar for attaching a source the model did not cite
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")

REFUSAL = re.compile(
    r"(\bi (do not|don't|dont) know\b|\bi'm not sure\b|\bi am not sure\b"
    r"|\b(cannot|can't|can not|unable to) (answer|determine|find|tell|say|provide)"
    r"|\b(sources?|articles?|context|texts?|documents?|information provided) (do|does) not "
    r"(contain|mention|say|state|provide|specify|include|give|answer)"
    r"|\bnot (mentioned|provided|stated|specified|given|available|included|found|discussed) in the "
    r"(sources?|articles?|context|texts?|documents?)"
    r"|\bno (information|mention|details?) (about|on|of|regarding)\b"
    r"|\bthere is no (information|mention)\b)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Citation:
    """Source ``[n]`` supporting part of the answer, with the quote that supports it.

    ``start``/``end`` are offsets of ``quote`` in the document's cleaned text. ``added``
    is True when the verifier attached this source to a sentence the model left uncited.
    """

    n: int
    doc_id: str
    chunk_id: str
    title: str
    start: int
    end: int
    quote: str
    supported: bool
    added: bool = False


@dataclass(frozen=True)
class AnswerSentence:
    """One sentence of the answer (markers removed) and the sources that support it."""

    text: str
    citations: tuple[int, ...]
    supported: bool


def parse_markers(text: str, valid: set[int]) -> tuple[str, list[int]]:
    """Remove markers that name no valid source; return the cleaned text and the valid numbers cited."""
    cited: list[int] = []

    def keep(m: re.Match[str]) -> str:
        # A "number" of thousands of digits would overflow int(); no source has 7 digits.
        numbers = [int(x) for x in re.split(r"\s*[,;]\s*", m.group(1)) if len(x) <= 6]
        good = [n for n in numbers if n in valid]
        cited.extend(n for n in good if n not in cited)
        return "".join(f"[{n}]" for n in good)

    # subtle: removing a marker can join its neighbours into a new one ("[1[5]]" -> "[1]"), so
    # markers are parsed again until nothing changes (valid ones are left as they are).
    cleaned, previous = MARKER.sub(keep, text), text
    while cleaned != previous:
        cleaned, previous = MARKER.sub(keep, cleaned), cleaned
    cleaned = _TRAILING_MARKERS.sub(_before_stop, cleaned)
    return re.sub(r"[ \t]+([.,;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", cleaned)).strip(), cited


# Markers placed after a sentence's full stop ("... composers. [1], [2]") belong to that
# sentence; moved before the stop, they are checked with it instead of standing alone.
_TRAILING_MARKERS = re.compile(r"([.!?])[ \t]*((?:\[\d+\][ \t]*[,;]?[ \t]*)+)(?=\s|$)")


def _before_stop(m: re.Match[str]) -> str:
    return " " + "".join(re.findall(r"\[\d+\]", m.group(2))) + m.group(1) + " "


def is_refusal(text: str) -> bool:
    """Whether the model said the sources do not answer (anywhere in a short answer)."""
    return bool(REFUSAL.search(text))


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


# Questions for a place, and answers made only of time expressions ("In the first half of
# 2024" for "Where was the meeting held?"): a neighbouring detail, not the answer.
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


def unanswered(answer: str, question: str, sentences: list[AnswerSentence], citations: list[Citation]) -> str | None:
    """Why a non-refusal ``answer`` still does not answer ``question`` from the sources, or None.

    Small models rarely say "I don't know"; they make something up, echo the question, or
    answer a neighbouring question with a detail the sources do give. Plain checks catch
    much of it (see eval/README.md, "Answers: what was tried"):

    - the model cited no source: every answer must be checkable, and uncited answers were
      mostly wrong (3 of 4 on HotpotQA);
    - no sentence of the answer is supported by the sources it was checked against;
    - no supporting quote (with its article's title) shares a content word with the
      question: the answer is a fact about something else ("In what year did X join?" ->
      a year from another article's dateline);
    - the answer's words are a phrase of the question ("Who met X?" -> "X [1]."), unless
      the question offers a choice ("A or B?") or the answer is yes or no;
    - the question asks for a number, amount or date and the answer has none; or for a
      calendar date ("on what date") and the answer gives no day, month or weekday; or asks
      where, and the answer only says when.
    """
    if not MARKER.search(answer):
        return "the answer cites no source"
    if not any(s.supported for s in sentences):
        return "no sentence of the answer is supported by the sources"
    asked = set(tokenize([question])[0])
    quotes = [c for c in citations if c.supported]
    if asked and not any(_roots(asked) & _roots(tokenize([f"{c.title} {c.quote}"])[0]) for c in quotes):
        return "the cited passages are not about what the question asks"
    text = MARKER.sub("", answer)
    if _echoes(text, question) and not _CHOICE.search(question) and text.strip(" .!").lower() not in ("yes", "no"):
        return "the answer only repeats the question"
    if _ASKS_QUANTITY.search(question) and not _QUANTITY.search(text):
        return "the question asks for a number or date and the answer gives none"
    if _ASKS_DATE.search(question) and not _DAY_LEVEL.search(text):
        return "the question asks for a date and the answer gives no day or month"
    if _ASKS_PLACE.search(question) and _only_time(text):
        return "the question asks where and the answer only says when"
    return None


def _echoes(answer: str, question: str) -> bool:
    """Whether the answer's content words are a phrase of the question ("Who was director
    before Miguel De Bruycker?" -> "Miguel De Bruycker."). Words of the question recombined
    ("fight song ... Lawrence, Kansas" -> "Kansas Song") are an answer."""
    said = tokenize([answer])[0]
    if not said:
        return True
    return f" {' '.join(said)} " in f" {' '.join(tokenize([question])[0])} "


def _roots(terms: Iterable[str]) -> set[str]:
    """Stems cut to 5 letters, so a country and its people match ("qatari"/"qatar", "belgian"/"belgium"),
    which the stemmer keeps apart."""
    return {t[:5] for t in terms}


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def support(sentence: str, evidence: str, question: str = "") -> float:
    """How well ``evidence`` supports ``sentence``: share of its content words found there,
    0 if the sentence has a number the evidence lacks (numbers repeated from the question,
    as in "Strategy 2.0", are not claims)."""
    if not _numbers(sentence) - _numbers(question) <= _numbers(evidence):
        return 0.0
    words = set(tokenize([sentence])[0]) - {"yes"}  # "no" is a stopword already
    if not words:
        return 1.0  # nothing to check ("Yes.")
    return len(words & set(tokenize([evidence])[0])) / len(words)


def best_span(sentence: str, source: Source, question: str = "") -> tuple[float, Span]:
    """The source sentence that best supports ``sentence``, and its score.

    A pair of sentences is also tried, since an answer often joins two, but only when they
    are neighbours in the document: the quote is always the exact text between its offsets,
    and it never takes in a sentence the model was not shown.
    """
    spans = list(source.sentences)
    pairs = (_joined(source, a, b) for a, b in zip(spans, spans[1:]))
    options = spans + [pair for pair in pairs if pair is not None]
    scored = [(support(sentence, s.text, question), s) for s in options]
    return max(scored, key=lambda pair: (pair[0], -(pair[1].end - pair[1].start)))


def _joined(source: Source, a: Span, b: Span) -> Span | None:
    """Sentences ``a`` and ``b`` of ``source`` as one span of the document, if only white space
    (a space, a line break) separates them there."""
    offset = source.hit.start
    if source.hit.text[a.end - offset : b.start - offset].strip():
        return None  # a sentence left out of the prompt lies between them
    return Span(a.start, b.end, source.hit.text[a.start - offset : b.end - offset])


def verify(
    answer: str, sources: tuple[Source, ...], question: str = ""
) -> tuple[str, list[AnswerSentence], list[Citation]]:
    """Check ``answer`` to ``question`` against ``sources``; return the cleaned answer, its
    sentences and citations.

    Citations are one per (source, supporting quote), numbered as in the prompt.
    """
    by_n = {s.n: s for s in sources}
    cleaned, _ = parse_markers(answer, set(by_n))
    sentences: list[AnswerSentence] = []
    citations: dict[tuple[int, int], Citation] = {}

    def cite(source: Source, span: Span, ok: bool, added: bool) -> None:
        key = (source.n, span.start)
        if key not in citations:
            citations[key] = Citation(
                n=source.n, doc_id=source.hit.doc_id, chunk_id=source.hit.chunk_id, title=source.hit.title,
                start=span.start, end=span.end, quote=span.text, supported=ok, added=added,
            )

    for a, b in split_sentences(cleaned):
        raw = cleaned[a:b]
        _, cited = parse_markers(raw, set(by_n))
        claim = MARKER.sub("", raw).strip()
        if not claim.strip(" .,;:"):
            continue
        checked = [(n, *best_span(claim, by_n[n], question)) for n in cited]
        good = [(n, span) for n, score, span in checked if score >= SUPPORT_THRESHOLD]
        if good:
            for n, span in good:
                cite(by_n[n], span, ok=True, added=False)
            sentences.append(AnswerSentence(claim, tuple(n for n, _ in good), True))
            continue
        # The cited sources do not back the sentence: look for one that does.
        others = [(s.n, *best_span(claim, s, question)) for s in sources if s.n not in cited]
        best = max(others, key=lambda t: t[1], default=None)
        if best is not None and best[1] >= ATTACH_THRESHOLD:
            cite(by_n[best[0]], best[2], ok=True, added=True)
            sentences.append(AnswerSentence(claim, (best[0],), True))
        else:
            for n, _, span in checked:
                cite(by_n[n], span, ok=False, added=False)
            sentences.append(AnswerSentence(claim, tuple(cited), False))
    ordered = sorted(citations.values(), key=lambda c: (c.n, c.start))
    return cleaned, sentences, ordered
