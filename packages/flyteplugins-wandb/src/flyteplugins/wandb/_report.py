"""The W&B tab of a task's Flyte report (``report=True``), drawn once as the call ends, with
:class:`Native` running it and the artifact logging of a call; :func:`report_sweep`."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import flyte
import flyte.report

from . import _artifacts, _flyte
from ._artifacts import list_names, read_text, write_text
from ._charts import Recorder, attach, detach, fmt, svg_chart
from ._extension import Extension
from ._resilience import redact

TAB_NAME: Final = "Weights & Biases"
PEER_WAIT_S: float = 30.0  # how long rank 0 waits for the other ranks' final lines
MAX_SUMMARY_ROWS: Final = 200
MAX_CELL_CHARS: Final = 300
PLACES: Final = ("project", "entity", "group")
OPEN: Final = (  # the tab's style and the opening of its section
    "<style>.fpw-wandb{font-family:sans-serif;font-size:13px}.fpw-wandb table{border-collapse:"
    "collapse;margin:6px 0 14px}.fpw-wandb td,.fpw-wandb th{border:1px solid #ddd;padding:3px 8px;"
    "text-align:left;vertical-align:top}.fpw-wandb th{background:#f3f3f3}.fpw-grid{display:flex;"
    "flex-wrap:wrap;gap:10px}.fpw-chart{margin:0}.fpw-chart figcaption{font-size:12px}.fpw-failed{"
    'color:#b00;font-weight:bold}.fpw-best{background:#fff4d6}</style><section class="fpw-wandb">'
)


class WandbReportFailed(UserWarning):
    """Writing the W&B tab of the Flyte report failed; the task and its run are not affected."""


def _plain(value: Any) -> Any:  # the client's nested summary objects as dicts
    return dict(value) if hasattr(value, "keys") else str(value)


def _cell(value: Any) -> str:
    is_json = isinstance(value, dict | list) or hasattr(value, "keys")
    text = json.dumps(value, default=_plain, sort_keys=True) if is_json else fmt(value)
    return html.escape(text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 3] + "...")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], css: str, best: int = -1) -> str:
    head, mark = "".join(f"<th>{html.escape(h)}</th>" for h in headers), ' class="fpw-best"'
    body = "".join(
        f"<tr{mark if i == best else ''}><td>{'</td><td>'.join(row)}</td></tr>"
        for i, row in enumerate(rows)
    )
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class Tab:
    """The W&B tab of one task call, with ``artifacts`` (what the call logged and used). With a
    ``rank`` (a distributed task), every rank writes its line to ``<task output>/wandb-report/
    rank-<rank>.json``; global rank 0 draws them all."""

    def __init__(self, run: Any, output_path: str, rank: int | None = None) -> None:
        self.run, self.rank, self.recorder = run, rank, attach(run)
        self.folder = output_path.rstrip("/") + "/wandb-report"
        self.artifacts: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}
        self.extra, self.state = "", "<span>running</span>"
        e, url = html.escape, None if getattr(run, "offline", False) else run.url  # else it warns
        link = f'<a href="{e(url)}" target="_blank" rel="noopener">{e(run.id)}</a>' if url else ""
        self.cells = [link or e(run.id), *(e(getattr(run, k) or "-") for k in PLACES)]
        sync = f"<code>wandb sync {e(run.settings.sync_dir)}</code>"
        self.note = "" if url else f"<p>Run {e(run.id)} is offline: upload it with {sync}.</p>"
        self._line(final=False)  # in a distributed task, rank 0 then waits for this rank's line

    def _line(self, final: bool) -> dict[str, Any]:  # this run's row, written for rank 0 too
        last = ", ".join(f"{k}={fmt(v)}" for k, v in self.recorder.last_values().items())
        cells, note = [*self.cells, self.state], self.note
        line = {"rank": self.rank, "cells": cells, "last": last, "note": note, "final": final}
        if self.rank is not None:
            write_text(f"{self.folder}/rank-{self.rank}.json", json.dumps(line))
        return line

    def follow(self, run: Any) -> None:
        """``rewind_to`` put ``run`` in place of the tab's run: chart what is logged to it."""
        detach(self.run)
        self.run, self.recorder = run, attach(run)

    def closing(self, exc: BaseException | None, code: int) -> None:
        """Before the run finishes: read its summary, give the run its ``log`` back."""
        self.summary = self.recorder.last_values()
        with contextlib.suppress(Exception):  # the client cannot answer: the last values stand in
            self.summary.update(dict(self.run.summary))
        detach(self.run)
        failed = ' class="fpw-failed"' if code else ""
        self.state = f"<span{failed}>{'failed' if code else 'finished'} (exit {code})</span>"
        if exc is not None and code != 0:
            failure = html.escape(f"{type(exc).__name__}: {str(exc)[:MAX_CELL_CHARS]}")
            self.extra += f'<p class="fpw-failed">The task failed: {failure}</p>'

    def closed(self) -> None:
        """After the run finished: the tab written (rank 0 waits at most PEER_WAIT_S for the
        other ranks' final lines; they only write theirs)."""
        lines = [self._line(final=True)]
        if self.rank:
            return
        if self.rank == 0:
            for _ in range(int(PEER_WAIT_S / 0.2)):  # until every other rank's line is final
                names = [n for n in list_names(self.folder) if n.startswith("rank-")]
                texts = [read_text(f"{self.folder}/{n}") for n in names if n != "rank-0.json"]
                others = sorted((json.loads(t) for t in texts if t), key=lambda p: p["rank"])
                if all(p["final"] for p in others):
                    break
                time.sleep(0.2)
            lines += others
        flyte.report.get_tab(TAB_NAME).replace(self.html(lines))
        _flush()

    def html(self, lines: Sequence[Mapping[str, Any]]) -> str:
        """The tab (a fragment that Flyte puts into its report page), one row per run's line."""
        e, many, heads = html.escape, len(lines) > 1, ["run", *PLACES, "state"]
        rows = [[f"rank {p['rank']}", *p["cells"], e(p["last"] or "-")] for p in lines]
        heads = ["writer", *heads, "last values"] if many else heads
        table = _table(heads, rows if many else [rows[0][1:-1]], "fpw-runs")
        parts = [OPEN, "<h2>Weights &amp; Biases</h2>", table, *(p["note"] for p in lines)]
        shown = [(k, v) for k, v in sorted(self.summary.items()) if not str(k).startswith("_")]
        if shown:
            rows = [[e(str(k)), _cell(v)] for k, v in shown[:MAX_SUMMARY_ROWS]]
            parts += ["<h3>Summary</h3>", _table(["key", "value"], rows, "fpw-summary")]
            more = len(shown) - MAX_SUMMARY_ROWS
            parts.append(f"<p>{more} more keys are on the run's page.</p>" if more > 0 else "")
        if self.recorder.series:
            charts = "".join(svg_chart(k, s) for k, s in sorted(self.recorder.series.items()))
            parts.append(f'<h3>Charts</h3><div class="fpw-grid">{charts}</div>')
        if self.artifacts:
            keys = ("direction", "name", "type", "digest", "uri")
            rows = [[e(str(a.get(k) or "-")) for k in keys] for a in self.artifacts]
            heads = ["", "artifact", "type", "digest", "reference"]
            parts += ["<h3>Artifacts</h3>", _table(heads, rows, "fpw-artifacts")]
        return "".join([*parts, self.extra, "</section>"])


