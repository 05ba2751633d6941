"""Build the one prompt the model sees: a fixed instruction, numbered sources, the question.

On 2 CPU cores the 1.5B model reads about 60 prompt tokens a second, so every sentence
in the prompt costs time before the first answer token. Instead of whole chunks, the
prompt carries the sentences of the retrieved chunks that best match the question,
within a word budget, grouped per chunk in document order. Each group is one numbered
source, so a citation ``[n]`` maps back to one chunk and its exact character offsets.

The instruction and a worked example come first and never change, so llama.cpp reuses
their cached prefix.
"""

from __future__ import annotations

import math
import re
from typing import Literal

import numpy as np

from rag.core.errors import InvalidInput
from rag.core.text import tokenize, words
from rag.core.types import Hit, Message, Prompt, Source, Span
from rag.ingest.chunking import split_sentences
from rag.search.embedding import EmbeddingModel

# The fixed start of every conversation: the instruction and one worked example, as chat
# turns. Without the example the bundled 1.5B model restated the question in a long sentence
# and almost never refused; with it, it answers in a few words and says "I don't know"
# more often (eval/README.md, "Answers"). The example is invented and off-topic on purpose,
# so it cannot leak facts into answers. It never changes, so llama.cpp evaluates it once
# and reuses the cached prefix for every question.
INSTRUCTION = (
    "Answer the question using only the numbered sources. Start with the answer itself in a few words, "
    "then cite the source like [1]. Answer in one short sentence. "
    "If the sources do not state the answer, reply: I don't know."
)
SOURCES_HEADER = "Sources:"  # how the example's and every question's sources start
EXAMPLE_SOURCES = (
    f"{SOURCES_HEADER}\n"
    "[1] City Opens Harbour Bridge: The Harbour Bridge opened to traffic on 3 May 2021 after four years of work. "
    "The mayor said the bridge would cut journey times across the bay by half.\n"
    "[2] Council Approves Transport Plan: The council approved a transport plan that includes two new bus lines."
)
EXAMPLE_TURNS = (
    ("When did the Harbour Bridge open?", "On 3 May 2021 [1]."),
    ("Who designed the Harbour Bridge?", "I don't know."),
    ("What does the transport plan include?", "Two new bus lines [2]."),
)


def fixed_prefix() -> list[Message]:
    """The instruction and the worked example: the messages before every question's own."""
    messages: list[Message] = []
    for i, (question, answer) in enumerate(EXAMPLE_TURNS):
        content = f"Question: {question}" if i else f"{INSTRUCTION}\n\n{EXAMPLE_SOURCES}\n\nQuestion: {question}"
        messages += [{"role": "user", "content": content}, {"role": "assistant", "content": answer}]
    return messages


# Prompt budget for source sentences: 200 words, about 270 tokens, about 2.5 s of prefill on
# 2 cores. On the seeds gold set 150 words gave accuracy 0.69, 200 words 0.74 (eval/README.md).
CONTEXT_WORDS = 200
MAX_SENTENCES = 10
# Added to the first hit's sentences so they are chosen first: more than any relevance
# (cosine <= 1, overlap <= 1) can separate.
FIRST_HIT_BONUS = 2.0
# Added to the best sentence of each passage a second hop found (rag/search/hops.py): such a passage
# is there for what the first one names, not for the question's words, so its best sentence would
# otherwise lose to the question's own passages. Less than the first hit's bonus.
HOP_BONUS = 1.5
HOP_WORDS = 100  # more source words when a second hop added passages (a two-hop question may cost 1.5x)
LEXICAL_WEIGHT = 1.0  # sentence relevance = dense cosine + this * IDF-weighted query-term overlap


def check_context_words(words: object) -> int:
    """``words`` (the budget of source words in a prompt) if it is a whole number from 1."""
    if isinstance(words, bool) or not isinstance(words, int) or words < 1:
        raise InvalidInput(f"the prompt's budget of source words must be a whole number > 0, got {words}")
    return words


def sentence_spans(hit: Hit) -> list[Span]:
    """The sentences of a hit's chunk, with offsets into the document."""
    return [Span(hit.start + a, hit.start + b, hit.text[a:b]) for a, b in split_sentences(hit.text)]


def is_heading(text: str, title: str) -> bool:
    """A title or section heading: it carries no facts and only costs prompt tokens."""
    return text == title or (len(text.split()) <= 12 and not text.rstrip("\"'”’)").endswith((".", "!", "?", ":")))


