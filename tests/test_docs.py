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
        for source in [ROOT / "README.md", *ROOT.glob("rag/*.py")]
        for name in CITED.findall(source.read_text())
    ]
    assert len(cited) >= 10
    missing = [(str(s), n) for s, n in cited if not any(h.startswith(n.lower()) for h in sections)]
    assert not missing, f"eval/README.md has no section starting with: {missing}"
