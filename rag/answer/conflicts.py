"""When sources disagree about what was asked: find it, and say it (issue 28).

News corpora contradict themselves: a correction, an update, a wrong report copied around. The
model answers from whichever passage it picked; this module checks the other passages of the
prompt for a different value of the fact the answer states, so the reader sees both.

The check is lexical and costs no model call (0.4-2 ms an answer): a conflict is a pair of
sentences, one in a passage the answer cites, one in another passage of the prompt, that say the
same (most of their words, in the same order: ``difflib``) except in one place, where one has the
answer's value ("December 6, 2023") and the other a different one ("March 3, 2022"). Guards keep
agreeing sources quiet:

- the changed place holds none of the question's own words (else the other sentence is about
  another subject: the revenue of another year, not another revenue of the asked year);
- it is short (a value, not a different statement);
- both passages name what the question names, the same ones of its names;
- a sentence that starts with a pronoun conflicts only within articles of the same title
  (template sentences of two articles, "Its county seat is Newport" and "Its county seat is
  Ossipee", are about two counties).

A second check reads the value the answer gives from each passage, for answers whose value is a
date, a year, a number or a name (:func:`find_values`): a sentence of another passage that names what the
question names and shares most of its words, and gives a value of the same kind but not the
answer's, disagrees even when the two sentences are worded differently ("Quintin's visit to Doha
took place on 3 March 2022" against "Quintin met ... in Doha on December 6, 2023"). A sentence
that also gives the answer's value agrees. A value both sentences give is a fact they agree on
("... the 1981 model year, moving to front-wheel drive for 1982" against "... the 1271 model year
..., for 1982"): the value set against the answer's is one the answer's sentence lacks, and of
several such, the one in the same place, between the most of the same words (:func:`aligned`;
none in such a place: not counted). A name the answer gives ("Louis XIV [1].") is read from the
other passages too: a sentence that names the other names of the answer's sentence, at least two
beyond the question's, and one new name, gives that name in the answer's place
(:func:`named_alike`). And the one value of its kind in a sentence that holds most of the answer
sentence's words, in any order (:func:`worded_alike`), is in its place wherever a rewording moved
it. eval/README.md, "Conflicting sources", measures both checks.

The assistant does not pick a winner: :func:`state` appends both values with their citations
to the answer ("The sources disagree: source [1] gives ...; source [3] gives ..."), and says
which source is dated later where both carry a date. When the trust score withholds the model's
own answer, the disagreement alone is shown (:meth:`rag.answer.assistant.Assistant.respond`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from rag.answer.prompting import asks_for_several, sentence_spans
from rag.answer.verifier import Asked
from rag.core.text import names, words
from rag.core.types import AnswerSentence, Citation, Source, Span
from rag.ingest.cleaning import date_spans

SIMILAR = 0.6  # the share of words two sentences must share, in order (SequenceMatcher.ratio)
MAX_VALUE_WORDS = 6  # a changed place longer than this is a different statement, not a value
JOIN_WORDS = 2  # changes at most this many same words apart are one place
_WORD = re.compile(r"\w+(?:[.,'’-]\w+)*")
# A sentence that starts with a pronoun is about its own article's subject.
_PRONOUN = re.compile(r"\s*(it|its|they|their|he|his|she|her|this|these)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Value:
    """One source's value for the asked fact, and the citation of the sentence that gives it."""

    value: str
    citation: Citation
    date: str | None = None  # the source document's date, when it has one


@dataclass(frozen=True)
class Conflict:
    """Sources that give different values for the asked fact: the answer's value first."""

    values: tuple[Value, ...]

    def statement(self) -> str:
        """The sentence appended to the answer (citation markers included)."""
        given = "; ".join(f"source [{v.citation.n}] gives {v.value}" for v in self.values)
        text = f"The sources disagree: {given}."
        dated = [v for v in self.values if v.date]
        if len(dated) == len(self.values) and len({v.date for v in dated}) == len(dated):
            newest = max(dated, key=lambda v: v.date or "")
            text += f" Source [{newest.citation.n}] is dated later ({newest.date})."
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"values": [
            {"value": v.value, "n": v.citation.n, "doc_id": v.citation.doc_id, "chunk_id": v.citation.chunk_id,
             "start": v.citation.start, "end": v.citation.end, "quote": v.citation.quote, "date": v.date}
            for v in self.values
        ]}


