"""README's in-page links (its table of contents) lead to headings that exist."""

from __future__ import annotations

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def _slug(heading: str) -> str:
    """The anchor a Markdown renderer such as GitHub's gives a heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_every_in_page_link_has_its_heading() -> None:
    text = README.read_text(encoding="utf-8")
    in_code = False
    headings: set[str] = set()
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            headings.add(_slug(line.lstrip("#")))
    links = re.findall(r"\]\(#([^)]+)\)", text)
    assert len(links) >= 10, "README lost its table of contents"
    missing = sorted(set(links) - headings)
    assert not missing, f"README links to headings that do not exist: {missing}"
