"""Reading the W&B tab back from the report HTML that a real local Flyte run wrote."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import flyte
from _plugin_helpers import reset_wandb

# Flyte's local runs keep each action's outputs and report under this folder (not configurable
# from with_runcontext), one sub-folder per run name.
LOCAL_METADATA = Path("/tmp/flyte/metadata")


@dataclass
class Chart:
    series: str
    logged: int
    points: list[tuple[float, float]]


@dataclass
class Tab:
    """What the W&B tab of one report shows."""

    text: str
    html: str
    tables: list[list[list[str]]] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)

    def table_after(self, heading: str) -> list[list[str]]:
        """Rows (header row first) of the table that follows ``<h3>heading</h3>``."""
        i = self.html.index(f"<h3>{heading}</h3>")
        j = self.html[:i].count("<table")
        return self.tables[j]

    @property
    def runs(self) -> list[list[str]]:
        return self.tables[0]

    def summary(self) -> dict[str, str]:
        return {row[0]: row[1] for row in self.table_after("Summary")[1:]}

    def chart(self, name: str) -> Chart:
        [found] = [c for c in self.charts if c.series == name]
        return found


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.charts: list[Chart] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._svg: dict[str, str] | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "svg":
            self._svg = a
        elif tag == "polyline" and self._svg is not None:
            pts = [tuple(float(n) for n in p.split(",")) for p in a["points"].split()]
            self.charts.append(
                Chart(self._svg["data-series"], int(self._svg["data-logged"]), pts)  # type: ignore[arg-type]
            )

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None
        elif tag == "svg":
            self._svg = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def parse_tab(report_html: str) -> Tab:
    start = report_html.index('<section class="fpw-wandb">')
    end = report_html.index("</section>", start) + len("</section>")
    fragment = report_html[start:end]
    parser = _Parser()
    parser.feed(fragment)
    return Tab(" ".join(parser.text), fragment, parser.tables, parser.charts)


def reports_of(run_name: str) -> dict[str, str]:
    """The report HTML of every action of the local run ``run_name``, by action name."""
    root = LOCAL_METADATA / run_name
    return {p.parent.name: p.read_text() for p in sorted(root.rglob("report.html"))}


def run_named(task: Any, *args: Any, prefix: str, **context: Any) -> tuple[str, Any]:
    """Run ``task`` locally under a fresh run name; return the name and the first output."""
    reset_wandb()
    flyte.init()
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    run = flyte.with_runcontext(mode="local", name=name, **context).run(task, *args)
    outputs = run.outputs()
    return name, outputs[0] if len(outputs) else None
