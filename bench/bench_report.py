"""Benchmarks of the Flyte-native features: the W&B report tab and outputs as artifacts.

* **What the report's recorder costs per ``run.log``**: in one real local Flyte task with
  ``report=True`` (the real client, offline), ``BENCH_REPORT_BLOCKS`` blocks of
  ``BENCH_REPORT_BLOCK`` calls of ``run.log`` (the recorder attached to the run's ``log``)
  alternate with as many blocks of the client's own ``Run.log`` on the same run; the median time
  per call of each, and the median of the differences between adjacent blocks (what the
  recorder adds, with the machine's changing load cancelled out). Beside it, the recorder's own
  work per row (``Recorder.record`` alone, no client), which is what the difference should be.
  Both loops log after the run has started: with the plugin's background start, ``run.log``
  before the client was ready only queued the row, so a loop timed then measured the queue (the
  "89.71x" loop row of an earlier run).
* **Report on vs off, whole task**: one real local Flyte task logging ``BENCH_REPORT_STEPS``
  (10^4) rows of four scalars, run with ``report=True`` and without, alternately,
  ``BENCH_REPORT_REPEATS`` times each; the fastest of each (on a shared machine other load only
  ever adds time) of the whole run's wall time (the client's start and finish and the tab,
  drawn once when the call ends, included).
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
BLOCKS = int(os.environ.get("BENCH_REPORT_BLOCKS", "200"))
BLOCK = int(os.environ.get("BENCH_REPORT_BLOCK", "50"))
# Every run starts before the task's code (blocking), where the plugin still has a background
# start: a background start's run.log queues rows until the client is ready.
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
    row = {"loss": 0.5, "acc": 0.25, "lr": 0.1, "epoch": 1}

    def body(steps: int) -> None:
        run = get_wandb_run()
        assert run is not None
        for i in range(steps):
            run.log({"loss": 1.0 / (i + 1), "acc": i / steps, "lr": 0.1, "epoch": i // 100})

    @wandb_init(project="bench-report", entity="bench", report=True)
    @env.task
    def with_report(steps: int) -> int:
        body(steps)
        return steps

    @wandb_init(project="bench-report", entity="bench")
    @env.task
    def without_report(steps: int) -> int:
        body(steps)
        return steps

    @wandb_init(project="bench-report", entity="bench", report=True)
    @env.task
    def per_call(blocks: int, size: int) -> dict[str, float]:
        run = get_wandb_run()
        assert run is not None
        assert "log" in vars(run), "the report's recorder is no longer on run.log: update me"
        loops = {"recorded": run.log, "own": type(run).log.__get__(run)}  # the client's log
        per_call: dict[str, list[float]] = {name: [] for name in loops}
        for i in range(blocks):
            for name in sorted(loops, reverse=bool(i % 2)):
                log = loops[name]
                start = time.perf_counter()
                for _ in range(size):
                    log(row)
                per_call[name].append((time.perf_counter() - start) / size * 1e6)
        paired = [a - b for a, b in zip(per_call["recorded"], per_call["own"], strict=True)]
        medians = {name: statistics.median(values) for name, values in per_call.items()}
        return {**medians, "added": statistics.median(paired)}

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


def _recorder_alone_us(blocks: int, size: int) -> float:
    """Median time of ``Recorder.record`` per row of four scalars, no client involved."""
    from flyteplugins.wandb._charts import Recorder

    recorder = Recorder()
    row = {"loss": 0.5, "acc": 0.25, "lr": 0.1, "epoch": 1}
    per_call = []
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(size):
            recorder.record(row)
        per_call.append((time.perf_counter() - start) / size * 1e6)
    return statistics.median(per_call)


def _report_rows(tasks: dict[str, Any]) -> list[dict[str, Any]]:
    on: list[float] = []
    off: list[float] = []
    _timed(tasks["without_report"], 100)  # warm up imports and the client
    calls = dict(_timed_run(tasks["per_call"], BLOCKS, BLOCK)[1])
    for i in range(REPEATS):
        order = ("with_report", "without_report") if i % 2 else ("without_report", "with_report")
        for name in order:
            (on if name == "with_report" else off).append(_timed(tasks[name], STEPS))
    alone = _recorder_alone_us(BLOCKS, 10 * BLOCK)
    n = f"{STEPS:,}".replace(",", " ")
    calls_n = f"{BLOCKS} x {BLOCK}"
    rows = [
        {
            "benchmark": "report: one run.log with the recorder attached (vs the client's own "
            f"log on the same run), median per call of {calls_n} calls each, interleaved",
            "value": calls["recorded"],
            "baseline": calls["own"],
            "unit": "µs",
            "target": "<= baseline x 1.02",
        },
        {
            "benchmark": "report: time the recorder adds to one run.log, median of the "
            "differences between adjacent blocks (the load of the machine cancels out)",
            "value": calls["added"],
            "baseline": None,
            "unit": "µs",
            "target": f"<= 2 % of the client's log ({calls['own'] * 0.02:.1f} µs)",
        },
        {
            "benchmark": "report: the recorder's own work per logged row of 4 scalars "
            "(Recorder.record alone, no client)",
            "value": alone,
            "baseline": None,
            "unit": "µs",
            "target": "reported (what the row above should be)",
        },
        {
            "benchmark": f"report: task logging {n} steps, report=True (vs off), fastest run",
            "value": min(on),
            "baseline": min(off),
            "unit": "s",
            "target": "<= baseline x 1.02",
        },
    ]
    return rows


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
