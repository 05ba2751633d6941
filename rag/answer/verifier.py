"""A verifier fitted here: does the answer's evidence concern what the question asked?

The trust score's signals come from the model judging itself, which says "yes" to a cited
near-miss (a minister of another country, a champion of another year). The verifier adds what
can be fitted on data: cheap lexical checks on what the question names (:func:`lexical`) and a
logistic model over them and the trust signals (:class:`Verifier`), fitted by
``eval/verifier_fit.py --write`` on the SQuAD 2.0 fitting pool only and kept in
``rag/answer/verifier.json`` (a few hundred bytes: input names, standardisation, weights, threshold, and
the generator and embedder it was fitted for; eval/README.md, "Verifier").

The trust score (:mod:`rag.answer.trust`) uses it when the file is present and was fitted for the
assistant's generator and embedder; otherwise it falls back to the model's own signals and says
so once (:func:`for_models`).

Where the generator runs in this process (llama.cpp), a third file, ``rag/answer/verifier-probe.json``
(:data:`PROBE_FILE`, fitted by ``eval/verifier_fit.py --write-probe``), adds the generator's own
hidden states: :class:`Probe` directions read at the prompt's end and at the answer's last token
(:mod:`rag.generate.hidden`), stacked with the same inputs. The assistant asks the generator for those
states only when that file applies (:func:`probe_layers`), and scores with it only when an answer
carries them; otherwise ``rag/answer/verifier.json`` decides.

A second model of the same kind, the early check (:data:`EARLY`, ``rag/answer/verifier-early.json``,
fitted by ``eval/early_fit.py --write``), looks only at the question and the passages put in the
prompt, before any answer token: when it is sure they do not hold the answer, the assistant
refuses without generating (:meth:`rag.answer.assistant.Assistant.respond`).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rag.answer.citations import verify
from rag.core.types import Source

FILE = Path(__file__).with_name("verifier.json")
PROBE_FILE = Path(__file__).with_name("verifier-probe.json")
EARLY_FILE = Path(__file__).with_name("verifier-early.json")
log = logging.getLogger(__name__)

# Numbers and capitalised words not at a sentence start: what a question names.
NUMBER = re.compile(r"\d[\d,.]*")
NAME = re.compile(r"(?<!^)(?<![.?!] )\b[A-Z][\w-]+")  # "Belgium's" -> "Belgium"
LEXICAL = ("first passage score", "first passage dense", "first passage BM25", "best cosine",
           "question words quoted", "question names quoted", "question numbers quoted", "answer words")
EARLY = ("best cosine", "question names in sources", "question numbers in sources",
         "question words in best source", "question names in best source")


def quotes(answer: str, sources: tuple[Source, ...], question: str) -> list[str]:
    """The quotes the answer cites, chosen by shared words alone (:func:`rag.answer.citations.verify`
    without the judge): the same whether or not the answer is later withheld, and the same in
    the product as in the fitting records (``eval/verifier_fit.py``)."""
    _, _, citations = verify(answer, sources, question)
    return [c.quote for c in citations]


class Asked:
    """What a question asks about, to look for in a text: its stemmed content words, its
    capitalised names (as prefixes) and its numbers."""

    def __init__(self, question: str) -> None:
        from rag.stores.sparse import tokenize

        self.words = set(tokenize([question])[0])
        # A name matches a word that starts like it, so a country matches its people ("Belgium",
        # "Belgian"; "Qatar", "Qatari"): all but its last three letters, at least four.
        self.names = {name[: max(4, len(name) - 3)] for name in NAME.findall(question)}
        self.numbers = set(NUMBER.findall(question))

    def found(self, text: str) -> tuple[float, float, float]:
        """The shares of the question's words, names and numbers found in ``text`` (1.0 where
        the question has none to look for)."""
        from rag.stores.sparse import tokenize

        words = set(tokenize([text])[0]) if text else set()
        return (_share(self.words, words.__contains__),
                _share(self.names, lambda n: re.search(rf"\b{re.escape(n)}", text)),
                _share(self.numbers, text.__contains__))


def _share(items: set[str], found: Any) -> float:
    return sum(bool(found(item)) for item in items) / len(items) if items else 1.0


def lexical(question: str, answer: str, quotes: Sequence[str], first: dict[str, float], relevance: float) -> list[float]:
    """The cheap signals, in :data:`LEXICAL` order: the first retrieved passage's scores (``first``:
    ``score``, ``dense``, ``bm25``), the best cosine, the shares of the question's stemmed content
    words, capitalised names and numbers found in the quotes the answer cites, and the answer's
    length in words."""
    words, names, numbers = Asked(question).found(" ".join(quotes))
    return [first.get("score", 0.0), first.get("dense", 0.0), first.get("bm25", 0.0), relevance,
            words, names, numbers, float(len(answer.split()))]


def early(question: str, sources: Sequence[str], relevance: float) -> list[float]:
    """The early check's inputs, in :data:`EARLY` order, from the texts of the prompt's sources:
    the best cosine, the shares of the question's names and numbers found in any source, and the
    largest shares of its words and of its names found together in one source (a near-miss
    names the asked country in one passage and the asked year in another)."""
    asked = Asked(question)
    each = [asked.found(text) for text in sources]
    _, names, numbers = asked.found(" ".join(sources))
    return [relevance, names, numbers, max((f[0] for f in each), default=0.0), max((f[1] for f in each), default=0.0)]


@dataclass(frozen=True)
class Probe:
    """A direction in the generator's hidden state (a logistic probe, its standardisation folded
    into ``weights``): the log-odds that the answer is right, read from the last token's state at
    ``layer`` at one ``moment``: ``prompt`` (the prompt's end, before the first answer token) or
    ``answer`` (the answer's last token). :attr:`name` is its input's name in a :class:`Verifier`
    and its state's key in :attr:`rag.core.types.GenerationStats.hidden`."""

    moment: str
    layer: int
    weights: tuple[float, ...]
    bias: float

    MOMENTS = ("prompt", "answer")

    def __post_init__(self) -> None:
        if self.moment not in self.MOMENTS:
            raise ValueError(f"a probe's moment is one of {', '.join(self.MOMENTS)}, not {self.moment!r}")

    @property
    def state(self) -> str:
        """The key of the state it reads (``prompt L18``)."""
        return f"{self.moment} L{self.layer}"

    @property
    def name(self) -> str:
        return f"probe {self.state}"

    def log_odds(self, state: Sequence[float]) -> float:
        import numpy as np

        if len(state) != len(self.weights):
            raise ValueError(f"{self.name} reads {len(self.weights)} numbers, got {len(state)}")
        return self.bias + float(np.dot(np.asarray(self.weights), np.asarray(state)))


@dataclass(frozen=True)
class Verifier:
    """A logistic model over named inputs (the trust features and :data:`LEXICAL`): the
    probability that an answer is right, and the threshold at which it is shown."""

    inputs: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float
    generator: str  # the bundled model's name and its file's sha256; empty for the early check (any model)
    generator_sha256: str
    embedder: str
    fitted_on: str = ""  # what it was fitted on, for people
    probes: tuple[Probe, ...] = ()  # hidden-state directions whose log-odds are among the inputs

    def __post_init__(self) -> None:
        sizes = {len(self.inputs), len(self.mean), len(self.scale), len(self.weights)}
        if len(sizes) != 1 or not self.inputs:
            raise ValueError(f"a verifier needs as many means, scales and weights as inputs ({len(self.inputs)})")
        if any(v == 0 for v in self.scale):
            raise ValueError("a verifier's scales must not be zero")

    @property
    def layers(self) -> tuple[int, ...]:
        """The generator layers whose hidden states the probes read."""
        return tuple(sorted({p.layer for p in self.probes}))

    def read(self, hidden: Mapping[str, Sequence[float]]) -> dict[str, float] | None:
        """Each probe's input (its log-odds) from an answer's hidden states; None when a state
        a probe reads is missing."""
        if any(p.state not in hidden for p in self.probes):
            return None
        return {p.name: p.log_odds(hidden[p.state]) for p in self.probes}

    def probability(self, values: Mapping[str, float]) -> float | None:
        """The probability that the answer is right, or None when an input is missing."""
        if any(values.get(name) is None for name in self.inputs):
            return None
        z = self.bias + sum(w * (values[n] - m) / s for n, m, s, w in zip(self.inputs, self.mean, self.scale, self.weights))
        return 1 / (1 + math.exp(-max(min(z, 50.0), -50.0)))

    def mismatch(self, generator: str, embedder: str) -> str | None:
        """Why this verifier does not apply to answers of ``generator`` over ``embedder``'s
        retrieval (its inputs are on their scales), or None when it does."""
        from rag.core.bundled import BUNDLED

        if self.generator:  # empty when fitted on retrieval alone (the early check): any generator
            if generator != self.generator:
                return f"it was fitted for the model {self.generator}, not {generator}"
            bundled = BUNDLED.get(generator)
            if bundled is None or bundled.sha256 != self.generator_sha256:
                return f"it was fitted for another build of {generator}"
        if embedder != self.embedder:
            return f"it was fitted for the embedder {self.embedder}, not {embedder}"
        return None

    def save(self, path: Path = FILE) -> None:
        path.write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path = FILE) -> Verifier:
        """The verifier in ``path``; ValueError (one line) when it is missing or malformed."""
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
            fields["probes"] = tuple(Probe(**{**p, "weights": tuple(p["weights"])}) for p in fields.get("probes", ()))
            return cls(**fields)
        except FileNotFoundError:
            raise ValueError(f"{path} is missing") from None
        except (json.JSONDecodeError, TypeError, ValueError, KeyError) as error:
            raise ValueError(f"{path} is not a verifier ({error})") from None


_said: set[str] = set()


@functools.lru_cache(maxsize=8)
def for_models(generator: str, embedder: str, path: Path = FILE) -> Verifier | None:
    """The fitted verifier for answers of ``generator`` over ``embedder``, or None (the trust
    score then falls back to the model's own signals), said once per reason."""
    try:
        verifier = Verifier.load(path)
        why = verifier.mismatch(generator, embedder)
    except ValueError as error:
        verifier, why = None, str(error)
    if why is None:
        return verifier
    if path == PROBE_FILE:
        message = f"no fitted probe ({why}): answers are checked without the model's hidden states"
    else:
        message = f"no fitted verifier ({why}): answers are trusted on the model's own signals"
    if message not in _said:
        _said.add(message)
        log.warning(message)
    return None


def probe_layers(generator: str, embedder: str, path: Path = PROBE_FILE) -> tuple[int, ...]:
    """The layers whose hidden states an in-process ``generator`` should keep for each answer:
    those the probe verifier reads, when it applies; none otherwise (said once)."""
    verifier = for_models(generator, embedder, path)
    return verifier.layers if verifier is not None else ()
