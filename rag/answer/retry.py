"""A second try before refusing: the same question asked again another way, when the first answer is withheld.

The verifier tells right answers from wrong ones better than it can say what the right one is; so
when it withholds an answer, the assistant asks again and lets it pick (:meth:`rag.answer.assistant.Assistant._retry`):

- ``alone``: each of the prompt's first two passages on its own, so the model cannot take an answer
  from a neighbouring passage about something else (the Italian delegation for the Belgian minister);
- ``reversed``: the same passages in the opposite order, so the one the model read first is last.

Each answer is checked like the first (citations, judge, score); the one with the highest score is
shown if it clears the threshold. Only withheld answers pay for it, and the product leaves it off:
on the seeds ``alone`` showed none of 18 withheld answers and added 13 s to each, ``reversed``
showed 2 of 22, both wrong, for 5.3 s more each (eval/README.md, "The second try").
``Assistant(retry=ON)`` or ``rag eval --compare retry=on,off`` turns it on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

from rag.answer.prompting import Labels, build_prompt
from rag.core.types import Prompt

STRATEGIES = ("alone", "reversed")
ON: tuple[str, ...] = ("alone",)  # the second try when it is asked for (--compare retry=on)
RETRY: tuple[str, ...] = ()  # the product's default: off (eval/README.md, "The second try")
RETRY_WORDS = {"alone": "from one passage alone", "reversed": "with the passages in the opposite order"}
ALONE = 2  # of the prompt's passages, how many are each asked alone


def prompts(question: str, prompt: Prompt, ways: Sequence[str], labels: Labels) -> Iterator[tuple[str, Prompt]]:
    """The prompts of a second try, each with the way it was made (see the module docstring)."""
    for way in ways:
        if way == "alone":
            for source in prompt.sources[:ALONE]:
                yield way, build_prompt(question, (replace(source, n=1),), labels)
        elif way == "reversed" and len(prompt.sources) > 1:
            flipped = tuple(replace(s, n=i) for i, s in enumerate(reversed(prompt.sources), start=1))
            yield way, build_prompt(question, flipped, labels)
        elif way not in STRATEGIES:
            raise ValueError(f"unknown second try '{way}'; one of {', '.join(STRATEGIES)}")
