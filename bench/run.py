"""Run every benchmark, print one table, and write it into docs/benchmarks.md with a plot.

Each ``bench/bench_<area>.py`` exposes ``run() -> list[dict]``, rows of
``{"benchmark", "value", "baseline", "unit", "target"}``, every figure a median measured side by
side with its baseline in the same call. Each module runs in a process of its own, so one
module's imports or crash cannot disturb another; a module that fails (or runs past
``BENCH_MODULE_TIMEOUT`` seconds) becomes a row saying so. Benchmarks measure: this script exits
0 whatever the figures are.

Usage: ``python bench/run.py [AREA ...] [--no-write]`` (areas: core, plugin, sweeps, ...); with
areas named, the other areas' rows of the last run (docs/benchmarks.json) are kept.
Only the section between ``<!-- bench:start -->`` and ``<!-- bench:end -->`` of
docs/benchmarks.md is rewritten; other sections (the GPU results) are kept as they are.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "benchmarks.png"
ROWS = ROOT / "docs" / "benchmarks.json"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
TIMEOUT = float(os.environ.get("BENCH_MODULE_TIMEOUT", "2400"))

_CHILD = """
import json, runpy, sys
sys.path.insert(0, sys.argv[1])
module = runpy.run_path(sys.argv[2], run_name="bench_module")
rows = module["run"]()
with open(sys.argv[3], "w") as fh:
    json.dump(rows, fh)
"""


def areas() -> dict[str, Path]:
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def _failed(area: str, why: str) -> list[dict[str, Any]]:
    return [
        {
            "area": area,
            "benchmark": f"{area}: FAILED ({why})",
            "value": math.nan,
            "baseline": None,
            "unit": "",
            "target": "",
        }
    ]


def _bench_env() -> dict[str, str]:
    """The environment of the benchmark processes: this one's, with bytecode caches allowed.

    Installed code runs from compiled caches (pip writes them at install, Python at first
    import); with ``PYTHONDONTWRITEBYTECODE`` set every process compiles its sources again, which
    charges an editable install (ours) for what a wheel (the published baseline) never pays.
    """
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_area(area: str, path: Path) -> tuple[list[dict[str, Any]], float]:
    """Rows of one module, run in its own process; failures become a row."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"bench-{area}-") as tmp:
        out = Path(tmp) / "rows.json"
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _CHILD, str(HERE), str(path), str(out)],
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                cwd=tmp,
                env=_bench_env(),
            )
        except subprocess.TimeoutExpired:
            return _failed(area, f"timed out after {TIMEOUT:.0f} s"), time.perf_counter() - start
        took = time.perf_counter() - start
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()
            last = tail[-1] if tail else f"exit status {proc.returncode}"
            sys.stderr.write(f"--- bench {area} failed ---\n{proc.stderr[-4000:]}\n")
            return _failed(area, last[:160]), took
        try:
            rows = json.loads(out.read_text())
            return [_check_row(area, r) for r in rows], took
        except (ValueError, TypeError, KeyError) as exc:
            return _failed(area, f"bad rows: {exc}"), took


def _check_row(area: str, row: dict[str, Any]) -> dict[str, Any]:
    missing = {"benchmark", "value", "unit", "target"} - set(row)
    if missing:
        raise KeyError(f"row {row!r} lacks {sorted(missing)}")
    value = row["value"]
    base = row.get("baseline")
    return {
        "area": area,
        "benchmark": str(row["benchmark"]),
        "value": math.nan if value is None else float(value),
        "baseline": None if base is None else float(base),
        "unit": str(row["unit"]),
        "target": str(row["target"]),
    }


def ratio(row: dict[str, Any]) -> float | None:
    base, value = row.get("baseline"), row["value"]
    if base is None or not base or math.isnan(value):
        return None
    return float(value) / float(base)


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if math.isnan(x):
        return "n/a"
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for dist in ("flyte", "wandb", "torch", "flyteplugins-wandb"):
        try:
            versions.append(f"{dist} {md.version(dist)}")
        except md.PackageNotFoundError:
            pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = f", load average {os.getloadavg()[0]:.1f} at the end"
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs{load}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; {', '.join(versions)}"
    )


def rows_table(rows: list[dict[str, Any]]) -> list[list[str]]:
    out = []
    for r in rows:
        out.append(
            [
                r["area"],
                r["benchmark"],
                _fmt(r["value"]),
                _fmt(r["baseline"]),
                _fmt(ratio(r)) + ("x" if ratio(r) is not None else ""),
                r["unit"],
                r["target"],
            ]
        )
    return out


HEADER = ["area", "benchmark", "median", "baseline", "ratio", "unit", "target"]