_pending: set[asyncio.Future[Any]] = set()  # report writes scheduled on an event loop


def _flush() -> None:
    """Write the current task's Flyte report; on an event loop (an ``async`` task, which Flyte's
    blocking flush would stall) as a write that :func:`settle` awaits."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # a synchronous task's thread
        flyte.report.flush()
        return
    _pending.add(task := asyncio.ensure_future(flyte.report.flush.aio()))
    task.add_done_callback(_pending.discard)


def report_sweep(results: Mapping[str, Any]) -> None:
    """Show a local sweep's trials (what ``run_parallel_agents`` / ``run_agent`` return), the best
    highlighted, and their metric as a chart, in the current Flyte task's W&B tab, and write it."""
    if not isinstance(results, Mapping) or not isinstance(results.get("trials"), list):
        got = type(results).__name__ if not isinstance(results, Mapping) else sorted(results)
        raise TypeError(
            f"report_sweep() takes what run_agent / run_parallel_agents return (a mapping with "
            f"'sweep_id', 'method', 'metric', 'trials' and 'best'), not {got!r}"
        )
    if not flyte.ctx():
        return
    e, metric, trials = html.escape, results.get("metric") or {}, results["trials"]
    name, best_id = str(metric.get("name") or "metric"), (results.get("best") or {}).get("run_id")
    params = sorted({k for t in trials for k in (t.get("params") or {})})
    rows, best, by_trial = [], -1, Recorder()
    for i, t in enumerate(trials):
        best = i if best_id is not None and t.get("run_id") == best_id else best
        value = t.get("metric")
        rows.append(
            [e(str(t.get("run_id"))) + (" <b>(best)</b>" if i == best else "")]
            + [_cell((t.get("params") or {}).get(p, "-")) for p in params]
            + [_cell(value if value is not None else "-"), e(str(t.get("state")))]
        )
        by_trial.record({name: value}, i)  # the trial's index as its step
    series = by_trial.series.get(name)
    flyte.report.get_tab(TAB_NAME).replace(
        f"{OPEN}<h3>Sweep {e(str(results.get('sweep_id')))} "
        f"({e(str(results.get('method')))}, {e(str(metric.get('goal') or ''))} {e(name)})</h3>"
        + _table(["trial", *params, name, "state"], rows, "fpw-sweep", best)
        + f'<div class="fpw-grid">{svg_chart(f"{name} per trial", series) if series else ""}'
        + "</div></section>"
    )
    _flush()


