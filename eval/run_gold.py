"""Answer every seeds gold question with one model and print per-question rows and a summary.

A stop-gap until `rag eval` (issue 5):  .venv/bin/python eval/run_gold.py [MODEL] [INDEX_DIR]
"""
import json, sys, time, statistics
from rag.answering import Assistant
from rag.evaluation import load_gold, is_correct
from rag.generation import GenerationSettings
model = sys.argv[1] if len(sys.argv) > 1 else "qwen-1.5b"
a = Assistant.open(sys.argv[2] if len(sys.argv) > 2 else ".rag/index", model=model, settings=GenerationSettings(threads=2))
a.load()
rows=[]
for g in load_gold("eval/gold/seeds.jsonl"):
    ans = a.ask(g["question"])
    best_dense = max(h.scores.get("dense",0) for h in ans.hits)
    cited = {c.doc_id for c in ans.citations if c.supported}
    r = dict(id=g["id"], type=g["type"], answerable=g["answerable"], refused=ans.refused, correct=is_correct(ans.text, g) if g["answerable"] else ans.refused,
             cites=[c.doc_id[:3] for c in ans.citations if c.supported], cite_ok=[c.doc_id in g["sources"] for c in ans.citations if c.supported],
             unsupported=sum(not s.supported for s in ans.sentences), any_sup=any(s.supported for s in ans.sentences), nsent=len(ans.sentences),
             ttft=ans.timings.first_token_s, total=ans.timings.total_s, dense=round(best_dense,3), raw=ans.raw, gold=g["answers"])
    rows.append(r)
    print(json.dumps(r, ensure_ascii=False), flush=True)
ansd=[r for r in rows if r["answerable"]]; un=[r for r in rows if not r["answerable"]]
acc=sum(r["correct"] for r in ansd)/len(ansd)
fr=sum(r["refused"] for r in ansd)/len(ansd)
ra=sum(r["refused"] for r in un)/len(un)
ok=[x for r in ansd for x in r["cite_ok"]]
prec=sum(ok)/max(1,len(ok))
tt=[r["ttft"] for r in rows if r["ttft"]]; tot=[r["total"] for r in rows]
ground = lambda r: r["refused"] or not r["any_sup"]
print("GROUNDED acc=%.3f false_refusal=%.3f refusal_acc=%.3f" % (
  sum(r["correct"] and not ground(r) for r in ansd)/len(ansd), sum(ground(r) for r in ansd)/len(ansd), sum(ground(r) for r in un)/len(un)))
print(f"SUMMARY model={model} acc={acc:.3f} false_refusal={fr:.3f} refusal_acc={ra:.3f} cite_prec={prec:.3f} ttft_p50={statistics.median(tt):.2f} total_p50={statistics.median(tot):.2f}")
