"""The W&B tab of the Flyte report: the run, its summary and its scalar series, drawn locally.

With ``report=True`` (on ``@wandb_init`` or in ``wandb_config``) a decorated task's Flyte report
gets a tab named :data:`TAB_NAME`. It shows the run's page (``run.url`` of the live run, so it
names the real entity even when the task's link could not), project, entity, id, group, state
and exit code, the summary as a table, the artifacts the task logged and used (see
``_artifacts``) and one small chart per scalar series the run logged *in this process*.

The charts need no network and no plotting library: a :class:`Recorder` attached to the run
when the call starts sees every ``run.log`` / ``wandb.log`` of the run (``wandb.log`` inside a
call is the run's ``log``, see ``_globals``) and keeps each scalar series in a bounded
:class:`Series` (halved when full, so a 10^5-row history keeps a few thousand evenly spread
points); :func:`svg_chart` draws at most :data:`DRAW_POINTS` of them as an inline SVG polyline.

The tab is rewritten while the task runs (a daemon thread, at most every
:data:`LIVE_INTERVAL_S` seconds and only when something new was logged; logging never waits for
it) and a last time when the call ends, also when it failed, after the run was finished.
"""

from __future__ import annotations

import functools
import html
import math
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

TAB_NAME: Final = "Weights & Biases"
LIVE_INTERVAL_S: float = 5.0
"""Least time between two live rewrites of the tab (the final one is not delayed)."""
KEEP_POINTS: Final = 2048
"""Points a series keeps at most: beyond it every other point is dropped and the stride doubles."""
DRAW_POINTS: Final = 600
"""Points a chart draws at most (min and max of equal buckets when a series has more)."""
MAX_SUMMARY_ROWS: Final = 200
MAX_CELL_CHARS: Final = 300


class WandbReportFailed(UserWarning):
    """Writing the W&B tab of the Flyte report failed; the task and its run are not affected."""


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


# -- the tab of one call -----------------------------------------------------------------------


def run_facts(run: Any, *, state: str = "running", exit_code: int | None = None) -> RunFacts:
    settings = getattr(run, "settings", None)
    offline = bool(getattr(settings, "_offline", False))
    url = None if offline else getattr(run, "url", None)
    return RunFacts(
        id=str(getattr(run, "id", "?")),
        url=url or None,
        project=getattr(run, "project", None),
        entity=getattr(run, "entity", None) or None,
        group=getattr(run, "group", None) or None,
        state=state,
        exit_code=exit_code,
        offline_dir=str(getattr(settings, "sync_dir", "") or "") or None,
    )


def read_summary(run: Any) -> dict[str, Any]:
    """The run's summary as plain values (``{}`` when the client cannot answer)."""
    try:
        summary = run.summary
        keys = list(summary.keys())
        return {k: _plain(summary[k]) for k in keys if not str(k).startswith("_")}
    except Exception:
        return {}


def _plain(value: Any) -> Any:
    """The client's nested summary objects as plain dicts."""
    if isinstance(value, (str, bytes, int, float, bool)) or value is None:
        return value
    keys = getattr(value, "keys", None)
    if callable(keys):
        return {str(k): _plain(value[k]) for k in keys()}
    return value


PEER_WAIT_S: float = 30.0
"""How long the rank that writes a distributed task's tab waits for the other ranks' last values."""


class Peers:
    """The runs of the other ranks of a distributed task, exchanged through Flyte's storage.

    Every rank with a run writes what its tab would say (its run, state and last values) to
    ``<task output>/wandb-report/rank-<rank>.json``, in the store every rank of the task shares
    (the pod's blob storage, or the local folder of a local run); global rank 0 writes the tab,
    one line per run. At the end it waits (at most :data:`PEER_WAIT_S`) for every rank it has
    heard of to write its final values.
    """

    def __init__(self, output_path: str, rank: int) -> None:
        self.folder = output_path.rstrip("/") + "/wandb-report"
        self.rank = rank
        self.label = f"rank {rank}"
        self.lead = rank == 0

    def _path(self, rank: int) -> str:
        return f"{self.folder}/rank-{rank}.json"

    def publish(self, facts: RunFacts, last: Mapping[str, float], final: bool) -> None:
        import dataclasses
        import json

        from ._artifacts import write_text

        fragment = {**dataclasses.asdict(facts), "label": self.label, "last": dict(last)}
        write_text(self._path(self.rank), json.dumps({**fragment, "final": final}, default=str))

    def others(self, *, wait: bool) -> list[RunFacts]:
        import dataclasses
        import json
        import time

        from ._artifacts import list_names, read_text

        deadline = time.monotonic() + (PEER_WAIT_S if wait else 0.0)
        while True:
            found: dict[int, dict[str, Any]] = {}
            for name in list_names(self.folder):
                if not (name.startswith("rank-") and name.endswith(".json")):
                    continue
                rank = int(name[len("rank-") : -len(".json")])
                text = read_text(self._path(rank)) if rank != self.rank else None
                if text:
                    found[rank] = json.loads(text)
            if not wait or all(f.get("final") for f in found.values()):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        fields = {f.name for f in dataclasses.fields(RunFacts)}
        return [
            RunFacts(**{k: v for k, v in found[r].items() if k in fields}) for r in sorted(found)
        ]


