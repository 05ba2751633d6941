"""An answer and its sources as HTML: everything from a document or the model is escaped first, so markup inside an article is shown, never run; only our own tags (``<mark>``, ``<sup>``...) remain."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rag.answer.assistant import Answer, Withheld
from rag.answer.retry import RETRY_WORDS
from rag.answer.summary import Summary
from rag.core.types import Citation, Hit
from rag.ingest.web import is_url

if TYPE_CHECKING:
    from rag.serve.conversations import SavedTurn

EMPTY_SOURCES = '<div class="rag-sources"><p class="rag-note">The sources of each answer appear here.</p></div>'


_INERT = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
    | {c: f"&#{ord(c)};" for c in "\\`*_{}[]()#+-!|~$:="}
)


def escape_text(text: str) -> str:
    """``text`` as inert HTML: no tag, attribute, entity, Markdown or LaTeX in it takes effect."""
    return text.translate(_INERT)


def _cite_marks(numbers: Sequence[int]) -> str:
    return "".join(f'<sup class="rag-cite">{escape_text(f"[{n}]")}</sup>' for n in numbers)


def render_answer(answer: Answer, searched: str | None = None) -> str:
    """The answer as chat HTML: each sentence with its ``[n]`` markers, unsupported ones marked.

    ``searched`` is the standalone question a follow-up was rewritten to; it is shown so the
    user can see what was looked up.
    """
    parts: list[str] = []
    if searched and searched != answer.question:
        searched = None
    if searched:
        parts.append(f'<p class="rag-searched"><em>Searched for: {escape_text(searched)}</em></p>')
    if answer.refused:
        parts.append(f'<p class="rag-refusal"><strong>{escape_text(answer.text)}</strong></p>')
        if answer.withheld is not None:
            # what the model wrote, collapsed under the refusal: the reader may judge it
            parts.append(render_withheld(answer.withheld))
        elif answer.raw and answer.refusal_reason:
            # the model did write an answer: say why it is not shown
            parts.append(f'<p class="rag-note"><small>Withheld: {escape_text(answer.refusal_reason)}.</small></p>')
        return "\n".join(parts)
    if not answer.sentences and not answer.conflicts:
        parts.append(f"<p>{escape_text(answer.text)}</p>")
        return "\n".join(parts + _second_try(answer))
    sentences = []
    for s in answer.sentences:
        body = escape_text(s.text) + _cite_marks(s.citations)
        if not s.supported:
            body = (
                f'<span class="rag-unsupported" title="No source supports this sentence">{body} '
                "<em>(not supported by the sources)</em></span>"
            )
        sentences.append(body)
    if sentences:  # none when only the sources' disagreement is shown
        parts.append("<p>" + " ".join(sentences) + "</p>")
    for conflict in answer.conflicts:
        # Both values with their sources; the quotes are highlighted in the sources panel.
        given = "; ".join(f"{escape_text(v.value)}{_cite_marks([v.citation.n])}" for v in conflict.values)
        parts.append(f'<p class="rag-conflict"><strong>The sources disagree:</strong> {given}.</p>')
    return "\n".join(parts + _second_try(answer))


def _second_try(answer: Answer) -> list[str]:
    """Under an answer a second try gave: how it was asked, and the first answer, collapsed."""
    if answer.first is None:
        return []
    how = escape_text(RETRY_WORDS.get(answer.retry or "", answer.retry or ""))
    return [f'<p class="rag-note"><small>A second try, {how}: the first answer was not verified.</small></p>',
            render_withheld(answer.first)]


def render_withheld(withheld: Withheld) -> str:
    """A withheld answer as a collapsed block: "Not verified: ..." (its text keeps its ``[n]``
    markers), then why (the reason, which carries the score) and the quotes it cites."""
    quotes = "".join(f'<blockquote>{_cite_marks([c.n])} <mark class="rag-quote">{escape_text(c.quote)}</mark> '
                     f"<small>{escape_text(c.title)}</small></blockquote>" for c in withheld.citations if c.quote)
    return (f'<details class="rag-withheld"><summary>Not verified: {escape_text(withheld.text)}</summary>'
            f'<p class="rag-note"><small>Withheld: {escape_text(withheld.reason)}.</small></p>{quotes}</details>')


def render_saved(turn: SavedTurn) -> str:
    """A saved answer as chat HTML, as :func:`render_answer` showed it (what was searched, the
    refusal and its withheld answer), its ``[n]`` markers as citation marks; a saved turn keeps
    the answer's text, not its sentences, so unsupported sentences are not marked again."""
    parts = []
    if turn.searched != turn.asked:
        parts.append(f'<p class="rag-searched"><em>Searched for: {escape_text(turn.searched)}</em></p>')
    if turn.refused:
        parts.append(f'<p class="rag-refusal"><strong>{escape_text(turn.answer)}</strong></p>')
        if turn.withheld is not None:
            parts.append(render_withheld(turn.withheld))
        return "\n".join(parts)
    # odd pieces of the split are the numbers of the [n] markers
    pieces = re.split(r"\[(\d+)\]", turn.answer)
    parts.append("<p>" + "".join(_cite_marks([int(p)]) if i % 2 else escape_text(p) for i, p in enumerate(pieces)) + "</p>")
    return "\n".join(parts)


