"""A verifier fitted here: does the answer's evidence concern what the question asked?

The trust score's signals come from the model judging itself, which says "yes" to a cited
near-miss (a minister of another country, a champion of another year). The verifier adds what
can be fitted on data: cheap lexical checks on what the question names (this module) and, where
fitted weights are present, a logistic model over them and the trust signals
(``eval/verifier_fit.py`` fits it on the SQuAD 2.0 fitting pool only; eval/README.md, "Verifier").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.citations import verify
from rag.prompting import Source

# Numbers and capitalised words not at a sentence start: what a question names.
NUMBER = re.compile(r"\d[\d,.]*")
NAME = re.compile(r"(?<!^)(?<![.?!] )\b[A-Z][\w'-]+")
LEXICAL = ("first passage score", "first passage dense", "first passage BM25", "best cosine",
           "question words quoted", "question names quoted", "question numbers quoted", "answer words")


def quotes(answer: str, sources: tuple[Source, ...], question: str) -> list[str]:
    """The quotes the answer cites, chosen by shared words alone (:func:`rag.citations.verify`
    without the judge): the same whether or not the answer is later withheld, and the same in
    the product as in the fitting records (``eval/verifier_fit.py``)."""
    _, _, citations = verify(answer, sources, question)
    return [c.quote for c in citations]


def lexical(question: str, answer: str, quotes: Sequence[str], first: dict[str, float], relevance: float) -> list[float]:
    """The cheap signals, in :data:`LEXICAL` order: the first retrieved passage's scores (``first``:
    ``score``, ``dense``, ``bm25``), the best cosine, the shares of the question's stemmed content
    words, capitalised names and numbers found in the quotes the answer cites, and the answer's
    length in words."""
    from rag.sparse import tokenize

    text = " ".join(quotes)
    words = set(tokenize([question])[0])
    quoted = set(tokenize([text])[0]) if text else set()
    names = set(NAME.findall(question))
    numbers = set(NUMBER.findall(question))

    def share(items: set[str], where: str | set[str]) -> float:
        return sum(item in where for item in items) / len(items) if items else 1.0

    return [first.get("score", 0.0), first.get("dense", 0.0), first.get("bm25", 0.0), relevance,
            share(words, quoted), share(names, text), share(numbers, text), float(len(answer.split()))]
