from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run_cli

pytestmark = pytest.mark.usefixtures("fake_model")


def test_index_search_docs_remove(capsys: pytest.CaptureFixture[str], tiny_corpus: Path, tmp_path: Path) -> None:
    (tiny_corpus / "notes.xyz").write_bytes(b"PK\x03\x04")
    d = str(tmp_path / "ix")
    code, out, err = run_cli(capsys, "index", str(tiny_corpus), "--index-dir", d)
    assert code == 0
    assert "3 added, 0 updated, 0 unchanged, 1 skipped" in out
    assert "notes.xyz: unsupported file type '.xyz'" in err

    code, out, _ = run_cli(capsys, "index", str(tiny_corpus), "--index-dir", d, "--quiet")
    assert code == 0 and "0 added, 0 updated, 3 unchanged" in out

    code, out, _ = run_cli(capsys, "search", "Etna lava eruption", "--index-dir", d, "--json", "--k", "2")
    result = json.loads(out)
    assert code == 0 and len(result["hits"]) == 2
    hit = result["hits"][0]
    assert set(hit) >= {"doc_id", "chunk_id", "title", "text", "start", "end", "score", "rank"}
    assert hit["doc_id"] == "volcano" and hit["rank"] == 1 and hit["chunk_id"] == "volcano#0"

    code, out, _ = run_cli(capsys, "search", "Etna lava eruption", "--index-dir", d, "--mode", "bm25")
    assert code == 0 and out.startswith("1. [") and "volcano" in out

    code, out, _ = run_cli(capsys, "docs", "--index-dir", d, "--json")
    assert sorted(row["doc_id"] for row in json.loads(out)) == ["bakery", "chess", "volcano"]

    code, out, _ = run_cli(capsys, "remove", "chess", "--index-dir", d)
    assert code == 0 and "2 documents left" in out
    code, _, err = run_cli(capsys, "remove", "chess", "--index-dir", d)
    assert code == 1 and err.startswith("rag: error: no document 'chess'") and err.count("\n") == 1


def test_rebuild_from_cli(capsys: pytest.CaptureFixture[str], tiny_corpus: Path, tmp_path: Path) -> None:
    d = str(tmp_path / "ix")
    run_cli(capsys, "index", str(tiny_corpus), "--index-dir", d)
    code, out, _ = run_cli(capsys, "index", str(tiny_corpus / "chess.md"), "--index-dir", d, "--rebuild", "--chunk-size", "40", "--overlap", "10")
    assert code == 0 and "holds 1 documents" in out
    code, out, _ = run_cli(capsys, "index", str(tiny_corpus), "--index-dir", d, "--chunk-size", "60")
    assert code == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "anything"], "no index at"),
        (["docs"], "no index at"),
        (["index", "/no/such/place"], "no such file or folder: /no/such/place"),
        (["index", "{empty}"], "no documents to index"),
        (["index", "{corpus}", "--chunk-size", "10", "--overlap", "10"], "overlap must be"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_corpus: Path, argv: list[str], message: str
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [a.format(empty=empty, corpus=tiny_corpus) for a in argv] + ["--index-dir", str(tmp_path / "ix")]
    code, _, err = run_cli(capsys, *argv)
    assert code == 1
    assert err.startswith("rag: error: ") and message in err and err.count("\n") == 1


def test_bad_input_leaves_existing_index_unchanged(capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_corpus: Path) -> None:
    d = tmp_path / "ix"
    run_cli(capsys, "index", str(tiny_corpus), "--index-dir", str(d))
    before = (d / "CURRENT").read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "blank.txt").write_text("")
    code, _, err = run_cli(capsys, "index", str(empty), "--index-dir", str(d))
    assert code == 1 and "1 skipped" in err
    assert (d / "CURRENT").read_text() == before
    code, out, _ = run_cli(capsys, "docs", "--index-dir", str(d), "--json")
    assert len(json.loads(out)) == 3


def test_search_k_must_be_positive(capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_corpus: Path) -> None:
    d = str(tmp_path / "ix")
    run_cli(capsys, "index", str(tiny_corpus), "--index-dir", d)
    code, _, err = run_cli(capsys, "search", "lava", "--k", "0", "--index-dir", d)
    assert code == 1 and "k must be > 0, got 0" in err


def test_index_dir_from_environment(capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "env-ix"))
    code, _, _ = run_cli(capsys, "index", str(tiny_corpus))
    assert code == 0 and (tmp_path / "env-ix" / "CURRENT").is_file()


def test_ask_prints_the_page_of_a_pdf_citation(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rag.answer.assistant

    from .conftest import ScriptedGenerator, make_pdf

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "report.pdf").write_bytes(make_pdf([
        "Annual Cyber Report. The agency counted incidents across the country in the year.",
        "Ransomware attacks on hospitals doubled in the year, the agency said.",
    ]))
    d = str(tmp_path / "ix")
    assert run_cli(capsys, "index", str(folder), "--index-dir", d)[0] == 0
    monkeypatch.setattr(rag.answer.assistant, "load_generator",
                        lambda *a, **k: ScriptedGenerator("The agency said they doubled in the year [1]."))
    code, out, _ = run_cli(capsys, "ask", "Ransomware attacks on hospitals in the year?", "--index-dir", d, "--no-judge")
    assert code == 0
    assert "[1] Annual Cyber Report" in out and "(report, p. 2, chars " in out
    code, out, _ = run_cli(capsys, "ask", "Ransomware attacks on hospitals in the year?", "--index-dir", d, "--no-judge", "--json")
    assert json.loads(out)["citations"][0]["page"] == 2


