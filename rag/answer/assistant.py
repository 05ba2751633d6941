"""Answer questions from the index with a local model, and check every citation.

The pipeline for one question (:meth:`Assistant.respond`): retrieve -> refuse early if nothing is
relevant -> follow the second hop (the pages of what the question and the passages name,
:mod:`rag.search.hops`) -> select sentences and build the prompt -> write (streamed,
:meth:`Assistant._write`) -> recognise the model's own refusal -> check (:meth:`Assistant._check`):
each sentence against its sources (:func:`rag.answer.citations.verify`, with the model as the
judge, :mod:`rag.answer.judging`), then one decision to show the answer or refuse
(:func:`rag.answer.trust.assess`, by the scorer :func:`rag.answer.verifier.choose` picks) -> where
another source gives a different value for the asked fact, say so (:mod:`rag.answer.conflicts`).
:class:`Assistant` is the one object to use.

Example:
    >>> from rag import Assistant
    >>> assistant = Assistant.open()                 # index in .rag/index, model qwen-1.5b
    >>> answer = assistant.ask("When did Bernard Quintin visit Doha?")
    >>> answer.text, [c.doc_id for c in answer.citations]
"""

from __future__ import annotations

import collections.abc
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rag.answer import conflicts
from rag.answer.citations import is_refusal, verify
from rag.answer.conflicts import Conflict
from rag.answer.judging import Judge
from rag.answer.prompting import (
    CONTEXT_WORDS,
    DEFAULT_LABELS,
    HOP_WORDS,
    SOURCES_HEADER,
    Labels,
    build_prompt,
    check_context_words,
    check_labels,
    fixed_prefix,
    select_sources,
)
from rag.answer.retry import RETRY, RETRY_WORDS
from rag.answer.retry import prompts as retry_prompts
from rag.answer.summary import (
    COMPARED_PARTS,
    JUDGED_AS,
    PART_SENTENCES,
    PART_TOKENS,
    WHOLE_FROM,
    WHOLE_SENTENCES,
    Progress,
    Summary,
    SummarySentence,
    checked,
    compare_prompt,
    complete,
    enough,
    part_prompt,
    parts,
    whole_prompt,
)
from rag.answer.trust import Signals, Trust, assess, inputs
from rag.answer.verifier import choose, lexical, planned, quotes
from rag.core import defaults
from rag.core.errors import InvalidInput
from rag.core.types import AnswerSentence, Citation, GenerationStats, Hit, Prompt, Scope, Source
from rag.generate.base import GenerationSettings, Generator, KeepsStats, Primes, Scorer, Serves
from rag.generate.registry import check_model, is_remote, load_generator
from rag.ingest.web import is_url
from rag.search import hops
from rag.search.embedding import relevance_floor
from rag.search.index import Index
from rag.search.retrieval import Mode, check_k, check_mode

MAX_QUESTION_CHARS = 1000
REFUSAL_TEXT = "The articles do not contain the answer to this question."
NO_RELEVANT_PASSAGE = "no relevant passage"
NO_ANSWER = "the model found no answer"  # the reason when the model itself said it does not know
WARM_UP_QUESTION = "What happened?"  # searched once at start-up, so the first real question finds everything loaded


@dataclass(frozen=True)
class Timings:
    """Seconds from the question: retrieval and selection, first answer token, final answer; and
    the part of ``total_s`` spent on checking the answer after it streamed."""

    retrieve_s: float
    first_token_s: float | None
    total_s: float
    checks_s: float = 0.0


@dataclass(frozen=True)
class Tokens:
    """Prompt tokens evaluated for the answer (after the cached prefix), cached, and generated."""

    prompt: int
    cached: int
    answer: int

    @classmethod
    def of(cls, stats: GenerationStats | None) -> Tokens | None:
        if stats is None:
            return None
        return cls(stats.prompt_tokens - stats.cached_tokens, stats.cached_tokens, len(stats.token_logprobs))


@dataclass(frozen=True)
class Written:
    """What the model wrote for one prompt, and what it cost (statistics where the backend keeps them)."""

    raw: str
    stats: GenerationStats | None
    first_token_s: float | None