class LiveTab:
    """The W&B tab of one decorated task call, from its start to its end."""

    def __init__(
        self, run: Any, tab: Any, flush: Callable[[], None], peers: Peers | None = None
    ) -> None:
        self.run = run
        self.peers = peers
        self.tab = tab
        self.flush = flush
        self.recorder = attach(run)
        self.artifacts: list[dict[str, Any]] = []
        self.extra = ""
        self.facts = run_facts(run)
        self._drawn = -1
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self._final: dict[str, Any] | None = None
        self.busy_s = 0.0  # time spent writing the tab (rendering and flushing), for benchmarks
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        import contextvars

        self._write(self.recorder.last_values())
        ctx = contextvars.copy_context()  # flushing needs the task's Flyte context
        self._thread = threading.Thread(
            target=ctx.run, args=(self._loop,), name="flyteplugins-wandb-report", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(LIVE_INTERVAL_S):
            if self.recorder.version != self._drawn:
                self._write(self.recorder.last_values())

    def _write(self, summary: Mapping[str, Any], *, final: bool = False) -> None:
        import time

        started = time.perf_counter()
        try:
            self._write_locked(summary, final)
        finally:
            self.busy_s += time.perf_counter() - started

    def _write_locked(self, summary: Mapping[str, Any], final: bool) -> None:
        with self._lock:
            if self._closed and not final:
                return
            self._drawn = self.recorder.version
            try:
                runs = [self.facts]
                peers = self.peers
                if peers is not None:
                    self.facts.label = peers.label
                    self.facts.last = self.recorder.last_values()
                    peers.publish(self.facts, self.facts.last, final)
                    if not peers.lead:
                        return  # the lead rank writes the task's tab
                    runs += peers.others(wait=final)
                self.tab.replace(render(runs, summary, self.recorder, self.artifacts, self.extra))
                self.flush()
            except Exception as exc:  # a report problem never fails the task
                warnings.warn(
                    f"could not write the W&B tab of the Flyte report: {exc!r}",
                    WandbReportFailed,
                    stacklevel=2,
                )
            if final:
                self._closed = True

    def closing(self, exc: BaseException | None, code: int) -> None:
        """Before the run finishes: stop the live writer, read the summary, release ``log``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)  # at most one live write in progress
        self._final = {**self.recorder.last_values(), **read_summary(self.run)}
        detach(self.run)
        self.facts.state = "finished" if code == 0 else "failed"
        self.facts.exit_code = code
        if exc is not None and code != 0:
            self.extra += (
                f'<p class="fpw-failed">The task failed: {html.escape(type(exc).__name__)}: '
                f"{html.escape(str(exc)[:MAX_CELL_CHARS])}</p>"
            )

    def closed(self) -> None:
        """After the run finished: the final tab."""
        self._write(self._final if self._final is not None else {}, final=True)


_pending: set[Any] = set()  # flushes scheduled on an event loop, kept until done
_scheduled = [0]  # flushes handed to a loop whose task does not exist yet
DRAIN_TIMEOUT_S: Final = 30.0


def make_flusher() -> Callable[[], None]:
    """A function writing the current task's Flyte report (``flyte.report.flush``) from any thread.

    An ``async`` task runs on Flyte's event loop, where a blocking flush is refused (and would
    wait for the loop it blocks): the flush is scheduled on that loop, in the task's context, and
    runs at the task's next ``await`` (or as soon as the task has ended). A synchronous task runs
    on a worker thread while the loop is free: the flush is Flyte's blocking one.
    """
    import asyncio
    import contextvars

    import flyte.report

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return flyte.report.flush
    ctx = contextvars.copy_context()

    async def _flush_once() -> None:
        await flyte.report.flush.aio()

    def schedule() -> None:
        _scheduled[0] -= 1
        task: asyncio.Task[Any] = loop.create_task(_flush_once())
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    def flush() -> None:
        if not loop.is_closed():
            _scheduled[0] += 1
            loop.call_soon_threadsafe(schedule, context=ctx)

    return flush


async def drain() -> None:
    """Wait (bounded) for the report writes scheduled on this event loop: an ``async`` task's
    final tab is on disk when its call returns or raises."""
    import asyncio

    for _ in range(100):
        if not _scheduled[0]:
            break
        await asyncio.sleep(0)
    if _pending:
        await asyncio.wait(list(_pending), timeout=DRAIN_TIMEOUT_S)


def open_tab(run: Any, topology: Any = None) -> LiveTab | None:
    """Start the W&B tab of the current Flyte task for ``run`` (``None`` outside a task).

    In a distributed job (``topology`` given) every rank with a run shares its part through
    :class:`Peers` and global rank 0 writes the tab.
    """
    import flyte
    import flyte.report

    tctx = flyte.ctx()
    if not tctx:
        return None
    tab = flyte.report.get_tab(TAB_NAME)
    peers = None
    if topology is not None and topology.world_size > 1:
        peers = Peers(str(tctx.output_path), topology.rank)
    live = LiveTab(run, tab, make_flusher(), peers)
    live.start()
    return live


# -- sweeps --------------------------------------------------------------------------------------


def sweep_section(results: Mapping[str, Any]) -> str:
    """The trials of a sweep (parameters, metric, state), the best one highlighted, and the
    metric of each trial as a chart (trial order on x)."""
    metric = results.get("metric") or {}
    name = str(metric.get("name") or "metric")
    trials = list(results.get("trials") or [])
    best = (results.get("best") or {}).get("run_id")
    params = sorted({k for t in trials for k in (t.get("params") or {})})
    rows = []
    for t in trials:
        is_best = t.get("run_id") == best
        cells = [
            html.escape(str(t.get("run_id"))) + (" <b>(best)</b>" if is_best else ""),
            *(_cell((t.get("params") or {}).get(p, "-")) for p in params),
            _cell(t.get("metric") if t.get("metric") is not None else "-"),
            html.escape(str(t.get("state"))),
        ]
        rows.append((is_best, cells))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["trial", *params, name, "state"])
    best_row = ' class="fpw-best"'
    body = "".join(
        f"<tr{best_row if is_best else ''}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
        for is_best, cells in rows
    )
    series = Series()
    for i, t in enumerate(trials):
        value = t.get("metric")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            series.xs.append(float(i))
            series.ys.append(float(value))
            series.count += 1
            series.last = float(value)
    goal = html.escape(str(metric.get("goal") or ""))
    chart = svg_chart(f"{name} per trial", series) if series.count else ""
    return (
        f"<h3>Sweep {html.escape(str(results.get('sweep_id')))} "
        f"({html.escape(str(results.get('method')))}, {goal} {html.escape(name)})</h3>"
        f'<table class="fpw-sweep"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        f'<div class="fpw-grid">{chart}</div>'
    )


def report_sweep(results: Mapping[str, Any]) -> None:
    """Show a sweep's trials in the W&B tab of the current task's Flyte report, and write it.

    ``results`` is what ``run_parallel_agents`` / ``run_agent`` return for a local sweep
    (``sweep_id``, ``method``, ``metric``, ``trials``, ``best``). Outside a Flyte task this does
    nothing (Flyte has no report there).
    """
    if not isinstance(results, Mapping) or not isinstance(results.get("trials"), list):
        got = type(results).__name__ if not isinstance(results, Mapping) else sorted(results)
        raise TypeError(
            f"report_sweep() takes what run_agent / run_parallel_agents return (a mapping with "
            f"'sweep_id', 'method', 'metric', 'trials' and 'best'), not {got!r}"
        )
    import flyte
    import flyte.report

    if not flyte.ctx():
        return
    tab = flyte.report.get_tab(TAB_NAME)
    tab.replace(f'{_STYLE}<section class="fpw-wandb">{sweep_section(results)}</section>')
    make_flusher()()
