"""What the evaluation scripts share: the repository's paths, the dev sets and small helpers.

The scripts run from the repository root as modules (``.venv/bin/python -m eval.bench``,
``.venv/bin/python -m eval.experiments.prompt_budget``), so ``rag`` and ``eval`` are imported from
the working tree. Only the standard library is imported here at load time: ``eval/cold_start.py``
times a fresh process from its first line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SEEDS_GOLD = ROOT / "eval" / "gold" / "seeds.jsonl"
BENCHMARKS = ROOT / "eval" / "benchmarks"

# The dev sets that retrieval and prompt choices are measured on: name -> (gold file, corpus).
# The seeds' corpus is the folder (`rag index seeds`); a script that asks the seeds of the default
# index instead says so where it opens its index. The fourth dev set of eval/README.md, HotpotQA
# with withheld paragraphs, has HotpotQA's questions; the scripts that measure answers add it
# (eval/verifier_collect.py's SETS).
DEV_SETS: dict[str, tuple[Path, Path]] = {
    "seeds": (SEEDS_GOLD, SEEDS),
    "hotpotqa": (BENCHMARKS / "hotpotqa" / "gold.jsonl", BENCHMARKS / "hotpotqa" / "corpus.jsonl"),
    "squad2": (BENCHMARKS / "squad2" / "gold.jsonl", BENCHMARKS / "squad2" / "corpus.jsonl"),
}


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSON Lines file (blank lines skipped)."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def git(*args: str) -> str:
    """The output of ``git ARGS`` in the repository, stripped; "" without git or a checkout."""
    import subprocess

    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` says, else "unknown"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100, linear interpolation) of ``values``."""
    import numpy as np

    if not len(values):
        raise ValueError("percentile of no values")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def auroc(s: np.ndarray, y: np.ndarray) -> float | None:
    """The AUROC of scores ``s`` (numpy array; -inf or NaN: not scored, left out) for the boolean
    labels ``y``: the chance that a positive scores above a negative, ties counting half. None
    when either class is missing."""
    import numpy as np  # noqa: F811 - at call time (see the module docstring)

    good, bad = s[y & np.isfinite(s)], s[~y & np.isfinite(s)]
    if not len(good) or not len(bad):
        return None
    return float(((good[:, None] > bad[None, :]).sum() + 0.5 * (good[:, None] == bad[None, :]).sum())
                 / (len(good) * len(bad)))