def render_citations(citations: Sequence[Citation]) -> str:
    """The sources panel of a saved answer: each cited source with its quote highlighted (the
    retrieved passages around them are not kept)."""
    if not citations:
        return EMPTY_SOURCES
    out = ['<div class="rag-sources">', "<h3>Sources</h3>"]
    for c in citations:
        meta = " · ".join([c.doc_id, *([f"p. {c.page}"] if c.page is not None else [])])
        note = "" if c.supported else '<p class="rag-note">this quote does not support the answer</p>'
        out.append(f'<section class="rag-source"><div class="rag-head"><span class="rag-n">{escape_text(f"[{c.n}]")}</span> '
                   f"<strong>{escape_text(c.title or c.doc_id)}</strong> <small>{escape_text(meta)}</small></div>"
                   f'<blockquote><mark class="rag-quote">{escape_text(c.quote)}</mark></blockquote>{note}</section>')
    out.append("</div>")
    return "\n".join(out)


def _marked(text: str, spans: list[tuple[int, int]]) -> str:
    """Escaped ``text`` with ``spans`` (offsets into it; merged where they overlap) in ``<mark>``."""
    merged: list[list[int]] = []
    for a, b in sorted((max(0, a), min(len(text), b)) for a, b in spans):
        if a >= b:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    out, pos = [], 0
    for a, b in merged:
        out.append(escape_text(text[pos:a]))
        out.append(f'<mark class="rag-quote">{escape_text(text[a:b])}</mark>')
        pos = b
    out.append(escape_text(text[pos:]))
    return "".join(out)


def _head(n: int | None, hit: Hit, extra: str = "", url: str | None = None) -> str:
    """A passage's heading: its number, title (a link to ``url``, the web page it was read from),
    document id, date, and ``extra`` (escaped), which defaults to the page the passage starts on
    in a paged document."""
    if not extra and hit.page is not None:
        extra = escape_text(f" · p. {hit.page}")
    label = f'<span class="rag-n">{escape_text(f"[{n}]")}</span> ' if n is not None else ""
    meta = " · ".join(escape_text(x) for x in (hit.doc_id, hit.date or "no date") if x) + extra
    title = f"<strong>{escape_text(hit.title or hit.doc_id)}</strong>"
    if url and is_url(url):
        title = f'<a href="{escape_text(url)}" target="_blank" rel="noopener noreferrer">{title}</a>'
    return f'<div class="rag-head">{label}{title} <small>{meta}</small></div>'