@dataclass(frozen=True)
class Checked:
    """A written answer after the checks: its text and sentences with their citations, and the trust decision."""

    text: str
    sentences: list[AnswerSentence]
    citations: list[Citation]
    trust: Trust


@dataclass(frozen=True)
class Withheld:
    """An answer the model wrote that the checks did not show: kept, with its citations and why,
    for the reader to judge (the chat window shows it collapsed under the refusal)."""

    text: str
    citations: tuple[Citation, ...]
    reason: str
    score: float | None = None
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "citations": [_citation_dict(c) for c in self.citations], "reason": self.reason,
                "score": None if self.score is None else round(self.score, 4), "threshold": self.threshold}


def _citation_dict(c: Citation) -> dict[str, Any]:
    return {"n": c.n, "doc_id": c.doc_id, "chunk_id": c.chunk_id, "title": c.title, "start": c.start, "end": c.end,
            "quote": c.quote, "supported": c.supported, "added": c.added, "page": c.page, "url": c.url}


@dataclass(frozen=True)
class Answer:
    """An answer, whether it is a refusal, and the evidence behind it."""

    question: str
    text: str
    refused: bool
    citations: tuple[Citation, ...]
    sentences: tuple[AnswerSentence, ...]
    hits: tuple[Hit, ...]
    sources: tuple[Source, ...]
    timings: Timings
    model: str
    prompt: str = ""
    raw: str = ""
    refusal_reason: str | None = None
    trust: Trust | None = None
    tokens: Tokens | None = None
    conflicts: tuple[Conflict, ...] = ()  # sources that give different values for the asked fact
    withheld: Withheld | None = None  # on a refusal by the checks: what the model wrote, and why it is not shown
    # When a second try is shown: how it was asked (rag.answer.retry), and the first answer it replaced
    retry: str | None = None
    first: Withheld | None = None

    def after_stream(self) -> str:
        """What a client that showed the model's words as they streamed must add after them for
        an answer that is shown: when the trust score withheld those words and a second try or the
        sources' disagreement is shown instead, that they are withheld and what is shown; else the
        conflict statements appended to the answer ("" when there are none)."""
        if self.refused:
            return ""
        if self.first is not None:
            return f"(withheld: {self.first.reason}; a second try, {RETRY_WORDS.get(self.retry or '', self.retry)}:) {self.text}"
        if self.trust is not None and not self.trust.shown:
            return f"(withheld: {self.trust.reason}) {self.text}"
        return " ".join(c.statement() for c in self.conflicts if c.statement() in self.text)

    @property
    def supported(self) -> bool:
        """Every sentence of the answer has a verified citation."""
        return all(s.supported for s in self.sentences)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``rag ask --json``."""
        return {
            "question": self.question,
            "answer": self.text,
            "refused": self.refused,
            "citations": [_citation_dict(c) for c in self.citations],
            "sentences": [
                {"text": s.text, "citations": list(s.citations), "supported": s.supported, "support": round(s.support, 4)}
                for s in self.sentences
            ],
            "retrieved": [
                {"doc_id": h.doc_id, "chunk_id": h.chunk_id, "score": h.score, "rank": h.rank} for h in self.hits
            ],
            "timings": {
                "retrieve_s": round(self.timings.retrieve_s, 3),
                "first_token_s": None if self.timings.first_token_s is None else round(self.timings.first_token_s, 3),
                "total_s": round(self.timings.total_s, 3),
                "checks_s": round(self.timings.checks_s, 3),
            },
            "tokens": None if self.tokens is None else asdict(self.tokens),
            "trust": None if self.trust is None else self.trust.to_dict(),
            "conflicts": [c.to_dict() for c in self.conflicts],
            "withheld": None if self.withheld is None else self.withheld.to_dict(),
            "retry": None if self.retry is None else {"how": self.retry, "first": None if self.first is None else self.first.to_dict()},
            "model": self.model,
        }


def check_question(question: object) -> str:
    """The stripped question, or a ValueError saying what is wrong with it."""
    if not isinstance(question, str) or not question.strip():
        raise InvalidInput("the question is empty")
    question = question.strip()
    if len(question) > MAX_QUESTION_CHARS:
        raise InvalidInput(f"the question has {len(question)} characters; the limit is {MAX_QUESTION_CHARS}")
    return question


@dataclass
class Assistant:
    """Retrieval plus a local model: ask questions, get answers with verified citations.

    The model is loaded on first use and reused for every question.
    """

    index: Index
    model: str = defaults.MODEL
    k: int = defaults.K
    mode: Mode = defaults.MODE
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    generator: Generator | None = None
    judge: bool = True  # the model judges each sentence's support (when its backend can)
    hops: bool = True  # follow a question's second hop (rag.search.hops): pages of what it and its passages name
    # When the first answer is withheld, ask again these ways and show the best that clears the
    # threshold (rag.answer.retry; eval/README.md measures it)
    retry: tuple[str, ...] = RETRY
    context_words: int = CONTEXT_WORDS  # the prompt's budget of source words (rag.answer.prompting)
    source_labels: Labels = DEFAULT_LABELS  # which sources carry their article's title (build_prompt)
    _loading: threading.Thread | None = field(default=None, init=False, repr=False, compare=False)
    _load_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    _load_error: BaseException | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_k(self.k)
        check_mode(self.mode)
        check_context_words(self.context_words)
        check_labels(self.source_labels)

    @classmethod
    def open(
        cls,
        index_dir: str | Path | None = None,
        model: str = defaults.MODEL,
        k: int = defaults.K,
        mode: Mode = defaults.MODE,
        settings: GenerationSettings | None = None,
        store: str | None = None,
    ) -> Assistant:
        """Open the index (it must exist; ``store`` as for :meth:`Index.open`) and prepare the
        named model (loaded on first use; an unknown name is an error now, before any search)."""
        check_model(model)
        return cls(Index.open(index_dir, store=store, create=False), model=model, k=k, mode=mode, settings=settings or GenerationSettings())

    def load_in_background(self) -> None:
        """Start loading the model in a thread and return at once; the first question then
        waits for it only after its search. A cold ``rag ask`` loads the embedder (search) and the
        model (map the file, evaluate the cached prefix) at the same time instead of one after the
        other (eval/README.md, "Cold start"). An error while loading is raised by :meth:`load`."""
        if self.generator is not None or self._loading is not None:
            return

        def run() -> None:
            try:
                self._load_now()
            except BaseException as error:  # noqa: BLE001 - handed to the thread that waits
                self._load_error = error

        # Not a daemon: the process waits for llama.cpp to finish loading before it exits.
        self._loading = threading.Thread(target=run, name="rag-model-load")
        self._loading.start()

    def load(self) -> Generator:
        """Load the model now (it is otherwise loaded by the first question) and warm its cache.
        Callers from several threads get the one model, loaded once."""
        with self._load_lock:
            loading = self._loading
            if loading is not None:
                loading.join()
                self._loading = None
                if self._load_error is not None:
                    error, self._load_error = self._load_error, None
                    raise error
            return self._load_now()

    def _load_now(self) -> Generator:
        if self.generator is None:
            # A llama.cpp model keeps the hidden states the fitted probes read (rag/answer/verifier.py);
            # other backends ignore the setting, and their answers are scored without probes.
            layers = () if is_remote(self.model) else planned(self.model, self.index.settings.embedder).layers
            self.generator = load_generator(self.model, replace(self.settings, hidden_layers=layers))
            # Evaluate the fixed prefix (and the start of the question's message) once, so the
            # first question reuses the cache; llama.cpp restores it from an earlier process's.
            warm = [*fixed_prefix(), {"role": "user", "content": SOURCES_HEADER}]
            if isinstance(self.generator, Primes):
                self.generator.prime(warm)
            else:
                for _ in self.generator.stream(warm, max_tokens=1):
                    pass
        return self.generator

    def warm(self) -> dict[str, float]:
        """Load everything the first question needs, and say how long each part took (seconds):
        ``model`` (the generator and its cached prompt prefix) and ``search`` (the embedder, the
        search indexes and one sentence selection)."""
        timings = {}
        started = time.perf_counter()
        self.load()
        timings["model"] = time.perf_counter() - started
        started = time.perf_counter()
        if len(self.index):
            hits = self.retrieve(WARM_UP_QUESTION)
            self.prompt(WARM_UP_QUESTION, hits)
        timings["search"] = time.perf_counter() - started
        return timings

    def retrieve(self, question: str, k: int | None = None, mode: Mode | None = None, scope: Scope | None = None) -> list[Hit]:
        """The passages for ``question``, from the documents and dates of ``scope`` when given."""
        return self.index.search(question, k=k or self.k, mode=mode or self.mode, scope=scope)

    def prompt(self, question: str, hits: list[Hit], hops_from: int | None = None) -> Prompt:
        """The exact prompt the model would get for ``question`` and ``hits``; ``hits[hops_from:]``
        are the passages of a second hop (each keeps its best sentence, within a larger budget)."""
        words = self.context_words + (HOP_WORDS if hops_from is not None and hops_from < len(hits) else 0)
        sources = select_sources(question, hits, self.index.embedder, words, hops_from=hops_from)
        return build_prompt(question, sources, self.source_labels)

    def ask(self, question: str, k: int | None = None, mode: Mode | None = None, scope: Scope | None = None) -> Answer:
        """Answer ``question``; see :meth:`respond` for the steps."""
        return self.respond(question, k=k, mode=mode, scope=scope).answer()

    def stream(
        self, question: str, k: int | None = None, mode: Mode | None = None, scope: Scope | None = None
    ) -> Iterator[str | Answer]:
        """Yield the answer's text pieces as the model writes them, then the final :class:`Answer`."""
        response = self.respond(question, k=k, mode=mode, scope=scope)
        yield from response
        yield response.answer()

    def respond(
        self, question: str, k: int | None = None, mode: Mode | None = None, scope: Scope | None = None
    ) -> Response:
        """Search for ``question`` (in the documents and dates of ``scope``, when given:
        :class:`~rag.core.types.Scope`) and build its prompt now; the returned :class:`Response`
        generates when iterated (or when :meth:`Response.answer` is called)."""
        question = check_question(question)
        if k is not None:
            check_k(k)
        started = time.perf_counter()
        hits = self.retrieve(question, k=k, mode=mode, scope=scope)
        best = max((h.scores.get("dense", 0.0) for h in hits), default=0.0)
        # Refuse without generating when the best passage is far from the question, on the
        # embedder's own cosine scale (rag.search.embedding.relevance_floor). BM25-only hits carry no
        # cosine, so the gate applies when dense scores exist.
        dense = (mode or self.mode) != "bm25"
        relevant = bool(hits) and (not dense or best >= relevance_floor(self.index.settings.embedder))
        prompt = None
        if relevant:
            second = hops.follow(self.index, question, hits, scope=scope) if self.hops else []
            prompt = self.prompt(question, [*hits, *second], hops_from=len(hits) if second else None)
            hits = [*hits, *second]
        refusal = None if relevant else NO_RELEVANT_PASSAGE
        run = self._generate(question, hits, prompt, refusal, best, started, time.perf_counter() - started)
        return Response(question, tuple(hits), None if refusal else prompt, run)

    def summarize(self, *doc_ids: str) -> Summary:
        """A summary of one document, or two compared; see :meth:`summarize_stream`."""
        summary = None
        for item in self.summarize_stream(*doc_ids):
            if isinstance(item, Summary):
                summary = item
        assert summary is not None
        return summary

    def summarize_stream(self, *doc_ids: str) -> Iterator[str | Progress | Summary]:
        """Summarize one document, or compare two (:mod:`rag.answer.summary`): the model's words as
        it writes them, a :class:`~rag.answer.summary.Progress` after each part of a long document,
        then the :class:`~rag.answer.summary.Summary` of the sentences the checks kept.

        Raises:
            InvalidInput: not one or two documents.
            NotFound: an id the index does not hold.
        """
        if not 1 <= len(doc_ids) <= 2 or len(set(doc_ids)) != len(doc_ids):
            raise InvalidInput("summarize one document, or compare two different ones")
        documents = {doc_id: self.index.document(doc_id) for doc_id in doc_ids}
        generator = self.load()
        started = time.perf_counter()
        first: list[float] = []  # when the first sentence had streamed
        kept: list[SummarySentence] = []
        dropped: list[str] = []
        read = 0
        # Where the time went: writing (prompt evaluation and decoding) and the checks, in seconds,
        # and the prompt tokens evaluated (those not reused from the cache).
        costs = {"write_s": 0.0, "checks_s": 0.0, "prompt_tokens": 0.0, "evaluated_tokens": 0.0}

        def run(prompt: Prompt, most: int) -> collections.abc.Generator[str, None, list[SummarySentence]]:
            written = ""
            began = time.perf_counter()
            pieces = generator.stream(list(prompt.messages), max_tokens=min(PART_TOKENS, self.settings.max_tokens))
            for piece in pieces:
                done = enough(written + piece, most)  # the sentences asked for are written: stop the model
                if done is not None:
                    piece = done[len(written):]
                written += piece
                if not first and re.search(r"[.!?](\s|\[|$)", written):
                    first.append(time.perf_counter() - started)
                yield piece
                if done is not None:
                    stop = getattr(pieces, "close", None)
                    if stop is not None:
                        stop()  # now: a stream left suspended would hold the model (and its lock) until collected
                    break
            stats = generator.stats if isinstance(generator, KeepsStats) else None
            if stats is not None:
                costs["prompt_tokens"] += stats.prompt_tokens
                costs["evaluated_tokens"] += stats.prompt_tokens - stats.cached_tokens
            checking = time.perf_counter()
            costs["write_s"] += checking - began
            judge = None
            if self.judge and isinstance(generator, Scorer):
                judge = Judge(generator, [*prompt.messages, {"role": "assistant", "content": written}], JUDGED_AS)
            _, sentences, citations = verify(complete(written), prompt.sources, JUDGED_AS, judge=judge)
            good, bad = checked(sentences, [self._located(c) for c in citations])
            dropped.extend(bad)
            costs["checks_s"] += time.perf_counter() - checking
            yield "\n\n"
            return good

        for document in documents.values():
            pieces = parts(document)[: COMPARED_PARTS if len(documents) == 2 else None]
            read += len(pieces)
            mine: list[SummarySentence] = []
            for i, part in enumerate(pieces, start=1):
                mine += yield from run(part_prompt(document, part), PART_SENTENCES)
                if len(pieces) > 1:
                    yield Progress(i, len(pieces))
            if len(pieces) >= WHOLE_FROM and mine:
                yield Progress(len(pieces), len(pieces), whole=True)
                mine = (yield from run(whole_prompt(mine, documents), WHOLE_SENTENCES)) or mine
            kept += mine
        if len(documents) == 2 and kept:
            kept = (yield from run(compare_prompt(kept, documents), WHOLE_SENTENCES)) + kept
        yield Summary(tuple(documents), tuple(d.title for d in documents.values()), tuple(kept), tuple(dropped), read,
                      {"first_sentence_s": first[0] if first else float("nan"), "total_s": time.perf_counter() - started,
                       **costs})

    def _generate(
        self, question: str, hits: list[Hit], prompt: Prompt | None, refusal: str | None, best: float, started: float,
        retrieve_s: float,
    ) -> collections.abc.Generator[str, None, Answer]:
        """The answer's text pieces as the model writes them; returns the checked Answer. With a
        ``refusal`` (decided before generating), the refusal without calling the model."""
        if prompt is None or refusal is not None:
            yield REFUSAL_TEXT
            timings = Timings(retrieve_s, None, retrieve_s)
            sources = prompt.sources if prompt is not None else ()
            return self._refusal(question, hits, sources, timings, "", refusal or NO_RELEVANT_PASSAGE)
        generator = self.load()
        written = yield from self._write(generator, prompt, started)
        raw, stats = written.raw, written.stats
        streamed = time.perf_counter()
        if not raw or is_refusal(raw):
            timings = Timings(retrieve_s, written.first_token_s, streamed - started)
            signals = Signals.measure(best, stats, (), judged=False)
            trust = Trust(signals, None, 0.0, (), NO_ANSWER)
            return self._refusal(question, hits, prompt.sources, timings, prompt.text, trust, raw, Tokens.of(stats))
        checked = self._check(generator, question, prompt, hits, raw, stats, best)
        first: Withheld | None = None
        how = None
        if not checked.trust.shown and checked.trust.score is not None and self.retry:
            again = self._retry(generator, question, prompt, hits, best)
            if again is not None:
                how, prompt, raw, stats, better = again
                first = Withheld(checked.text, tuple(self._located(c) for c in checked.citations), checked.trust.reason or "",
                                 checked.trust.score, checked.trust.threshold)
                checked = better
        text, sentences, citations, trust = checked.text, checked.sentences, checked.citations, checked.trust
        done = time.perf_counter()
        timings = Timings(retrieve_s, written.first_token_s, done - started, checks_s=done - streamed)
        # Sources that disagree about the answer's value: both are stated, none is picked.
        disagree = conflicts.find(question, text, sentences, citations, prompt.sources)
        if not trust.shown:
            if not disagree:
                # Withheld: what the model wrote, its citations and the reason stay on the Answer,
                # for the reader to judge; the refusal is the answer's text.
                withheld = Withheld(text, tuple(self._located(c) for c in citations), trust.reason or "",
                                    trust.score, trust.threshold if trust.score is not None else None)
                return self._refusal(question, hits, prompt.sources, timings, prompt.text, trust, raw, Tokens.of(stats),
                                     withheld)
            # The model's answer is withheld, but the passages it drew on give two values for
            # what was asked: the disagreement alone is shown, each value with its citation
            # (eval/README.md, "Conflicting sources": what the model wrote stays on .raw).
            text, sentences, citations = "", [], []
        text, citations = conflicts.state(text, citations, disagree)
        citations = [self._located(c) for c in citations]  # pages and web addresses, for what is shown
        return Answer(
            question=question, text=text, refused=False, citations=tuple(citations), sentences=tuple(sentences),
            hits=tuple(hits), sources=prompt.sources, timings=timings, model=generator.name, prompt=prompt.text, raw=raw,
            trust=trust, tokens=Tokens.of(stats), conflicts=tuple(disagree), retry=how, first=first,
        )

    def _retry(self, generator: Generator, question: str, prompt: Prompt, hits: list[Hit], best: float
               ) -> tuple[str, Prompt, str, GenerationStats | None, Checked] | None:
        """A second try for a withheld answer: the prompt asked again each way of :attr:`retry`
        (:func:`rag.answer.retry.prompts`), each answer checked like the first; the one the
        scorer trusts most, if it is shown (and not the model's own "I don't know"), else None."""
        best_try: tuple[str, Prompt, str, GenerationStats | None, Checked] | None = None
        for how, again in retry_prompts(question, prompt, self.retry, self.source_labels):
            written = Written("".join(generator.stream(list(again.messages), max_tokens=self.settings.max_tokens)).strip(),
                              generator.stats if isinstance(generator, KeepsStats) else None, None)
            if not written.raw or is_refusal(written.raw):
                continue
            checked = self._check(generator, question, again, hits, written.raw, written.stats, best)
            score = checked.trust.score
            if checked.trust.shown and score is not None and (best_try is None or score > (best_try[4].trust.score or 0.0)):
                best_try = (how, again, written.raw, written.stats, checked)
        return best_try

    def _write(self, generator: Generator, prompt: Prompt, started: float) -> collections.abc.Generator[str, None, Written]:
        """The model's answer to ``prompt``, piece by piece as it writes it; returns it whole, with
        what it cost (:class:`Written`)."""
        pieces: list[str] = []
        first_token_s = None
        for piece in generator.stream(list(prompt.messages), max_tokens=self.settings.max_tokens):
            if first_token_s is None:
                first_token_s = time.perf_counter() - started
            pieces.append(piece)
            yield piece
        stats = generator.stats if isinstance(generator, KeepsStats) else None
        return Written("".join(pieces).strip(), stats, first_token_s)

    def _check(self, generator: Generator, question: str, prompt: Prompt, hits: list[Hit], raw: str,
               stats: GenerationStats | None, best: float) -> Checked:
        """Check ``raw``, the model's answer to ``prompt``: each sentence against its sources, with the
        model as the judge where it can judge; then the trust decision, by the scorer
        :func:`rag.answer.verifier.choose` picks for this answer."""
        # A server serving a bundled model under its name is scored as that model.
        served = (generator.serves if isinstance(generator, Serves) else None) or generator.name
        judge = None
        if self.judge and isinstance(generator, Scorer):
            judge = Judge(generator, [*prompt.messages, {"role": "assistant", "content": raw}], question)
        text, sentences, citations = verify(raw, prompt.sources, question, judge=judge)
        first = {"score": hits[0].score, **hits[0].scores} if hits else {}
        words = lexical(question, raw, quotes(raw, prompt.sources, question), first, best)
        signals = Signals.measure(best, stats, sentences, judge is not None, words)
        verifier, probes = choose(served, self.index.settings.embedder, inputs(signals), stats.hidden if stats is not None else {})
        if probes:
            signals = replace(signals, probes=probes)
        return Checked(text, sentences, citations, assess(question, text, sentences, citations, signals, verifier))

    def _located(self, citation: Citation) -> Citation:
        """The citation with the page its quote starts on (a paged document, PDF) and the address
        of the web page it was read from (rag.ingest.web)."""
        try:
            document = self.index.document(citation.doc_id)
        except KeyError:  # removed from the index while the answer was written
            return citation
        url = document.source if is_url(document.source) else None
        return replace(citation, page=document.page_of(citation.start), url=url)

    def _refusal(
        self, question: str, hits: list[Hit], sources: tuple[Source, ...], timings: Timings, prompt: str,
        trust: Trust | str, raw: str = "", tokens: Tokens | None = None, withheld: Withheld | None = None,
    ) -> Answer:
        reason = trust if isinstance(trust, str) else trust.reason
        return Answer(
            question=question, text=REFUSAL_TEXT, refused=True, citations=(), sentences=(), hits=tuple(hits),
            sources=sources, timings=timings, model=self.generator.name if self.generator else self.model,
            prompt=prompt, raw=raw, refusal_reason=reason, trust=None if isinstance(trust, str) else trust,
            tokens=tokens, withheld=withheld,
        )


