"""Soak and fault test: ``rag serve`` for a set time, four clients on every surface, the model killed at random.

Starts ``rag serve`` over a fresh index of a copy of ``seeds/`` and, after a warm-up that records
each question's idle answer on each surface, with the seeds alone and again with the document the
run will upload (uploaded, answered, removed), runs for ``--minutes``:

- four clients, each asking a seeds question through a surface drawn at random, then thinking a
  few seconds: the chat window's API (``gradio_client``, ``/answer``), ``/v1`` through the
  ``openai`` client, streamed and not, and MCP over HTTP (``/mcp``, the ``ask`` tool);
- a killer that every ``--kill-every`` seconds (drawn between its two values) sends SIGKILL to the
  model's process (``python -m rag.generate.process``, the server's child), alternately while no
  question is in flight ("idle") and while one is ("in flight");
- a document uploaded through the window a third of the way in, and removed two thirds in;
- the server's memory, open file descriptors and threads sampled every ``--sample`` seconds.

The report (``eval/results/soak.{json,md}``): questions asked, answered, failed (each failure with
whether a kill fell within it), answers whose text differs from the same question's idle answer on
the same surface over the same documents (one more document changes the keyword index's
statistics, so the passages' order and the answer may change with it; a question asked while the
upload or the removal was under way may match either), server RSS at start and end and its slope per hour after warm-up, descriptors
and threads at start and end, p50/p95 latency, and the server log's lines about the model process.

Usage (one run at a time on an idle machine: the model uses both cores):
    python -m eval.soak                      # 10 minutes, qwen-1.5b
    python -m eval.soak --minutes 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.common import ROOT, SEEDS, SEEDS_GOLD, cpu_name, free_port, git, percentile, read_jsonl

SURFACES = ("window", "v1", "v1-stream", "mcp")
CLIENTS = 4
UPLOAD = """Harbour Festival Opens in Tallinn

The harbour festival in Tallinn opened on Saturday with fireworks and tall ships. Organisers expect
40,000 visitors at the old port over the weekend, the city said.
"""


@dataclass
class Request:
    client: int
    surface: str
    question: str
    start: float
    end: float = 0.0
    text: str = ""
    error: str = ""
    kills: list[str] = field(default_factory=list)  # the kills that fell within it ("idle"/"in flight")

    @property
    def ok(self) -> bool:
        return not self.error


# ---------------------------------------------------------------------------------- the surfaces


def ask(surface: str, url: str, question: str) -> str:
    """The answer text of ``question`` through ``surface``; raises on any failure."""
    if surface == "window":
        from gradio_client import Client

        data = Client(url, verbose=False).predict(question, api_name="/answer")
        return str(data["answer"])
    if surface in ("v1", "v1-stream"):
        from openai import OpenAI

        client = OpenAI(base_url=f"{url}v1", api_key="none", max_retries=0, timeout=600)
        messages = [{"role": "user", "content": question}]
        if surface == "v1":
            reply = client.chat.completions.create(model="rag", messages=messages)  # type: ignore[arg-type]
            return reply.choices[0].message.content or ""
        text = ""
        for chunk in client.chat.completions.create(model="rag", messages=messages, stream=True):  # type: ignore[arg-type]
            if getattr(chunk, "error", None):
                raise RuntimeError(str(chunk.error))
            for choice in chunk.choices:
                text += choice.delta.content or ""
        return text
    if surface == "mcp":
        from mcp import Client as McpClient

        async def call() -> str:
            async with McpClient(f"{url}mcp") as client:
                result = await client.call_tool("ask", {"question": question})
                if result.is_error:
                    raise RuntimeError(str(result.content))
                return str(result.structured_content["answer"])  # type: ignore[index]

        return asyncio.run(call())
    raise ValueError(f"unknown surface {surface}")


# ---------------------------------------------------------------------------------- the server


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def model_pid(server: int) -> int | None:
    for pid in children(server):
        try:
            if b"rag.generate.process" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    return None


def vitals(pid: int) -> dict[str, float]:
    """The server's resident memory (MB), threads and open file descriptors now."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"t": time.monotonic(), "rss_mb": int(status["VmRSS"].split()[0]) / 1024, "threads": int(status["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def slope_per_hour(samples: list[dict[str, float]], key: str) -> float:
    """Least-squares slope of ``key`` over time, per hour."""
    if len(samples) < 3:
        return 0.0
    ts = [s["t"] for s in samples]
    ys = [s[key] for s in samples]
    mean_t, mean_y = statistics.fmean(ts), statistics.fmean(ys)
    var = sum((t - mean_t) ** 2 for t in ts)
    return sum((t - mean_t) * (y - mean_y) for t, y in zip(ts, ys)) / var * 3600 if var else 0.0


