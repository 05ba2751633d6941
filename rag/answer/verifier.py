"""The trust scorers, and the one place one is chosen for an answer (:func:`choose`).

Every scorer is a :class:`Verifier`: a logistic model over named inputs, with the threshold at
which an answer is shown. Three exist, tried in this order for each answer, the first whose inputs
the answer has deciding:

- ``rag/answer/verifier-probe.json`` (:data:`PROBE_FILE`): the model's own signals, what the
  question names found in the quotes the answer cites (:func:`lexical`), and two :class:`Probe`
  directions in the generator's hidden states, at the prompt's end and at the answer's last token
  (:mod:`rag.generate.hidden`); for answers of the bundled model it was fitted for, which carry
  those states (the assistant asks the generator for them when the file applies: :func:`planned`);
- ``rag/answer/verifier.json`` (:data:`FILE`): the same without the probes, for answers that carry
  no states (a server's bundled model);
- :data:`FALLBACK`: the model's own three signals alone, for any model (fitted by
  ``eval/calibrate.py`` on the dev runs of commit c262a2a).

Both files are fitted by ``eval/verifier_fit.py --write`` (eval/README.md, "Trust"); one
that is missing or fitted for another generator or embedder is skipped, said once (:func:`for_models`).
An answer none can score (a backend without token probabilities) gets no score: it is shown when a
sentence is supported.
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
from rag.core.text import NAME_WORD, NUMBER, words
from rag.core.types import Source

FILE = Path(__file__).with_name("verifier.json")
PROBE_FILE = Path(__file__).with_name("verifier-probe.json")
log = logging.getLogger(__name__)

LEXICAL = ("first passage score", "first passage dense", "first passage BM25", "best cosine",
           "question words quoted", "question names quoted", "question numbers quoted", "answer words")
# The model's own signals (rag.answer.trust.Signals) as the verifiers name them: log P(answer rather
# than "I don't know"), the answer tokens' mean log-probability, the judge's support as log-odds.
FEATURES = ("log answer probability", "confidence", "support log-odds")
SUPPORT = FEATURES[2]  # read only where the judge ran


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
        self.words = set(words(question))
        # A name matches a word that starts like it, so a country matches its people ("Belgium",
        # "Belgian"; "Qatar", "Qatari"): all but its last three letters, at least four.
        self.names = {name[: max(4, len(name) - 3)] for name in NAME_WORD.findall(question)}
        self.numbers = set(NUMBER.findall(question))

    def found(self, text: str) -> tuple[float, float, float]:
        """The shares of the question's words, names and numbers found in ``text`` (1.0 where
        the question has none to look for)."""
        found = set(words(text)) if text else set()
        return (_share(self.words, found.__contains__),
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
    generator: str  # the bundled model's name and its file's sha256; empty: any model (FALLBACK)
    generator_sha256: str
    embedder: str  # empty: any embedder
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

    @property
    def kind(self) -> str:
        """What it reads, as an answer's trust records it: ``probes``, ``verifier`` (no probes) or
        ``signals`` (:data:`FALLBACK`, the model's own signals for any model)."""
        return "probes" if self.probes else "verifier" if self.generator else "signals"

    @property
    def needs_judge(self) -> bool:
        """Whether it reads the judge's support (:data:`SUPPORT`)."""
        return SUPPORT in self.inputs

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

        if self.generator:  # empty: fitted for any model
            if generator != self.generator:
                return f"it was fitted for the model {self.generator}, not {generator}"
            bundled = BUNDLED.get(generator)
            if bundled is None or bundled.sha256 != self.generator_sha256:
                return f"it was fitted for another build of {generator}"
        if self.embedder and embedder != self.embedder:
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


# The model's own signals alone, for any model and embedder: fitted by eval/calibrate.py on the dev
# runs of commit c262a2a (seeds, HotpotQA, HotpotQA withheld, SQuAD 2.0; eval/README.md, "Trust"). The
# threshold is low because the score is a calibrated probability pooled over sets where the model is
# mostly wrong (HotpotQA): 0.14 is where the mean Youden's J over the sets is highest among thresholds
# that withhold at most 5% of the right answers on every set.
FALLBACK = Verifier(inputs=FEATURES, mean=(0.0, 0.0, 0.0), scale=(1.0, 1.0, 1.0), weights=(7.6033, 4.2202, 0.8563),
                    bias=-1.4274, threshold=0.14, generator="", generator_sha256="", embedder="",
                    fitted_on="the dev runs of commit c262a2a (eval/calibrate.py)")


def planned(generator: str, embedder: str) -> Verifier:
    """The scorer an answer of ``generator`` will most likely get, known before it is written: the
    probe verifier when it applies (the generator should keep the states it reads), else the fitted
    one, else :data:`FALLBACK`. It says which hidden states to keep and whether the judge is read."""
    return for_models(generator, embedder, PROBE_FILE) or for_models(generator, embedder, FILE) or FALLBACK


def choose(generator: str, embedder: str, values: Mapping[str, float], hidden: Mapping[str, Sequence[float]]
           ) -> tuple[Verifier | None, dict[str, float]]:
    """The scorer for one answer of ``generator`` (over ``embedder``'s retrieval), whose inputs are
    ``values`` and whose hidden states are ``hidden`` (see the module docstring): the first of the
    probe verifier, the fitted verifier and :data:`FALLBACK` that applies and has every input it
    reads; with the probes' log-odds when the probe verifier was chosen. None when none can score."""
    probe = for_models(generator, embedder, PROBE_FILE) if hidden else None
    read = probe.read(hidden) if probe is not None else None
    if probe is not None and read is not None and probe.probability({**values, **read}) is not None:
        return probe, read
    for verifier in (for_models(generator, embedder, FILE), FALLBACK):
        if verifier is not None and verifier.probability(values) is not None:
            return verifier, {}
    return None, {}