def _words(text: str) -> list[tuple[str, int, int]]:
    return [(m.group().lower(), m.start(), m.end()) for m in _WORD.finditer(text)]


def difference(quote: str, other: str) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Where ``other`` says the same as ``quote`` except in one short place: that place's
    character offsets in each (a value replaced by another), or None."""
    a, b = _words(quote), _words(other)
    if not a or not b:
        return None
    matcher = SequenceMatcher(None, [w for w, *_ in a], [w for w, *_ in b], autojunk=False)
    if matcher.ratio() < SIMILAR:
        return None
    # Changes one or two words apart are one place: "Edict of Potsdam" / "League of Augsburg".
    places: list[list[int]] = []  # [i1, i2, j1, j2, replaced]
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if places and i1 - places[-1][1] <= JOIN_WORDS and j1 - places[-1][3] <= JOIN_WORDS:
            places[-1][1:4] = [i2, places[-1][2], j2]
            places[-1][4] |= tag == "replace"
        else:
            places.append([i1, i2, j1, j2, tag == "replace"])
    replaced = [place for place in places if place[4]]
    if len(replaced) != 1 or len(places) > 2:  # one value replaced, at most one small edit beside it
        return None
    i1, i2, j1, j2, _ = replaced[0]
    if not i1 < i2 or not j1 < j2 or i2 - i1 > MAX_VALUE_WORDS or j2 - j1 > MAX_VALUE_WORDS:
        return None
    return (a[i1][1], a[i2 - 1][2]), (b[j1][1], b[j2 - 1][2])


def _stems(text: str) -> set[str]:
    return set(words(text)) | {w for w, *_ in _words(text) if any(c.isdigit() for c in w)}


def find(question: str, answer: str, sentences: list[AnswerSentence], citations: list[Citation],
         sources: tuple[Source, ...]) -> list[Conflict]:
    """The sources that disagree about the answer's value: sentences that differ from it in one
    short place (:func:`find_sentences`), then values read from other passages worded differently
    (:func:`find_values`), each pair of values once."""
    found = find_sentences(question, answer, sentences, citations, sources)
    seen = {frozenset(v.value.lower() for v in c.values) for c in found}
    for conflict in find_values(question, answer, sentences, citations, sources):
        their = conflict.values[1]
        if frozenset(v.value.lower() for v in conflict.values) in seen or any(
                their.citation.n == v.citation.n and their.citation.start == v.citation.start for c in found for v in c.values):
            continue
        found.append(conflict)
    return found


def find_sentences(question: str, answer: str, sentences: list[AnswerSentence], citations: list[Citation],
                   sources: tuple[Source, ...]) -> list[Conflict]:
    """The conflicts about the answer's values: each sentence of a source the answer cites (its
    whole passage), against each sentence of the prompt's other sources, where the two say the
    same except in one short place (:func:`difference`) that holds the answer's words on one
    side and none of the question's words on either. The model may cite the passage that gives
    the other value (a lexical or judged support passes "Romanesque idiom [1]" on "a unique
    Vulcan idiom"), so the answer's value may sit on either side; it is listed first."""
    asked = _stems(question)
    said = _stems(answer)
    names = Asked(question).names
    by_n = {s.n: s for s in sources}

    spans = {s.n: sentence_spans(s.hit) for s in sources}
    named = {s.n: {n for n in names if re.search(rf"\b{re.escape(n)}", s.hit.text)} for s in sources}
    quoted = {(c.n, c.start): c for c in citations}
    found: dict[frozenset[str], Conflict] = {}
    cited = sorted({n for s in sentences if s.supported for n in s.citations if n in by_n})
    for n in cited:
        source = by_n[n]
        for span in spans[n]:
            for other in sources:
                if other.n == n or other.hit.doc_id == source.hit.doc_id:
                    continue
                if named[other.n] != named[n] or (names and not named[n]):
                    continue  # not both about what the question names
                for other_span in spans[other.n]:
                    where = difference(span.text, other_span.text)
                    if where is None:
                        continue
                    if source.hit.title != other.hit.title and (_PRONOUN.match(span.text) or _PRONOUN.match(other_span.text)):
                        continue  # "Its county seat is ...": each about its own article's subject
                    (qa, qb), (oa, ob) = where
                    ours, theirs = span.text[qa:qb], other_span.text[oa:ob]
                    if _stems(ours) & asked or _stems(theirs) & asked:
                        continue  # the place names what was asked: another subject, not another value
                    if not (_stems(ours) | _stems(theirs)) & said:
                        continue  # not where the answer's value is
                    key = frozenset({ours.lower(), theirs.lower()})
                    if key in found:
                        continue
                    mine = (ours, source, span)
                    yours = (theirs, other, other_span)
                    if not _stems(ours) & said:  # the answer gives the other source's value
                        mine, yours = yours, mine
                    found[key] = Conflict(tuple(
                        Value(value, quoted.get((where_from.n, at.start)) or _citation(where_from, at), where_from.hit.date)
                        for value, where_from, at in (mine, yours)))
    return list(found.values())


# A value an answer can give, by kind: a full date (read as ISO), a year, a number (with its unit).
_YEAR = re.compile(r"\b(1[5-9]\d\d|20\d\d)\b")
_NUMBER = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(\s*(?:%|percent|per cent|million|billion|thousand))?(?![\w])",
                     re.IGNORECASE)
