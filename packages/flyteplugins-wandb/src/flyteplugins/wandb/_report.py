"""The W&B tab of the Flyte report: the run, its summary and its scalar series, drawn locally.

With ``report=True`` (on ``@wandb_init`` or in ``wandb_config``) a decorated task's Flyte report
gets a tab named :data:`TAB_NAME`. It shows the run's page (``run.url`` of the live run, so it
names the real entity even when the task's link could not), project, entity, id, group, state
and exit code, the summary as a table, the artifacts the task logged and used (see
``_artifacts``) and one small chart per scalar series the run logged *in this process*.

The charts need no network and no plotting library (``_charts``: a recorder on the run's
``log``, bounded series, inline SVG).

The tab is rewritten while the task runs (a daemon thread, at most every
:data:`LIVE_INTERVAL_S` seconds and only when something new was logged; logging never waits for
it) and a last time when the call ends, also when it failed, after the run was finished.
"""

from __future__ import annotations

import html
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Final

from ._charts import (
    _STYLE,
    MAX_CELL_CHARS,
    RunFacts,
    Series,
    _cell,
    attach,
    detach,
    render,
    svg_chart,
)
from ._stores import list_names, read_text, write_text

TAB_NAME: Final = "Weights & Biases"
LIVE_INTERVAL_S: float = 5.0
"""Least time between two live rewrites of the tab (the final one is not delayed)."""


class WandbReportFailed(UserWarning):
    """Writing the W&B tab of the Flyte report failed; the task and its run are not affected."""


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

        fragment = {**dataclasses.asdict(facts), "label": self.label, "last": dict(last)}
        write_text(self._path(self.rank), json.dumps({**fragment, "final": final}, default=str))

    def others(self, *, wait: bool) -> list[RunFacts]:
        import dataclasses
        import json
        import time

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
