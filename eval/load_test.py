"""Load test: many questions at once through the chat window's API, answered by the real model.

Starts ``rag serve`` on 127.0.0.1 (a free port) over a fresh index of ``seeds/``, sends
``--requests`` single-fact questions from the gold set at the same moment, each from its own
``gradio_client`` session to the ``/answer`` endpoint, and checks that every response is
for its own question, cites that question's source article and contains a gold answer.
The server answers one question at a time (the model is not thread-safe), so what is
measured is queueing under load: errors, wrong or mixed answers, latency, throughput and
the server's memory. Bounded: at most 24 requests and ``--timeout`` seconds, loopback only.

With ``--generator-server`` the model runs in a ``python -m llama_cpp.server`` of its own
(started and stopped here, as ``python -m rag.generate.runtime server``, which loads it as the project
does on every CPU) and ``rag serve`` uses it as ``openai:URL#MODEL``; the burst is
sent twice, to a ``rag serve --concurrency 1`` (the locked path) and to one with
``--concurrency C``, and the throughputs are compared (``load_test_server.{json,md}``).

Usage:
    python -m eval.load_test                      # qwen-0.5b, 16 requests -> eval/results/load_test.{json,md}
    python -m eval.load_test --model qwen-1.5b --requests 24
    python -m eval.load_test --model qwen-1.5b --generator-server --concurrency 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eval.common import ROOT, SEEDS, SEEDS_GOLD, free_port, git, percentile, read_jsonl

MAX_REQUESTS = 24


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def questions(n: int) -> list[dict[str, Any]]:
    gold = read_jsonl(SEEDS_GOLD)
    chosen = [q for q in gold if q["type"] == "single-fact" and q["answerable"]]
    if len(chosen) < n:
        chosen += [q for q in gold if q["answerable"] and q not in chosen and len(q["sources"]) == 1]
    return chosen[:n]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen-0.5b", help="qwen-0.5b (default, to keep the run short) or qwen-1.5b")
    parser.add_argument("--requests", type=int, default=16, help=f"concurrent questions (1 to {MAX_REQUESTS})")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=80)
    parser.add_argument("--timeout", type=float, default=1500, help="give up after this many seconds")
    parser.add_argument("--out", type=Path, default=None,
                        help="results file (default eval/results/load_test.json, or load_test_server.json)")
    parser.add_argument("--generator-server", action="store_true",
                        help="run the model in a llama_cpp.server and compare --concurrency 1 with --concurrency C")
    parser.add_argument("--concurrency", type=int, default=4, help="with --generator-server: questions at once (default 4)")
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= MAX_REQUESTS:
        parser.error(f"--requests must be 1 to {MAX_REQUESTS}, got {args.requests}")
    from gradio_client import Client

    chosen = questions(args.requests)
    command = " ".join(["python", "-m", "eval.load_test", *(argv if argv is not None else sys.argv[1:])])
    code = git("describe", "--always", "--dirty")
    with tempfile.TemporaryDirectory(prefix="rag-load-") as tmp:
        index_dir = Path(tmp) / "index"
        subprocess.run([sys.executable, "-m", "rag", "index", str(SEEDS), "--index-dir", str(index_dir), "--quiet"],
                       check=True, cwd=ROOT)
        serve = [sys.executable, "-m", "rag", "serve", "--index-dir", str(index_dir), "--host", "127.0.0.1",
                 "--max-tokens", str(args.max_tokens)]
        if not args.generator_server:
            result = load_one(serve + ["--model", args.model, "--threads", str(args.threads)], chosen, args, Client)
            result.update(command=command, code=code)
            write(result, args.out or ROOT / "eval" / "results" / "load_test.json")
            print(json.dumps({k: v for k, v in result.items() if k != "requests"}, indent=1))
            return 0 if result["ok"] else 1
        with generator_server(args.model, args.threads, Path(tmp) / "server.log") as model:
            runs = [load_one(serve + ["--model", model, "--concurrency", str(c)], chosen, args, Client)
                    for c in (1, args.concurrency)]
    report = {"command": command, "code": code, "date": time.strftime("%Y-%m-%d %H:%M"), "model": args.model,
              "load_average": os.getloadavg(), "concurrency": [1, args.concurrency], "runs": runs,
              "throughput_ratio": round(runs[1]["throughput_per_min"] / runs[0]["throughput_per_min"], 2)}
    out = args.out or ROOT / "eval" / "results" / "load_test_server.json"
    write_server(report, out)
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=1))
    return 0 if all(r["ok"] for r in runs) else 1


def load_one(cmd: list[str], chosen: list[dict[str, Any]], args: argparse.Namespace, Client: Any) -> dict[str, Any]:
    """Start ``rag serve`` (``cmd``) on a free port, send the burst, stop it."""
    port = free_port()
    server = subprocess.Popen(cmd + ["--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        return run_load(server, f"http://127.0.0.1:{port}/", chosen, args, Client)
    finally:
        stop(server)


def stop(proc: subprocess.Popen[Any], timeout: float = 30) -> None:
    """Ask ``proc`` to end; kill it if it has not within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextmanager
def generator_server(model: str, threads: int, log: Path) -> Iterator[str]:
    """A ``llama_cpp.server`` serving the bundled ``model`` on a free port; yields its ``openai:`` name."""
    from rag.core.bundled import gguf_path

    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "rag.generate.runtime", "server", "--model", str(gguf_path(model)),
                                 "--model_alias", model, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
                                 "--n_threads", str(threads), "--verbose", "False",
                                 # by default a new request cuts off the one streaming (its answer ends
                                 # early, and is refused): queue them instead
                                 "--interrupt_requests", "False"], stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"llama_cpp.server exited with {proc.returncode}: {log.read_text()[-500:]}")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("llama_cpp.server did not start in 180 s") from None
                time.sleep(0.5)
        yield f"openai:{base}#{model}"
    finally:
        stop(proc)


def write_server(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    lines = ["# Load test: the model on a generator server", "",
             f"Command: `{report['command']}` ({report['date']}, model {report['model']}, code {report['code']}, "
             f"load average after {report['load_average'][0]:.2f}). {report['runs'][0]['concurrent_requests']} questions "
             "at once through `/answer` of a `rag serve` whose model is a `python -m llama_cpp.server` on the same "
             "machine, once with `--concurrency 1` (one answer at a time, as with an in-process model) and once with "
             f"`--concurrency {report['concurrency'][1]}`.", "",
             "| concurrency | errors | mixed | correct | wall s | answers/min | latency p50 / p95 s |", "|---|---|---|---|---|---|---|"]
    for c, r in zip(report["concurrency"], report["runs"]):
        lines.append(f"| {c} | {r['errors']} | {r['responses_for_another_question']} | {r['correct']} | {r['wall_s']} | "
                     f"{r['throughput_per_min']} | {r['latency_p50_s']} / {r['latency_p95_s']} |")
    lines += ["", f"Throughput, concurrency {report['concurrency'][1]} against 1: {report['throughput_ratio']}x."]
    path.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_load(server: subprocess.Popen[str], url: str, chosen: list[dict[str, Any]], args: argparse.Namespace, Client: Any) -> dict[str, Any]:
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            Client(url, verbose=False)
            break
        except Exception:  # noqa: BLE001 - not listening yet
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"rag serve did not start: {server.stderr.read() if server.stderr else ''}") from None
            time.sleep(1)
    warm = Client(url, verbose=False).predict("Who directs the Centre for Cybersecurity Belgium?", api_name="/answer")
    baseline_mb = rss_mb(server.pid)
    peak = {"mb": baseline_mb}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                peak["mb"] = max(peak["mb"], rss_mb(server.pid))
            except OSError:
                return
            time.sleep(0.2)

    clients = [Client(url, verbose=False) for _ in chosen]  # one session each
    records: list[dict[str, Any]] = [{} for _ in chosen]
    barrier = threading.Barrier(len(chosen))

    def ask(i: int) -> None:
        q = chosen[i]
        barrier.wait()
        started = time.monotonic()
        try:
            job = clients[i].submit(q["question"], api_name="/answer")
            data = job.result(timeout=max(1.0, deadline - time.monotonic()))
            error = None
        except Exception as e:  # noqa: BLE001 - recorded and counted
            data, error = None, f"{type(e).__name__}: {e}"
        records[i] = {"id": q["id"], "question": q["question"], "latency_s": round(time.monotonic() - started, 2),
                      "error": error, "data": data}

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(chosen))]
    burst_started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - burst_started
    stop.set()
    watcher.join()

    rows = []
    for q, r in zip(chosen, records):
        data = r["data"] or {}
        answer = data.get("answer") or ""
        cited = sorted({c["doc_id"] for c in data.get("citations", []) if c.get("supported")})
        rows.append({
            "id": r["id"], "latency_s": r["latency_s"], "error": r["error"],
            "own_question": data.get("question") == q["question"],
            "cites_own_source": bool(cited) and set(cited) <= set(q["sources"]),
            "correct": any(a.lower() in answer.lower() for a in q["answers"]),
            "refused": data.get("refused"),
            "answer": answer,
        })
    latencies = [r["latency_s"] for r in rows if not r["error"]]
    errors = sum(bool(r["error"]) for r in rows)
    mixed = sum(not r["own_question"] for r in rows if not r["error"])
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "model": args.model,
        "requests": rows,
        "concurrent_requests": len(rows),
        "errors": errors,
        "responses_for_another_question": mixed,
        "cite_own_source": sum(r["cites_own_source"] for r in rows),
        "correct": sum(r["correct"] for r in rows),
        "refused": sum(bool(r["refused"]) for r in rows),
        "wall_s": round(wall, 1),
        "throughput_per_min": round(60 * len(latencies) / wall, 2) if wall else None,
        "latency_p50_s": round(statistics.median(latencies), 1) if latencies else None,
        "latency_p95_s": round(percentile(latencies, 95), 1) if latencies else None,
        "latency_max_s": max(latencies) if latencies else None,
        "warm_up_answer": warm.get("answer"),
        "server_rss_before_mb": round(baseline_mb),
        "server_rss_peak_mb": round(peak["mb"]),
        # Bounded: the burst may not grow the server by more than 300 MB (one model, queued work).
        "ok": errors == 0 and mixed == 0 and peak["mb"] - baseline_mb < 300,
    }