def lexical_overlap(query_terms: set[str], texts: list[str]) -> np.ndarray:
    """Per text, the IDF-weighted share of the query's content terms it contains.

    IDF is taken over ``texts`` themselves: a term every candidate shares (the corpus's
    topic words, "Qatar", "cybersecurity") says little about which sentence answers.
    """
    if not query_terms or not texts:
        return np.zeros(len(texts))
    terms = [set(t) & query_terms for t in tokenize(texts)]
    idf = {t: math.log(1 + len(texts) / (1 + sum(t in ts for ts in terms))) for t in query_terms}
    total = sum(idf.values())
    return np.array([sum(idf[t] for t in ts) / total for ts in terms])


def select_sources(
    question: str,
    hits: list[Hit],
    embedder: EmbeddingModel,
    budget_words: int = CONTEXT_WORDS,
    max_sentences: int = MAX_SENTENCES,
    hops_from: int | None = None,
) -> tuple[Source, ...]:
    """Pick the sentences of ``hits`` most relevant to ``question`` within the word budget.

    ``hits[hops_from:]``, when given, are the passages a second hop added: each keeps its best
    sentence (:data:`HOP_BONUS`).

    The first hit is kept whole (within the budget): retrieval ranks passages better than
    the sentence scorer ranks single sentences, and an answer often sits next to the
    sentence that matches the question. The rest of the budget goes to the best sentences
    of the other hits. Sentences shared by overlapping chunks are considered once. The
    best sentence is always kept, even if it alone exceeds the budget.
    """
    seen: set[tuple[str, int]] = set()
    candidates: list[tuple[int, Span]] = []  # (hit index, sentence)
    for i, hit in enumerate(hits):
        for span in sentence_spans(hit):
            if (hit.doc_id, span.start) not in seen and not is_heading(span.text, hit.title):
                seen.add((hit.doc_id, span.start))
                candidates.append((i, span))
    if not candidates:
        return ()
    relevance = LEXICAL_WEIGHT * lexical_overlap(set(words(question)), [span.text for _, span in candidates])
    first = [j for j, (i, _) in enumerate(candidates) if i == 0]
    relevance[first] += FIRST_HIT_BONUS
    # The first hit's sentences are chosen first whatever their cosine, so only the others
    # are embedded: embedding the candidates is most of the time spent before the model.
    others = [j for j, (i, _) in enumerate(candidates) if i != 0]
    if others:
        query = embedder.embed_query([question])[0]
        relevance[others] += embedder.embed([candidates[j][1].text for j in others]) @ query
    if hops_from is not None:
        for i in range(hops_from, len(hits)):
            mine = [j for j, (h, _) in enumerate(candidates) if h == i]
            if mine:
                relevance[max(mine, key=lambda j: relevance[j])] += HOP_BONUS

    chosen: list[int] = []
    used = 0  # words of the sentences chosen so far
    for j in np.argsort(-relevance, kind="stable"):
        n = len(candidates[j][1].text.split())
        if chosen and (used + n > budget_words or len(chosen) >= max_sentences):
            continue
        chosen.append(int(j))
        used += n

    by_hit: dict[int, list[Span]] = {}
    for j in chosen:
        i, span = candidates[j]
        by_hit.setdefault(i, []).append(span)
    sources = []
    for n, i in enumerate(sorted(by_hit), start=1):  # keep retrieval order for the numbers
        spans = tuple(sorted(by_hit[i], key=lambda s: s.start))
        sources.append(Source(n=n, hit=hits[i], sentences=spans))
    return tuple(sources)


# The lines a question that asks for several things would get after it, with SEVERAL_HINTS on
# (off in the product, see there): a list's, against the instruction's "one short sentence" and
# the worked example's one-item answers ("Which countries has Qatar signed agreements with?" ->
# "Rwanda [1]."); and a question in two parts' ("who ..., and when?"), under the list's line the
# model wrote citation numbers until the token limit (eval/experiments/two_parts.py).
SEVERAL_HINT = "(Give every one the sources name, each with its source like [1] [3].)"
TWO_PARTS_HINT = "(The question asks two things: answer both, each with its source like [1].)"
_YES_NO = re.compile(r"^\s*(is|are|was|were|do|does|did|has|have|had|can|could|will|would|should)\b", re.IGNORECASE)
_COUNTED = re.compile(r"\b(?:which|what|name|list)\s+(?:\w+\s+)?(?:two|three|four|five|six|seven|eight|nine|ten|several)\b"
                      r"|\bwho (?:were|are) they\b", re.IGNORECASE)