def render_sources(answer: Answer | None) -> str:
    """The sources panel: each cited passage with its supporting quotes highlighted, then the
    other retrieved passages in a collapsed list."""
    if answer is None:
        return EMPTY_SOURCES
    by_n: dict[int, list[Citation]] = {}
    for c in answer.citations:
        by_n.setdefault(c.n, []).append(c)
    hits_by_chunk = {h.chunk_id: h for h in answer.hits}
    source_hits = {s.n: s.hit for s in answer.sources}
    out = ['<div class="rag-sources">']
    if by_n:
        out.append("<h3>Sources</h3>")
    elif answer.refused:
        out.append('<p class="rag-note">No passage answers this question.</p>')
    cited_chunks = set()
    for n, cites in by_n.items():
        hit = source_hits.get(n) or hits_by_chunk.get(cites[0].chunk_id)
        if hit is None:
            continue
        cited_chunks.add(hit.chunk_id)
        inside = [(c.start - hit.start, c.end - hit.start) for c in cites if hit.start <= c.start and c.end <= hit.end]
        notes = []
        if any(not c.supported for c in cites):
            notes.append("the highlighted sentence is the closest match, but it does not support the answer")
        disagreeing = {(v.citation.n, v.citation.start) for c in answer.conflicts for v in c.values}
        if any((c.n, c.start) in disagreeing for c in cites):
            notes.append("this source disagrees with another about the answer: both are highlighted")
        elif any(c.added for c in cites):
            notes.append("the checker attached this source to a sentence the model left uncited")
        pages = sorted({c.page for c in cites if c.page is not None})
        extra = escape_text(" · " + ", ".join(f"p. {p}" for p in pages)) if pages else ""
        url = next((c.url for c in cites if c.url), None)
        out.append(f'<section class="rag-source" id="rag-source-{n}">{_head(n, hit, extra, url)}')
        out.append(f'<p class="rag-passage">{_marked(hit.text, inside)}</p>')
        for c in cites:
            if (c.start - hit.start, c.end - hit.start) not in inside:
                out.append(f'<blockquote><mark class="rag-quote">{escape_text(c.quote)}</mark></blockquote>')
        out.extend(f'<p class="rag-note">{escape_text(note)}</p>' for note in notes)
        out.append("</section>")
    others = [h for h in answer.hits if h.chunk_id not in cited_chunks]
    if others:
        label = "Other retrieved passages" if by_n else "Retrieved passages"
        out.append(f'<details class="rag-others"><summary>{label} ({len(others)})</summary>')
        for h in others:
            score = escape_text(f" · score {h.score:.3f}")
            out.append(f'<div class="rag-hit">{_head(None, h, score)}<p class="rag-passage">{escape_text(h.text)}</p></div>')
        out.append("</details>")
    out.append("</div>")
    return "\n".join(out)


def render_summary(summary: Summary) -> str:
    """A checked summary: its sentences with their ``[n]`` markers, then each numbered quote with its
    document (the quotes are the documents' own text, sliced by offsets)."""
    numbers: dict[tuple[str, int, int], int] = {}
    sentences = []
    for sentence in summary.sentences:
        marks = [numbers.setdefault((c.doc_id, c.start, c.end), len(numbers) + 1) for c in sentence.citations]
        sentences.append(escape_text(sentence.text) + _cite_marks(marks))
    quotes = {(c.doc_id, c.start, c.end): c for s in summary.sentences for c in s.citations}
    parts = [f'<div class="rag-summary"><h3>{escape_text(" / ".join(summary.titles))}</h3>',
             "<p>" + " ".join(sentences) + "</p>" if sentences else '<p class="rag-note">No sentence of the summary could be checked.</p>']
    for key, n in numbers.items():
        c = quotes[key]
        parts.append(f'<blockquote>{_cite_marks([n])} <mark class="rag-quote">{escape_text(c.quote)}</mark> '
                     f"<small>{escape_text(c.title)} · {escape_text(c.doc_id)}</small></blockquote>")
    if summary.dropped:
        dropped = " ".join(escape_text(d) for d in summary.dropped)
        parts.append(f'<details class="rag-withheld"><summary>Not verified, left out ({len(summary.dropped)})</summary>'
                     f"<p>{dropped}</p></details>")
    parts.append("</div>")
    return "\n".join(parts)