def write(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    n = result["concurrent_requests"]
    lines = [
        "# Load test: concurrent questions through the Gradio API",
        "",
        f"Command: `{result['command']}` ({result['date']}, model {result['model']}, code {result['code']}).",
        f"{n} questions sent at once, each from its own `gradio_client` session to `/answer` on a "
        "`rag serve` at 127.0.0.1, over a fresh index of `seeds/`. The server answers one at a time.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| errors | {result['errors']} of {n} |",
        f"| responses for another question | {result['responses_for_another_question']} |",
        f"| answers citing their own question's source | {result['cite_own_source']} of {n} |",
        f"| answers containing a gold answer | {result['correct']} of {n} |",
        f"| refusals | {result['refused']} |",
        f"| wall time of the burst | {result['wall_s']} s |",
        f"| throughput | {result['throughput_per_min']} answers/min |",
        f"| latency p50 / p95 / max | {result['latency_p50_s']} / {result['latency_p95_s']} / {result['latency_max_s']} s |",
        f"| server RSS before / peak | {result['server_rss_before_mb']} / {result['server_rss_peak_mb']} MB |",
        f"| passed (no error, no mixing, memory growth < 300 MB) | {'yes' if result['ok'] else 'no'} |",
        "",
        "Latency is from sending to the full answer, so it includes the wait in the queue: the "
        f"last of {n} waits for the {n - 1} before it. The machine's 2 cores were shared with other work.",
        "",
        "| id | latency s | own question | cites own source | correct | answer |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["requests"]:
        answer = (r["error"] or r["answer"]).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {r['id']} | {r['latency_s']} | {r['own_question']} | {r['cites_own_source']} | {r['correct']} | {answer} |")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
