"""The scalar series a run logs (recorded on its ``log``, bounded) as small inline SVG charts."""

from __future__ import annotations

import functools
import html
import math
import numbers
import threading
from dataclasses import dataclass, field
from typing import Any, Final

KEEP_POINTS: Final = 600  # points a series keeps and draws: then every other one goes, stride x2


@dataclass(slots=True)
class Series:
    """One scalar series: one point in every ``stride`` logged, the count and the last value."""

    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)
    count: int = 0
    last: float = math.nan
    stride: int = 1


class Recorder:
    """The scalar series of one run, fed by its ``log`` (well under 1 µs a key)."""

    def __init__(self) -> None:
        self.series: dict[str, Series] = {}
        self.step = self.users = 0  # users: the calls sharing it (attach / detach)

    def record(self, data: Any, step: Any = None, commit: Any = None) -> None:
        """What one ``run.log(data, step, commit)`` logged, at the step the client gives it."""
        if type(step) is int and step > self.step:
            self.step = step
        x = self.step
        items = getattr(data, "items", None)
        for key, value in items() if items is not None else ():
            kind = type(value)
            if kind is not float and kind is not int:
                if kind is bool or not isinstance(value, numbers.Real):
                    continue  # numpy scalars count, arrays and tensors do not
                value = float(value)
            s = self.series.get(key)
            if s is None:
                if type(key) is not str or key.startswith("_"):
                    continue
                s = self.series[key] = Series()
            if s.count % s.stride == 0:
                s.xs.append(x)
                s.ys.append(value)
                if len(s.xs) >= KEEP_POINTS:  # the kept points stay multiples of the stride
                    s.xs, s.ys, s.stride = s.xs[::2], s.ys[::2], s.stride * 2
            s.count += 1
            s.last = value
        if (step is None and commit is None) or commit:
            self.step += 1

    def last_values(self) -> dict[str, float]:
        return {k: s.last for k, s in sorted(self.series.items())}


_attached: dict[int, tuple[Recorder, Any]] = {}  # id(run): its recorder and its log wrapper
_attach_lock = threading.Lock()


def attach(run: Any) -> Recorder:
    """Put a recorder on ``run.log`` (the client's runs first, unchanged) or share the one on it."""
    with _attach_lock:
        if id(run) not in _attached:
            recorder, own = Recorder(), run.log
            record = recorder.record

            @functools.wraps(own)
            def log(data: Any, step: Any = None, commit: Any = None, **kwargs: Any) -> Any:
                result = own(data, step, commit, **kwargs)
                record(data, step, commit)
                return result

            run.log = log
            _attached[id(run)] = (recorder, log)
        recorder = _attached[id(run)][0]
        recorder.users += 1
        return recorder


def detach(run: Any) -> None:
    """Undo one :func:`attach`; the last one gives the run back its own ``log``."""
    with _attach_lock:
        recorder, log = _attached.get(id(run), (None, None))
        if recorder is not None:
            recorder.users -= 1
            if recorder.users == 0:
                del _attached[id(run)]
                if vars(run).get("log") is log:
                    del vars(run)["log"]


def fmt(value: Any) -> str:
    """A number as the tab shows it (4 significant digits)."""
    if isinstance(value, float):
        return f"{value:.4g}" if value == 0 or 1e-3 <= abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


W, H, LEFT, RIGHT, TOP, BOTTOM = 260, 130, 44, 8, 8, 18


def svg_chart(name: str, series: Series) -> str:
    """One small chart: the series' finite points as a polyline, with its y and x ranges."""
    pts = [(x, y) for x, y in zip(series.xs, series.ys, strict=False) if math.isfinite(y)]
    x0, x1 = (pts[0][0], pts[-1][0]) if pts else (0.0, 1.0)
    y0, y1 = min((p[1] for p in pts), default=0.0), max((p[1] for p in pts), default=1.0)
    w, h = W - LEFT - RIGHT, H - TOP - BOTTOM
    sx, sy = w / ((x1 - x0) or 1.0), h / ((y1 - y0) or 1.0)
    coords = " ".join(f"{LEFT + (x - x0) * sx:.1f},{TOP + h - (y - y0) * sy:.1f}" for x, y in pts)
    label = html.escape(name)

    def text(x: float, y: float, value: float, anchor: str = "end") -> str:
        return f'<text x="{x}" y="{y}" text-anchor="{anchor}" font-size="9">{fmt(value)}</text>'

    return (
        f'<figure class="fpw-chart"><svg xmlns="http://www.w3.org/2000/svg" width="{W}" '
        f'height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="{label}" '
        f'data-series="{label}" data-logged="{series.count}" data-drawn="{len(pts)}">'
        f'<rect x="{LEFT}" y="{TOP}" width="{w}" height="{h}" fill="#fafafa" stroke="#ddd"/>'
        f'<polyline fill="none" stroke="#f5a000" stroke-width="1.5" points="{coords}"/>'
        f"{text(LEFT - 4, TOP + 8, y1)}{text(LEFT - 4, TOP + h, y0)}"
        f"{text(LEFT, H - 4, x0, 'start')}{text(W - RIGHT, H - 4, x1)}"
        f"</svg><figcaption>{label}: {fmt(series.last)} "
        f"<small>({series.count} logged)</small></figcaption></figure>"
    )
