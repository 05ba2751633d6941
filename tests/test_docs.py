"""The docs' references to each other resolve: a link's #anchor and a cited section
(`eval/README.md, "Section"`) name a heading that exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(([\w./-]*\.md)#([\w-]+)\)")
CITED = re.compile(r'eval/README\.md, "([^"]+)"')


def headings(markdown: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in markdown.read_text().splitlines() if line.startswith("#")]


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_anchors_in_links_exist() -> None:
    checked = 0
    for doc in [ROOT / "README.md", ROOT / "SECURITY.md", *ROOT.glob("eval/**/README.md")]:
        for target, fragment in LINK.findall(doc.read_text()):
            page = (doc.parent / target).resolve()
            assert page.is_file(), f"{doc.name} links to missing {target}"
            assert fragment in {anchor(h) for h in headings(page)}, f"{doc.name}: no heading for #{fragment} in {target}"
            checked += 1
    assert checked >= 3


def test_sections_cited_by_name_exist() -> None:
    sections = [h.lower() for h in headings(ROOT / "eval" / "README.md")]
    cited = [
        (source.relative_to(ROOT), name)
        for source in [ROOT / "README.md", *ROOT.glob("rag/**/*.py")]
        for name in CITED.findall(source.read_text())
    ]
    assert len(cited) >= 10
    missing = [(str(s), n) for s, n in cited if not any(h.startswith(n.lower()) for h in sections)]
    assert not missing, f"eval/README.md has no section starting with: {missing}"


PATH = re.compile(r"(?<![\w./-])((?:rag|eval|tests|ui)/[\w/]*\w\.(?:py|json))\b")
DOTTED = re.compile(r"\brag(?:\.[a-z_]+)+")


def test_files_named_in_the_docs_exist() -> None:
    """Every `rag/...py`, `eval/...py`, `tests/...py` path the docs or the code's comments name is
    in the tree (the layout moved once; the records under eval/results/ describe past runs)."""
    docs = [ROOT / "README.md", ROOT / "SECURITY.md", ROOT / "ARCHITECTURE.md", *ROOT.glob("eval/**/README.md"),
            *ROOT.glob("rag/**/*.py"), *ROOT.glob("eval/**/*.py")]
    named = {(doc.relative_to(ROOT), path) for doc in docs for path in PATH.findall(doc.read_text())}
    assert len(named) >= 50
    assert sorted((str(doc), path) for doc, path in named if not (ROOT / path).exists()) == []


def test_modules_named_in_docstrings_exist() -> None:
    """``rag.stage.module`` references in the code (``:mod:``, ``:class:``...) point at real modules."""
    missing = set()
    for source in ROOT.glob("rag/**/*.py"):
        for dotted in DOTTED.findall(source.read_text()):
            parts = dotted.split(".")
            # the longest prefix that is a module or package; what follows is an attribute
            if not any((ROOT.joinpath(*parts[:n]).with_suffix(".py")).exists() or (ROOT.joinpath(*parts[:n]) / "__init__.py").exists()
                       for n in range(2, len(parts) + 1)) and len(parts) > 1:
                missing.add(f"{source.relative_to(ROOT)}: {dotted}")
    assert sorted(missing) == []