def print_table(rows: list[dict[str, Any]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text when rich is missing
        for line in rows_table(rows):
            print(" | ".join(line))
        return
    table = Table(title="Benchmarks (medians; ratio = median / baseline)")
    for h in HEADER:
        table.add_column(h, justify="right" if h in ("median", "baseline", "ratio") else "left")
    for line in rows_table(rows):
        style = "red" if "FAILED" in line[1] else None
        table.add_row(*line, style=style)
    console = Console() if sys.stdout.isatty() else Console(width=180)
    console.print(table)


def higher_is_better(row: dict[str, Any]) -> bool:
    """Rates (``trials/min``, ``rows/s``) improve upwards; times and sizes downwards."""
    return "/" in row["unit"]


def _label(row: dict[str, Any]) -> str:
    name = row["benchmark"]
    if not name.startswith(f"{row['area']}:"):
        name = f"{row['area']}: {name}"
    return name if len(name) <= 72 else name[:69] + "..."


def plot(rows: list[dict[str, Any]], path: Path) -> bool:
    """Horizontal bars of median / baseline for every row that has a baseline."""
    with_base = [r for r in rows if ratio(r)]
    if not with_base:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    values = [ratio(r) or 1.0 for r in with_base]
    better = [
        (v >= 1) if higher_is_better(r) else (v <= 1)
        for r, v in zip(with_base, values, strict=True)
    ]
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(values) + 1.6))
    ax.barh(
        range(len(values)),
        values,
        color=["tab:green" if b else "tab:orange" for b in better],
    )
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(range(len(values)), [_label(r) for r in with_base], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    ax.set_xticks([t for t in (0.05, 0.1, 0.2, 0.5, 1, 1.5, 2, 5, 10) if lo <= t <= hi])
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: ""))
    ax.set_xlabel("median / baseline (log scale)")
    ax.set_title("flyteplugins-wandb benchmarks")
    ax.legend(
        handles=[
            Patch(color="tab:green", label="better than its baseline"),
            Patch(color="tab:orange", label="worse than its baseline"),
        ],
        loc="lower right",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def markdown(
    rows: list[dict[str, Any]], took: dict[str, float], has_plot: bool, ran: list[str] | None = None
) -> str:
    """The section of docs/benchmarks.md; ``ran``: the areas this run measured, where it kept
    the other areas' rows of the run before."""
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    written = f"Written by `nox -s bench` on {when}."
    if ran:
        written = (
            f"Written by `nox -s bench -- {' '.join(ran)}` on {when}: the rows of "
            f"{', '.join(ran)} are from that run, the others from the last run of every area."
        )
    lines = [
        START,
        "## Results",
        "",
        written,
        "",
        f"Machine: {machine()}.",
        "",
        "Every figure is a median; each benchmark runs its baseline in the same call, alternating "
        "with the measured variant, so load on the machine affects both alike. `ratio` is "
        "median / baseline. The published baseline is `flyteplugins-wandb` 2.12.1 in a "
        "virtualenv of its own (`bench/published.py`).",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    for line in rows_table(rows):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in line) + " |")
    lines += ["", "Time per area: " + ", ".join(f"{a} {t:.0f} s" for a, t in took.items()) + "."]
    if has_plot:
        lines += ["", f"![median / baseline per benchmark]({PLOT.name})"]
    lines.append(END)
    return "\n".join(lines)


def write_doc(section: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        _, after = rest.split(END, 1)
        text = before + section + after
    else:  # first run: the section goes right after the title
        head, _, tail = text.partition("\n")
        text = f"{head}\n\n{section}\n{tail}"
    DOC.write_text(text)


def _doc_times() -> dict[str, float]:
    """The "Time per area" of docs/benchmarks.md (runs before docs/benchmarks.json kept it)."""
    found = re.search(r"^Time per area: (.*)\.$", DOC.read_text(), re.M) if DOC.exists() else None
    pairs = re.findall(r"(\w+) (\d+) s", found.group(1)) if found else []
    return {area: float(seconds) for area, seconds in pairs}


def merge(
    previous: dict[str, Any], rows: list[dict[str, Any]], took: dict[str, float], order: list[str]
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """This run's rows and times in place of its areas' in a previous run's, in area order."""
    kept = [r for r in previous.get("rows", []) if r["area"] not in took]
    merged = sorted(
        kept + rows, key=lambda r: order.index(r["area"]) if r["area"] in order else len(order)
    )
    times = {**previous.get("took", {}), **took}
    return merged, {a: times[a] for a in sorted(times, key=lambda a: (a not in order, a))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("areas", nargs="*", help="only these areas (default: all)")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/")
    parser.add_argument(
        "--plot-only", action="store_true", help=f"redraw the plot from {ROWS.name}, run nothing"
    )
    args = parser.parse_args(argv)
    if args.plot_only:
        plot(json.loads(ROWS.read_text())["rows"], PLOT)
        return 0
    known = areas()
    unknown = sorted(set(args.areas) - set(known))
    if unknown:
        parser.error(f"unknown area(s) {unknown}; known: {sorted(known)}")
    chosen = {a: p for a, p in known.items() if not args.areas or a in args.areas}
    rows: list[dict[str, Any]] = []
    took: dict[str, float] = {}
    for area, path in chosen.items():
        print(f"[bench] {area} ...", flush=True)
        area_rows, seconds = run_area(area, path)
        rows += area_rows
        took[area] = seconds
        print(f"[bench] {area}: {len(area_rows)} row(s) in {seconds:.0f} s", flush=True)
    print_table(rows)
    if args.areas and ROWS.exists():  # only some areas ran: the others' rows are kept as they were
        previous = json.loads(ROWS.read_text())
        previous.setdefault("took", _doc_times())
        rows, took = merge(previous, rows, took, list(known))
    if not args.no_write:
        ROWS.write_text(
            json.dumps({"machine": machine(), "rows": rows, "took": took}, indent=1) + "\n"
        )
        has_plot = plot(rows, PLOT)
        write_doc(markdown(rows, took, has_plot, sorted(chosen) if args.areas else None))
        print(f"[bench] wrote {DOC.relative_to(ROOT)}" + (f" and {PLOT.name}" if has_plot else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
