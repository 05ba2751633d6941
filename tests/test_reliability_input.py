"""Bad input never costs the user their index: each case gives one clear error line and
leaves what was indexed byte for byte as it was (see also test_cli.py, test_loading.py)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.answer.assistant import MAX_QUESTION_CHARS
from rag.search.index import Index
from rag.serve.render import escape_text, render_answer
from rag.serve.service import ChatService

from .conftest import make_service, run_cli

pytestmark = pytest.mark.usefixtures("fake_model")  # the CLI gets the fake embedder


def snapshot(index_dir: Path) -> dict[str, str]:
    """Every file of the index directory (but the lock) and its sha256."""
    return {
        p.relative_to(index_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(index_dir.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture
def built(capsys: pytest.CaptureFixture[str], tiny_corpus: Path, tmp_path: Path) -> Path:
    """An index of the tiny corpus, made with the CLI."""
    index_dir = tmp_path / "ix"
    code, _, _ = run_cli(capsys, "index", str(tiny_corpus), "--index-dir", str(index_dir), "--quiet")
    assert code == 0
    return index_dir


def doc_ids(capsys: pytest.CaptureFixture[str], index_dir: Path) -> list[str]:
    code, out, _ = run_cli(capsys, "docs", "--index-dir", str(index_dir), "--json")
    assert code == 0
    return sorted(row["doc_id"] for row in json.loads(out))


def assert_one_error_line(code: int, err: str, message: str) -> None:
    assert code == 1
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("rag: error: ") and message in err, err


# ------------------------------------------------------------------ bad corpora


def _empty_folder(folder: Path) -> None:
    pass


def _empty_file(folder: Path) -> None:
    (folder / "empty.txt").write_bytes(b"")


def _binary_with_nul(folder: Path) -> None:
    (folder / "photo.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 40)


def _binary_without_nul(folder: Path) -> None:
    (folder / "archive.md").write_bytes(bytes(range(1, 256)) * 40)


def _latin1(folder: Path) -> None:
    (folder / "latin.html").write_bytes("<p>Caf\xe9 cr\xe8me na\xefve</p>".encode("latin-1"))


def _broken_jsonl(folder: Path) -> None:
    (folder / "corpus.jsonl").write_text('{"_id": "a", "text": \n[1, 2]\n{"title": "no id"}\n', encoding="utf-8")


@pytest.mark.parametrize(
    ("make", "skipped"),
    [
        (_empty_folder, None),
        (_empty_file, "empty.txt: empty file"),
        (_binary_with_nul, "photo.txt: binary file (contains NUL bytes)"),
        (_binary_without_nul, "archive.md: not valid UTF-8 (byte 127)"),
        (_latin1, "latin.html: not valid UTF-8 (byte 6)"),
        (_broken_jsonl, "corpus.jsonl:1: malformed JSON"),
    ],
    ids=["empty-folder", "empty-file", "binary-nul", "binary-no-nul", "latin-1", "broken-jsonl"],
)
def test_unusable_corpus_is_one_error_and_leaves_the_index_unchanged(
    capsys: pytest.CaptureFixture[str], built: Path, tmp_path: Path, make: Callable[[Path], None], skipped: str | None
) -> None:
    before = snapshot(built)
    bad = tmp_path / "bad"
    bad.mkdir()
    make(bad)
    code, out, err = run_cli(capsys, "index", str(bad), "--index-dir", str(built), "--quiet")
    assert out == ""
    assert_one_error_line(code, err, f"no documents to index in {bad}")
    assert "the index was not changed" in err
    code, _, err = run_cli(capsys, "index", str(bad), "--index-dir", str(built))
    *reasons, last = err.splitlines()
    assert code == 1 and last.startswith("rag: error: no documents to index")
    assert all(line.startswith("skipped ") for line in reasons)  # one line per unusable file or line
    if skipped:
        assert any(skipped in line for line in reasons), reasons
    assert snapshot(built) == before
    assert doc_ids(capsys, built) == ["bakery", "chess", "volcano"]


def test_jsonl_with_broken_lines_and_duplicate_ids_adds_only_the_good_lines(
    capsys: pytest.CaptureFixture[str], built: Path, tmp_path: Path
) -> None:
    corpus = tmp_path / "news.jsonl"
    lines = [
        json.dumps({"_id": "n1", "title": "Tidal Power", "text": "A tidal power plant opened in Brittany."}),
        '{"_id": "n2", "text": "cut off in the mid',
        json.dumps({"_id": "n1", "title": "Again", "text": "A second line with the same id."}),
        "\x01\x02 not json",
        json.dumps({"id": 3, "text": "Wind farms grew in the North Sea."}),
        json.dumps({"_id": "n4\x1b[2J", "text": "An id that would clear the terminal."}),
        json.dumps({"_id": "", "text": "no id"}),
    ]
    corpus.write_text("\n".join(lines), encoding="utf-8")
    code, out, err = run_cli(capsys, "index", str(corpus), "--index-dir", str(built))
    assert code == 0 and out.startswith("2 added, 0 updated, 0 unchanged, 5 skipped")
    assert f"{corpus}:2: malformed JSON" in err and f"{corpus}:4: malformed JSON" in err
    assert f"{corpus}:3: duplicate document id 'n1' (first kept)" in err
    assert f"{corpus}:6: the id contains control characters" in err and "\x1b" not in err
    assert f"{corpus}:7: missing '_id' or 'id'" in err
    assert doc_ids(capsys, built) == ["3", "bakery", "chess", "n1", "volcano"]
    assert Index.open(built).document("n1").title == "Tidal Power"  # the first one kept


def test_control_characters_and_emoji_in_documents(capsys: pytest.CaptureFixture[str], built: Path, tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "emoji.md").write_text(
        "# Reef 🐠 Survey \x1b]0;owned\x07\n\nDivers 🤿 counted 312 parrotfish\x08\x7f on the reef 🌊 near Cairns.\u200b "
        "The survey ended on Friday 👍.\r\nA second line\tafter a tab.",
        encoding="utf-8",
    )
    (folder / "bell\x07name.txt").write_text("A file whose name rings the bell.", encoding="utf-8")
    code, out, err = run_cli(capsys, "index", str(folder), "--index-dir", str(built))
    assert code == 0 and out.startswith("1 added, 0 updated, 0 unchanged, 1 skipped")
    assert "bell\\x07name.txt: the file name contains control characters" in err and "\x07" not in err
    index = Index.open(built)
    doc = index.document("emoji")
    assert doc.title == "Reef 🐠 Survey ]0;owned"
    assert "🤿 counted 312 parrotfish on the reef 🌊" in doc.text
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", doc.title + doc.text)
    for chunk in index.chunks("emoji"):
        assert doc.text[chunk.start : chunk.end] == chunk.text  # offsets count emoji as one character
    code, out, _ = run_cli(capsys, "search", "parrotfish 🐠 reef", "--index-dir", str(built), "--json", "--k", "1")
    assert code == 0 and json.loads(out)["hits"][0]["doc_id"] == "emoji"
    code, out, _ = run_cli(capsys, "docs", "--index-dir", str(built))
    assert code == 0 and not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", out.replace("\t", " ").replace("\n", " "))


# ------------------------------------------------------------------ missing or damaged index


@pytest.mark.parametrize("command", [["docs"], ["search", "lava"], ["remove", "chess"], ["ask", "Where did the lava flow?"]])
def test_missing_index_is_one_error_and_is_not_created(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str]
) -> None:
    missing = tmp_path / "nowhere" / "ix"
    code, _, err = run_cli(capsys, *command, "--index-dir", str(missing))
    assert_one_error_line(code, err, f"no index at {missing}; create one with: rag index PATH")
    assert not missing.exists()


def _live(index_dir: Path) -> Path:
    return index_dir / (index_dir / "CURRENT").read_text()


def _edit_manifest(**changes: object) -> Callable[[Path], None]:
    def edit(index_dir: Path) -> None:
        path = _live(index_dir) / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest.update(changes)
        path.write_text(json.dumps(manifest))

    return edit


def _truncate(name: str, keep: int) -> Callable[[Path], None]:
    def cut(index_dir: Path) -> None:
        path = _live(index_dir) / name
        path.write_bytes(path.read_bytes()[:keep])

    return cut


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated-faiss": (_truncate("dense.faiss", 100), "is damaged (RuntimeError"),
    "empty-faiss": (_truncate("dense.faiss", 0), "is damaged (RuntimeError"),
    "truncated-vectors": (_truncate("vectors.npy", 100), "is damaged (ValueError"),
    "truncated-documents": (_truncate("documents.jsonl", 50), "is damaged (JSONDecodeError"),
    "manifest-not-json": (lambda d: (_live(d) / "manifest.json").write_text("{"), "has a damaged manifest"),
    "manifest-list": (lambda d: (_live(d) / "manifest.json").write_text("[]"), "damaged manifest (not a JSON object)"),
    "manifest-dim-text": (_edit_manifest(dim="abc"), "damaged manifest (invalid literal"),
    "manifest-dim-wrong": (_edit_manifest(dim=32), "vectors have 64 dimensions, the manifest says 32"),
    "manifest-chunking": (_edit_manifest(chunking={"size": 0, "overlap": 0}), "chunk size must be >= 1"),
    "manifest-dense-kind": (_edit_manifest(dense_index="magic"), "unknown dense index type 'magic'"),
    "manifest-version": (_edit_manifest(format_version=0), "has format version 0"),
    "manifest-missing": (lambda d: (_live(d) / "manifest.json").unlink(), "has a damaged manifest"),
    "bm25-missing": (lambda d: [p.unlink() for p in (_live(d) / "bm25").iterdir()], "is damaged (FileNotFoundError"),
    "current-garbage": (lambda d: (d / "CURRENT").write_text("../../etc"), "which is not a generation"),
    "current-dangling": (lambda d: (d / "CURRENT").write_text("gen-000099"), "has a damaged manifest"),
    "current-missing": (lambda d: (d / "CURRENT").unlink(), "is damaged (no "),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_index_is_one_error_everywhere_and_rebuild_recovers(
    capsys: pytest.CaptureFixture[str], built: Path, tiny_corpus: Path, damage: str
) -> None:
    harm, message = DAMAGE[damage]
    harm(built)
    damaged = snapshot(built)
    for command in (["docs"], ["search", "lava"], ["index", str(tiny_corpus)], ["remove", "chess"]):
        code, out, err = run_cli(capsys, *command, "--index-dir", str(built))
        assert_one_error_line(code, err, message)
        assert "rebuild it with: rag index --rebuild --index-dir" in err and out == ""
    assert snapshot(built) == damaged  # a failed open never "repairs" by writing over the evidence
    code, out, _ = run_cli(capsys, "index", str(tiny_corpus), "--index-dir", str(built), "--rebuild", "--quiet")
    assert code == 0 and "holds 3 documents" in out
    assert doc_ids(capsys, built) == ["bakery", "chess", "volcano"]


# ------------------------------------------------------------------ questions


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("", "the question is empty"),
        (" \t\n ", "the question is empty"),
        ("x" * 100_000, f"the question has 100000 characters; the limit is {MAX_QUESTION_CHARS}"),
    ],
    ids=["0-chars", "blank", "100000-chars"],
)
def test_unusable_questions_fail_before_any_model_loads(
    capsys: pytest.CaptureFixture[str], built: Path, question: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rag.answer.assistant

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model must not be loaded for a question that is refused anyway")

    monkeypatch.setattr(rag.answer.assistant, "load_generator", no_model)
    code, _, err = run_cli(capsys, "ask", question, "--index-dir", str(built))
    assert_one_error_line(code, err, message)


@pytest.mark.parametrize(
    ("query", "hits"), [("x", 0), ("?", 0), ("lava " * 20_000, 1), ("\x00\x1b[31m🌋 lava\u202e", 1)],
    ids=["1-char", "1-symbol", "100000-chars", "control-and-emoji"],
)
def test_search_takes_any_non_empty_query(capsys: pytest.CaptureFixture[str], built: Path, query: str, hits: int) -> None:
    code, out, _ = run_cli(capsys, "search", query, "--index-dir", str(built), "--json", "--k", "1", "--mode", "bm25")
    assert code == 0
    result = json.loads(out)
    assert len(result["hits"]) == hits and result["query"] == query
    if hits:
        assert result["hits"][0]["doc_id"] == "volcano"


@pytest.fixture
def service(tmp_path: Path, tiny_corpus: Path) -> ChatService:
    return make_service(tmp_path, tiny_corpus)


@pytest.mark.parametrize(
    "question",
    ["?", "\x07\x1b[2J Which 🍞 bakery won the sourdough prize? 🏆\u202e", "x" * MAX_QUESTION_CHARS],
    ids=["1-char", "control-and-emoji", "at-the-limit"],
)
def test_odd_questions_get_an_answer_or_a_refusal(service: ChatService, question: str) -> None:
    answer = service.ask(question)
    assert answer.question == question.strip()
    if "bakery" in question:
        assert not answer.refused and answer.citations[0].doc_id == "bakery"
        assert f"Searched for: {escape_text(answer.question)}</em>" in render_answer(answer, answer.question)
    else:
        assert answer.refused
    json.dumps(answer.to_dict())  # serialisable for /answer and rag ask --json


def test_over_long_question_is_refused_by_the_service(service: ChatService) -> None:
    with pytest.raises(ValueError, match=f"the question has 100000 characters; the limit is {MAX_QUESTION_CHARS}"):
        service.ask("y" * 100_000)


# ------------------------------------------------------------------ a 50 MB file

BIG_FILE_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import rag.search.index
    from rag.cli import main

    class CheapEmbedder:
        # What is measured is loading and chunking; a fixed vector per text costs nothing.
        name, dim = "all-MiniLM-L6-v2", 64  # the name and size the test index was built with
        def embed(self, texts):
            out = np.zeros((len(texts), 64), dtype=np.float32)
            out[:, 0] = 1.0
            out[np.arange(len(texts)), np.array([1 + len(t) % 63 for t in texts])] = 1.0
            return out / np.linalg.norm(out, axis=1, keepdims=True)
        embed_query = embed

    rag.search.index.load_embedder = lambda spec: CheapEmbedder()
    started = time.monotonic()
    code = main(["index", sys.argv[1], "--index-dir", sys.argv[2], "--quiet"])
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so it would report the forking
    # parent's size (a pytest process holding models) instead of this program's peak.
    hwm = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print("PEAK_KB", hwm, "SECONDS", round(time.monotonic() - started, 1))
    sys.exit(code)
    """
)


