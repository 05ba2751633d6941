"""SIGKILL `rag index` while it updates an existing index, at named stages and at timed
delays: the index must still open, answer, and hold every document it held before.

Complements test_index.py's single kill inside the write. The child process is the real
CLI (``rag.cli.main``) with the fake embedder, so a run takes seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rag.answer.assistant import Assistant
from rag.search.index import Index

from .conftest import FakeEmbedder, RoutedGenerator

BEFORE = {"bakery", "chess", "volcano"}

# Reports each stage of the update on stdout and, when RAG_TEST_PAUSE_AT names it, stops
# there (sleeps) so the parent can kill it at exactly that point.
CHILD = textwrap.dedent(
    """
    import os, shutil, sys, time
    import numpy as np
    sys.path.insert(0, {tests!r})
    from conftest import FakeEmbedder
    import rag.search.index, rag.stores.generations
    from rag.cli import main
    from rag.search.embedding import embedder_name

    pause_at = os.environ.get("RAG_TEST_PAUSE_AT", "")

    def stage(name):
        print("STAGE", name, flush=True)
        if name == pause_at:
            print("PAUSED", name, flush=True)
            time.sleep(60)

    class Embedder(FakeEmbedder):
        def embed(self, texts):
            stage("embedding")
            return super().embed(texts)

        embed_query = embed

    def wrap(module, name, label, when=lambda *a: True):
        real = getattr(module, name)
        def wrapped(*args, **kwargs):
            report = when(*args)  # decided before the call: rmtree removes what it looks at
            result = real(*args, **kwargs)
            if report:
                stage(label)
            return result
        setattr(module, name, wrapped)

    rag.search.index.load_embedder = lambda spec: Embedder(name=embedder_name(spec))
    wrap(np, "save", "saved-arrays", lambda path, *a: str(path).endswith("vectors.npy"))
    wrap(rag.stores.generations, "_fsync_tree", "written")
    wrap(rag.stores.generations.os, "rename", "renamed")
    wrap(rag.stores.generations.os, "replace", "switched")
    wrap(rag.stores.generations.shutil, "rmtree", "collected-old",
         lambda path, *a: os.path.isdir(path) and os.path.basename(path).startswith("gen-"))
    sys.exit(main(["index", *sys.argv[1:], "--quiet"]))
    """
).format(tests=str(Path(__file__).parent))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An index of the tiny corpus, and an update: 150 new documents and a changed one."""
    from .conftest import TINY_CORPUS

    root = tmp_path_factory.mktemp("crash")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in TINY_CORPUS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    index_dir = root / "index"
    Index.open(index_dir, embedder=FakeEmbedder(name="all-MiniLM-L6-v2")).add([corpus])
    update = root / "update"
    shutil.copytree(corpus, update)
    (update / "volcano.txt").write_text(
        "Mount Etna Erupts Again\nThe eruption ended on Thursday and the airport in Catania reopened.", encoding="utf-8"
    )
    for i in range(150):
        (update / f"report_{i:03d}.txt").write_text(
            f"Weather Report {i}\n" + f"Station {i} measured {i % 40} millimetres of rain and wind of {i % 90} km/h. " * 8,
            encoding="utf-8",
        )
    return index_dir, update


def child(index_dir: Path, update: Path, pause_at: str = "") -> subprocess.Popen[str]:
    env = {**os.environ, "RAG_TEST_PAUSE_AT": pause_at}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(update), "--index-dir", str(index_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def check_intact(index_dir: Path) -> set[str]:
    """The index opens, searches, answers with a citation, and holds every earlier document.
    Returns the ids it holds."""
    index = Index.open(index_dir, embedder=FakeEmbedder(name="all-MiniLM-L6-v2"))
    ids = {d.id for d in index.documents()}
    assert BEFORE <= ids
    assert len({c.chunk_id for c in index.chunks()}) == len(index)
    for doc in index.documents():
        for chunk in index.chunks(doc.id):
            assert doc.text[chunk.start : chunk.end] == chunk.text
    assert index.search("Gukesh chess olympiad Budapest", k=1)[0].doc_id == "chess"
    answer = Assistant(index, model="routed", generator=RoutedGenerator()).ask("Which bakery won the sourdough prize?")
    assert not answer.refused and answer.citations[0].doc_id == "bakery"
    return ids


def finish_and_check(index_dir: Path, update: Path) -> None:
    """A later run completes the update and leaves one generation, no temporary folders."""
    proc = child(index_dir, update)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    ids = check_intact(index_dir)
    assert len(ids) == 153
    index = Index.open(index_dir, embedder=FakeEmbedder(name="all-MiniLM-L6-v2"))
    assert "reopened" in index.document("volcano").text
    leftovers = sorted(p.name for p in index_dir.iterdir() if p.name not in ("CURRENT", ".lock"))
    assert len(leftovers) == 1 and leftovers[0].startswith("gen-"), leftovers


# Stage -> whether the update is committed when the process dies there.
STAGES = {
    "embedding": False,
    "saved-arrays": False,
    "written": False,
    "renamed": False,  # the new generation is in place, CURRENT still names the old one
    "switched": True,  # CURRENT names the new one, the old one is not deleted yet
    "collected-old": True,
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_sigkill_at_each_stage_keeps_every_document(base: tuple[Path, Path], tmp_path: Path, stage: str) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(base[0], index_dir)
    proc = child(index_dir, base[1], pause_at=stage)
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        seen.append(line.strip())
        if line.startswith("PAUSED") or time.monotonic() > deadline:
            break
    assert f"PAUSED {stage}" in seen, f"never reached {stage}: {seen} {proc.stderr.read() if proc.poll() is not None else ''}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ids = check_intact(index_dir)
    assert ("report_000" in ids) == STAGES[stage]
    finish_and_check(index_dir, base[1])


def test_sigkill_at_timed_delays_keeps_every_document(base: tuple[Path, Path], tmp_path: Path) -> None:
    """No stage hooks: kill the real run after a range of delays across its whole length."""
    calibration = tmp_path / "calibration"
    shutil.copytree(base[0], calibration)
    started = time.monotonic()
    proc = child(calibration, base[1])
    proc.communicate(timeout=120)
    duration = time.monotonic() - started
    assert proc.returncode == 0
    outcomes = []
    for n, share in enumerate([0.2, 0.4, 0.55, 0.7, 0.8, 0.88, 0.94, 0.98, 1.02]):
        index_dir = tmp_path / f"index-{n}"
        shutil.copytree(base[0], index_dir)
        proc = child(index_dir, base[1])
        time.sleep(duration * share)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        ids = check_intact(index_dir)
        outcomes.append("committed" if "report_000" in ids else "previous")
        if n % 3 == 0:
            finish_and_check(index_dir, base[1])
    assert "previous" in outcomes, outcomes  # at least some kills landed before the commit