def wait_up(url: str, server: subprocess.Popen[Any], timeout: float = 600) -> None:
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if server.poll() is not None:
            raise SystemExit(f"rag serve exited with {server.returncode} before it was up")
        try:
            with urllib.request.urlopen(f"{url}v1/models", timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"rag serve was not up within {timeout:g} s")


# ---------------------------------------------------------------------------------- the run


class Soak:
    def __init__(self, url: str, server: subprocess.Popen[Any], questions: list[str], args: argparse.Namespace) -> None:
        self.url, self.server, self.questions, self.args = url, server, questions, args
        self.random = random.Random(args.seed)
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self.in_flight: set[int] = set()  # ids of requests not yet answered
        self.kills: list[dict[str, Any]] = []
        self.events: list[str] = []
        self.samples: list[dict[str, float]] = []
        # when the upload started and ended, and the removal started and ended
        self.moments = [float("inf")] * 4
        self.stop = threading.Event()

    def client(self, n: int) -> None:
        rng = random.Random(self.args.seed * 100 + n)
        while not self.stop.is_set():
            request = Request(n, rng.choice(SURFACES), rng.choice(self.questions), time.monotonic())
            with self.lock:
                self.requests.append(request)
                self.in_flight.add(id(request))
            try:
                request.text = ask(request.surface, self.url, request.question)
            except Exception as e:  # noqa: BLE001 - every failure is recorded and reported
                request.error = f"{type(e).__name__}: {e}"[:400]
            request.end = time.monotonic()
            with self.lock:
                self.in_flight.discard(id(request))
            self.stop.wait(rng.uniform(*self.args.think))

    def killer(self) -> None:
        mode = "idle"
        while not self.stop.wait(self.random.uniform(*self.args.kill_every)):
            give_up = time.monotonic() + 90
            while time.monotonic() < give_up and not self.stop.is_set():  # wait for the moment the mode wants
                with self.lock:
                    busy = bool(self.in_flight)
                if busy == (mode == "in flight"):
                    break
                time.sleep(0.2)
            if mode == "in flight":
                time.sleep(self.random.uniform(0.5, 3.0))  # somewhere in the answer, not at its start
            pid = model_pid(self.server.pid)
            if pid is None or self.stop.is_set():
                continue
            with self.lock:
                busy_now = bool(self.in_flight)
                os.kill(pid, signal.SIGKILL)
                now = time.monotonic()
                self.kills.append({"t": now, "mode": mode, "busy": busy_now, "pid": pid})
                for r in self.requests:
                    if id(r) in self.in_flight:
                        r.kills.append(mode)
            mode = "in flight" if mode == "idle" else "idle"

    def documents(self, upload: Path) -> None:
        from gradio_client import Client, handle_file

        third = self.args.minutes * 60 / 3
        if self.stop.wait(third):
            return
        window = Client(self.url, verbose=False)  # one session: its documents list offers what it added
        self.moments[0] = time.monotonic()
        try:
            status, *_ = window.predict([handle_file(upload)], api_name="/add_documents")
            self.events.append(f"upload: {status.splitlines()[0]}")
        except Exception as e:  # noqa: BLE001 - reported
            self.events.append(f"upload failed: {e}")
        self.moments[1] = time.monotonic()
        if self.stop.wait(third):
            return
        self.moments[2] = time.monotonic()
        try:
            status, *_ = window.predict(upload.stem, api_name="/remove_document")
            self.events.append(f"removal: {status}")
        except Exception as e:  # noqa: BLE001 - reported
            self.events.append(f"removal failed: {e}")
        self.moments[3] = time.monotonic()

    def sampler(self) -> None:
        while True:
            self.samples.append(vitals(self.server.pid))
            if self.stop.wait(self.args.sample):
                self.samples.append(vitals(self.server.pid))
                return

    def run(self, upload: Path) -> None:
        threads = [threading.Thread(target=self.client, args=(n,), daemon=True) for n in range(CLIENTS)]
        threads += [threading.Thread(target=f, daemon=True) for f in (self.killer, self.sampler)]
        threads.append(threading.Thread(target=self.documents, args=(upload,), daemon=True))
        for t in threads:
            t.start()
        deadline = time.monotonic() + self.args.minutes * 60
        while time.monotonic() < deadline:
            time.sleep(min(30, max(0.1, deadline - time.monotonic())))
            with self.lock:
                done = [r for r in self.requests if r.end]
            print(f"soak: {len(done)} answered or failed, {len(self.kills)} kills, "
                  f"{self.samples[-1]['rss_mb']:.0f} MB", file=sys.stderr, flush=True)
        self.stop.set()
        for t in threads:
            t.join(timeout=900)  # the clients finish the question they are asking


