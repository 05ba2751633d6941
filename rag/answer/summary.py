"""Summaries whose every sentence is cited and checked, as an answer's are (issue 47).

"Summarize this article" is not a question to search for: the four passages that best match the
request are not the article. A summary reads the whole document, in order, in parts of about
``PART_WORDS`` words (:func:`parts`): each part's sentences, a few at a time, are numbered
sources, and the model writes a few short sentences citing them (:func:`summary_prompt`: one
message of its own, without the answers' worked example, which the model otherwise summarized
too), stopped once it has written as many as it was asked for (:func:`enough`). Every sentence
then goes through the answer's checks (:func:`rag.answer.citations.verify`: the quote each
cites, sliced from the document by its offsets, and the model as the judge); a sentence no
source supports is dropped, and kept in :attr:`Summary.dropped` for the curious. A long document is summarized part by part, the parts'
checked sentences given as they come (:class:`Progress` between parts), and, past
``WHOLE_FROM`` parts, the parts' sentences are summarized again as a whole (their quotes are the
sources), so a book chapter ends with a short summary of its own.

Two documents are compared (:func:`compare_prompt`): each is summarized, then the model writes
what both report and where they differ, citing the quotes of both summaries.

Example:
    >>> summary = assistant.summarize("000_309b2881ceff4657")          # doctest: +SKIP
    >>> summary.text, [c.quote for s in summary.sentences for c in s.citations]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rag.answer.prompting import SOURCES_HEADER, Labels, is_heading, source_lines
from rag.core.types import AnswerSentence, Citation, Document, Hit, Prompt, Source, Span
from rag.ingest.chunking import split_sentences

# Source words a part's prompt holds: a seed article is two parts (a 600-word one three). Each part
# costs a decode and its checks: 300 words made the longest seeds 29-37 s (eval/README.md, "Summaries").
PART_WORDS = 450
FIRST_PART_WORDS = 150  # the first part is shorter, so the first sentence comes within seconds
PART_TOKENS = 80  # the longest a part's summary may be (two short sentences); a sentence cut off there is dropped
PART_SENTENCES = 2  # sentences a part's summary stops at (SUMMARY_TASK asks for them), 3 for the whole and a comparison
WHOLE_SENTENCES = 3
COMPARED_PARTS = 2  # of each document compared, the parts summarized (the lead, where news puts its facts)
SOURCE_SENTENCES = 3  # sentences one numbered source holds
WHOLE_FROM = 5  # parts from which the parts' sentences are summarized again as a whole
SUMMARY_TASK = ("Summarize the main facts of the numbered sources, passages of one article in order (who did what, "
                "when and where), in 2 short sentences. Use only what the sources state, and end each sentence with "
                "its sources like [1] [2].")
WHOLE_TASK = ("Summarize the numbered statements in 3 short sentences. Use only what they state, and end each "
              "sentence with its sources like [1] [2].")
COMPARE_TASK = ("The numbered sources come from two articles. In 2 or 3 short sentences, say what both report and "
                "where they differ. Use only what the sources state, and end each sentence with its sources like [1] [4].")
JUDGED_AS = "What does the article report?"  # the question a summary sentence is judged against


@dataclass(frozen=True)
class Progress:
    """Where a long summary is: part ``part`` of ``of`` done (``whole``: the summary of the whole next)."""

    part: int
    of: int
    whole: bool = False

    def line(self) -> str:
        return "summarizing the parts as a whole…" if self.whole else f"summarized part {self.part} of {self.of}"


@dataclass(frozen=True)
class SummarySentence:
    """One checked sentence of a summary and the quotes it cites."""

    text: str
    citations: tuple[Citation, ...]
    support: float


@dataclass(frozen=True)
class Summary:
    """A summary of ``doc_ids`` (one document, or two compared): its checked sentences, those the
    checks did not support (dropped), how many parts it was read in, and what it cost."""

    doc_ids: tuple[str, ...]
    titles: tuple[str, ...]
    sentences: tuple[SummarySentence, ...]
    dropped: tuple[str, ...] = ()
    parts: int = 1
    timings: dict[str, float] = field(default_factory=dict)  # first_sentence_s, total_s, write_s, checks_s, prompt_tokens, evaluated_tokens

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.sentences)

    @property
    def supported_share(self) -> float:
        """Of the sentences the model wrote, the share the checks supported (and so kept)."""
        written = len(self.sentences) + len(self.dropped)
        return len(self.sentences) / written if written else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"doc_ids": list(self.doc_ids), "titles": list(self.titles), "summary": self.text,
                "sentences": [{"text": s.text, "support": round(s.support, 4),
                               "citations": [{"doc_id": c.doc_id, "start": c.start, "end": c.end, "quote": c.quote}
                                             for c in s.citations]} for s in self.sentences],
                "dropped": list(self.dropped), "parts": self.parts, "timings": {k: round(v, 3) for k, v in self.timings.items()}}

    def markdown(self) -> str:
        """The summary with numbered sources under it, each with its exact quote."""
        numbers: dict[tuple[str, int, int], int] = {}
        lines = []
        for s in self.sentences:
            marks = "".join(f"[{numbers.setdefault((c.doc_id, c.start, c.end), len(numbers) + 1)}]" for c in s.citations)
            lines.append(f"{s.text} {marks}".strip())
        quotes = {(c.doc_id, c.start, c.end): c for s in self.sentences for c in s.citations}
        sources = [f"[{n}] {quotes[key].title} ({key[0]}): \"{quotes[key].quote}\"" for key, n in numbers.items()]
        return "\n".join([f"# {' / '.join(self.titles)}", "", " ".join(lines), "", *sources]) + "\n"


def parts(document: Document, words: int | None = None) -> list[list[Span]]:
    """The document's sentences in order (headings left out), in parts of at most ``words`` words
    (default ``PART_WORDS``, the first ``FIRST_PART_WORDS``; a longer sentence is a part of its own)."""
    words = words or PART_WORDS
    out: list[list[Span]] = [[]]
    limit = min(words, FIRST_PART_WORDS)
    used = 0
    for start, end in split_sentences(document.text):
        text = document.text[start:end]
        if is_heading(text, document.title):
            continue
        n = len(text.split())
        if out[-1] and used + n > limit:
            out.append([])
            used, limit = 0, words
        out[-1].append(Span(start, end, text))
        used += n
    return [part for part in out if part]


def sources_of(document: Document, sentences: Sequence[Span], first: int = 1) -> tuple[Source, ...]:
    """``sentences`` of ``document`` as numbered sources of ``SOURCE_SENTENCES`` sentences each, from ``first``."""
    out: list[Source] = []
    for i in range(0, len(sentences), SOURCE_SENTENCES):
        group = tuple(sentences[i : i + SOURCE_SENTENCES])
        hit = Hit(chunk_id=f"{document.id}@{group[0].start}", doc_id=document.id, title=document.title,
                  text=document.text[group[0].start : group[-1].end], start=group[0].start, end=group[-1].end,
                  score=0.0, rank=first + len(out), date=document.date)
        out.append(Source(n=first + len(out), hit=hit, sentences=group))
    return tuple(out)


def summary_prompt(task: str, sources: tuple[Source, ...], labels: Labels = "title-once") -> Prompt:
    """One user message: the task, then the numbered sources (an article's title once)."""
    content = "\n".join([task, "", SOURCES_HEADER, *source_lines(sources, labels)])
    return Prompt(question=task, sources=sources, messages=({"role": "user", "content": content},))


def part_prompt(document: Document, sentences: Sequence[Span]) -> Prompt:
    """The prompt that summarizes one part of ``document``."""
    return summary_prompt(SUMMARY_TASK, sources_of(document, sentences))


def quoted_sources(sentences: Sequence[SummarySentence], documents: dict[str, Document]) -> tuple[Source, ...]:
    """The quotes checked summary sentences cite, each a numbered source (for a summary of the
    parts as a whole, or a comparison), in order, once each."""
    seen: dict[tuple[str, int, int], Citation] = {}
    for s in sentences:
        for c in s.citations:
            seen.setdefault((c.doc_id, c.start, c.end), c)
    out: list[Source] = []
    for n, c in enumerate(seen.values(), start=1):
        document = documents[c.doc_id]
        span = Span(c.start, c.end, document.text[c.start : c.end])
        hit = Hit(chunk_id=f"{c.doc_id}@{c.start}", doc_id=c.doc_id, title=document.title, text=span.text,
                  start=c.start, end=c.end, score=0.0, rank=n, date=document.date)
        out.append(Source(n=n, hit=hit, sentences=(span,)))
    return tuple(out)


def whole_prompt(sentences: Sequence[SummarySentence], documents: dict[str, Document]) -> Prompt:
    return summary_prompt(WHOLE_TASK, quoted_sources(sentences, documents))


def compare_prompt(sentences: Sequence[SummarySentence], documents: dict[str, Document]) -> Prompt:
    return summary_prompt(COMPARE_TASK, quoted_sources(sentences, documents), "title")


# A sentence's end and the citation markers after it ("... in Doha [1] [2]." or "... in Doha. [1]");
# not the full stop of an initial or an abbreviation such as "U.S.".
_SENTENCE_END = re.compile(r"(?<!\b[A-Z])[.!?](?:\s*\[\d+(?:\s*[,;]\s*\d+)*\])*")


def complete(text: str) -> str:
    """``text`` up to its last complete sentence (and the citation markers after it): a summary cut
    off by the token limit loses its unfinished sentence, which no source could support."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text) if re.match(r"\s|$", text[m.end():])]
    return text[: ends[-1]].strip() if ends else text.strip()


def enough(text: str, sentences: int) -> str | None:
    """``text`` up to the end of its ``sentences``-th sentence once the next one has begun (its
    first letter written, so the first's citation markers are all in), else None. The model asked
    for two sentences often writes four until the token limit: what it writes past the sentences
    asked for costs decoding and checks and is not shown (eval/README.md, "Summaries")."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text) if re.match(r"\s+[^\s\[]", text[m.end():])]
    return text[: ends[sentences - 1]].strip() if len(ends) >= sentences else None


def checked(sentences: Sequence[AnswerSentence], citations: Sequence[Citation]) -> tuple[list[SummarySentence], list[str]]:
    """A summary's sentences after :func:`rag.answer.citations.verify`: those supported, each with
    the quotes of its supported citations, and the text of those dropped."""
    by_n: dict[int, list[Citation]] = {}
    for c in citations:
        if c.supported:
            by_n.setdefault(c.n, []).append(c)
    kept, dropped = [], []
    for s in sentences:
        quotes = tuple(c for n in s.citations for c in by_n.get(n, []))
        if s.supported and quotes:
            kept.append(SummarySentence(s.text, quotes, s.support))
        else:
            dropped.append(s.text)
    return kept, dropped
