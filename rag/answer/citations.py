"""Check an answer against its sources: parse ``[n]`` markers, verify every sentence, find quotes.

For each answer sentence:

1. its markers are parsed (``[1]``, ``[1, 2]``, ``[1][3]``); a marker naming no source
   is dropped;
2. in each cited source, the sentence (or pair of neighbouring sentences) sharing most of
   its words becomes the citation's quote, verbatim, with character offsets into the document;
3. the sentence is supported when a cited source states it: by the judge's probability
   (:mod:`rag.answer.judging`) when there is a judge, else by the lexical share of its words;
4. a sentence whose cited sources do not state it, or that cites nothing, gets the shown
   source that shares most of its words attached (marked ``added``) if that one states it,
   else it is marked unsupported.

The lexical score (:func:`support`) is the cheap first pass: the share of the sentence's
content words found in the quote, and 0 if the sentence has a number or date that the source
does not contain (invented figures were the commonest hallucination in our runs); a sentence
with a score of 0 is not sent to the judge.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from rag.core.text import NUMBER, words
from rag.core.types import AnswerSentence, Citation, Source, Span
from rag.ingest.chunking import split_sentences

MARKER = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
# Without a judge: the share of the sentence's content words found in one source sentence, and
# a stricter bar for attaching a source the model did not cite.
SUPPORT_THRESHOLD = 0.5
ATTACH_THRESHOLD = 0.6
# With a judge (its P(yes)): a sentence is supported by a source it cites, or by a source it did
# not cite that shares at least ATTACH_OVERLAP of its words, at these probabilities. The judge
# leans to yes (a median P(yes) of 0.92 on wrong answers too), so the bar is high: 0.85 is the
# highest that withholds at most 5% of right answers on every dev set (3% on HotpotQA, 0 on the
# others, and none of the right answers the model left uncited), from the support sweep of
# eval/calibrate.py (eval/README.md, "Trust").
SUPPORT_PROBABILITY = 0.85
ATTACH_PROBABILITY = 0.85
ATTACH_OVERLAP = 0.5
# (claim, source number, quote) -> probability that the source states the claim, or None when
# the judge will not check it (its budget for the answer is spent)
SupportCheck = Callable[[str, int, str], "float | None"]

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


_SPACE_BEFORE_STOP = re.compile(r"\s+([.,;:!?])")


def tidy(claim: str) -> str:
    """A sentence as shown: no space left where a marker stood before its full stop
    ("prize [1]." is checked as "prize ." and shown as "prize.").

    >>> tidy("won the prize .")
    'won the prize.'
    """
    return _SPACE_BEFORE_STOP.sub(r"\1", claim)


def is_refusal(text: str) -> bool:
    """Whether the model said the sources do not answer (anywhere in a short answer)."""
    return bool(REFUSAL.search(text))


def roots(terms: Iterable[str]) -> set[str]:
    """Stems cut to 5 letters, so a country and its people match ("qatari"/"qatar", "belgian"/"belgium"),
    which the stemmer keeps apart."""
    return {t[:5] for t in terms}


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in NUMBER.findall(text)}


def support(sentence: str, evidence: str, question: str = "") -> float:
    """How well ``evidence`` supports ``sentence``: share of its content words found there,
    0 if the sentence has a number the evidence lacks (numbers repeated from the question,
    as in "Strategy 2.0", are not claims)."""
    if not _numbers(sentence) - _numbers(question) <= _numbers(evidence):
        return 0.0
    asked = set(words(sentence)) - {"yes"}  # "no" is a stopword already
    if not asked:
        return 1.0  # nothing to check ("Yes.")
    return len(asked & set(words(evidence))) / len(asked)


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
    answer: str, sources: tuple[Source, ...], question: str = "", judge: SupportCheck | None = None
) -> tuple[str, list[AnswerSentence], list[Citation]]:
    """Check ``answer`` to ``question`` against ``sources``; return the cleaned answer, its
    sentences and citations.

    With a ``judge`` (:class:`rag.answer.judging.Judge`), a sentence is supported when the judge says
    a source it cites states it; a sentence the model left uncited, or cited to a source that
    does not state it, is checked against the shown source that shares most words with it, and
    that source is attached (``added``) if the judge says it states it. Without a judge the
    lexical share of words decides both. The quote is always the lexically best sentence (or pair
    of neighbouring sentences) of the source, verbatim. Citations are one per (source, quote),
    numbered as in the prompt.
    """
    by_n = {s.n: s for s in sources}
    cleaned, _ = parse_markers(answer, set(by_n))
    sentences: list[AnswerSentence] = []
    citations: dict[tuple[int, int], Citation] = {}

    def cite(source: Source, span: Span, ok: bool, added: bool) -> None:
        key = (source.n, span.start)
        if key not in citations or (ok and not citations[key].supported):
            citations[key] = Citation(
                n=source.n, doc_id=source.hit.doc_id, chunk_id=source.hit.chunk_id, title=source.hit.title,
                start=span.start, end=span.end, quote=span.text, supported=ok, added=added,
            )

    def supports(claim: str, n: int, score: float, span: Span) -> float:
        """The support of ``claim`` by source ``n``: the judge's probability, or the lexical score.
        A number the source lacks is never stated by it, whatever the judge says."""
        if score == 0.0 or judge is None:
            return score
        p = judge(claim, n, span.text)
        if p is None:  # the judge's budget for this answer is spent: the lexical check decides
            return SUPPORT_PROBABILITY if score >= SUPPORT_THRESHOLD else 0.0
        return p

    for a, b in split_sentences(cleaned):
        raw = cleaned[a:b]
        _, cited = parse_markers(raw, set(by_n))
        claim = MARKER.sub("", raw).strip()
        if not claim.strip(" .,;:"):
            continue
        bar = SUPPORT_PROBABILITY if judge else SUPPORT_THRESHOLD
        checked = [(n, *best_span(claim, by_n[n], question)) for n in cited]
        judged = [(n, supports(claim, n, score, span), span) for n, score, span in checked]
        good = [(n, p, span) for n, p, span in judged if p >= bar]
        if good:
            for n, _, span in good:
                cite(by_n[n], span, ok=True, added=False)
            sentences.append(AnswerSentence(tidy(claim), tuple(n for n, *_ in good), True, max(p for _, p, _ in good)))
            continue
        # The cited sources do not back the sentence (or it cites none): try the shown source that
        # shares most words with it, the lexical score serving as a cheap first pass.
        others = [(s.n, *best_span(claim, s, question)) for s in sources if s.n not in cited]
        best = max(others, key=lambda t: t[1], default=None)
        if best is not None and best[1] >= (ATTACH_OVERLAP if judge else ATTACH_THRESHOLD):
            p = supports(claim, best[0], best[1], best[2])
            if p >= (ATTACH_PROBABILITY if judge else ATTACH_THRESHOLD):
                cite(by_n[best[0]], best[2], ok=True, added=True)
                sentences.append(AnswerSentence(tidy(claim), (best[0],), True, p))
                continue
        for n, _, span in checked:
            cite(by_n[n], span, ok=False, added=False)
        sentences.append(AnswerSentence(tidy(claim), tuple(cited), False, max((p for _, p, _ in judged), default=0.0)))
    ordered = sorted(citations.values(), key=lambda c: (c.n, c.start))
    return cleaned, sentences, ordered
