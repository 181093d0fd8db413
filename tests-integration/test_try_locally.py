"""docs/distributed.md, "Trying it on one machine": its commands, run as written.

The shell blocks of that section are read from the page and run with a real ``torchrun``
(offline, on a free port instead of 29500, writing under a temporary folder): one node of two
processes, then two simulated nodes (both ``torchrun`` lines at once). What W&B wrote (the
``.wandb`` files) is checked against the page and against the plan script's rows, which the
blocks also run. The example the page shows is the file it runs. Flyte's local mode is checked
too: the specification's form of an Elastic task fails at ``init_process_group`` with the
message the page quotes, the example's form runs as one process with one run, and a local run
records ``attempt`` 0, also on a local retry (docs/guide/tasks.md, "Retries").
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import flyte
import pytest
import torch.distributed as dist
from _plugin_helpers import by_id, run_local
from torchrun_harness import free_ports

from flyteplugins.pytorch.task import Elastic
from flyteplugins.wandb import get_wandb_run, wandb_init
from flyteplugins.wandb._records import RunRecord
from flyteplugins.wandb_core import make_base

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "distributed.md"
EXAMPLE = ROOT / "docs" / "examples" / "train_elastic.py"
BIN = Path(sys.executable).parent


def section() -> str:
    text = PAGE.read_text()
    start = text.index("## Trying it on one machine\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def blocks(kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```$", section(), flags=re.S | re.M)


def run_block(block: str, root: Path) -> list[str]:
    """Run one shell block: ``export``s set the environment, the ``torchrun`` lines start at once
    (they are the nodes of one job), then the other commands run; returns their outputs."""
    port = str(free_ports(1))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_DIR=str(root), WANDB_SILENT="true", WANDB_CONFIG_DIR=str(root / ".config"))
    nodes, others = [], []
    for line in block.splitlines():
        argv = shlex.split(line.replace("--master_port=29500", f"--master_port={port}"))
        if argv[0] == "export":
            name, _, value = argv[1].partition("=")
            env[name] = value
        else:
            assert argv[0] in ("torchrun", "flyteplugins-wandb-plan"), line
            (nodes if argv[0] == "torchrun" else others).append([str(BIN / argv[0]), *argv[1:]])
    assert env.get("WANDB_MODE") == "offline"
    started = [
        subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for argv in nodes
    ]
    outputs = [p.communicate(timeout=300)[0] for p in started]
    assert [p.returncode for p in started] == [0] * len(started), "\n".join(outputs)[-6000:]
    for argv in others:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    return outputs


def planned_writers(plan_output: str) -> dict[str, str]:
    """Run id -> rank, for the rows of the plan script that start a run."""
    rows = [re.split(r"\s{2,}", line.strip()) for line in plan_output.split("\n\n")[0].splitlines()]
    return {row[4]: row[0] for row in rows[2:] if row[3] == "yes"}


def test_the_page_shows_the_example_it_runs() -> None:
    assert blocks("python")[0].rstrip("\n") == EXAMPLE.read_text().rstrip("\n")


@pytest.mark.parametrize(
    ("index", "run_ids"),
    [
        (0, {"try-1-train": (0, 0)}),
        (1, {"try-2-train-worker-0": (0, 0), "try-2-train-worker-1": (2, 1)}),
    ],
    ids=["one node", "two simulated nodes"],
)
def test_the_torchrun_commands_record_what_the_page_says(
    tmp_path: Path, index: int, run_ids: dict[str, tuple[int, int]]
) -> None:
    block = blocks("bash")[index]
    outputs = run_block(block, tmp_path)
    for run_id in run_ids:
        assert f"`{run_id}`" in section()  # the page names the runs this block records
    # The plan script printed the same runs, and which rank starts each.
    assert planned_writers(outputs[-1]) == {rid: str(rank) for rid, (rank, _) in run_ids.items()}

    recorded = by_id(tmp_path)
    assert sorted(recorded) == sorted(run_ids), sorted(recorded)
    for run_id, (rank, worker) in run_ids.items():
        [rec] = recorded[run_id]
        assert rec.project == "try-distributed" and rec.finished and rec.exit_code == 0
        assert [(r["rank"], r["worker"]) for r in rec.history] == [(rank, worker)] * 5
        assert all(r["loss"] >= 0 for r in rec.history)


# ----------------------------------------------------------------------------- local mode

spec_env = flyte.TaskEnvironment(
    name="try_local_spec", plugin_config=Elastic(nnodes=2, nproc_per_node=2)
)


@wandb_init
@spec_env.task
def spec_form(steps: int) -> int:
    dist.init_process_group("gloo")  # what the specification's Elastic example does
    return steps


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_elastic_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _only_run(root: Path) -> RunRecord:
    [(run_id, recs)] = by_id(root).items()
    assert len(recs) == 1, run_id
    return recs[0]


def test_local_mode_runs_an_elastic_task_inline_so_env_init_fails(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    quoted = re.search(r"^```text\n(.*?)\n```$", section(), flags=re.S | re.M)
    assert quoted is not None
    error = quoted.group(1).split(": ", 1)[1]
    with pytest.raises(Exception, match=re.escape(error)):
        run_local(spec_form, 3, name="try-spec-form")
    rec = _only_run(wandb_offline)  # planned as a plain task: one run, marked failed
    assert rec.exit_code == 1


def test_the_example_runs_in_local_mode_as_one_process(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    example = _example()
    loss = run_local(example.train, 4, name="try-local")
    rec = _only_run(wandb_offline)
    flyte_cfg = rec.config["flyte"]
    assert rec.run_id == make_base("try-local", flyte_cfg["action_name"]) and rec.group is None
    assert [(r["rank"], r["worker"]) for r in rec.history] == [(0, 0)] * 4
    assert rec.history[-1]["loss"] == pytest.approx(loss)
    assert flyte_cfg["attempt"] == 0  # local runs do not set FLYTE_ATTEMPT_NUMBER


retry_env = flyte.TaskEnvironment(name="try_local_retry")
_calls: list[int] = []


@wandb_init
@retry_env.task(retries=1)
def flaky() -> str:
    run = get_wandb_run()
    assert run is not None
    _calls.append(len(_calls))
    run.log({"call": len(_calls)})
    if len(_calls) == 1:
        raise RuntimeError("the first local attempt fails")
    return str(run.id)


def test_a_local_retry_records_attempt_0_again(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLYTE_ATTEMPT_NUMBER", raising=False)
    _calls.clear()
    run_id = run_local(flaky, name="try-retry")
    assert len(_calls) == 2  # Flyte's local mode retried the task in this process
    [recs] = by_id(wandb_offline).values()  # both attempts wrote the same run id
    assert {r.run_id for r in recs} == {run_id}
    assert [r.config["flyte"]["attempt"] for r in recs] == [0] * len(recs)
    assert sorted(row["call"] for r in recs for row in r.history) == [1, 2]