SHARED_WORDS = 0.5  # of the question's own words (not its names), the share a sentence must hold to speak of the same
BESIDE = 3  # words each side of a value that place it (aligned)
# Words beside a date, year or number that must be the same for it to stand in the answer's
# value's place (0: any one value of the kind; chosen from a measured curve: eval/README.md,
# "Conflicts in other words").
VALUE_BESIDE = 1
# Names as values (a name answer read from the other passages too), and how a name is placed (a
# sentence names many things): by the other names of the answer's sentence, which a rewording keeps
# wherever it moves them (:func:`named_alike`; NAMES_ALIKE: at least that many of them not the
# question's), or, with NAMES_ALIKE 0, by the NAME_BESIDE words beside it. Chosen from
# eval/experiments/name_conflicts.py (eval/README.md, "Conflicts in other words"): names placed by
# the words beside them found counterfeits only at a cost of false conflicts on the agreeing dev
# sets; by two other names, more counterfeits than names off (12 against 8 of 38) and none false.
READ_NAMES = True
NAME_BESIDE = 4
NAMES_ALIKE = 2
# A lone other value (or name) of the answer's kind in a sentence that holds at least this share of
# the words of the answer's sentence, in any order, is in the answer's place however far a rewording
# moved it (:func:`worded_alike`; None: not read so). Chosen from the same curve: the smallest share
# with no false conflict on the agreeing sets (0.6 finds two more counterfeits and claims one on HotpotQA).
WORDS_ALIKE: float | None = 0.7
NAME_ANSWER_WORDS = 8  # the longest answer read as a name


def values(text: str) -> dict[str, list[str]]:
    """The values ``text`` gives, by kind: ``date`` (ISO), ``year``, ``number`` (digits without
    separators, with a unit word when one follows); a year inside a date is not a year of its own."""
    return {kind: [value for value, _, _ in found] for kind, found in located_values(text).items()}


def located_values(text: str) -> dict[str, list[tuple[str, int, int]]]:
    """:func:`values` with where each is in ``text`` (value, start, end)."""
    dates = date_spans(text)

    def free(at: int) -> bool:
        return not any(a <= at < b for a, b, _ in dates)

    years = [(m.group(1), m.start(1), m.end(1)) for m in _YEAR.finditer(text) if free(m.start())]
    said_years = {year for year, _, _ in years}
    numbers = [((m.group(1).replace(",", "") + " " + _unit(m.group(2))).strip(), m.start(), m.end())
               for m in _NUMBER.finditer(text) if free(m.start()) and m.group(1) not in said_years]
    return {"date": [(iso, a, b) for a, b, iso in dates], "year": years, "number": numbers}


def beside(text: str, start: int, end: int) -> tuple[set[str], set[str]]:
    """The ``BESIDE`` words (stems, stop words left out) before ``text[start:end]`` and after it."""
    return set(words(text[:start])[-BESIDE:]), set(words(text[end:])[:BESIDE])