class Response:
    """One question's answer in the making, as llm's ``Response``: iterate it for the text as
    the model writes it, then call :meth:`answer` for the checked :class:`Answer`.

    :meth:`Assistant.respond` has searched and built the prompt when it returns one, so
    :attr:`prompt` is the prompt the model will be sent, or None when the assistant refuses
    before generating (no relevant passage, or the early check is sure the sources do not hold
    the answer).
    """

    def __init__(
        self, question: str, hits: tuple[Hit, ...], prompt: Prompt | None, run: collections.abc.Generator[str, None, Answer]
    ) -> None:
        self.question = question
        self.hits = hits
        self.prompt = prompt
        self._run = run  # yields the text, returns the Answer
        self._pieces: list[str] = []
        self._answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        """The text pieces: as they are generated the first time, from memory after that."""
        yield from list(self._pieces)
        while self._answer is None:
            try:
                piece = next(self._run)
            except StopIteration as done:
                self._answer = done.value
                return
            self._pieces.append(piece)
            yield piece

    def text(self) -> str:
        """The streamed text so far (all of it after :meth:`answer`)."""
        return "".join(self._pieces)

    def answer(self) -> Answer:
        """Generate whatever is left and return the checked answer."""
        for _ in self:
            pass
        assert self._answer is not None
        return self._answer
