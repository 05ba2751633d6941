"""Run gold-set evaluations and write their results: answers, metrics, a report and a chart.

For each :class:`~rag.evaluate.metrics.Setting` the answers go to ``answers.jsonl`` one line at a
time (a Ctrl-C keeps every finished line); ``metrics.json``, ``report.md`` and ``chart.png``
are written at the end, and also when the run is interrupted, over what was done. With
several settings each one's answers go to a subfolder named after it, and the report puts
the settings side by side.

Example:
    >>> from rag.search.index import Index
    >>> from rag.evaluate.metrics import LOSSES, Setting, load_gold
    >>> results = evaluate(load_gold("eval/gold/seeds.jsonl"), Index.open(".rag/index"),
    ...                    [Setting(mode="bm25", retrieval_only=True)], out=Path("eval/results/demo"))
    >>> results[0].metrics["retrieval"]["hit@1"]
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.evaluate.metrics import LOSSES, Record, Setting, compute_metrics, run

if TYPE_CHECKING:
    from rag.answer.assistant import Assistant
    from rag.generate.base import GenerationSettings
    from rag.search.index import Index


@dataclass
class Result:
    """The records one setting produced so far, out of ``planned`` questions."""

    setting: Setting
    planned: int
    records: list[Record] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return len(self.records) == self.planned

    @property
    def metrics(self) -> dict[str, Any]:
        return compute_metrics(self.records, self.setting.k)


def evaluate(
    gold: list[dict[str, Any]],
    index: Index,
    settings: Sequence[Setting],
    out: Path,
    generation: GenerationSettings | None = None,
    progress: bool = False,
    context: dict[str, Any] | None = None,
    make_assistant: Callable[[Setting, Assistant | None], Assistant] | None = None,
) -> list[Result]:
    """Evaluate every setting on ``gold`` and write the results under ``out``.

    A model is loaded once and reused by consecutive settings that name it. On Ctrl-C the
    metrics and report cover what was finished, then the interrupt propagates.

    Args:
        context: extra facts for ``metrics.json`` and the report (command, gold file, index).
        make_assistant: builds the assistant for a setting from the previous one (tests pass
            one with a scripted generator); the default opens ``setting.model``.
    """
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    previous: Assistant | None = None
    make = make_assistant or (lambda s, prev: _assistant(index, s, prev, generation))
    try:
        for setting in settings:
            result = Result(setting, len(gold))
            results.append(result)
            assistant = None
            if not setting.retrieval_only:
                assistant = previous = make(setting, previous)
                if progress and assistant.generator is None:
                    print(f"loading {setting.model} ...", end="\r", flush=True, file=sys.stderr)
                assistant.load()
            folder = out / setting.slug if len(settings) > 1 else out
            folder.mkdir(parents=True, exist_ok=True)
            with (folder / "answers.jsonl").open("w", encoding="utf-8") as sink:
                bar = tqdm(
                    run(gold, index, setting, assistant), total=len(gold), desc=setting.label, unit=" q",
                    disable=None if progress else True,
                )
                for record in bar:
                    result.records.append(record)
                    sink.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
                    sink.flush()
    except KeyboardInterrupt:
        write_results(out, results, context, interrupted=True)
        raise
    write_results(out, results, context)
    return results


def _assistant(index: Index, setting: Setting, previous: Assistant | None, generation: GenerationSettings | None) -> Assistant:
    from rag.answer.assistant import Assistant
    from rag.answer.retry import ON
    from rag.generate.base import GenerationSettings

    # subtle: reuse the loaded model when only the mode, k, judge or prompt changes.
    generator = previous.generator if previous is not None and previous.model == setting.model else None
    return Assistant(index, model=setting.model, k=setting.k, mode=setting.mode, generator=generator,
                     settings=generation or GenerationSettings(), judge=setting.judge, hops=setting.hops,
                     retry=ON if setting.retry else (),
                     context_words=setting.words, source_labels=setting.labels)


# ---------------------------------------------------------------------- writing


def write_results(out: Path, results: list[Result], context: dict[str, Any] | None = None, interrupted: bool = False) -> None:
    """Write ``metrics.json``, ``report.md`` and ``chart.png`` for ``results`` into ``out``."""
    context = dict(context or {})
    context.setdefault("date", time.strftime("%Y-%m-%d %H:%M"))
    payload = {
        **context,
        "interrupted": interrupted,
        "settings": [
            {
                "label": r.setting.label, **r.setting.to_dict(),
                "answered": len(r.records), "planned": r.planned, "metrics": r.metrics,
            }
            for r in results
        ],
    }
    (out / "metrics.json").write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    chart = out / "chart.png"
    has_chart = write_chart(chart, results)
    curve = out / "risk_coverage.png"
    has_curve = write_risk_coverage(curve, results)
    losses = out / "losses.png"
    has_losses = write_losses(losses, results)
    text = report(results, context, interrupted, chart.name if has_chart else None, curve.name if has_curve else None,
                  losses.name if has_losses else None)
    (out / "report.md").write_text(text, encoding="utf-8")


# (group, key, label, kind): kind "rate" prints two decimals, "s" seconds.
ROWS: list[tuple[str, str, str, str]] = [
    ("retrieval", "hit@1", "hit@1", "rate"),
    ("retrieval", "hit@3", "hit@3", "rate"),
    ("retrieval", "hit@5", "hit@5", "rate"),
    ("retrieval", "recall@k", "recall@k", "rate"),
    ("retrieval", "any@k", "any gold doc in top k", "rate"),
    ("retrieval", "all@k", "all gold docs in top k", "rate"),
    ("retrieval", "mrr", "MRR", "rate"),
    ("retrieval", "ndcg@k", "nDCG@k", "rate"),
    ("answers", "accuracy", "accuracy", "rate"),
    ("answers", "f1", "token F1", "rate"),
    ("answers", "exact_match", "exact match", "rate"),
    ("citations", "gold_doc_precision", "cited gold-document precision", "rate"),
    ("citations", "recall", "recall", "rate"),
    ("citations", "supported_sentences", "sentences with a verified citation", "rate"),
    ("citations", "judge_supported", "sentences the judge supports", "rate"),
    ("refusals", "refusal_accuracy", "refusal accuracy (unanswerable)", "rate"),
    ("refusals", "false_refusals", "false refusals (answerable)", "rate"),
    ("refusals", "wrong_shown", "wrong answers shown (all questions)", "rate"),
    ("refusals", "right_kept", "the model's right answers shown", "rate"),
    ("refusals", "conflicts", "shown answers stating a conflict", "rate"),
    ("trust", "auroc", "trust score AUROC (right vs wrong answers)", "rate"),
    ("tokens", "prompt_p50", "prompt tokens after the cached prefix (p50)", "count"),
    ("tokens", "answer_p50", "answer tokens (p50)", "count"),
    ("latency", "retrieve_s", "retrieval p50 / p95", "s"),
    ("latency", "first_token_s", "first token p50 / p95", "s"),
    ("latency", "total_s", "total p50 / p95", "s"),
    ("latency", "checks_s", "of which checks p50 / p95", "s"),
]


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _cell(metrics: dict[str, Any], group: str, key: str, kind: str) -> str | None:
    values = metrics.get(group)
    if values is None:
        return None
    if kind == "s":
        p50, p95 = values.get(f"{key}_p50"), values.get(f"{key}_p95")
        return None if p50 is None else f"{_seconds(p50)} / {_seconds(p95)}"
    value = values.get(key)
    if kind == "count":
        return "–" if value is None else f"{value:.0f}"
    return "–" if value is None else f"{value:.2f}"


def report(results: list[Result], context: dict[str, Any], interrupted: bool = False, chart: str | None = None,
           curve: str | None = None, losses: str | None = None) -> str:
    """The markdown report: what was run, one column of metrics per setting, then where the
    wrong and missing answers were lost beside the risk-coverage curve of the trust score."""
    lines = ["# Evaluation" + (f": {context['gold']}" if context.get("gold") else ""), ""]
    for name in ("command", "gold", "index", "date"):
        if context.get(name):
            value = context[name]
            lines.append(f"- {name}: `{value}`" if name in ("command", "index") else f"- {name}: {value}")
    for r in results:
        answerable = sum(bool(rec.answerable) for rec in r.records)
        lines.append(
            f"- {r.setting.label}: {len(r.records)} of {r.planned} questions"
            f" ({answerable} answerable, {len(r.records) - answerable} unanswerable)"
        )
    if interrupted:
        lines += ["", "**Interrupted**: the figures cover only the questions finished."]
    lines += ["", "| metric | " + " | ".join(r.setting.label for r in results) + " |",
              "|---|" + "---|" * len(results)]
    metrics = [r.metrics for r in results]
    group_names = {"retrieval": "retrieval (documents)", "answers": "answers (answerable questions)",
                   "citations": "citations (answered questions)", "refusals": "refusals", "trust": "trust",
                   "tokens": "prompt", "latency": "latency"}
    current = None
    for group, key, label, kind in ROWS:
        cells = [_cell(m, group, key, kind) for m in metrics]
        if all(c is None for c in cells):
            continue
        if group != current:
            current = group
            lines.append(f"| **{group_names[group]}** |" + " |" * len(results))
        lines.append(f"| {label} | " + " | ".join(c or "–" for c in cells) + " |")
    k_values = sorted({r.setting.k for r in results})
    lines += [
        "",
        f"k = {', '.join(map(str, k_values))} passages given to the model. Retrieval is per document (chunk hits "
        "deduplicated in rank order) over answerable questions: hit@n counts a gold document among the first n "
        "documents, recall@k is the share of gold documents among those of the first k chunks, MRR covers the "
        "ranking searched (at least 5 chunks). Accuracy: the answer contains a gold answer (every item of a list "
        "question); token F1 and exact match use SQuAD normalisation. Cited gold-document precision: supported "
        "citations whose document is a gold source; recall: gold sources cited, per question. Sentences the judge "
        "supports: of the shown answers' sentences, those the semantic check says their source states.",
    ]
    if chart:
        lines += ["", f"![chart]({chart})"]
    lines += losses_section(results, losses)
    lines += risk_coverage_section(results, curve)
    return "\n".join(lines) + "\n"


def losses_section(results: list[Result], chart: str | None) -> list[str]:
    """Where each wrong or missing answer was lost (rag.evaluate.metrics.LOSSES), as counts per setting."""
    rated = [(r, m) for r in results if (m := r.metrics.get("losses")) and m["questions"]]
    if not rated:
        return []
    lines = ["", "## Where answers were lost", "",
             "Each question that did not get a right answer (or, if unanswerable, a refusal), by the first stage "
             "that lost it: the gold documents never reached the prompt; the model said it did not know; it wrote "
             "a wrong answer from a prompt that held them; the checks withheld its right answer; or an unanswerable "
             "question got an answer.", "",
             "| | " + " | ".join(r.setting.label for r, _ in rated) + " |", "|---|" + "---|" * len(rated),
             "| questions | " + " | ".join(str(m["questions"]) for _, m in rated) + " |",
             "| answered right | " + " | ".join(str(m["right"]) for _, m in rated) + " |"]
    for cause in LOSSES:
        lines.append(f"| {cause} | " + " | ".join(str(m["causes"][cause]) for _, m in rated) + " |")
    shares = [m.get("evidence_in_prompt") for _, m in rated]
    if any(v is not None for v in shares):
        lines.append("| every gold document in the prompt (answerable) | "
                     + " | ".join("–" if v is None else f"{v:.2f}" for v in shares) + " |")
    tries = [r.metrics.get("retry") for r, _ in rated]
    if any(t and t["shown"] for t in tries):
        lines.append("| shown by a second try (right / wrong; each would be a refusal without it) | "
                     + " | ".join("–" if not t else f"{t['shown']} ({t['right']} / {t['wrong']})" for t in tries) + " |")
    if chart:
        lines += ["", f"![where answers were lost]({chart})"]
    return lines


def write_losses(path: Path, results: list[Result]) -> bool:
    """One stacked bar per setting: the share of its questions answered right, then lost at each stage."""
    rated = [(r, m) for r in results if r.records and (m := r.metrics.get("losses")) and m["questions"]]
    if not rated:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.55 * len(rated)))
    labels = [r.setting.label for r, _ in rated]
    left = [0.0] * len(rated)
    parts = [("answered right", [m["right"] / m["questions"] for _, m in rated], "#16a34a")]
    colours = ("#9ca3af", "#60a5fa", "#f97316", "#a855f7", "#dc2626")
    parts += [(cause, [m["causes"][cause] / m["questions"] for _, m in rated], colour) for cause, colour in zip(LOSSES, colours)]
    for name, shares, colour in parts:
        ax.barh(labels, shares, left=left, color=colour, label=name)
        left = [a + b for a, b in zip(left, shares)]
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of questions (refusals of unanswerable questions are the rest)")
    ax.set_title("where answers were lost")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.35 if len(rated) < 3 else -0.15), ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return True


COVERAGE_ROWS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2)


def risk_coverage_section(results: list[Result], chart: str | None) -> list[str]:
    """The curve as a table (accuracy of answered questions at fixed shares answered) and its chart."""
    rated = [(r, t) for r in results if (t := r.metrics.get("trust")) and t.get("curve")]
    if not rated:
        return []
    lines = ["", "## Risk and coverage", "",
             "Each answer has a trust score (rag/answer/trust.py); it is shown when the score reaches the threshold. "
             "Lowering the threshold answers more questions (coverage: share of all questions answered) at a lower "
             "accuracy of the answered ones (an answer to an unanswerable question is wrong). Questions the model "
             "itself refused, or that a rule withheld, are never answered.", "",
             "| coverage | " + " | ".join(r.setting.label for r, _ in rated) + " |", "|---|" + "---|" * len(rated)]
    for target in COVERAGE_ROWS:
        cells = []
        for _, t in rated:
            point = min(t["curve"], key=lambda p: abs(p[1] - target))
            cells.append(f"{point[2]:.2f} at {point[1]:.2f} (score >= {point[0]:.2f})" if abs(point[1] - target) < 0.05
                         else "–")
        lines.append(f"| {target:.1f} | " + " | ".join(cells) + " |")
    cells = []
    for _, t in rated:
        op = t["operating"]
        acc = "–" if op["accuracy"] is None else f"{op['accuracy']:.2f}"
        cells.append(f"**{acc} at {op['coverage']:.2f} (threshold {t['threshold']:.2f})**")
    lines.append("| operating point | " + " | ".join(cells) + " |")
    if chart:
        lines += ["", f"![risk and coverage]({chart})"]
    return lines


def write_risk_coverage(path: Path, results: list[Result]) -> bool:
    """Accuracy of answered questions against coverage per setting, the operating point marked."""
    rated = [(r, t) for r in results if r.records and (t := r.metrics.get("trust")) and t.get("curve")]
    if not rated:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (r, t) in enumerate(rated):
        xs, ys = [p[1] for p in t["curve"]], [p[2] for p in t["curve"]]
        ax.plot(xs, ys, color=f"C{i}", label=r.setting.label)
        op = t["operating"]
        if op["accuracy"] is not None:
            ax.scatter([op["coverage"]], [op["accuracy"]], color=f"C{i}", s=70, marker="o", edgecolor="black", zorder=3)
    ax.scatter([], [], color="grey", edgecolor="black", marker="o", label="operating point")
    ax.set_xlabel("coverage (share of questions answered)")
    ax.set_ylabel("accuracy of answered questions")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.set_title("risk and coverage of the trust score")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


BARS: dict[str, list[tuple[str, str, str]]] = {
    "answers": [
        ("answers", "accuracy", "accuracy"),
        ("answers", "f1", "token F1"),
        ("citations", "gold_doc_precision", "cited gold-doc\nprecision"),
        ("citations", "recall", "citation\nrecall"),
        ("citations", "supported_sentences", "supported\nsentences"),
        ("refusals", "refusal_accuracy", "refusal\naccuracy"),
    ],
    "retrieval": [
        ("retrieval", "hit@1", "hit@1"),
        ("retrieval", "hit@5", "hit@5"),
        ("retrieval", "recall@k", "recall@k"),
        ("retrieval", "all@k", "all@k"),
        ("retrieval", "mrr", "MRR"),
        ("retrieval", "ndcg@k", "nDCG@k"),
    ],
}


def write_chart(path: Path, results: list[Result]) -> bool:
    """Bars of answer and citation quality (or retrieval quality) per setting; beside them, when
    several settings answered, accuracy and citation precision against median total latency.

    Returns False (and writes nothing) when there is nothing to plot.
    """
    results = [r for r in results if r.records]
    if not results:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [r.metrics for r in results]
    answered = all("answers" in m for m in metrics)
    bars = BARS["answers" if answered else "retrieval"]
    scatter = answered and len(results) > 1
    fig, axes = plt.subplots(1, 2 if scatter else 1, figsize=(12 if scatter else 8, 4.2), squeeze=False)
    ax = axes[0][0]
    width = 0.8 / len(results)
    for i, (r, m) in enumerate(zip(results, metrics)):
        values = [m[group].get(key) or 0.0 for group, key, _ in bars]
        xs = [j + (i - (len(results) - 1) / 2) * width for j in range(len(bars))]
        ax.bar(xs, values, width=width, label=r.setting.label, color=f"C{i}")
    ax.set_xticks(range(len(bars)), [label for *_, label in bars], fontsize=8)
    ax.set_ylim(0, 1.2)  # room for the legend above the bars
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_title("answers and citations" if answered else "retrieval (documents)")
    ax.legend(fontsize=8, loc="upper center", ncol=min(len(results), 3))
    if scatter:
        ax = axes[0][1]
        # Colours match the bars (one per setting); the marker tells the metric.
        for i, m in enumerate(metrics):
            latency = m["latency"].get("total_s_p50")
            if latency is None:
                continue
            ax.scatter(latency, m["answers"]["accuracy"] or 0.0, marker="o", s=60, color=f"C{i}")
            ax.scatter(latency, m["citations"]["gold_doc_precision"] or 0.0, marker="^", s=60, color=f"C{i}")
        ax.scatter([], [], marker="o", color="grey", label="accuracy")
        ax.scatter([], [], marker="^", color="grey", label="cited gold-doc precision")
        ax.set_xlabel("total latency p50 (s)")
        ax.set_ylim(0, 1.05)
        ax.set_title("quality against latency")
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