def aligned(ours: tuple[set[str], set[str]], text: str, found: list[tuple[str, int, int]], least: int = 1) -> str | None:
    """Of the values ``found`` in ``text``, the one whose words before and after are most like
    ``ours`` (the answer's value's, from :func:`beside`), side by side; None when none shares
    ``least`` words: then which of them speaks of what the answer gives cannot be told."""
    best, score = None, least - 1  # with least 0, the first of ``found`` when none shares a word
    for value, start, end in found:
        before, after = beside(text, start, end)
        shared = len(before & ours[0]) + len(after & ours[1])
        if shared > score:
            best, score = value, shared
    return best


def located_names(text: str) -> list[tuple[str, int, int]]:
    """The names ``text`` mentions (:func:`rag.core.text.names`), each where it first is."""
    out = []
    for name in _names(text):
        at = text.find(name)
        if at >= 0:
            out.append((name, at, at + len(name)))
    return out


def named_alike(ours: str, value: str, text: str, asked: set[str], least: int = 1) -> str | None:
    """The name ``text`` gives in the place of ``value``, the name the answer gives from ``ours``
    (the sentence it cites): ``text`` names every other name ``ours`` names, at least ``least`` of
    them not among the question's names (``asked``, lower case), and exactly one name that neither
    ``ours`` nor the question gives. A sentence naming the same people and places but one says who
    else did what ``ours`` says ``value`` did, in whatever order it puts them; a sentence naming more
    than one new name, leaving out one of ours, or sharing only the question's names ("South
    Korean") may be about something else. None when there is no such name."""
    mine = [n for n in _names(ours) if not _same_name(n, [value])]
    theirs = _names(text)
    if not all(_same_name(n, theirs) for n in mine) or sum(not _same_name(n, asked) for n in mine) < least:
        return None
    new = [n for n in theirs if not _same_name(n, [value, *mine, *asked])]
    return new[0] if len(new) == 1 else None


def _same_name(name: str, others: Iterable[str]) -> bool:
    """Whether ``name`` is one of ``others`` or is within one, or holds one, word for word ("Edict
    of Nantes" and "The Edict of Nantes"; not "NSF" and "NSFNET")."""
    mine = set(name.lower().split())
    return any(mine <= theirs or theirs <= mine for theirs in (set(o.lower().split()) for o in others))


def worded_alike(ours: str, theirs: str) -> float:
    """The share of the words of ``ours`` (stems, stop words left out) that ``theirs`` holds too, in
    any order: near 1 for a rewording, which keeps a sentence's words and moves them."""
    mine = set(words(ours))
    return len(mine & set(words(theirs))) / len(mine) if mine else 0.0


def _names(sentence: str) -> list[str]:
    """The names ``sentence`` mentions, but a lone capitalized word opening it ("According to a later
    report, ...", "Officials said ..."), which is capitalized for its place, not as a name."""
    return [n for n in names(sentence) if " " in n or not re.match(rf"\W*{re.escape(n)}\b", sentence)]


def _unit(word: str | None) -> str:
    unit = (word or "").strip().lower()
    return "percent" if unit in ("%", "per cent") else unit


def _kind_and_value(text: str) -> tuple[str, str] | None:
    """The answer's value: its first date, else year, else number (None: a name or a phrase)."""
    found = values(text)
    for kind in ("date", "year", "number"):
        if found[kind]:
            return kind, found[kind][0]
    return None


def _name(answer: str, question: str) -> tuple[str, str] | None:
    """An answer that is a name the question does not give ("Louis XIV [1]."), as ("name", it);
    not a longer answer (a statement, whose first name need not be what was asked) nor a list."""
    if not READ_NAMES or len(answer.split()) > NAME_ANSWER_WORDS or asks_for_several(question):
        return None
    asked = {n.lower() for n in names(question)}
    given = [n for n in names(answer) if not _same_name(n, asked)]
    return ("name", given[0]) if given else None


def _located(text: str, kind: str) -> list[tuple[str, int, int]]:
    return located_names(text) if kind == "name" else located_values(text)[kind]


def _of_kind(text: str, kind: str) -> list[str]:
    return [value for value, _, _ in _located(text, kind)]


