"""Benchmarks of the Flyte-native features: the W&B report tab and outputs as artifacts.

* **Report on vs off**: one real local Flyte task logging ``BENCH_REPORT_STEPS`` (10^4) rows of
  four scalars with the real client offline, run with ``report=True`` and without, alternately,
  ``BENCH_REPORT_REPEATS`` times each; the fastest of each (on a shared machine other load only
  ever adds time, and runs of the same task were seen to vary by 2x) of the whole run's wall time
  are compared (the report's live writer and its final tab included), and those of the logging
  loop alone (timed inside the task: no client start and finish). Beside it, the added
  cost of one ``run.log`` with the recorder attached, from medians of single calls in one task.
* **Artifacts by reference**: a task returning a ``BENCH_REPORT_DIR_MIB`` (1024) MiB ``Dir``,
  with ``log_outputs=True`` and without, online against the project's own test server on
  127.0.0.1 (``tests-integration/wandb_server``): the bytes the client uploaded for the artifact
  (the server's request log: every PUT except the run's own files) and the added wall time
  (mostly the client computing the checksums of the referenced files).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flyte.io import Dir  # task annotations are resolved in this module's globals

STEPS = int(os.environ.get("BENCH_REPORT_STEPS", "10000"))
REPEATS = int(os.environ.get("BENCH_REPORT_REPEATS", "5"))
DIR_MIB = int(os.environ.get("BENCH_REPORT_DIR_MIB", "1024"))
CALLS = int(os.environ.get("BENCH_REPORT_CALLS", "20000"))
ROOT = Path(__file__).resolve().parents[1]


def _isolate(tmp: str, **extra: str) -> None:
    for key in [k for k in os.environ if k.startswith("WANDB_")]:
        del os.environ[key]
    os.environ.update(
        WANDB_SILENT="true",
        WANDB_DIR=tmp,
        WANDB_CONFIG_DIR=os.path.join(tmp, ".config"),
        WANDB_CACHE_DIR=os.path.join(tmp, ".cache"),
        WANDB_DATA_DIR=os.path.join(tmp, ".data"),
        **extra,
    )
    os.chdir(tmp)


def _tasks() -> dict[str, Any]:
    import flyte

    from flyteplugins.wandb import get_wandb_run, wandb_init

    env = flyte.TaskEnvironment(name="bench_report")

    def body(steps: int) -> float:
        run = get_wandb_run()
        assert run is not None
        start = time.perf_counter()
        for i in range(steps):
            run.log({"loss": 1.0 / (i + 1), "acc": i / steps, "lr": 0.1, "epoch": i // 100})
        return time.perf_counter() - start

    @wandb_init(project="bench-report", entity="bench", report=True)
    @env.task
    def with_report(steps: int) -> float:
        return body(steps)

    @wandb_init(project="bench-report", entity="bench", report=True)
    @env.task
    def tab_work(steps: int) -> dict[str, float]:
        """The loop, and the time the tab's writer spent meanwhile (plus one more write, what
        the final one costs)."""
        from flyteplugins.wandb._decorator import current_active

        loop = body(steps)
        active = current_active()
        tab = active.call.native.tab  # type: ignore[union-attr]
        tab._write(tab.recorder.last_values())
        return {"loop": loop, "busy": tab.busy_s}

    @wandb_init(project="bench-report", entity="bench")
    @env.task
    def without_report(steps: int) -> float:
        return body(steps)

    @wandb_init(project="bench-report", entity="bench", report=True)
    @env.task
    def per_call(calls: int) -> dict[str, float]:
        from flyteplugins.wandb import _report

        run = get_wandb_run()
        assert run is not None
        clock = time.perf_counter_ns
        wrapped, plain = [], []
        own = run.__class__.log.__get__(run)  # the client's log, without the recorder
        row = {"loss": 0.5, "acc": 0.25, "lr": 0.1, "epoch": 1}
        assert run.log is not own and _report.TAB_NAME
        for i in range(calls):
            first, second = (run.log, own) if i % 2 else (own, run.log)
            t0 = clock()
            first(row)
            t1 = clock()
            second(row)
            t2 = clock()
            a, b = t1 - t0, t2 - t1
            (wrapped if first is not own else plain).append(a)
            (plain if first is not own else wrapped).append(b)
        return {
            "wrapped": statistics.median(wrapped) / 1000,
            "plain": statistics.median(plain) / 1000,
        }

    async def write_dir(mib: int) -> Dir:
        import flyte as _flyte

        ctx = _flyte.ctx()
        assert ctx is not None
        local = Path(ctx.raw_data_path.get_random_remote_path("big"))
        local.mkdir(parents=True)
        block = os.urandom(1 << 20)
        for f in range(8):
            with open(local / f"part-{f}.bin", "wb") as fh:
                for _ in range(mib // 8):
                    fh.write(block)
        return Dir(path=str(local))

    @wandb_init(project="bench-artifacts", entity="bench", log_outputs=True)
    @env.task
    async def big_logged(mib: int) -> Dir:
        return await write_dir(mib)

    @wandb_init(project="bench-artifacts", entity="bench")
    @env.task
    async def big_plain(mib: int) -> Dir:
        return await write_dir(mib)

    return {
        "with_report": with_report,
        "tab_work": tab_work,
        "without_report": without_report,
        "per_call": per_call,
        "big_logged": big_logged,
        "big_plain": big_plain,
    }


def _timed(task: Any, *args: Any) -> float:
    return _timed_run(task, *args)[0]


def _timed_run(task: Any, *args: Any) -> tuple[float, Any]:
    """Wall time of a local run of ``task`` and its first output."""
    import flyte
    import wandb

    wandb.teardown()
    flyte.init()
    start = time.perf_counter()
    run = flyte.with_runcontext(mode="local").run(task, *args)
    took = time.perf_counter() - start
    return took, run.outputs()[0]


def _report_rows(tasks: dict[str, Any]) -> list[dict[str, Any]]:
    on: list[float] = []
    off: list[float] = []
    loop_on: list[float] = []
    loop_off: list[float] = []
    _timed(tasks["without_report"], 100)  # warm up imports and the client
    for i in range(REPEATS):
        order = ("with_report", "without_report") if i % 2 else ("without_report", "with_report")
        for name in order:
            took, loop = _timed_run(tasks[name], STEPS)
            (on if name == "with_report" else off).append(took)
            (loop_on if name == "with_report" else loop_off).append(loop)
    import flyte

    calls = dict(flyte.with_runcontext(mode="local").run(tasks["per_call"], CALLS).outputs()[0])
    work = dict(flyte.with_runcontext(mode="local").run(tasks["tab_work"], STEPS).outputs()[0])
    added = STEPS * (calls["wrapped"] - calls["plain"]) / 1e6 + work["busy"]
    n = f"{STEPS:,}".replace(",", " ")
    return [
        {
            "benchmark": f"report: added time for {n} logged steps, from interleaved measures "
            "(recorder per call x steps + the tab's writes), share of the loop",
            "value": 100 * added / work["loop"],
            "baseline": None,
            "unit": "%",
            "target": "<= 2 %",
        },
        {
            "benchmark": f"report: time writing the tab during {n} steps (live writes + a final)",
            "value": work["busy"] * 1000,
            "baseline": None,
            "unit": "ms",
            "target": "reported",
        },
        {
            "benchmark": f"report: task logging {n} steps, report=True (vs off), fastest run",
            "value": min(on),
            "baseline": min(off),
            "unit": "s",
            "target": "<= baseline x 1.02",
        },
        {
            "benchmark": f"report: loop of {n} run.log in the task, report=True (vs off), fastest",
            "value": min(loop_on),
            "baseline": min(loop_off),
            "unit": "s",
            "target": "<= baseline x 1.02",
        },
        {
            "benchmark": "report: one run.log with the recorder attached (vs without)",
            "value": calls["wrapped"],
            "baseline": calls["plain"],
            "unit": "µs",
            "target": "<= baseline x 1.02",
        },
    ]


def _uploaded_bytes(server: Any) -> int:
    """Bytes the client PUT for artifacts (the server takes artifact uploads under
    ``/storage/_artifacts/``; a file of the artifact itself would need ``CreateArtifactFiles``,
    which a reference-only artifact never asks for)."""
    total = 0
    for r in server.requests():
        if r["method"] == "PUT" and r["path"].startswith("/storage/_artifacts/"):
            total += int(r["body"][1:].split()[0])  # logged as "<N bytes of file content>"
    return total


def _artifact_rows(tasks: dict[str, Any], tmp: str) -> list[dict[str, Any]]:
    sys.path.insert(0, str(ROOT / "tests-integration"))
    from servers import WandbTestServer, client_env

    server = WandbTestServer(Path(tmp) / "server")
    server.start()
    try:
        os.environ.update(client_env(server.url, Path(tmp) / "home"))
        before = _uploaded_bytes(server)
        plain = _timed(tasks["big_plain"], DIR_MIB)
        logged = _timed(tasks["big_logged"], DIR_MIB)
        sent = _uploaded_bytes(server) - before
        versions = server.get_json("/_test/artifacts")
    finally:
        server.stop()
    referenced = sum(
        int(e.get("size") or 0)
        for v in versions
        for e in ((v.get("manifest") or {}).get("contents") or {}).values()
    )
    return [
        {
            "benchmark": f"artifacts: bytes uploaded for a {DIR_MIB} MiB Dir logged by reference "
            f"(manifest only; {referenced / 2**20:.0f} MiB referenced)",
            "value": sent,
            "baseline": None,
            "unit": "bytes",
            "target": "~ 0 (no byte of the Dir)",
        },
        {
            "benchmark": f"artifacts: task returning a {DIR_MIB} MiB Dir, log_outputs=True "
            "(vs no artifacts), wall time",
            "value": logged,
            "baseline": plain,
            "unit": "s",
            "target": "reported (checksums of the files)",
        },
    ]


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        _isolate(tmp, WANDB_MODE="offline")
        tasks = _tasks()
        rows = _report_rows(tasks)
        rows += _artifact_rows(tasks, tmp)
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