def idle_answers(url: str, questions: list[str]) -> dict[str, str]:
    """Each question's answer on each surface, asked one at a time with nothing killed."""
    answers = {}
    for surface in SURFACES:
        for question in questions:
            answers[f"{surface}\t{question}"] = ask(surface, url, question)
    return answers


def idle_answers_with(url: str, questions: list[str], upload: Path) -> dict[str, str]:
    """:func:`idle_answers` with ``upload`` added through the window, which then removes it."""
    from gradio_client import Client, handle_file

    window = Client(url, verbose=False)
    window.predict([handle_file(upload)], api_name="/add_documents")
    try:
        return idle_answers(url, questions)
    finally:
        window.predict(upload.stem, api_name="/remove_document")


def expected(r: Request, moments: list[float], idle: dict[str, str], with_upload: dict[str, str]) -> list[str]:
    """The idle answers ``r`` may match: the one over the documents indexed while it was asked
    (either, when the upload or the removal was under way meanwhile)."""
    key = f"{r.surface}\t{r.question}"
    up_start, up_end, rm_start, rm_end = moments
    overlaps = lambda a, b: r.start <= b and r.end >= a  # noqa: E731
    if overlaps(up_start, up_end) or overlaps(rm_start, rm_end):
        return [idle[key], with_upload[key]]
    return [with_upload[key]] if up_end < r.start and r.end < rm_start else [idle[key]]


def report(soak: Soak, idle: dict[str, str], with_upload: dict[str, str], warmup_s: float, log_lines: list[str],
           args: argparse.Namespace) -> dict[str, Any]:
    done = [r for r in soak.requests if r.end]
    failed = [r for r in done if not r.ok]
    start, end = soak.moments[0], soak.moments[3]
    uploaded = {id(r) for r in done if r.end >= start and r.start <= end}
    differ = [r for r in done if r.ok and r.text.strip() not in {t.strip() for t in expected(r, soak.moments, idle, with_upload)}]
    latencies = [r.end - r.start for r in done if r.ok]
    settle = soak.samples[0]["t"] + warmup_s
    after = [s for s in soak.samples if s["t"] >= settle] or soak.samples
    first, last = after[0], soak.samples[-1]
    return {
        "command": " ".join(["python", "-m", "eval.soak", *sys.argv[1:]]), "code": git("describe", "--always", "--dirty"),
        "date": time.strftime("%Y-%m-%d %H:%M"), "cpu": cpu_name(), "minutes": args.minutes, "model": args.model,
        "asked": len(done), "answered": len(done) - len(failed), "failed": len(failed),
        "failed_outside_a_kill": sum(1 for r in failed if not r.kills),
        "differ_from_idle": len(differ),
        "asked_with_upload_indexed": len(uploaded), "differ_with_upload_indexed": sum(id(r) in uploaded for r in differ),
        "idle_answers_changed_by_upload": sum(idle[k].strip() != with_upload[k].strip() for k in idle),
        "per_surface": {s: {"asked": sum(r.surface == s for r in done), "failed": sum(r.surface == s for r in failed)}
                        for s in SURFACES},
        "kills": {"idle": sum(k["mode"] == "idle" for k in soak.kills), "in flight": sum(k["mode"] == "in flight" for k in soak.kills),
                  "idle with a question queued": sum(k["mode"] == "idle" and k["busy"] for k in soak.kills)},
        "latency_s": {"p50": round(percentile(latencies, 50), 2), "p95": round(percentile(latencies, 95), 2)} if latencies else {},
        "rss_mb": {"start": round(first["rss_mb"], 1), "end": round(last["rss_mb"], 1),
                   "slope_per_hour_after_warmup": round(slope_per_hour(after, "rss_mb"), 1), "warmup_s": warmup_s},
        "fds": {"start": first["fds"], "end": last["fds"]}, "threads": {"start": first["threads"], "end": last["threads"]},
        "events": soak.events,
        "failures": [{"surface": r.surface, "question": r.question, "error": r.error, "kills_within": r.kills} for r in failed],
        "differences": [{"surface": r.surface, "question": r.question, "idle": expected(r, soak.moments, idle, with_upload), "now": r.text,
                         "kills_within": r.kills, "upload_indexed": id(r) in uploaded} for r in differ],
        "server_log": log_lines,
        "samples": [{k: round(v, 1) for k, v in s.items()} for s in soak.samples],
    }


