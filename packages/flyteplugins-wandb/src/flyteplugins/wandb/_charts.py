"""What the W&B tab draws: a run's scalar series, recorded as it logs, and the tab's HTML.

A :class:`Recorder` attached to a run (:func:`attach`) sees every ``run.log`` / ``wandb.log`` of
the run (``wandb.log`` inside a call is the run's ``log``, see ``_globals``) and keeps each scalar
series in a bounded :class:`Series` (halved when full, so a 10^5-row history keeps a few
thousand evenly spread points); :func:`svg_chart` draws at most :data:`DRAW_POINTS` of them as an
inline SVG polyline, and :func:`render` the whole tab. No network, no plotting library, no Flyte.
"""

from __future__ import annotations

import functools
import html
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

KEEP_POINTS: Final = 2048
"""Points a series keeps at most: beyond it every other point is dropped and the stride doubles."""
DRAW_POINTS: Final = 600
"""Points a chart draws at most (min and max of equal buckets when a series has more)."""
MAX_SUMMARY_ROWS: Final = 200
MAX_CELL_CHARS: Final = 300


# -- what the run logged -----------------------------------------------------------------------


class Series:
    """One scalar series: a bounded, evenly thinned sample of its points, plus exact counters.

    Points are appended by :meth:`Recorder.record` (it runs on every ``log``, so it works on the
    fields directly); non-finite values are kept and left out when drawn.
    """

    __slots__ = ("count", "last", "skip", "stride", "xs", "ys")

    def __init__(self) -> None:
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.count = 0
        self.last: float = math.nan
        self.stride = 1  # keep one point in ``stride``
        self.skip = 0  # points still to skip before the next kept one

    def halve(self) -> None:
        """Drop every other kept point; keep one in twice as many from now on."""
        self.xs = self.xs[::2]
        self.ys = self.ys[::2]
        self.stride *= 2

    def points(self) -> tuple[list[float], list[float]]:
        """A copy of the kept finite points, taken while the run may keep logging (a point
        appended between the two copies is left out)."""
        xs, ys = list(self.xs), list(self.ys)
        pairs = [(x, y) for x, y in zip(xs, ys, strict=False) if math.isfinite(y)]
        return [x for x, _ in pairs], [y for _, y in pairs]


class Recorder:
    """The scalar series of one run, fed by its ``log`` (``record`` costs well under 1 µs a key)."""

    def __init__(self) -> None:
        self.series: dict[str, Series] = {}
        self.step = 0
        self.version = 0  # bumped by every log: the live writer redraws only when it moved

    def record(self, data: Any, step: Any = None, commit: Any = None) -> None:
        """What one ``run.log(data, step, commit)`` logged (the client's step rule, mirrored)."""
        if step is not None and type(step) is int and step > self.step:
            self.step = step
        x = self.step
        get = self.series.get
        items = getattr(data, "items", None)
        for key, value in items() if items is not None else ():
            kind = type(value)
            if kind is not float and kind is not int:
                if kind is bool or not _is_real(value):
                    continue
                value = float(value)
            s = get(key)
            if s is None:
                if type(key) is not str or key.startswith("_"):
                    continue
                s = self.series[key] = Series()
            s.count += 1
            s.last = value
            if s.skip:
                s.skip -= 1
                continue
            s.xs.append(x)
            s.ys.append(value)
            if len(s.xs) >= KEEP_POINTS:
                s.halve()  # the point just kept goes too: the next one is half a stride away
                s.skip = s.stride // 2 - 1
            else:
                s.skip = s.stride - 1
        if (step is None and commit is None) or commit:
            self.step += 1
        self.version += 1

    def last_values(self) -> dict[str, float]:
        return {k: s.last for k, s in sorted(self.snapshot().items())}

    def snapshot(self) -> dict[str, Series]:
        """The series now: a copy made in one step (the run may add a series meanwhile)."""
        return dict(self.series)


def _is_real(value: Any) -> bool:
    """numpy and other scalar number types (``numbers.Real``), not arrays or tensors."""
    import numbers

    return isinstance(value, numbers.Real)


@dataclass
class _Attached:
    recorder: Recorder
    wrapper: Callable[..., Any]
    users: int = 1


_attached: dict[int, _Attached] = {}  # by id(run)
_attach_lock = threading.Lock()


