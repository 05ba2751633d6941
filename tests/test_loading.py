from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime
from pathlib import Path

import pytest

from rag.core.types import Document, Skipped
from rag.ingest.loading import load

from .conftest import make_pdf

EMPTY_ZIP = b"PK\x05\x06" + b"\x00" * 18  # a valid zip with no files in it


def split(items: list) -> tuple[dict[str, Document], list[Skipped]]:
    docs = {d.id: d for d in items if isinstance(d, Document)}
    return docs, [s for s in items if isinstance(s, Skipped)]


def test_formats_and_ids(tiny_corpus: Path) -> None:
    (tiny_corpus / "sub").mkdir()
    (tiny_corpus / "sub" / "note.txt").write_text("Nested Note Title\nA nested note about tides.")
    docs, skipped = split(list(load([tiny_corpus])))
    assert set(docs) == {"volcano", "chess", "bakery", "sub/note"}
    assert skipped == []
    assert docs["chess"].title == "Chess Olympiad Ends in Budapest"
    assert "#" not in docs["chess"].text
    assert docs["volcano"].title == "Mount Etna Erupts Again"
    assert docs["volcano"].source.endswith("volcano.txt")


def test_html_drops_scripts_navigation_and_footer(tiny_corpus: Path) -> None:
    bakery = split(list(load([tiny_corpus / "bakery.html"])))[0]["bakery"]
    assert bakery.title == "Village Bakery Wins Bread Prize"
    assert "won the national sourdough prize" in bakery.text
    assert "alert" not in bakery.text and "Home | News" not in bakery.text and "Copyright" not in bakery.text
    # block elements become separate paragraphs
    assert "prize on Friday.\n\nIts rye loaf" in bakery.text


def test_pdf_pages_are_kept(tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(make_pdf(["Annual Cyber Report", "Page two mentions ransomware."]))
    doc = split(list(load([pdf])))[0]["report"]
    assert "Annual Cyber Report" in doc.text and "ransomware" in doc.text
    assert len(doc.page_starts) == 2
    assert doc.page_of(doc.text.index("ransomware")) == 2
    assert doc.page_of(0) == 1


def test_word_paragraphs_headings_and_tables_in_order(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Cyber Pact Signed in Doha", level=1)
    document.add_paragraph("Qatar and Rwanda signed a cybersecurity partnership on Monday.")
    table = document.add_table(rows=2, cols=2)
    for r, (a, b) in enumerate([("Country", "Minister"), ("Rwanda", "Paula Ingabire")]):
        table.cell(r, 0).text, table.cell(r, 1).text = a, b
    document.add_paragraph("The agreement covers public key infrastructure.")
    document.save(str(tmp_path / "pact.docx"))
    doc = split(list(load([tmp_path / "pact.docx"])))[0]["pact"]
    assert doc.title == "Cyber Pact Signed in Doha"
    assert "Rwanda | Paula Ingabire" in doc.text
    text = doc.text
    assert text.index("signed a cybersecurity") < text.index("Country | Minister") < text.index("public key")


def _epub(path: Path, chapters: dict[str, str], spine: list[str], title: str = "The Cyber Book", metadata: str = "") -> None:
    """A minimal EPUB: container, package file (manifest in ``chapters`` order, ``metadata`` after
    the title), XHTML chapters."""
    items = "".join(f'<item id="{c}" href="text/{c}.xhtml" media-type="application/xhtml+xml"/>' for c in chapters)
    refs = "".join(f'<itemref idref="{c}"/>' for c in spine)
    with zipfile.ZipFile(path, "w") as book:
        book.writestr("mimetype", "application/epub+zip")
        book.writestr("META-INF/container.xml", '<?xml version="1.0"?><container version="1.0" '
                      'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
                      '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
                      "</rootfiles></container>")
        book.writestr("OEBPS/content.opf", '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" '
                      'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:opf="http://www.idpf.org/2007/opf" version="3.0">'
                      f"<metadata><dc:title>{title}</dc:title>{metadata}</metadata><manifest>{items}</manifest>"
                      f"<spine>{refs}</spine></package>")
        for name, body in chapters.items():
            book.writestr(f"OEBPS/text/{name}.xhtml", f"<html><head><title>{name}</title></head><body>{body}</body></html>")


def test_epub_chapters_in_spine_order_with_their_titles(tmp_path: Path) -> None:
    _epub(tmp_path / "book.epub", {
        "later": "<h1>Chapter Two: Belgium</h1><p>Belgium adopted its Cyber Security Strategy 2.0.</p>",
        "first": "<h1>Chapter One: Qatar</h1><p>Qatar founded its National Cyber Security Agency.</p>",
    }, spine=["first", "later"])
    doc = split(list(load([tmp_path / "book.epub"])))[0]["book"]
    assert doc.title == "The Cyber Book"
    text = doc.text
    assert text.index("Chapter One: Qatar") < text.index("National Cyber Security Agency") < text.index("Chapter Two")
    assert "Strategy 2.0" in text


def test_the_date_of_each_format(tmp_path: Path) -> None:
    """A PDF's, a Word file's and an EPUB's own date when the text states none at its top; a date
    line at the top of a text file before a labelled one further down."""
    import docx
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["Annual Cyber Report", "Page two."]))))
    writer.add_metadata({"/CreationDate": "D:20240305101500+01'00'", "/ModDate": "D:20250101000000Z"})
    writer.write(tmp_path / "report.pdf")
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["Valletta, 7 May 2023", "Page two."]))))
    writer.add_metadata({"/CreationDate": "D:20240305101500+01'00'"})
    writer.write(tmp_path / "datelined.pdf")
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["Annual Cyber Report"]))))
    writer.add_metadata({"/CreationDate": "not a date"})
    writer.write(tmp_path / "odd.pdf")
    document = docx.Document()
    document.add_paragraph("Qatar and Rwanda signed a cybersecurity partnership.")
    document.core_properties.created = datetime(2022, 7, 1, 9, 30)
    document.save(str(tmp_path / "pact.docx"))
    _epub(tmp_path / "book.epub", {"one": "<p>Qatar founded its agency.</p>"}, ["one"],
          metadata='<dc:date opf:event="modification">2023-01-01</dc:date>'
                   '<dc:date opf:event="publication">2021-06-15</dc:date>')
    _epub(tmp_path / "year.epub", {"one": "<p>Qatar founded its agency.</p>"}, ["one"], metadata="<dc:date>2021</dc:date>")
    body = "\n".join(f"Paragraph {n} about the harbour." for n in range(8))
    (tmp_path / "note.md").write_text(f"# Harbour Reopens\n\n*Valletta, 5 March 2024*\n\n{body}\n\nUpdated: 1 June 2024\n")
    docs, skipped = split(list(load([tmp_path])))
    assert skipped == []
    assert {i: d.date for i, d in docs.items()} == {
        "report": "2024-03-05", "datelined": "2023-05-07", "odd": None, "pact": "2022-07-01",
        "book": "2021-06-15", "year": None, "note": "2024-03-05",
    }


