"""The verifier's fitting data, labelled by construction: the two fitting pools and variants of them,
each variant one failure the product shows (issue 45).

Pools (the only questions anything is fitted on; ../shared/benchmarks, attribution in their READMEs):

- ``pool``: all 3,860 SQuAD 2.0 questions of ``squad2-fit``, over the ``squad2`` corpus;
- ``twowiki``: 400 of the 500 two-hop 2WikiMultihopQA train questions of ``twowiki-fit``, over its
  corpus; the other 100 (:func:`twowiki_split`, a fixed shuffle) are ``twowiki-dev``, a dev set that
  nothing is fitted on.

Variants, derived from a pool's answerable questions (every one of them unanswerable, by construction):

- ``withheld``: the question's supporting paragraphs are left out of the search, so the model meets
  the neighbouring paragraphs alone (:func:`withheld`);
- ``half`` (two-hop only): one of its supporting paragraphs is left out: half the evidence
  (:func:`half`);
- ``swap``: a name in the question is replaced by a name of the same kind from another question,
  and every paragraph that mentions the new name is left out, so the sources now answer about
  someone else (:func:`swap`).

A row that leaves paragraphs out carries them as ``withheld_sources`` (the collection's
:class:`~eval.verifier_collect.Withholding` index leaves them out of that question's search), and
its former answers as ``withheld_answers``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from eval.common import ROOT, read_jsonl

SHARED = ROOT.parent / "shared" / "benchmarks"
SQUAD_FIT = SHARED / "squad2-fit" / "gold.jsonl"
SQUAD_CORPUS = ROOT / "eval" / "benchmarks" / "squad2" / "corpus.jsonl"
TWOWIKI_FIT = SHARED / "twowiki-fit" / "gold.jsonl"
TWOWIKI_CORPUS = SHARED / "twowiki-fit" / "corpus.jsonl"
TWOWIKI_DEV_SIZE = 100

Row = dict[str, Any]

# A name in a question: a run of capitalised words (with "of", "the", "and" between them), not at
# the question's start; or a year.
NAME = re.compile(r"(?<!^)\b[A-Z][\w'.-]*(?:\s+(?:of|the|and|de|von|van|[A-Z][\w'.-]*))*")
CONNECTOR = re.compile(r"(?:\s+(?:of|the|and|de|von|van))+$")
YEAR = re.compile(r"\b1[0-9]{3}\b|\b20[0-9]{2}\b")


def twowiki_split(rows: Sequence[Row]) -> tuple[list[Row], list[Row]]:
    """``(fit, dev)``: the two-hop questions split by a fixed shuffle, ``TWOWIKI_DEV_SIZE`` for dev."""
    order = sorted(rows, key=lambda r: str(r["id"]))
    random.Random(45).shuffle(order)
    return order[TWOWIKI_DEV_SIZE:], order[:TWOWIKI_DEV_SIZE]


def _unanswerable(row: Row, kind: str, left_out: Iterable[str], question: str | None = None) -> Row:
    return {**row, "id": f"{row['id']}:{kind}", "question": question or row["question"], "answerable": False,
            "answers": [], "withheld_answers": row["answers"], "withheld_sources": sorted(set(left_out)), "variant": kind}


def withheld(row: Row) -> Row:
    """The question with all its supporting paragraphs left out."""
    return _unanswerable(row, "withheld", row.get("sources", []))


def half(row: Row, rng: random.Random) -> Row | None:
    """The question with one of its supporting paragraphs left out (None for a one-paragraph question)."""
    sources = list(row.get("sources", []))
    if len(sources) < 2:
        return None
    return _unanswerable(row, "half", [rng.choice(sources)])


def names(question: str) -> list[str]:
    """The names a question mentions (see :data:`NAME`) and its years."""
    found = [CONNECTOR.sub("", m.group(0)).rstrip(".'") for m in NAME.finditer(question)]
    return [n for n in found if len(n) > 2] + YEAR.findall(question)


def swap(row: Row, others: Sequence[Row], corpus_text: str, corpus: Sequence[Row], rng: random.Random) -> Row | None:
    """The question with one of its names replaced by a name of the same kind from a peer question
    (same SQuAD article, or same two-hop question type), preferring one that follows the same two
    words ("of film X" for "of film Y"), else one of the same shape (a year for a year, one word for
    one word, several for several); both must be names the corpus uses (twice or more, as written).
    Every paragraph that mentions the new name is left out; the paragraphs about the old one stay,
    so the model meets a near miss. None when no such pair is found."""
    own = [n for n in names(row["question"]) if corpus_text.count(n) >= 2]
    if not own:
        return None
    old = rng.choice(own)
    before = _before(row["question"], old)
    peers = [o for o in others if o["id"] != row["id"] and _group(o) == _group(row)]
    pairs = [(n, _before(o["question"], n)) for o in peers for n in names(o["question"])]
    fits = [n for n, b in pairs if _kind(n) == _kind(old) and n.lower() not in row["question"].lower()]
    same_context = sorted({n for n, b in pairs if b == before and n in fits})
    for pool in (same_context, sorted(set(fits))):
        for new in rng.sample(pool, min(len(pool), 8)):
            if corpus_text.count(new) >= 2:
                question = re.sub(rf"(?<![\w]){re.escape(old)}(?![\w])", new, row["question"], count=1)
                needle = new.lower()
                left_out = [p["id"] for p in corpus if needle in p.get("text", "").lower() or needle in p.get("title", "").lower()]
                return {**_unanswerable(row, "swap", left_out, question), "swapped": [old, new]}
    return None


def _before(question: str, name: str) -> str:
    """The two words before ``name`` in ``question``, lower-cased ("of film")."""
    head = question[: question.find(name)].lower().split()
    return " ".join(head[-2:])


def _group(row: Row) -> str:
    """Peers whose names are of one kind: a SQuAD question's article, a two-hop question's type."""
    if "type" in row:
        return str(row["type"])
    source = str((row.get("sources") or row.get("context_doc_id") and [row["context_doc_id"]] or [""])[0])
    return source.split(":")[1] if source.count(":") >= 2 else source


def _kind(name: str) -> str:
    if YEAR.fullmatch(name):
        return "year"
    return "one word" if " " not in name else "several words"


def variants(pool: str, rows: Sequence[Row], corpus: Sequence[Row], kinds: Sequence[str]) -> list[Row]:
    """Every variant of ``kinds`` of ``rows``' answerable questions (a fixed random choice per pool)."""
    rng = random.Random(f"{pool}:{','.join(kinds)}")
    answerable = [r for r in rows if r.get("answerable", True) and r.get("sources")]
    text = "\n".join(f"{p.get('title', '')}\n{p.get('text', '')}" for p in corpus)
    out: list[Row] = []
    for kind in kinds:
        for row in answerable:
            made = (withheld(row) if kind == "withheld" else half(row, rng) if kind == "half"
                    else swap(row, answerable, text, corpus, rng))
            if made is not None:
                out.append({**made, "pool": pool})
    return out


def load_set(name: str) -> tuple[list[Row], Path]:
    """The rows of a fitting set or two-hop dev set (see the module docstring) and its corpus."""
    base, _, kind = name.partition("-")
    if base == "pool":
        rows, corpus = read_jsonl(SQUAD_FIT), SQUAD_CORPUS
    elif base == "twowiki":
        fit, dev = twowiki_split(read_jsonl(TWOWIKI_FIT))
        rows, corpus = fit, TWOWIKI_CORPUS
        if kind.startswith("dev"):
            rows, kind = dev, kind.removeprefix("dev").lstrip("-")
    else:
        raise ValueError(f"not a fitting set: {name}")
    if not kind:
        return rows, corpus
    return variants(name, rows, read_jsonl(corpus) if kind == "swap" else [], [kind]), corpus
