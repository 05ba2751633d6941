"""Where does another passage's value stand in the answer's value's place? (issue 46)

``conflicts.find_values`` sets a value of another passage against the answer's only when it is
in the same place of a sentence about the same thing: between at least ``VALUE_BESIDE`` of the
same words for a date, year or number, ``NAME_BESIDE`` for a name, when a name answer ("Louis
XIV [1].") is read as a value too. Each setting (names off or on) is replayed, no model, on
recorded answers (their prompts rebuilt, the raw answers verified by the word check, as
``eval/replay_conflicts.py`` does):

- the reworded check set (``eval/reworded.py``, ``.rag/reworded/``): of the questions whose
  prompt holds both values, those where the check states a disagreement that names the
  counterfeit value (found), and those whose stated disagreement names another (misplaced);
- the committed calibration runs (seeds, SQuAD 2.0, HotpotQA and its withheld variant), whose
  passages agree: every question claiming a conflict is a false conflict.

    .venv/bin/python -m eval.experiments.name_conflicts     # writes eval/results/conflicts/names.{json,md}

The reworded set is a dev set here: the setting is chosen on it and on the calibration runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eval.common import ROOT, git, read_jsonl

# (VALUE_BESIDE, NAME_BESIDE, WORDS_ALIKE): words beside a date, year or number, and beside a name
# (None: names not read as values), that must match for it to stand in the answer's value's place
# ("alike N": a name placed by the answer sentence's other names, N of them not the question's:
# conflicts.NAMES_ALIKE, conflicts.named_alike); and the share of the answer sentence's words from
# which a lone other value is in its place wherever it stands (conflicts.WORDS_ALIKE; None: off)
SETTINGS: tuple[tuple[int, int | str | None, float | None], ...] = (
    (0, None, None), (1, None, None), (2, None, None), (1, 1, None), (1, 2, None), (1, 3, None), (1, 4, None),
    (1, "alike 1", None), (1, "alike 2", None),
    (1, "alike 2", 0.8), (1, "alike 2", 0.7), (1, "alike 2", 0.6), (1, "alike 2", 0.5), (1, "alike 2", 0.4))
AGREEING = {"seeds": None, "squad2": "squad2", "hotpotqa": "hotpotqa", "withheld": "hotpotqa-withheld"}


def replayed(rows: list[dict[str, Any]], corpus: Path | None) -> list[tuple[dict[str, Any], Any, Any]]:
    """Each answered row with its rebuilt prompt and the word check's verification."""
    from rag.answer.assistant import Assistant
    from rag.answer.citations import is_refusal, verify
    from rag.evaluate.metrics import corpus_index_dir
    from rag.search.index import Index

    index = Index.open(corpus_index_dir(corpus) if corpus else ROOT / ".rag" / "index")
    if corpus is not None:
        index.add([corpus])  # nothing to do when it is already indexed
    assistant = Assistant(index)
    out = []
    for r in rows:
        if not r.get("raw") or is_refusal(r["raw"]):
            continue
        prompt = assistant.prompt(r["question"], assistant.retrieve(r["question"]))
        out.append((r, prompt, verify(r["raw"], prompt.sources, r["question"])))
    return out


def main() -> None:
    from rag.answer import conflicts
    from rag.evaluate.metrics import normalize_answer as normalize

    sets = {"reworded": replayed(read_jsonl(ROOT / ".rag" / "reworded" / "answers.jsonl"),
                                 ROOT / ".rag" / "reworded" / "corpus.jsonl")}
    for name, bench in AGREEING.items():
        corpus = ROOT / "eval" / "benchmarks" / bench / "corpus.jsonl" if bench else None
        sets[name] = replayed(read_jsonl(ROOT / "eval" / "results" / "calibration" / f"{name}.answers.jsonl"), corpus)
    rows = []
    for value_beside, name_beside, words_alike in SETTINGS:
        conflicts.VALUE_BESIDE, conflicts.WORDS_ALIKE = value_beside, words_alike
        conflicts.READ_NAMES = name_beside is not None
        conflicts.NAMES_ALIKE = int(name_beside.split()[1]) if isinstance(name_beside, str) else 0
        if isinstance(name_beside, int):
            conflicts.NAME_BESIDE = name_beside
        row: dict[str, Any] = {"value_beside": value_beside, "name_beside": name_beside, "words_alike": words_alike}
        found = misplaced = 0
        for r, prompt, (text, sentences, citations) in sets["reworded"]:
            if not r["both_in_prompt"]:
                continue
            stated = conflicts.find(r["question"], text, sentences, citations, prompt.sources)
            said = " | ".join(normalize(v.value) for c in stated for v in c.values)  # "zhongtong county" names "zhongtong"
            found += bool(stated) and normalize(r["counterfeit"]) in said
            misplaced += bool(stated) and normalize(r["counterfeit"]) not in said
        row["reworded"] = {"both": sum(r["both_in_prompt"] for r, _, _ in sets["reworded"]), "found": found,
                           "misplaced": misplaced}
        for name in AGREEING:
            claims = [r["id"] for r, prompt, (text, sentences, citations) in sets[name]
                      if conflicts.find(r["question"], text, sentences, citations, prompt.sources)]
            row[name] = {"answers": len(sets[name]), "false": len(claims), "ids": claims}
        rows.append(row)
        print(json.dumps(row), flush=True)
    code = git("describe", "--always", "--dirty")
    out = ROOT / "eval" / "results" / "conflicts" / "names"
    out.with_suffix(".json").write_text(json.dumps({"code": code, "rows": rows}, indent=1) + "\n")
    lines = ["# Names as values in the conflict check", "", f"`python -m eval.experiments.name_conflicts` at {code}.", "",
             "| VALUE_BESIDE | NAME_BESIDE | WORDS_ALIKE | reworded: counterfeit found / misplaced (of both in prompt) | "
             "false conflicts: " + " | ".join(AGREEING) + " |", "|---|---|---|---|" + "---|" * len(AGREEING)]
    for row in rows:
        label = "names off" if row["name_beside"] is None else str(row["name_beside"])
        lines.append(f"| {row['value_beside']} | {label} | {row['words_alike'] or 'off'} | {row['reworded']['found']} / {row['reworded']['misplaced']} (of {row['reworded']['both']}) | "
                     + " | ".join(f"{row[n]['false']} of {row[n]['answers']}" for n in AGREEING) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