def test_jsonl_beir_corpus(tmp_path: Path) -> None:
    lines = [
        json.dumps({"_id": "d1", "title": "First", "text": "Alpha text."}),
        json.dumps({"id": 7, "title": "", "text": "Beta text here."}),
        "{not json",
        json.dumps({"id": "d3", "text": ""}),
        json.dumps({"title": "no id", "text": "x"}),
        json.dumps(["a", "list"]),
        "",
    ]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(lines))
    docs, skipped = split(list(load([corpus])))
    assert set(docs) == {"d1", "7"}
    assert docs["d1"].title == "First"
    assert [s.source.rsplit(":", 1)[1] for s in skipped] == ["3", "4", "5", "6"]
    assert "malformed JSON" in skipped[0].reason


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"", "empty file"),
        ("blank.md", b"   \n\n ", "empty file"),
        ("binary.txt", b"\x00\x01\x02PNG\x00", "binary"),
        ("latin1.txt", "caf\xe9 au lait".encode("latin-1"), "not valid UTF-8"),
        ("image.png", b"\x89PNG", "unsupported file type '.png'"),
        ("broken.pdf", b"%PDF-1.4 garbage", "unreadable PDF"),
        ("broken.docx", b"PK\x03\x04 not a zip", "unreadable Word file"),
        ("broken.epub", b"PK\x03\x04 not a zip", "unreadable EPUB"),
        ("empty-zip.epub", EMPTY_ZIP, "unreadable EPUB (KeyError"),
        ("only-boilerplate.txt", b"Newsletter Signup\nClick to comment", "no text left"),
    ],
)
def test_bad_files_are_skipped_by_name(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    (tmp_path / name).write_bytes(content)
    (tmp_path / "good.txt").write_text("A good document about rivers.")
    docs, skipped = split(list(load([tmp_path])))
    assert set(docs) == {"good"}
    assert len(skipped) == 1 and skipped[0].source.endswith(name)
    assert reason in skipped[0].reason


def test_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        list(load([tmp_path / "nope"]))


def test_hidden_files_are_ignored(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD.txt").write_text("ref: refs/heads/main")
    (tmp_path / "a.txt").write_text("Visible text.")
    assert set(split(list(load([tmp_path])))[0]) == {"a"}