def attach(run: Any) -> Recorder:
    """The recorder of ``run``; the first call puts it on the run's ``log`` (until :func:`detach`).

    The run's own ``log`` method is called first and unchanged, so what W&B records and every
    error it raises stay the same; only the run object this plugin started carries the wrapper.
    """
    with _attach_lock:
        entry = _attached.get(id(run))
        if entry is not None:
            entry.users += 1
            return entry.recorder
        recorder = Recorder()
        original = run.log
        record = recorder.record

        @functools.wraps(original)
        def log(data: Any, step: Any = None, commit: Any = None, **kwargs: Any) -> Any:
            result = original(data, step, commit, **kwargs)
            record(data, step, commit)
            return result

        run.log = log
        _attached[id(run)] = _Attached(recorder, log)
        return recorder


def detach(run: Any) -> None:
    """Undo one :func:`attach`; the last one gives the run back its own ``log``."""
    with _attach_lock:
        entry = _attached.get(id(run))
        if entry is None:
            return
        entry.users -= 1
        if entry.users > 0:
            return
        del _attached[id(run)]
        if vars(run).get("log") is entry.wrapper:
            del vars(run)["log"]


# -- drawing -----------------------------------------------------------------------------------


def thin(
    xs: Sequence[float], ys: Sequence[float], limit: int = DRAW_POINTS
) -> list[tuple[float, float]]:
    """At most ``limit`` points of the series: all of them, or the first and last point plus
    the lowest and highest of each of ``limit // 2 - 1`` equal buckets, in order."""
    n = len(xs)
    if n <= limit:
        return list(zip(xs, ys, strict=True))
    out: list[tuple[float, float]] = [(xs[0], ys[0])]
    buckets = max(1, limit // 2 - 1)
    size = (n - 2) / buckets
    for b in range(buckets):
        lo = 1 + int(b * size)
        hi = max(lo + 1, 1 + int((b + 1) * size))
        idx = range(lo, min(hi, n - 1))
        if not idx:
            continue
        i_min = min(idx, key=ys.__getitem__)
        i_max = max(idx, key=ys.__getitem__)
        for i in sorted({i_min, i_max}):
            out.append((xs[i], ys[i]))
    out.append((xs[-1], ys[-1]))
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            return f"{value:.4g}"
        return f"{value:.3e}"
    return str(value)


W, H, PAD_L, PAD_R, PAD_T, PAD_B = 260, 130, 44, 8, 8, 18


def svg_chart(name: str, series: Series) -> str:
    """One small chart: the series' points as a polyline, with its y range and x range."""
    xs, ys = series.points()
    pts = thin(xs, ys)
    x0, x1 = (pts[0][0], pts[-1][0]) if pts else (0.0, 1.0)
    y0 = min((p[1] for p in pts), default=0.0)
    y1 = max((p[1] for p in pts), default=1.0)
    dx = (x1 - x0) or 1.0
    dy = (y1 - y0) or 1.0
    inner_w, inner_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    coords = " ".join(
        f"{PAD_L + (x - x0) / dx * inner_w:.1f},{PAD_T + (1 - (y - y0) / dy) * inner_h:.1f}"
        for x, y in pts
    )
    label = html.escape(name)
    return (
        f'<figure class="fpw-chart"><svg xmlns="http://www.w3.org/2000/svg" width="{W}" '
        f'height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="{label}" '
        f'data-series="{label}" data-logged="{series.count}" data-drawn="{len(pts)}">'
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{inner_w}" height="{inner_h}" fill="#fafafa" '
        f'stroke="#ddd"/>'
        f'<polyline fill="none" stroke="#f5a000" stroke-width="1.5" points="{coords}"/>'
        f'<text x="{PAD_L - 4}" y="{PAD_T + 8}" text-anchor="end" font-size="9">{_fmt(y1)}</text>'
        f'<text x="{PAD_L - 4}" y="{PAD_T + inner_h}" text-anchor="end" font-size="9">'
        f"{_fmt(y0)}</text>"
        f'<text x="{PAD_L}" y="{H - 4}" font-size="9">{_fmt(x0)}</text>'
        f'<text x="{W - PAD_R}" y="{H - 4}" text-anchor="end" font-size="9">{_fmt(x1)}</text>'
        f"</svg><figcaption>{label}: {_fmt(series.last)} "
        f"<small>({series.count} logged)</small></figcaption></figure>"
    )


_STYLE: Final = (
    "<style>.fpw-wandb{font-family:sans-serif;font-size:13px}"
    ".fpw-wandb table{border-collapse:collapse;margin:6px 0 14px}"
    ".fpw-wandb td,.fpw-wandb th{border:1px solid #ddd;padding:3px 8px;text-align:left;"
    "vertical-align:top}.fpw-wandb th{background:#f3f3f3}"
    ".fpw-grid{display:flex;flex-wrap:wrap;gap:10px}.fpw-chart{margin:0}"
    ".fpw-chart figcaption{font-size:12px}.fpw-failed{color:#b00020;font-weight:bold}"
    ".fpw-best{background:#fff4d6}</style>"
)


def _cell(value: Any) -> str:
    text = _fmt(value) if not isinstance(value, (dict, list)) else _json(value)
    if len(text) > MAX_CELL_CHARS:
        text = text[: MAX_CELL_CHARS - 3] + "..."
    return html.escape(text)


def _json(value: Any) -> str:
    import json

    try:
        return json.dumps(value, default=str, sort_keys=True)
    except (TypeError, ValueError):
        return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, css: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    cls = f' class="{css}"' if css else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def link(url: str | None, text: str) -> str:
    if not url:
        return html.escape(text)
    return f'<a href="{html.escape(url)}" target="_blank" rel="noopener">{html.escape(text)}</a>'


@dataclass
class RunFacts:
    """What the tab says about one run (the call's own, or another writer's)."""

    id: str
    url: str | None = None
    project: str | None = None
    entity: str | None = None
    group: str | None = None
    state: str = "running"
    exit_code: int | None = None
    offline_dir: str | None = None
    label: str | None = None
    last: dict[str, float] = field(default_factory=dict)


def _state_cell(facts: RunFacts) -> str:
    text = facts.state if facts.exit_code is None else f"{facts.state} (exit {facts.exit_code})"
    cls = ' class="fpw-failed"' if facts.state == "failed" else ""
    return f"<span{cls}>{html.escape(text)}</span>"


def render(
    runs: Sequence[RunFacts],
    summary: Mapping[str, Any],
    recorder: Recorder | None,
    artifacts: Sequence[Mapping[str, Any]] = (),
    extra: str = "",
) -> str:
    """The tab's HTML (a fragment: Flyte puts it into its report page)."""
    parts = [_STYLE, '<section class="fpw-wandb"><h2>Weights &amp; Biases</h2>']
    many = len(runs) > 1
    headers = ["run", "project", "entity", "group", "state"]
    if many:
        headers = ["writer", *headers, "last values"]
    rows = []
    for r in runs:
        row = [
            link(r.url, r.id),
            html.escape(r.project or "-"),
            html.escape(r.entity or "-"),
            html.escape(r.group or "-"),
            _state_cell(r),
        ]
        if many:
            last = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(r.last.items()))
            row = [html.escape(r.label or "-"), *row, html.escape(last or "-")]
        rows.append(row)
    parts.append(table(headers, rows, css="fpw-runs"))
    for r in runs:
        if r.url is None and r.offline_dir:
            parts.append(
                f"<p>Run {html.escape(r.id)} is offline: upload it with "
                f"<code>wandb sync {html.escape(r.offline_dir)}</code>.</p>"
            )
    shown = [(k, v) for k, v in sorted(summary.items()) if not str(k).startswith("_")]
    if shown:
        parts.append("<h3>Summary</h3>")
        parts.append(
            table(
                ["key", "value"],
                [(html.escape(str(k)), _cell(v)) for k, v in shown[:MAX_SUMMARY_ROWS]],
            )
        )
        if len(shown) > MAX_SUMMARY_ROWS:
            parts.append(f"<p>{len(shown) - MAX_SUMMARY_ROWS} more keys are on the run's page.</p>")
    series = recorder.snapshot() if recorder is not None else {}
    if series:
        parts.append('<h3>Charts</h3><div class="fpw-grid">')
        parts.extend(svg_chart(k, s) for k, s in sorted(series.items()))
        parts.append("</div>")
    if artifacts:
        parts.append("<h3>Artifacts</h3>")
        parts.append(
            table(
                ["", "artifact", "type", "digest", "reference"],
                [
                    (
                        html.escape(str(a.get("direction", ""))),
                        html.escape(str(a.get("name", ""))),
                        html.escape(str(a.get("type", ""))),
                        html.escape(str(a.get("digest", "") or "-")),
                        html.escape(str(a.get("uri", ""))),
                    )
                    for a in artifacts
                ],
                css="fpw-artifacts",
            )
        )
    parts.append(extra)
    parts.append("</section>")
    return "".join(parts)
