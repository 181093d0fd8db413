"""Every page reads well as plain Markdown (on GitHub) as well as in the mkdocs site."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from markdown_blocks import ROOT, SKETCH, pages, prose_lines, python_blocks

# mkdocs-material syntax that GitHub shows as literal text: content tabs (=== "Title"),
# admonitions (!!! note) and collapsible admonitions (??? note).
SITE_ONLY = re.compile(r"^\s*(===|!!!|\?\?\?\+?)(\s|$)")


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_site_only_syntax(page: Path) -> None:
    found = [
        f"{page.relative_to(ROOT)}:{n}: {line.strip()}"
        for n, line in prose_lines(page)
        if SITE_ONLY.match(line)
    ]
    assert not found, (
        "mkdocs-material tabs or admonitions show as literal text on GitHub; use headings, "
        "bold lead-ins or plain paragraphs instead:\n" + "\n".join(found)
    )


def test_every_sketch_is_called_one_in_its_prose() -> None:
    """A block marked ``<!-- sketch -->`` is not run; its page must tell the reader so."""
    silent = []
    for block in python_blocks():
        if not block.sketch:
            continue
        lines = block.path.read_text().splitlines()[: block.line - 1]
        # the paragraph before the marker (up to the previous blank line or fence)
        paragraph: list[str] = []
        for line in reversed(lines):
            text = line.strip()
            if SKETCH.match(text) or (not text and not paragraph):
                continue
            if not text or text.startswith("```"):
                break
            paragraph.append(text)
        if "sketch" not in " ".join(paragraph).lower():
            silent.append(block.name)
    assert not silent, "sketches whose preceding paragraph does not say so: " + ", ".join(silent)


def test_site_url_is_set() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    assert re.search(r"^site_url: https://\S+/$", config, re.MULTILINE), "mkdocs.yml: site_url"
