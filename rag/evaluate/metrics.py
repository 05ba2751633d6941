"""Score retrieval and answers against a gold set: ranking, answers, citations, refusals, latency.

A gold line is ``{"id", "question", "answers": [...], "sources": [...], "answerable": bool}``;
with ``"all": true`` every listed item must appear, and ``"a|b"`` gives alternatives
for one item (see eval/gold/README.md). Other fields are kept and ignored.

:func:`run` turns each gold question into a :class:`Record` (the ranking, and the answer
unless only retrieval is evaluated); the metric functions are pure functions over records,
and :func:`compute_metrics` gathers them for one :class:`Setting`. Writing the results is
:mod:`rag.evaluate.report`.

Example:
    >>> from rag.search.index import Index
    >>> gold = load_gold("eval/gold/seeds.jsonl")
    >>> setting = Setting(mode="bm25", retrieval_only=True)
    >>> records = list(run(gold, Index.open(".rag/index", create=False), setting))
    >>> compute_metrics(records, setting.k)["retrieval"]["hit@1"]
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.answer.assistant import NO_ANSWER, NO_RELEVANT_PASSAGE
from rag.answer.prompting import CONTEXT_WORDS, DEFAULT_LABELS, Labels, check_context_words, check_labels
from rag.core import defaults
from rag.core.errors import InvalidInput

if TYPE_CHECKING:
    from rag.answer.assistant import Assistant
    from rag.search.index import Index
    from rag.search.retrieval import Mode


def load_gold(path: str | Path) -> list[dict[str, Any]]:
    """Read a gold JSONL file; a malformed line is an error naming the line."""
    rows = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidInput(f"{path}:{lineno}: malformed JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("question"), str):
            raise InvalidInput(f"{path}:{lineno}: each line needs a 'question' string")
        row.setdefault("id", f"line{lineno}")
        row.setdefault("answers", [])
        row.setdefault("sources", [])
        row.setdefault("answerable", bool(row["answers"]))
        rows.append(row)
    return rows


_PUNCTUATION = frozenset(string.punctuation) | {"’", "‘", "“", "”"}


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower().replace("–", " ").replace("-", " ")
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def is_correct(answer: str, gold: dict[str, Any]) -> bool:
    """Whether ``answer`` contains an acceptable answer (every item when ``all``)."""
    said = f" {normalize_answer(answer)} "
    contains = lambda alt: f" {normalize_answer(alt)} " in said  # noqa: E731 - whole words only
    if gold.get("all"):
        return all(any(contains(alt) for alt in item.split("|")) for item in gold["answers"])
    return any(contains(alt) for alt in gold["answers"])


def token_f1(answer: str, gold_answers: Iterable[str]) -> float:
    """Best SQuAD token F1 of ``answer`` against any gold answer."""
    pred = normalize_answer(answer).split()
    best = 0.0
    for gold in gold_answers:
        ref = normalize_answer(gold.replace("|", " ")).split()
        common = sum(min(pred.count(t), ref.count(t)) for t in set(ref))
        if common:
            p, r = common / len(pred), common / len(ref)
            best = max(best, 2 * p * r / (p + r))
    return best


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


# ---------------------------------------------------------------------- per-question records

_MARKER = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")
# hit@n is reported for these n; the ranking searched is at least this deep.
HIT_AT = (1, 3, 5)

# Where a wrong or missing answer is lost (Record.loss), in pipeline order: the chart in every
# `rag eval` report draws them per set, beside the risk-coverage curve.
LOSSES = (
    "evidence never reached the prompt",
    "model said it did not know",
    "model wrote a wrong answer from a prompt that held it",
    "checks withheld a right answer",
    "answered an unanswerable question",
)


def strip_markers(text: str) -> str:
    """The answer without citation markers, so ``[2]`` is not scored as the word "2"."""
    return _MARKER.sub("", text)


def exact_match(answer: str, gold_answers: Iterable[str]) -> bool:
    """SQuAD exact match: the normalised answer equals a normalised gold answer."""
    said = normalize_answer(answer)
    return any(said == normalize_answer(gold) for gold in gold_answers)


def scoring_answers(gold: dict[str, Any]) -> list[str]:
    """The strings token F1 and exact match compare against.

    A list question (``all``) is one reference made of the first alternative of every item;
    otherwise each acceptable answer is a reference of its own.
    """
    if gold.get("all"):
        return [" ".join(item.split("|")[0] for item in gold["answers"])]
    return list(gold["answers"])


@dataclass(frozen=True)
class Record:
    """What one gold question got: the ranking, and (unless retrieval only) the answer.

    ``retrieved`` holds ``(doc_id, chunk_id)`` pairs in rank order and ``scores`` their
    scores (``score``, and ``dense``/``bm25`` where present); ``citations`` and
    ``sentences`` are dicts shaped as in ``rag ask --json``; ``answer`` is None when only
    retrieval was evaluated.
    """

    id: str
    question: str
    gold: dict[str, Any]
    retrieved: tuple[tuple[str, str], ...]
    answer: str | None = None
    scores: tuple[dict[str, float], ...] = ()
    refused: bool = False
    citations: tuple[dict[str, Any], ...] = ()
    sentences: tuple[dict[str, Any], ...] = ()
    timings: dict[str, float | None] = field(default_factory=dict)
    model: str | None = None
    raw: str | None = None  # the model's own words, before verification
    refusal_reason: str | None = None
    trust: dict[str, Any] | None = None  # rag.answer.trust.Trust.to_dict(): signals, score, flags, reason
    tokens: dict[str, int] | None = None  # prompt tokens after the cached prefix, cached, answer
    conflicts: tuple[dict[str, Any], ...] = ()  # rag.answer.conflicts.Conflict.to_dict(): sources that disagree
    prompt_docs: tuple[str, ...] | None = None  # the documents of the passages put in the prompt (None: no prompt recorded)
    retry: dict[str, Any] | None = None  # a second try shown: how, and the first answer it replaced (Answer.to_dict)

    @property
    def answerable(self) -> bool:
        return bool(self.gold.get("answerable", True))

    def docs(self, chunks: int | None = None) -> list[str]:
        """Distinct doc ids in rank order, from the first ``chunks`` retrieved chunks (all if None)."""
        return list(dict.fromkeys(doc for doc, _ in self.retrieved[:chunks]))

    def correct(self) -> bool:
        """Answer accuracy for an answerable question (a refusal is wrong)."""
        return self.answer is not None and not self.refused and is_correct(strip_markers(self.answer), self.gold)

    def candidate_correct(self) -> bool:
        """Whether the model's own answer (shown or withheld) is right: an answer to an
        unanswerable question never is."""
        return bool(self.raw) and self.answerable and is_correct(strip_markers(self.raw or ""), self.gold)

    def evidence_in_prompt(self) -> bool | None:
        """Whether every gold source document reached the prompt (None: no gold sources, or no
        prompt recorded)."""
        sources = self.gold.get("sources") or []
        if not sources or self.prompt_docs is None:
            return None
        return set(sources) <= set(self.prompt_docs)

    def loss(self) -> str | None:
        """Where a wrong or missing answer was lost (None for a right answer, or a refusal of an
        unanswerable question); one of :data:`LOSSES`."""
        if self.answer is None:
            return None
        if not self.answerable:
            return None if self.refused else "answered an unanswerable question"
        if self.correct():
            return None
        if self.evidence_in_prompt() is False:
            return "evidence never reached the prompt"
        if self.candidate_correct():
            return "checks withheld a right answer"
        if not self.raw or self.refusal_reason in (NO_ANSWER, NO_RELEVANT_PASSAGE):
            return "model said it did not know"
        return "model wrote a wrong answer from a prompt that held it"

    def f1(self) -> float:
        if self.answer is None or self.refused:
            return 0.0
        return token_f1(strip_markers(self.answer), scoring_answers(self.gold))

    def exact(self) -> bool:
        if self.answer is None or self.refused:
            return False
        return exact_match(strip_markers(self.answer), scoring_answers(self.gold))

    def to_dict(self) -> dict[str, Any]:
        """One line of ``answers.jsonl``."""
        row: dict[str, Any] = {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "refused": self.refused,
            "citations": list(self.citations),
            "sentences": list(self.sentences),
            "retrieved": [
                {"rank": rank, "doc_id": doc, "chunk_id": chunk, **(self.scores[rank - 1] if rank <= len(self.scores) else {})}
                for rank, (doc, chunk) in enumerate(self.retrieved, start=1)
            ],
            "timings": self.timings,
            "model": self.model,
        }
        if self.raw is not None:
            row["raw"] = self.raw
        if self.refusal_reason is not None:
            row["refusal_reason"] = self.refusal_reason
        if self.trust is not None:
            row["trust"] = self.trust
        if self.tokens is not None:
            row["tokens"] = self.tokens
        if self.conflicts:
            row["conflicts"] = list(self.conflicts)
        if self.prompt_docs is not None:
            row["prompt_docs"] = list(self.prompt_docs)
        if self.retry is not None:
            row["retry"] = self.retry
        if self.answer is not None:
            row["answerable"] = self.answerable
            row["candidate_correct"] = self.candidate_correct()
            row["loss"] = self.loss()
        if self.answer is not None and self.answerable:
            row["score"] = {"correct": self.correct(), "f1": round(self.f1(), 4), "exact": self.exact()}
        return row


# ---------------------------------------------------------------------- metrics (pure functions)


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def ndcg(ranked_docs: list[str], sources: Iterable[str], k: int) -> float:
    """Binary-relevance nDCG of the first ``k`` distinct docs against the gold ``sources``."""
    gold = set(sources)
    if not gold:
        return 0.0
    dcg = sum(1 / np.log2(i + 2) for i, doc in enumerate(ranked_docs[:k]) if doc in gold)
    ideal = sum(1 / np.log2(i + 2) for i in range(min(len(gold), k)))
    return float(dcg / ideal)


def reciprocal_rank(ranked_docs: list[str], sources: Iterable[str]) -> float:
    gold = set(sources)
    return next((1 / rank for rank, doc in enumerate(ranked_docs, start=1) if doc in gold), 0.0)


def retrieval_metrics(records: list[Record], k: int) -> dict[str, float | int | None]:
    """Document-level retrieval quality over the answerable questions that name sources.

    hit@n: a gold doc among the first n distinct docs. recall@k: share of gold docs among the
    docs of the first ``k`` chunks (the passages the model gets); any@k / all@k: one / every
    gold doc there. MRR over the whole ranking; nDCG@k over the docs of the first ``k`` chunks.
    """
    scored = [r for r in records if r.answerable and r.gold.get("sources")]
    out: dict[str, float | int | None] = {"questions": len(scored)}
    for n in HIT_AT:
        out[f"hit@{n}"] = _mean(bool(set(r.gold["sources"]) & set(r.docs()[:n])) for r in scored)
    top = [(set(r.gold["sources"]), set(r.docs(k))) for r in scored]
    out["recall@k"] = _mean(len(gold & got) / len(gold) for gold, got in top)
    out["any@k"] = _mean(bool(gold & got) for gold, got in top)
    out["all@k"] = _mean(gold <= got for gold, got in top)
    out["mrr"] = _mean(reciprocal_rank(r.docs(), r.gold["sources"]) for r in scored)
    out["ndcg@k"] = _mean(ndcg(r.docs(k), r.gold["sources"], k) for r in scored)
    return out


def answer_metrics(records: list[Record]) -> dict[str, float | int | None]:
    """Accuracy (every item for list questions), token F1 and exact match on answerable questions."""
    scored = [r for r in records if r.answer is not None and r.answerable]
    return {
        "questions": len(scored),
        "accuracy": _mean(r.correct() for r in scored),
        "f1": _mean(r.f1() for r in scored),
        "exact_match": _mean(r.exact() for r in scored),
    }


def citation_metrics(records: list[Record]) -> dict[str, float | int | None]:
    """How well answers cite, over answerable questions that were answered.

    Citations count per document: the docs an answer cites with a supported citation.
    gold_doc_precision: share of those docs that are gold sources, pooled over questions (it
    says the right article was cited, not that the quote states the answer); recall: per
    question, share of gold sources cited; supported_sentences: share of the sentences of
    every non-refused answer that carry a verified citation; judge_supported: share of those
    sentences that the semantic check (the judge) says their source states.
    """
    answered = [r for r in records if r.answer is not None and not r.refused]
    scored = [r for r in answered if r.answerable and r.gold.get("sources")]
    cited = [({c["doc_id"] for c in r.citations if c.get("supported")}, set(r.gold["sources"])) for r in scored]
    checks = [doc in gold for docs, gold in cited for doc in sorted(docs)]
    recall = [len(docs & gold) / len(gold) for docs, gold in cited]
    sentences = [bool(s.get("supported")) for r in answered for s in r.sentences]
    from rag.answer.citations import SUPPORT_PROBABILITY

    judged = [s["support"] >= SUPPORT_PROBABILITY for r in answered if r.trust and r.trust["signals"].get("support")
              is not None for s in r.sentences if "support" in s]
    return {
        "questions": len(scored),
        "cited_docs": len(checks),
        "gold_doc_precision": _mean(checks),
        "recall": _mean(recall),
        "supported_sentences": _mean(sentences),
        "judge_supported": _mean(judged),
    }


def refusal_metrics(records: list[Record]) -> dict[str, float | int | None]:
    """refusal_accuracy: share of unanswerable questions refused; false_refusals: of answerable
    ones; wrong_shown: share of all questions given a wrong answer (any answer to an unanswerable
    one); right_kept: share of the model's right answers that were shown; conflicts: share of
    shown answers that say their sources disagree (rag.answer.conflicts)."""
    answered = [r for r in records if r.answer is not None]
    unanswerable = [r.refused for r in answered if not r.answerable]
    answerable = [r.refused for r in answered if r.answerable]
    right = [not r.refused for r in answered if r.candidate_correct()]
    shown = [r for r in answered if not r.refused]
    return {
        "unanswerable": len(unanswerable),
        "refusal_accuracy": _mean(unanswerable),
        "false_refusals": _mean(answerable),
        "wrong_shown": _mean(not r.refused and not (r.answerable and r.correct()) for r in answered),
        "right_kept": _mean(right),
        "conflicts": _mean(bool(r.conflicts) for r in shown),
    }


def retry_metrics(records: list[Record]) -> dict[str, Any]:
    """The second try (rag.answer.retry): answers shown by it, right and wrong, and how they were
    asked; the first answers they replaced were all withheld, so without it each would be a refusal."""
    tried = [r for r in records if r.retry]
    right = [r for r in tried if r.answerable and r.correct()]
    return {"shown": len(tried), "right": len(right), "wrong": len(tried) - len(right),
            "how": {how: sum(r.retry["how"] == how for r in tried) for how in sorted({r.retry["how"] for r in tried})}}  # type: ignore[index]


def loss_metrics(records: list[Record]) -> dict[str, Any]:
    """Where each wrong or missing answer was lost (:meth:`Record.loss`): the count per cause, in
    :data:`LOSSES` order, over the questions answered (or refused); and, for answerable questions
    with gold sources, the share whose every gold source document reached the prompt."""
    answered = [r for r in records if r.answer is not None]
    causes = [r.loss() for r in answered]
    counts = {cause: sum(c == cause for c in causes) for cause in LOSSES}
    evidence = [e for r in answered if r.answerable and (e := r.evidence_in_prompt()) is not None]
    return {"questions": len(answered), "right": sum(r.answerable and r.correct() for r in answered),
            "causes": counts, "evidence_in_prompt": _mean(evidence)}


def curve_score(record: Record) -> float:
    """Where ``record`` sits on the risk-coverage curve: its trust score when the score alone
    decided (shown, or withheld for a low score), else -inf (never answered at any threshold:
    the model refused, nothing relevant was found, no sentence was supported, a rule withheld it)."""
    trust = record.trust or {}
    if trust.get("score") is None:
        return float("inf") if record.answer is not None and not record.refused else float("-inf")
    reason = trust.get("reason")
    if reason is None or reason.startswith("the answer is not trusted enough"):
        return float(trust["score"])
    return float("-inf")


def risk_coverage(records: list[Record]) -> dict[str, Any]:
    """Accuracy of the answered questions against the share answered, as the trust threshold varies.

    A question counts as answered right when it is answerable and the model's answer is correct;
    an answered unanswerable question is a wrong answer. ``curve`` holds ``[threshold, coverage,
    accuracy]`` points from the strictest threshold to the loosest; ``operating`` is the point of
    the threshold the answers were decided with. AUROC: how well the score ranks right answers
    above wrong ones, over answers it decided.
    """
    answered = [r for r in records if r.answer is not None]
    if not answered or not any((r.trust or {}).get("score") is not None for r in answered):
        return {}
    scored = sorted(((curve_score(r), r.candidate_correct()) for r in answered), key=lambda t: -t[0])
    curve, right = [], 0
    for i, (value, ok) in enumerate(scored, start=1):
        right += ok
        if value == float("-inf"):
            break
        if i == len(scored) or scored[i][0] != value:
            curve.append([round(value, 4), round(i / len(answered), 4), round(right / i, 4)])
    threshold = next((float(r.trust["threshold"]) for r in answered if r.trust and r.trust.get("score") is not None), None)
    shown = [r for r in answered if not r.refused]
    decided = [(s, ok) for s, ok in scored if s not in (float("inf"), float("-inf"))]
    good = [s for s, ok in decided if ok]
    bad = [s for s, ok in decided if not ok]
    auroc = (sum((g > b) + 0.5 * (g == b) for g in good for b in bad) / (len(good) * len(bad))) if good and bad else None
    return {
        "curve": curve,
        "threshold": threshold,
        "operating": {
            "coverage": len(shown) / len(answered),
            "accuracy": _mean(r.candidate_correct() for r in shown),
        },
        "auroc": auroc,
    }


def token_metrics(records: list[Record]) -> dict[str, float | None]:
    """Median prompt tokens per answer after the cached prefix, cached tokens, and answer tokens."""
    rows = [r.tokens for r in records if r.tokens]
    if not rows:
        return {}
    return {f"{name}_p50": float(np.median([t[name] for t in rows])) for name in ("prompt", "cached", "answer")}


def latency_metrics(records: list[Record]) -> dict[str, float | None]:
    """p50 and p95, in seconds, of each timing present (first token only where one came)."""
    out: dict[str, float | None] = {}
    for name in ("retrieve_s", "first_token_s", "total_s", "checks_s"):
        values = [v for r in records if (v := r.timings.get(name)) is not None]
        if values:
            out[f"{name}_p50"] = percentile(values, 50)
            out[f"{name}_p95"] = percentile(values, 95)
    return out


def compute_metrics(records: list[Record], k: int) -> dict[str, Any]:
    """Every metric for one setting; the answer groups are absent when only retrieval ran.

    Example:
        >>> metrics = compute_metrics(records, k=4)
        >>> metrics["retrieval"]["hit@1"], metrics["answers"]["accuracy"]
    """
    out: dict[str, Any] = {"questions": len(records), "retrieval": retrieval_metrics(records, k)}
    if any(r.answer is not None for r in records):
        out["answers"] = answer_metrics(records)
        out["citations"] = citation_metrics(records)
        out["refusals"] = refusal_metrics(records)
        out["losses"] = loss_metrics(records)
        out["retry"] = retry_metrics(records)
        if trust := risk_coverage(records):
            out["trust"] = trust
        if tokens := token_metrics(records):
            out["tokens"] = tokens
    out["latency"] = latency_metrics(records)
    return out


# ---------------------------------------------------------------------- running a setting

COMPARE_AXES = ("model", "mode", "k", "judge", "hops", "retry", "alpha", "words", "labels")


@dataclass(frozen=True)
class Setting:
    """One configuration to evaluate: retrieval mode, passages given to the model, model."""

    mode: Mode = defaults.MODE
    k: int = defaults.K
    model: str = defaults.MODEL
    retrieval_only: bool = False
    judge: bool = True  # the semantic support check (rag.answer.judging); off leaves the lexical check
    hops: bool = True  # follow a question's second hop (rag.search.hops)
    retry: bool = False  # a second try for a withheld answer (rag.answer.retry; off in the product)
    alpha: float | None = None  # dense weight of hybrid fusion; None: the index's own
    words: int = CONTEXT_WORDS  # the prompt's budget of source words (rag.answer.prompting)
    labels: Labels = DEFAULT_LABELS  # which sources carry their article's title (rag.answer.prompting.build_prompt)

    def __post_init__(self) -> None:
        from rag.search.retrieval import FusionSettings, check_k, check_mode

        check_mode(self.mode)
        check_k(self.k)
        check_context_words(self.words)
        check_labels(self.labels)
        if self.alpha is not None:
            FusionSettings(alpha=self.alpha)  # validates it

    @property
    def label(self) -> str:
        """A short name for tables and charts, e.g. ``qwen-1.5b hybrid k=4``."""
        parts = ([] if self.retrieval_only else [self.model]) + [self.mode, f"k={self.k}"]
        parts += [] if self.alpha is None else [f"alpha={self.alpha:g}"]
        parts += [] if self.words == CONTEXT_WORDS or self.retrieval_only else [f"words={self.words}"]
        parts += [] if self.labels == DEFAULT_LABELS or self.retrieval_only else [f"labels={self.labels}"]
        parts += [] if self.hops or self.retrieval_only else ["no hops"]
        parts += ["retry"] if self.retry and not self.retrieval_only else []
        return " ".join(parts + ([] if self.judge or self.retrieval_only else ["no judge"]))

    @property
    def slug(self) -> str:
        """The label as a folder name."""
        parts = ([] if self.retrieval_only else [Path(self.model).name]) + [self.mode, f"k{self.k}"]
        parts += [] if self.alpha is None else [f"a{self.alpha:g}"]
        parts += [] if self.words == CONTEXT_WORDS or self.retrieval_only else [f"w{self.words}"]
        parts += [] if self.labels == DEFAULT_LABELS or self.retrieval_only else [self.labels]
        parts += [] if self.hops or self.retrieval_only else ["nohops"]
        parts += ["retry"] if self.retry and not self.retrieval_only else []
        parts += [] if self.judge or self.retrieval_only else ["nojudge"]
        return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts)).strip("_")

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "k": self.k, "model": None if self.retrieval_only else self.model,
                "judge": None if self.retrieval_only else self.judge, "hops": None if self.retrieval_only else self.hops,
                "retry": None if self.retrieval_only else self.retry,
                "alpha": self.alpha,
                "words": None if self.retrieval_only else self.words,
                "labels": None if self.retrieval_only else self.labels}


def parse_compare(specs: Iterable[str], base: Setting) -> list[Setting]:
    """The settings named by ``--compare AXIS=V1,V2,...`` options (several multiply out).

    Models vary slowest, so each model is loaded once.

    Example:
        >>> [s.mode for s in parse_compare(["mode=bm25,dense"], Setting())]
        ['bm25', 'dense']
    """
    axes: dict[str, list[Any]] = {}
    for spec in specs:
        axis, sep, values = spec.partition("=")
        axis = axis.strip()
        if not sep or axis not in COMPARE_AXES:
            raise InvalidInput(f"--compare takes AXIS=V1,V2 with AXIS one of {', '.join(COMPARE_AXES)}; got '{spec}'")
        if axis in axes:
            raise InvalidInput(f"--compare names '{axis}' twice")
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not items:
            raise InvalidInput(f"--compare {axis}= needs at least one value")
        if axis in ("k", "words"):
            if not all(v.isdigit() for v in items):
                raise InvalidInput(f"--compare {axis}= takes whole numbers, got '{values}'")
            axes[axis] = [int(v) for v in dict.fromkeys(items)]
        elif axis in ("judge", "hops", "retry"):
            if not set(items) <= {"on", "off"}:
                raise InvalidInput(f"--compare {axis}= takes on and off, got '{values}'")
            axes[axis] = [v == "on" for v in dict.fromkeys(items)]
        elif axis == "alpha":
            try:
                axes[axis] = [float(v) for v in dict.fromkeys(items)]
            except ValueError:
                raise InvalidInput(f"--compare alpha= takes numbers between 0 and 1, got '{values}'") from None
        else:
            axes[axis] = list(dict.fromkeys(items))
    needs_answers = {"model": "models", "judge": "judges", "hops": "second hops", "retry": "second tries", "words": "prompt budgets",
                     "labels": "source labels"}
    for axis, what in needs_answers.items():
        if axis in axes and base.retrieval_only:
            raise InvalidInput(f"comparing {what} needs answers; drop --retrieval-only")
    if "alpha" in axes and not base.retrieval_only:
        # The assistant searches with the index's own weight; a weight is chosen from rankings.
        raise InvalidInput("comparing alpha= scores rankings only; add --retrieval-only")
    settings = [base]
    for axis in COMPARE_AXES:
        if axis in axes:
            settings = [replace(s, **{axis: v}) for s in settings for v in axes[axis]]
    return settings


def check_gold(gold: list[dict[str, Any]]) -> None:
    """Reject what would make scores meaningless: empty questions, repeated ids, bad fields."""
    seen: set[str] = set()
    for row in gold:
        qid = str(row["id"])
        if qid in seen:
            raise InvalidInput(f"gold id '{qid}' appears twice")
        seen.add(qid)
        if not row["question"].strip():
            raise InvalidInput(f"gold question '{qid}' is empty")
        for name in ("answers", "sources"):
            if not isinstance(row[name], list) or not all(isinstance(x, str) for x in row[name]):
                raise InvalidInput(f"gold question '{qid}': '{name}' must be a list of strings")
        if row["answerable"] and not row["answers"]:
            raise InvalidInput(f"gold question '{qid}' is answerable but lists no answers")


def run(gold: list[dict[str, Any]], index: Index, setting: Setting, assistant: Assistant | None = None) -> Iterator[Record]:
    """Yield one :class:`Record` per gold question, in order, for ``setting``.

    The ranking scored is ``index.search`` at depth ``max(k, 5)`` (the model is given its first
    ``k`` chunks); ``assistant`` answers unless the setting is retrieval only.
    """
    import time

    depth = max(setting.k, max(HIT_AT))
    for row in gold:
        started = time.perf_counter()
        hits = index.search(row["question"], k=depth, mode=setting.mode, alpha=setting.alpha)
        retrieve_s = time.perf_counter() - started
        base = Record(
            id=str(row["id"]), question=row["question"], gold=row,
            retrieved=tuple((h.doc_id, h.chunk_id) for h in hits),
            scores=tuple({"score": round(h.score, 4), **{n: round(v, 4) for n, v in h.scores.items()}} for h in hits),
            timings={"retrieve_s": round(retrieve_s, 4)},
        )
        if setting.retrieval_only or assistant is None:
            yield base
            continue
        result = assistant.ask(row["question"], k=setting.k, mode=setting.mode)
        shown = result.to_dict()
        yield replace(
            base, answer=result.text, refused=result.refused, citations=tuple(shown["citations"]),
            sentences=tuple(shown["sentences"]), timings=shown["timings"], model=result.model,
            raw=result.raw, refusal_reason=result.refusal_reason, trust=shown["trust"], tokens=shown["tokens"],
            conflicts=tuple(shown["conflicts"]), prompt_docs=tuple(dict.fromkeys(s.hit.doc_id for s in result.sources)),
            retry=shown["retry"],
        )


def corpus_index_dir(corpus: str | Path, embedder: str | None = None) -> Path:
    """Where ``rag eval --corpus`` keeps a corpus's own index: beside the default index, in
    ``eval-index/<name>-<hash of the corpus path>[-<embedder>]`` (``.rag/eval-index/...`` by
    default); the default embedder's index has no suffix."""
    import hashlib

    from rag.search.embedding import MINILM_NAME as DEFAULT_EMBEDDER_NAME
    from rag.search.embedding import embedder_name
    from rag.search.index import default_index_dir

    path = Path(corpus).resolve()
    name = path.name if path.is_dir() else f"{path.parent.name}-{path.stem}"
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    folder = f"{name}-{digest}"
    if embedder is not None and embedder_name(embedder) != DEFAULT_EMBEDDER_NAME:
        folder += "-" + re.sub(r"[^A-Za-z0-9._-]+", "_", embedder_name(embedder))
    return default_index_dir().parent / "eval-index" / folder


def unknown_sources(gold: list[dict[str, Any]], index: Index) -> tuple[set[str], int]:
    """The gold source doc ids missing from ``index``, and how many distinct ones the gold names."""
    named = {doc for row in gold for doc in row["sources"]}
    known = {doc.id for doc in index.documents()}
    return named - known, len(named)
