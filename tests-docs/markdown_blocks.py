"""The docs' Markdown as the tests read it: fenced code blocks, and the text outside them.

A fenced ```` ```python ```` block is an example that runs as written, unless an HTML comment is
the last non-blank line before its fence (invisible on GitHub and in the site):

* ``<!-- sketch -->`` (optionally with a reason: ``<!-- sketch: needs a cluster -->``): a
  fragment or a program that needs what a test cannot give; the page's prose says it is a sketch.
* ``<!-- run by PATH -->``: a complete example that needs more than the docs check installs
  (torch, torchrun), run by the test at ``PATH`` (relative to the repository), which names the
  page.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SKETCH = re.compile(r"^<!--\s*sketch\b[^>]*-->$")
RUN_BY = re.compile(r"^<!--\s*run by\s+(?P<path>\S+)\s*-->$")
_OPEN = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")


def pages() -> list[Path]:
    """Every Markdown page of the site, and the README (what GitHub shows first)."""
    return [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    marker: str  # the last non-blank line before the fence, stripped

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def sketch(self) -> bool:
        return bool(SKETCH.match(self.marker))

    @property
    def run_by(self) -> Path | None:
        """The test that runs this example, when not the docs check."""
        found = RUN_BY.match(self.marker)
        return ROOT / found["path"] if found else None


def blocks(path: Path) -> Iterator[Block]:
    """The fenced code blocks of ``path``, their code dedented (blocks in list items)."""
    lines = path.read_text().splitlines()
    opened: re.Match[str] | None = None
    start = 0
    for i, line in enumerate(lines):
        if opened is None:
            opened = _OPEN.match(line)
            start = i
            continue
        fence = opened["fence"]
        if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
            before = [x.strip() for x in lines[:start] if x.strip()]
            yield Block(
                path=path,
                line=start + 1,
                lang=opened["lang"],
                code=textwrap.dedent("\n".join(lines[start + 1 : i])) + "\n",
                marker=before[-1] if before else "",
            )
            opened = None


def prose_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of every line of ``path`` outside fenced code blocks."""
    inside: str | None = None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if inside is None:
            opened = _OPEN.match(line)
            if opened:
                inside = opened["fence"]
                continue
            yield number, line
        elif line.strip().startswith(inside) and not line.strip().strip(inside[0]):
            inside = None


def python_blocks() -> list[Block]:
    return [b for page in pages() for b in blocks(page) if b.lang == "python"]
