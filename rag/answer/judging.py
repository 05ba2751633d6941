"""The semantic support check: the generator itself judges whether a passage states a claim.

No NLI model or cross-encoder ships in a package here, so the bundled generator is the judge.
The question is asked as one more turn of the answer's own conversation::

    ... [user] Sources: [1] ... [2] ...  Question: Who ran Acme in 2021?
        [assistant] Jane Roe [2].
        [user] Source [2] says: "Jane Roe ran Bolt Ltd until 2022." Does this state that the
               answer to "Who ran Acme in 2021?" is "Jane Roe"? Reply yes or no.

and read from the next-token probabilities, not from generated text: the support is
``P(yes) / (P(yes) + P(no))``. Asked this way the judge sees the question's subject, so a
near-miss (a true sentence about someone or something else) can score low even though the
passage contains the answer's words. The sources come first in the conversation and are in the
KV cache already, so one check costs only its own few dozen tokens.

Example:
    >>> judge = Judge(generator, conversation, "Who ran Acme in 2021?")   # the answer's messages, reply included
    >>> judge("Jane Roe", 2, "Jane Roe ran Bolt Ltd until 2022.")         # claim, source number, quote
    0.31
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rag.core.types import Message
from rag.generate.base import Scorer, ScoresUnavailable

# At most this many checks per answer (a sentence against one source is one check): one check is
# about 90 prompt tokens, and the median answer needs one. Further sentences get the lexical check.
MAX_CHECKS = 3
JUDGE_TURN = (
    'Source [{n}] says: "{quote}"\n'
    'Does this state that the answer to "{question}" is "{claim}"? Reply yes or no.'
)
YES = ("Yes", "yes")
NO = ("No", "no")


@dataclass
class Judge:
    """Support checks for one answer to ``question``, asked after its ``conversation`` (the
    prompt's messages and the reply). A :data:`rag.answer.citations.SupportCheck`."""

    scorer: Scorer
    conversation: Sequence[Message]
    question: str
    budget: int = MAX_CHECKS
    calls: int = field(default=0, init=False)

    def __call__(self, claim: str, n: int, quote: str) -> float | None:
        """P(yes) that source ``n``, whose best sentence for ``claim`` is ``quote``, states ``claim``;
        None once ``budget`` checks were made."""
        if self.calls >= self.budget:
            return None
        turn = JUDGE_TURN.format(n=n, quote=quote, question=self.question, claim=claim)
        try:
            probabilities = self.scorer.next_token_probabilities(
                [*self.conversation, {"role": "user", "content": turn}], (*YES, *NO)
            )
        except ScoresUnavailable:  # a server without log-probabilities: the word check decides
            self.calls = self.budget
            return None
        self.calls += 1
        yes, no = sum(probabilities[: len(YES)]), sum(probabilities[len(YES) :])
        return yes / (yes + no) if yes + no > 0 else 0.5
