"""What counts as a word, a name and a number: decided once, below every stage that reads text.

The keyword index (rag/stores), the prompt's sentence selection, the citation checks, the verifier's
lexical inputs, the conflict check, follow-up questions and the second hop all read text; each
imports its words, names and numbers from here (txtai's ``pipeline.Tokenizer`` is the model).

- :func:`tokenize` / :func:`words`: lower-cased, stemmed content words without English stopwords,
  the same for chunks and queries (BM25's terms; bm25s and PyStemmer, imported when first used);
- :data:`NUMBER`: a number as written ("1,200", "5.5");
- :data:`NAME_WORD`: a capitalised word that does not open a sentence ("Belgium's" -> "Belgium"),
  for looking a question's names up in a text;
- :func:`names`: the runs of capitalised words a text mentions ("Bank of England", "The Prairie
  King", "B. Reeves Eason"), for finding the things it is about.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

# NLTK's English stopword list. bm25s's own list has 33 words and keeps question words
# ("which", "who", "did") that match every chunk and drown the terms that matter.
STOPWORDS = frozenset(
    """i me my myself we our ours ourselves you your yours yourself yourselves he him his himself
    she her hers herself it its itself they them their theirs themselves what which who whom this
    that these those am is are was were be been being have has had having do does did doing a an
    the and but if or because as until while of at by for with about against between into through
    during before after above below to from up down in out on off over under again further then
    once here there when where why how all any both each few more most other some such no nor not
    only own same so than too very s t can will just don should now d ll m o re ve y ain aren
    couldn didn doesn hadn hasn haven isn ma mightn mustn needn shan shouldn wasn weren won wouldn""".split()
)

NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
NAME_WORD = re.compile(r"(?<!^)(?<![.?!] )\b[A-Z][\w-]+")

# A run of capitalised words, with "of", "the", "and", "de" ... inside it ("Kiss and Tell", "Bank of
# England"); cleaned by names().
_NAME_RUN = re.compile(r"\b[A-Z][\w'.&-]*(?:\s+(?:of|for|the|and|de|da|al|von|van|del|la|le|[A-Z][\w'.&-]*))*")
_TRAILING = re.compile(r"(?:\s+(?:of|for|the|and|de|da|al|von|van|del|la|le))+$")
_POSSESSIVE = re.compile(r"['’]s$")
# A sentence's end inside a run of capitalised words ("directed by David MacDonald. The film",
# or glued as "MacDonald.The" in some corpora), not an initial or an abbreviation ("B. Reeves", "St. Louis").
_SENTENCE_END = re.compile(r"(?<=[a-z]{2})\.\s*(?=[A-Z])")
# Capitalised words that start questions and sentences, not names.
_NOT_NAMES = frozenset("""A An The This That These Those It Its He She They His Her Their In On At Of For From By With
As And But Or If When Where Which Who Whom Whose What Why How Is Are Was Were Do Does Did Has Have Had Can Could
Will Would Should May Might Both Either Neither Also After Before During Since Until While""".split())


@cache
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased, stemmed tokens without English stopwords (the same for chunks and queries)."""
    import bm25s

    return bm25s.tokenize(
        texts, stopwords=list(STOPWORDS), stemmer=_stemmer(), return_ids=False, show_progress=False
    )


def words(text: str) -> list[str]:
    """:func:`tokenize` of one text.

    >>> words("The ministers visited Doha")
    ['minist', 'visit', 'doha']
    """
    return tokenize([text])[0]


def names(text: str) -> list[str]:
    """The names ``text`` mentions, in order, each once: runs of capitalised words, without the
    question or pronoun word a run may start with ("Which Shirley" -> "Shirley"; "The Prairie King"
    keeps its article), a possessive or a trailing connector.

    >>> names("Is the Bank of England older than Kiss and Tell's?")
    ['Bank of England', 'Kiss and Tell']
    >>> names("It was directed by B. Reeves Eason.Its star was Tom Mix.")
    ['B. Reeves Eason', 'Tom Mix']
    """
    found: dict[str, None] = {}
    for match in _NAME_RUN.finditer(_SENTENCE_END.sub(". | ", text)):
        run = _POSSESSIVE.sub("", _TRAILING.sub("", match.group(0))).rstrip(".'").split()
        while run and (run[0] in _NOT_NAMES or run[0].islower()):
            if len(run) > 1 and run[0] == "The" and run[1][:1].isupper():
                break
            run = run[1:]
        name = " ".join(run)
        if len(name) > 2:
            found.setdefault(name, None)
    return list(found)