class Native(Extension):
    """The report tab and the artifact logging of one task call whose run is live."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.tab: Tab | None = None

    def started(self, call: Any) -> None:
        tctx, topology = flyte.ctx(), call.active.topology
        if self.settings.get("report") and tctx:  # a distributed task: each rank writes its line
            rank = topology.rank if topology is not None and topology.world_size > 1 else None
            args = (call.run, str(tctx.output_path), rank)
            self.tab = _guard(WandbReportFailed, "start the W&B tab", Tab, *args)

    def _log(self, what: str, fn: Callable[..., Any], *args: Any) -> None:
        items = _guard(_artifacts.WandbArtifactFailed, what, fn, *args)
        if self.tab is not None and items:  # the tab lists them
            self.tab.artifacts.extend(items)

    def before(self, call: Any, func: Callable[..., Any], args: Any, kwargs: Any) -> None:
        if self.settings.get("log_inputs"):
            inputs = (call.run, func, args, kwargs, call.owned)
            self._log("record the task's inputs", _artifacts.log_inputs, *inputs)

    def after(self, call: Any, func: Callable[..., Any], result: Any) -> None:
        if self.settings.get("log_outputs"):
            tctx = _flyte.task_context()
            identity = _flyte.identity(tctx).as_config() if tctx else None
            args = (call.run, call.name, func, result, identity)
            self._log("log the task's outputs", _artifacts.log_outputs, *args)

    def closing(self, call: Any, exc: BaseException | None, code: int) -> None:
        if self.tab is not None:
            _guard(WandbReportFailed, "close the W&B tab", self.tab.closing, exc, code)

    def ended(self, call: Any, exc: BaseException | None, code: int) -> None:
        if self.tab is not None:
            _guard(WandbReportFailed, "write the final W&B tab", self.tab.closed)

    def replaced(self, call: Any, old: Any, new: Any) -> None:
        if self.tab is not None:
            _guard(WandbReportFailed, "move the W&B tab to the rewound run", self.tab.follow, new)


def _guard(category: type[Warning], what: str, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:
        warnings.warn(redact(f"could not {what}: {exc!r}"), category, stacklevel=3)
        return None


async def settle() -> None:
    """In an ``async`` task, after its call ended: wait (at most 30 s) for the report writes."""
    try:
        if _pending:
            await asyncio.wait(list(_pending), timeout=30.0)
    except Exception as exc:
        warnings.warn(f"could not write the W&B tab: {exc!r}", WandbReportFailed, stacklevel=1)