def markdown(result: dict[str, Any]) -> str:
    r = result
    lines = [
        "# Soak and fault test", "",
        f"`{r['command']}` at {r['code']}, {r['date']}, {r['cpu']}, {r['minutes']} minutes, {r['model']}.", "",
        "| asked | answered | failed | failed outside a kill | answers differing from idle | kills (idle / in flight) |",
        "|---|---|---|---|---|---|",
        f"| {r['asked']} | {r['answered']} | {r['failed']} | {r['failed_outside_a_kill']} | {r['differ_from_idle']} | "
        f"{r['kills']['idle']} / {r['kills']['in flight']} |", "",
        f"While the uploaded document was indexed: {r['asked_with_upload_indexed']} asked, "
        f"{r['differ_with_upload_indexed']} answers differing from their idle answer over the same documents "
        f"(the upload changes {r['idle_answers_changed_by_upload']} of the idle answers themselves).", "",
        "| server | start | end | slope per hour after warm-up |", "|---|---|---|---|",
        f"| RSS (MB) | {r['rss_mb']['start']} | {r['rss_mb']['end']} | {r['rss_mb']['slope_per_hour_after_warmup']} |",
        f"| file descriptors | {r['fds']['start']} | {r['fds']['end']} | |",
        f"| threads | {r['threads']['start']} | {r['threads']['end']} | |", "",
        f"Latency: p50 {r['latency_s'].get('p50')} s, p95 {r['latency_s'].get('p95')} s.", "",
        "| surface | asked | failed |", "|---|---|---|",
        *[f"| {s} | {v['asked']} | {v['failed']} |" for s, v in r["per_surface"].items()], "",
        "Events: " + ("; ".join(r["events"]) or "none"), "",
    ]
    if r["failures"]:
        lines += ["## Failures", ""] + [f"- {f['surface']}: {f['question']} -> {f['error']} (kills within: {f['kills_within']})"
                                        for f in r["failures"]] + [""]
    if r["differences"]:
        lines += ["## Answers that differ from their idle answer", ""] + [
            f"- {d['surface']}{' (upload indexed)' if d['upload_indexed'] else ''}: {d['question']}\n"
            f"  - idle: {d['idle']!r}\n  - now: {d['now']!r}" for d in r["differences"]] + [""]
    lines += ["## The server log about the model process", "", "```", *r["server_log"][-40:], "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the faults run, after the warm-up (default 10)")
    parser.add_argument("--model", default="qwen-1.5b")
    parser.add_argument("--questions", type=int, default=5, help="seeds questions asked (default 5)")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(60.0, 120.0), metavar=("MIN", "MAX"),
                        help="seconds between kills, drawn between the two (default 60 120: under the crash-loop limit)")
    parser.add_argument("--think", type=float, nargs=2, default=(3.0, 30.0), metavar=("MIN", "MAX"),
                        help="seconds a client waits between questions (default 3 30)")
    parser.add_argument("--sample", type=float, default=15.0, help="seconds between memory samples")
    parser.add_argument("--warmup", type=float, default=120.0, help="seconds of the run left out of the RSS slope")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "results" / "soak.json")
    args = parser.parse_args(argv)
    gold = [q for q in read_jsonl(SEEDS_GOLD) if q["answerable"]]
    questions = [q["question"] for q in gold[: args.questions]]
    with tempfile.TemporaryDirectory(prefix="rag-soak-") as tmp:
        corpus, index_dir = Path(tmp) / "seeds", Path(tmp) / "index"
        shutil.copytree(SEEDS, corpus)
        upload = Path(tmp) / "harbour_festival.txt"
        upload.write_text(UPLOAD, encoding="utf-8")
        subprocess.run([sys.executable, "-m", "rag", "index", str(corpus), "--index-dir", str(index_dir), "--quiet"], check=True, cwd=ROOT)
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        log = Path(tmp) / "serve.log"
        env = {**os.environ, "RAG_DATA_DIR": str(Path(tmp) / "data")}
        with log.open("w") as log_file:
            server = subprocess.Popen([sys.executable, "-m", "rag", "serve", "--index-dir", str(index_dir), "--model", args.model,
                                       "--port", str(port)], stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
            try:
                wait_up(url, server)
                print("soak: recording the idle answers", file=sys.stderr, flush=True)
                idle = idle_answers(url, questions)
                with_upload = idle_answers_with(url, questions, upload)
                soak = Soak(url, server, questions, args)
                soak.run(upload)
            finally:
                server.terminate()
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()
        log_lines = [line for line in log.read_text(errors="replace").splitlines() if "model process" in line]
    result = report(soak, idle, with_upload, args.warmup, log_lines, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(json.dumps({k: v for k, v in result.items() if k not in ("samples", "server_log", "differences")}, indent=1))
    return 0 if result["failed_outside_a_kill"] == 0 and result["differ_from_idle"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