def write_big_file(path: Path, megabytes: int) -> None:
    """``megabytes`` of article-like text: mostly sentences and paragraphs, plus one long run
    with no full stop or line break (a page of scraped text with its punctuation lost)."""
    words = "the minister said cyber agency talks Belgium Qatar network attack ransomware data centre plan".split()
    sentence = " ".join(words) + ". "
    paragraph = (sentence * 12).rstrip() + "\n"
    flat = (" ".join(words) + " ") * 1000
    target = megabytes * 1024 * 1024
    with open(path, "w", encoding="utf-8") as f:
        f.write("A Very Long Report on Cyber Cooperation\n")
        written = 0
        while written < target * 0.8:
            written += f.write(paragraph)
        f.write("\n")
        while written < target:
            written += f.write(flat)
        f.write("\nThe end of the report.\n")


def test_a_50_mb_file_is_indexed_in_bounded_memory(capsys: pytest.CaptureFixture[str], built: Path, tmp_path: Path) -> None:
    big = tmp_path / "big" / "report.txt"
    big.parent.mkdir()
    write_big_file(big, 50)
    size_mb = big.stat().st_size / 1024 / 1024
    proc = subprocess.run(
        [sys.executable, "-c", BIG_FILE_SCRIPT, str(big), str(built)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert "1 added" in proc.stdout and "holds 4 documents" in proc.stdout
    peak_mb = int(proc.stdout.split("PEAK_KB ")[1].split()[0]) / 1024
    # Measured 640 MB for this 50 MB file (cleaned copies of the text, chunks, BM25 token
    # lists). Before runs without a full stop were streamed (rag/ingest/chunking.py) and lone spaces
    # left alone (rag/ingest/cleaning.py), 50 MB of such text took 1.5 GB.
    assert peak_mb < 16 * size_mb, f"peak RSS {peak_mb:.0f} MB for a {size_mb:.0f} MB file"
    index = Index.open(built)
    assert doc_ids(capsys, built) == ["bakery", "chess", "report", "volcano"]
    report = index.document("report")
    chunks = index.chunks("report")
    assert len(chunks) > 50_000 and max(len(c.text.split()) for c in chunks) <= 120
    for chunk in chunks[:: len(chunks) // 50]:
        assert report.text[chunk.start : chunk.end] == chunk.text
    assert chunks[-1].text.endswith("The end of the report.")