_TWO_PARTS = re.compile(r"\band\s+(?:on |in |for |from |to |at |by )?(?:which|what|who|whom|when|where|how)\b", re.IGNORECASE)
_PLURAL_ASKED = re.compile(r"^\s*(?i:which|what)\s+(?:[A-Z][\w-]*\s+|\w+(?:al|ic|an|ese|ish)\s+)?([a-z]+(?:ies|[^s]s))\b")
_NOT_PLURAL = frozenset("is was does has this its his us as gas news means series".split())


def asks_for_several(question: str) -> bool:
    """Whether ``question`` asks for several things: a number of them ("which two countries"), a
    plural ("which countries", "what measures"), or two parts ("who ..., and when?"); not a yes/no
    question ("Are both ... from the same country?")."""
    if _YES_NO.match(question):
        return False
    if _COUNTED.search(question) or _TWO_PARTS.search(question):
        return True
    plural = _PLURAL_ASKED.match(question)
    return plural is not None and plural.group(1).lower() not in _NOT_PLURAL


# Off: end to end, through the verifier (whose prompt probe reads the prompt's end), the lists'
# line cost the seeds 4 right answers shown (accuracy 0.59 -> 0.49, wrong shown 9% either way) and
# the two-part line won nothing over no line (eval/README.md, "Lists and two-part questions").
SEVERAL_HINTS = False


def several_hint(question: str) -> str | None:
    """The line after a question that asks for several things (:func:`asks_for_several`) when
    :data:`SEVERAL_HINTS` is on: one for a question in two parts, one for a list; else None."""
    if not SEVERAL_HINTS or not asks_for_several(question):
        return None
    return TWO_PARTS_HINT if _TWO_PARTS.search(question) else SEVERAL_HINT


Labels = Literal["title", "title-once", "title-if-new"]
LABELS: tuple[Labels, ...] = ("title", "title-once", "title-if-new")
DEFAULT_LABELS: Labels = "title"  # the other two were measured and not kept (eval/README.md, "Prompt tokens")


def check_labels(labels: object) -> Labels:
    """``labels`` if it names one of :data:`LABELS`."""
    if labels not in LABELS:
        raise InvalidInput(f"source labels must be one of {', '.join(LABELS)}; got '{labels}'")
    return labels


def title_is_new(title: str, text: str, named: set[str]) -> bool:
    """Whether a source's label should carry ``title``: not when an earlier source named it, nor
    when the source's own words already contain every word of it (HotpotQA's "Scott Derrickson:
    Scott Derrickson (born 1966) is ..."): there it only costs prompt tokens."""
    return title not in named and not set(words(title)) <= set(words(text))


def source_lines(sources: tuple[Source, ...], label_titles: Labels = DEFAULT_LABELS) -> list[str]:
    """The numbered sources as the prompt gives them, one line each ("[1] Title: sentences")."""
    named: set[str] = set()  # titles of the sources so far
    articles: set[str] = set()  # their documents
    lines = []
    for s in sources:
        if label_titles == "title-once":
            titled = s.hit.doc_id not in articles
        elif label_titles == "title-if-new":
            titled = title_is_new(s.hit.title, s.text, named)
        else:
            titled = True
        lines.append(f"[{s.n}] {s.hit.title}: {s.text}" if titled else f"[{s.n}] {s.text}")
        named.add(s.hit.title)
        articles.add(s.hit.doc_id)
    return lines


def build_prompt(question: str, sources: tuple[Source, ...], label_titles: Labels = DEFAULT_LABELS) -> Prompt:
    """The fixed prefix, then one user message: numbered sources (title: sentences), question.

    ``label_titles`` says which sources carry their article's title: every one (``"title"``, the
    default), the first of each article (``"title-once"``) or only where it is new
    (``"title-if-new"``, :func:`title_is_new`). eval/experiments/prompt_budget.py measures the three.
    """
    lines = [SOURCES_HEADER, *source_lines(sources, label_titles), "", f"Question: {question}"]
    hint = several_hint(question)
    if hint:
        lines.append(hint)
    messages = (*fixed_prefix(), {"role": "user", "content": "\n".join(lines)})
    return Prompt(question=question, sources=sources, messages=messages)