def find_values(question: str, answer: str, sentences: list[AnswerSentence], citations: list[Citation],
                sources: tuple[Source, ...]) -> list[Conflict]:
    """Disagreements worded differently (see the module docstring): for an answer whose value is a
    date, a year, a number or a name, each sentence of a passage of another document that names what
    the question names, holds at least ``SHARED_WORDS`` of its other words, and gives values of that
    kind none of which is the answer's: one the answer's sentence does not also give (of several,
    the one in the answer's value's place, :func:`aligned`; a name placed by :func:`named_alike`;
    the lone one of a rewording, :func:`worded_alike`)."""
    plain = re.sub(r"\[\d+\]", "", answer)
    given = _kind_and_value(plain) or _name(plain, question)
    if given is None:
        return []
    kind, value = given
    asked = Asked(question)
    by_n = {s.n: s for s in sources}
    cited = [c for c in citations if c.supported and c.n in by_n and value in _of_kind(c.quote, kind)]
    if not cited:
        return []  # the answer's own value is not in the sentence it cites: nothing to set against
    ours = cited[0]
    own_values = _located(ours.quote, kind)
    place = next(beside(ours.quote, a, b) for v, a, b in own_values if v == value)
    agreed = {v for v, _, _ in own_values}  # values both sentences give are facts they agree on
    question_names = {n.lower() for n in names(question)}
    if kind == "name":  # nor is a name the question gives another value
        agreed = {v.lower() for v in agreed} | question_names
    own_words = asked.words - {w for n in asked.names for w in words(n)}
    found: dict[str, Conflict] = {}
    for other in sources:
        if other.hit.doc_id == by_n[ours.n].hit.doc_id:
            continue
        if asked.names and asked.found(f"{other.hit.title} {other.hit.text}")[1] < 1.0:
            continue  # the passage does not name everything the question names
        for span in sentence_spans(other.hit):
            theirs = _located(span.text, kind)
            if value in {v for v, _, _ in theirs} or (kind == "name" and value.lower() in span.text.lower()):
                continue
            if own_words and len(own_words & set(words(span.text))) / len(own_words) < SHARED_WORDS:
                continue  # not about what was asked
            if kind == "name":  # not a name the answer's sentence or the question also gives
                others = [found_at for found_at in theirs if not _same_name(found_at[0], agreed)]
                other_value = (named_alike(ours.quote, value, span.text, question_names, NAMES_ALIKE)
                               if NAMES_ALIKE else aligned(place, span.text, others, NAME_BESIDE))
            else:
                others = [found_at for found_at in theirs if found_at[0] not in agreed]
                other_value = aligned(place, span.text, others, VALUE_BESIDE)
            if (other_value is None and WORDS_ALIKE is not None and len(others) == 1
                    and worded_alike(ours.quote, span.text) >= WORDS_ALIKE):
                other_value = others[0][0]  # the one value of its kind in a rewording of the answer's sentence
            if other_value is None or other_value in found:
                continue
            found[other_value] = Conflict((Value(_shown(ours.quote, kind, value), ours, by_n[ours.n].hit.date),
                                           Value(_shown(span.text, kind, other_value), _citation(other, span), other.hit.date)))
    return list(found.values())


def _shown(text: str, kind: str, value: str) -> str:
    """A value as ``text`` writes it ("3 March 2022" for 2022-03-03), for the statement."""
    if kind == "date":
        return next((text[a:b] for a, b, iso in date_spans(text) if iso == value), value)
    return value


def _citation(source: Source, span: Span) -> Citation:
    return Citation(n=source.n, doc_id=source.hit.doc_id, chunk_id=source.hit.chunk_id, title=source.hit.title,
                    start=span.start, end=span.end, quote=span.text, supported=True, added=True)


def state(text: str, citations: list[Citation], conflicts: list[Conflict]) -> tuple[str, list[Citation]]:
    """The answer with each conflict's statement appended (unless the answer already gives every
    value) and the other sources' sentences added to its citations, so both quotes are shown."""
    added = list(citations)
    for conflict in conflicts:
        if not all(v.value.lower() in text.lower() for v in conflict.values):
            text = f"{text.rstrip()} {conflict.statement()}".lstrip()
        for v in conflict.values:
            if all((c.n, c.start) != (v.citation.n, v.citation.start) for c in added):
                added.append(v.citation)
    return text, sorted(added, key=lambda c: (c.n, c.start))
