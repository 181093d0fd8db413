"""The change-test loop: the README's test command on a fresh clone of this repository.

Clones the committed ``HEAD`` into a temporary folder and runs ``.ci/run`` there (which runs the
README's test command verbatim: a new virtualenv, nox and uv, then every default nox session),
timing the whole command; each pytest run inside it is listed with its own time. The figure
includes every install (uv's cache is warm after the first run on a machine, as on a developer's
machine and on CI with its cache). Goal on the 2-core machine: <= 7 min.

CPU time, two ways: the machine's busy time over the command (``/proc/stat``: every process,
also other users' on a shared machine), and the command's own process tree (user + system time
of every process it started, the wandb-core services and jobs that outlive their parents
included: the command runs under a child subreaper that adopts and reaps them). On ``N`` cores
the command cannot end in less than its CPU time / ``N``, however its tests are spread.

Where the time goes: the integration session writes every test's duration as JUnit XML
(``.nox/reports/``, see the noxfile) with its CPU time; the 20 slowest tests and the time
per test file are rows.
The Python processes that load torch (torchrun launchers and workers, Elastic workers, the test
process itself) are counted by watching ``/proc`` twice a second, per test file too: starting
one (torch, flyte, the plugin, wandb and its service) is most of a distributed test's cost.

Slow (the whole test suite): ``BENCH_LOOP=0`` skips it (a row says so).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 7 * 60
TARGET_CPU_S = 8 * 60
TARGET_TORCH_PROCESSES = 60
SLOWEST = 20
PR_SET_CHILD_SUBREAPER = 36


def _pytest_runs(output: str) -> list[tuple[str, float]]:
    """``(summary, seconds)`` of each pytest run in the output (``== 3 passed in 8.35s ==``)."""
    pattern = re.compile(r"=+ (\d+ passed[^=]*?) in ([\d.]+)s")
    return [(m.group(1), float(m.group(2))) for m in pattern.finditer(output)]


def busy_cpu_s() -> float | None:
    """Seconds of CPU time this machine has spent busy since boot, all cores (Linux only)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    ticks = [int(f) for f in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # guest time is inside user


# ---------------------------------------------------------------- the process tree of a command


def _tree(root: int) -> list[tuple[int, str]]:
    """``(pid, start time)`` of every process below ``root`` (Linux ``/proc``)."""
    parent: dict[int, tuple[int, str]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        parent[int(name)] = (int(fields[1]), fields[19])
    below = []
    for pid, (ppid, start) in parent.items():
        p, hops = ppid, 0
        while p not in (0, root) and hops < 64:
            p, hops = parent.get(p, (0, ""))[0], hops + 1
        if p == root:
            below.append((pid, start))
    return below


class TorchProcesses:
    """Watches the processes below this one; counts the Python ones that load torch, by the
    test they were started for (``PYTEST_CURRENT_TEST`` in their environment)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[int, str], dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> TorchProcesses:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.5):
            for key in _tree(me):
                self._look(key)

    def _look(self, key: tuple[int, str]) -> None:
        pid = key[0]
        info = self.seen.get(key)
        try:
            if info is None:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if b"python" not in Path(argv[0].decode(errors="replace")).name.encode():
                    self.seen[key] = {"torch": False, "python": False}
                    return
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                test = next(
                    (e.split(b"=", 1)[1] for e in environ if e.startswith(b"PYTEST_CURRENT_TEST=")),
                    b"",
                ).decode(errors="replace")
                info = self.seen[key] = {"torch": False, "python": True, "test": test}
            if info["python"] and not info["torch"]:
                info["torch"] = "libtorch" in Path(f"/proc/{pid}/maps").read_text()
        except (OSError, IndexError):
            return  # the process ended while it was being read: nothing to count

    def torch_processes(self) -> list[dict[str, Any]]:
        return [i for i in self.seen.values() if i["torch"]]


def run_tree(
    argv: list[str], cwd: Path, env: dict[str, str], capture: bool = True
) -> dict[str, Any]:
    """Run ``argv`` as a child subreaper's child: its wall time, the CPU time of every process
    it started (reaped here, also those that outlived their parents), torch processes; its
    output (``capture``) or none (it went to this process's)."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with TorchProcesses() as watch:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=capture, text=True)
        took = time.perf_counter() - start
        deadline = time.monotonic() + 120  # services that outlive the command, then exit
        while time.monotonic() < deadline:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    time.sleep(0.2)
            except ChildProcessError:
                break
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "returncode": proc.returncode,
        "output": (proc.stdout + proc.stderr) if capture else "",
        "wall_s": took,
        "cpu_s": cpu,
        "torch": watch.torch_processes(),
    }


# ---------------------------------------------------------------- per-test durations (JUnit XML)


def test_times(reports: Path) -> list[tuple[str, str, float, float]]:
    """``(file, test, seconds, CPU seconds)`` of every test case in the JUnit XML files under
    ``reports`` (a test's time includes its set-up, e.g. a module's shared job, and its
    teardown; its CPU time is the ``cpu_s`` property tests-integration/conftest.py writes)."""
    out = []
    for xml in sorted(reports.glob("*.xml")):
        for case in ET.parse(xml).getroot().iter("testcase"):
            parts = case.get("classname", "").split(".")  # tests-integration.test_x[.Class]
            module = next((p for p in parts if p.startswith("test_")), parts[-1])
            cpu = next(
                (
                    float(p.get("value", "0"))
                    for p in case.iter("property")
                    if p.get("name") == "cpu_s"
                ),
                0.0,
            )
            out.append((f"{module}.py", case.get("name", ""), float(case.get("time", "0")), cpu))
    return out


def _row(benchmark: str, value: float, unit: str, target: str = "report") -> dict[str, Any]:
    return {
        "benchmark": benchmark,
        "value": value,
        "baseline": None,
        "unit": unit,
        "target": target,
    }


def time_rows(times: list[tuple[str, str, float, float]]) -> list[dict[str, Any]]:
    rows = []
    per_file: Counter[str] = Counter()
    cpu_per_file: Counter[str] = Counter()
    for file, _, seconds, cpu in times:
        per_file[file] += seconds
        cpu_per_file[file] += cpu
    slowest = sorted(times, key=lambda t: -t[2])[:SLOWEST]
    for file, name, seconds, cpu in slowest:
        rows.append(
            _row(f"integration: slow test {file}::{name} (CPU {cpu:.1f} s)", round(seconds, 1), "s")
        )
    for file, seconds in per_file.most_common():
        label = f"integration: file {file}, all its tests (CPU {cpu_per_file[file]:.1f} s)"
        rows.append(_row(label, round(seconds, 1), "s"))
    return rows


def torch_rows(processes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_file: Counter[str] = Counter()
    for p in processes:
        by_file[p["test"].split("::", 1)[0].rsplit("/", 1)[-1] or "(no test)"] += 1
    rows = [
        _row(
            "README test command: Python processes that loaded torch (tests and jobs)",
            len(processes),
            "processes",
            f"<= {TARGET_TORCH_PROCESSES}",
        )
    ]
    for file, n in by_file.most_common():
        rows.append(_row(f"integration: torch processes started for {file}", n, "processes"))
    return rows


def run() -> list[dict[str, Any]]:
    if os.environ.get("BENCH_LOOP", "1") == "0":
        return [_row("README test command, fresh clone: skipped (BENCH_LOOP=0)", float("nan"), "")]
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOX_", "VIRTUAL_ENV"))}
        busy_before = busy_cpu_s()
        done = run_tree([str(clone / ".ci" / "run")], clone, env)
        busy_after = busy_cpu_s()
        times = test_times(clone / ".nox" / "reports")
    if done["returncode"] != 0:
        raise RuntimeError(f".ci/run failed ({done['returncode']}):\n{done['output'][-3000:]}")
    cores = os.cpu_count() or 1
    rows = [
        _row(
            "README test command, fresh clone (whole command)",
            round(done["wall_s"] / 60, 2),
            "min",
            f"<= {TARGET_S / 60:g} min",
        ),
        _row(
            "README test command: CPU time of its processes (user + system, all of them)",
            round(done["cpu_s"] / 60, 2),
            "CPU-min",
            f"<= {TARGET_CPU_S / 60:g} CPU-min",
        ),
        _row(
            f"README test command: floor on {cores} cores (its CPU time / cores)",
            round(done["cpu_s"] / cores / 60, 2),
            "min",
            f"<= {TARGET_S / 60:g} min for the goal to be reachable",
        ),
    ]
    if busy_before is not None and busy_after is not None:
        rows.append(
            _row(
                "README test command: busy CPU time of the machine over it (other users too)",
                round((busy_after - busy_before) / 60, 2),
                "CPU-min",
            )
        )
    for summary, seconds in sorted(_pytest_runs(done["output"]), key=lambda r: -r[1]):
        rows.append(
            _row(
                f"README test command: a pytest run inside it ({summary})",
                round(seconds / 60, 2),
                "min",
            )
        )
    return rows + torch_rows(done["torch"]) + time_rows(times)


def main(argv: list[str]) -> int:
    """``bench_loop.py`` runs the benchmark; ``bench_loop.py --tree OUT.json -- CMD...`` runs one
    command measured the same way (its CPU time, its torch processes) and writes the figures."""
    if argv[:1] == ["--tree"]:
        out, cmd = Path(argv[1]), argv[argv.index("--") + 1 :]
        done = run_tree(cmd, Path.cwd(), dict(os.environ), capture=False)
        del done["output"]
        out.write_text(json.dumps(done, indent=1))
        n = len(done["torch"])
        print(
            f"wall {done['wall_s'] / 60:.2f} min, CPU {done['cpu_s'] / 60:.2f} CPU-min, "
            f"{n} torch processes",
            file=sys.stderr,
        )
        return int(done["returncode"])
    for row in run():
        print(f"{row['benchmark']:<72} {row['value']:>8} {row['unit']}  {row['target']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