def test_index_sync_says_how_many_were_removed(capsys: pytest.CaptureFixture[str], tiny_corpus: Path, tmp_path: Path) -> None:
    d = str(tmp_path / "ix")
    assert run_cli(capsys, "index", str(tiny_corpus), "--index-dir", d)[0] == 0
    (tiny_corpus / "chess.md").unlink()
    code, out, _ = run_cli(capsys, "index", str(tiny_corpus), "--index-dir", d, "--quiet")
    assert code == 0 and "removed" not in out and "holds 3 documents" in out
    code, out, _ = run_cli(capsys, "index", str(tiny_corpus), "--index-dir", d, "--sync", "--quiet")
    assert code == 0 and "0 added, 0 updated, 2 unchanged, 0 skipped, 1 removed" in out and "holds 2 documents" in out


def test_an_unknown_model_is_an_error_not_a_refusal(capsys: pytest.CaptureFixture[str], tiny_corpus: Path, tmp_path: Path) -> None:
    d = str(tmp_path / "ix")
    assert run_cli(capsys, "index", str(tiny_corpus), "--index-dir", d)[0] == 0
    code, out, err = run_cli(capsys, "ask", "Where did the lava flow?", "--model", "no-such-model", "--index-dir", d)
    assert code == 1 and out == "" and "unknown model 'no-such-model'" in err


def test_a_file_that_is_not_a_model_is_one_line(capsys: pytest.CaptureFixture[str], tiny_corpus: Path, tmp_path: Path) -> None:
    d = str(tmp_path / "ix")
    assert run_cli(capsys, "index", str(tiny_corpus), "--index-dir", d)[0] == 0
    broken = tmp_path / "broken.gguf"
    broken.write_text("not a model")
    code, _, err = run_cli(capsys, "ask", "Where did the lava flow?", "--model", str(broken), "--index-dir", d)
    assert code == 1 and "cannot load the model" in err and len(err.strip().splitlines()) == 1


def test_search_and_ask_limited_to_documents_and_dates(
    capsys: pytest.CaptureFixture[str], tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rag.answer.assistant

    from .conftest import ScriptedGenerator

    (tiny_corpus / "harbour.txt").write_text("Harbour Reopens\nValletta, 5 March 2024\nThe harbour reopened after the storm.")
    d = str(tmp_path / "ix")
    assert run_cli(capsys, "index", str(tiny_corpus), "--index-dir", d)[0] == 0
    code, out, _ = run_cli(capsys, "search", "Etna lava eruption", "--index-dir", d, "--doc", "chess", "--doc", "bakery", "--json")
    assert code == 0 and {h["doc_id"] for h in json.loads(out)["hits"]} == {"chess", "bakery"}
    code, out, _ = run_cli(capsys, "search", "Etna lava eruption", "--index-dir", d, "--since", "2024-03-01", "--until", "2024-03-05")
    assert code == 0 and out.startswith("1. [") and "harbour  Harbour Reopens  (2024-03-05)" in out and "volcano" not in out
    code, out, _ = run_cli(capsys, "search", "harbour", "--index-dir", d, "--until", "2024-03-04")
    assert code == 0 and out == "no matching passages\n"  # the other articles have no date

    monkeypatch.setattr(rag.answer.assistant, "load_generator",
                        lambda *a, **k: ScriptedGenerator("The Miller bakery in Ashford won the national sourdough prize [1]."))
    code, out, _ = run_cli(capsys, "ask", "Which bakery won the sourdough prize?", "--index-dir", d, "--doc", "chess",
                           "--no-judge", "--json")
    assert code == 0 and {h["doc_id"] for h in json.loads(out)["retrieved"]} == {"chess"}


@pytest.mark.parametrize(("argv", "message"), [
    (["search", "lava", "--doc", "nope"], "no document 'nope' in the index at"),
    (["ask", "Where did the lava flow?", "--doc", "volcano", "--doc", "nope"], "no document 'nope' in the index at"),
    (["search", "lava", "--since", "5 March 2024"], "since must be a date as YYYY-MM-DD, got '5 March 2024'"),
    (["ask", "Where did the lava flow?", "--until", "2024-02-30"], "until must be a date as YYYY-MM-DD"),
    (["search", "lava", "--since", "2024-03-01", "--until", "2024-01-01"], "since (2024-03-01) is after until (2024-01-01)"),
])
def test_a_bad_scope_is_one_line(
    capsys: pytest.CaptureFixture[str], tiny_corpus: Path, tmp_path: Path, argv: list[str], message: str
) -> None:
    d = str(tmp_path / "ix")
    assert run_cli(capsys, "index", str(tiny_corpus), "--index-dir", d)[0] == 0
    code, out, err = run_cli(capsys, *argv, "--index-dir", d)
    assert code == 1 and out == "" and err.startswith("rag: error: ") and message in err and err.count("\n") == 1


def test_summarize_names_an_unknown_document_or_too_many_in_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_corpus: Path, fake_model: None) -> None:
    assert run_cli(capsys, "index", str(tiny_corpus), "--index-dir", str(tmp_path / "ix"))[0] == 0
    code, _, err = run_cli(capsys, "summarize", "nope", "--index-dir", str(tmp_path / "ix"))
    assert code == 1 and err.startswith("rag: error: no document 'nope'") and err.count("\n") == 1
    code, _, err = run_cli(capsys, "summarize", "a", "b", "c", "--index-dir", str(tmp_path / "ix"))
    assert code == 1 and err == "rag: error: summarize one document, or compare two; got 3\n"
