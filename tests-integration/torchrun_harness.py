"""Real multi-process PyTorch jobs for the distributed tests and the distributed benchmark.

A *launcher* process stands in for the pod of a Flyte task that uses the ``Elastic`` plugin
config of ``flyteplugins-pytorch``. It builds a Flyte ``TaskContext`` whose mode is ``"remote"``
and calls the task's real ``execute``: the Elastic plugin then takes its remote path, starting
the workers with ``torch.distributed``'s ``elastic_launch`` (the machinery ``torchrun`` uses),
pickling the task function and restoring the Flyte context and ``custom_context`` in every
worker. The ``@wandb_init`` wrapper therefore runs in each worker as it does in a cluster.

Two nodes are simulated with two launcher processes that meet at the same rendezvous endpoint
(``PET_RDZV_ENDPOINT=127.0.0.1:P``, what the Elastic plugin reads in a cluster); the rendezvous
gives them ``GROUP_RANK`` 0 and 1.

Each worker joins a real gloo (or NCCL) process group, does a real ``all_reduce`` per step, logs the
steps to its run when it has one, and writes its evidence (rank, run, distributed info, whether
``wandb`` is in ``sys.modules``) to a JSON file. A launcher runs several cases in sequence (one
``execute`` each) and writes what each ``execute`` returned or raised.

Usage: ``python torchrun_harness.py SPEC.json NODE_INDEX`` (the tests build the spec, see
:func:`launch`).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# Seconds between an elastic agent's checks of its workers in the test jobs (the Elastic config
# types it as an int, torch's LaunchConfig takes a float): a case ends soon after its workers.
MONITOR_INTERVAL_S = 0.2


@dataclass
class Case:
    """One ``execute`` of one decorated Elastic task."""

    name: str
    run_mode: str | None = None  # None: bare @wandb_init
    rank_scope: str | None = None
    steps: int = 3
    fail_rank: int | None = None  # this rank raises after its steps
    fail_delay_s: float = 0.0  # failing ranks wait this long first (the others finish)
    linger_rank: int | None = None  # this rank sleeps after its steps (still busy when stopped)
    linger_s: float = 0.0
    fail_first_attempt_rank: int | None = None  # raises only when TORCHELASTIC_RESTART_COUNT == 0
    max_restarts: int = 0
    decorate: bool = True  # False: the same job without W&B (benchmark baseline)
    backend: str = "gloo"
    log_every: int = 1
    step_sleep_s: float = 0.0  # lets W&B's system monitor take samples (GPU test)
    init_settings: dict[str, Any] | None = None  # @wandb_init(settings=...)
    finish_timeout: float | None = None  # @wandb_init(finish_timeout=...)
    report: bool = False  # @wandb_init(report=True): the W&B tab of the task's report
    start: str | None = None  # @wandb_init(start=...)
    # Seconds each rank spends on its own set-up (waiting, as on data or a checkpoint)
    # before init_process_group: what a background start of the client can overlap.
    setup_s: float = 0.0
    # After its steps every rank writes <case>/ready-<rank> and waits for <case>/go (the test
    # creates it, e.g. after killing the server), then logs this many more rows and returns.
    rows_after_pause: int | None = None
    # Set in an Elastic launcher for this case's execute only (its workers inherit them).
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Spec:
    run_prefix: str
    out: str
    nnodes: int
    nproc_per_node: int
    cases: list[Case]
    project: str = "dist-tests"
    port_base: int | None = None  # rendezvous ports (one per case) for several nodes
    env: dict[str, str] = field(default_factory=dict)  # set in the launcher before execute


# --------------------------------------------------------------------------- worker side


def since_process_start() -> float | None:
    """Seconds since this process was created (Linux ``/proc``; ``None`` elsewhere)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started_ticks = int(fields[19])  # field 22 of stat(5), counted after "pid (comm)"
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return time.time() - (boot + started_ticks / os.sysconf("SC_CLK_TCK"))


def worker_body(case: dict[str, Any], out: str) -> float:
    """What every worker runs inside the decorated task (and in the baseline without W&B)."""
    startup = since_process_start()  # spawn, imports, Flyte context and (here) @wandb_init
    import torch
    import torch.distributed as dist

    from flyteplugins.wandb import get_distributed_info, get_wandb_run

    start = time.monotonic()
    if case["setup_s"]:
        time.sleep(case["setup_s"])
    rank = int(os.environ["RANK"])
    restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    backend = case["backend"]
    device = torch.device("cpu")
    if backend == "nccl":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    own_group = not dist.is_initialized()  # clustered workers keep one group for all cases
    if own_group:
        dist.init_process_group(backend)
    run = get_wandb_run()
    total = 0.0
    for step in range(case["steps"]):
        t = torch.tensor([float(rank + 1 + step)], device=device)
        dist.all_reduce(t)
        total = float(t.item())
        if run is not None and step % case["log_every"] == 0:
            run.log({"loss": 1.0 / (step + 1), "rank": rank, "sum": total, "step_i": step})
            if step == 0:
                print(f"rank {rank} logged its first step", flush=True)
        if case["step_sleep_s"]:
            time.sleep(case["step_sleep_s"])
    if own_group:
        dist.destroy_process_group()
    folder = Path(out) / case["name"]
    folder.mkdir(parents=True, exist_ok=True)
    if case["rows_after_pause"] is not None:
        # When this worker process ends (after the decorated call finished its run, and after
        # the agent released the worker): the end of the job as the workers see it.
        exit_file = folder / f"exit-rank-{rank}-restart-{restart}.json"
        atexit.register(lambda: exit_file.write_text(json.dumps({"exited_at": time.time()})))
        (folder / f"ready-{rank}").write_text(str(time.time()))
        deadline = time.monotonic() + 120
        while not (folder / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        for i in range(case["rows_after_pause"]):
            if run is not None:
                run.log({"loss": 0.0, "rank": rank, "sum": total, "step_i": case["steps"] + i})
    import flyte

    tctx = flyte.ctx()
    evidence = {
        "rank": rank,
        "restart": restart,
        "pid": os.getpid(),
        "has_run": run is not None,
        "run_id": getattr(run, "id", None),
        "group": getattr(run, "group", None) or None,
        "info": get_distributed_info(),
        "wandb_imported": "wandb" in sys.modules,
        "env": {
            k: os.environ.get(k)
            for k in (
                "RANK",
                "LOCAL_RANK",
                "GROUP_RANK",
                "WORLD_SIZE",
                "LOCAL_WORLD_SIZE",
                "TORCHELASTIC_RUN_ID",
                "TORCHELASTIC_USE_AGENT_STORE",
                "WANDB_SERVICE",
                "WANDB_RUN_ID",
                "WANDB_SWEEP_ID",
                "NODE_RANK",
                "NNODES",
            )
        },
        "run_name": tctx.action.run_name if tctx else None,
        "action_name": tctx.action.name if tctx else None,
        "custom_context": dict(tctx.custom_context) if tctx else None,
        "allreduce": total,
        "cuda_device": torch.cuda.current_device() if backend == "nccl" else None,
        "body_s": time.monotonic() - start,
        "startup_s": startup,
        "returned_at": time.time(),  # the code's end (wall clock: compared across processes)
    }
    (folder / f"rank-{rank}-restart-{restart}.json").write_text(json.dumps(evidence))
    if case["linger_rank"] == rank:
        time.sleep(case["linger_s"])
    if case["fail_rank"] == rank:
        time.sleep(case["fail_delay_s"])
        raise RuntimeError(f"rank {rank} fails on purpose")
    if case["fail_first_attempt_rank"] == rank and restart == 0:
        time.sleep(case["fail_delay_s"])
        raise RuntimeError(f"rank {rank} fails on its first attempt")
    return total


# --------------------------------------------------------------------------- launcher side


def _make_task(spec: Spec, case: Case) -> Any:
    import flyte

    from flyteplugins.pytorch.task import Elastic
    from flyteplugins.wandb import wandb_init

    env = flyte.TaskEnvironment(
        name=f"dist_{case.name}",
        plugin_config=Elastic(
            nnodes=spec.nnodes,
            nproc_per_node=spec.nproc_per_node,
            max_restarts=case.max_restarts,
            monitor_interval=MONITOR_INTERVAL_S,  # type: ignore[arg-type]
            rdzv_configs={"timeout": 120, "join_timeout": 120},
        ),
    )
    out = spec.out
    case_dict = asdict(case)

    def train() -> float:
        return worker_body(case_dict, out)

    train.__name__ = train.__qualname__ = f"train_{case.name}"
    task = env.task(train)
    if not case.decorate:
        return task
    kwargs = decorator_kwargs(case)
    return wandb_init(**kwargs)(task) if kwargs else wandb_init(task)


def decorator_kwargs(case: Case) -> dict[str, Any]:
    """The ``@wandb_init(...)`` arguments of one case (empty: the bare decorator)."""
    kwargs: dict[str, Any] = {}
    if case.run_mode is not None:
        kwargs["run_mode"] = case.run_mode
    if case.rank_scope is not None:
        kwargs["rank_scope"] = case.rank_scope
    if case.init_settings is not None:
        kwargs["settings"] = dict(case.init_settings)
    if case.finish_timeout is not None:
        kwargs["finish_timeout"] = case.finish_timeout
    if case.report:
        kwargs["report"] = True
    if case.start is not None:
        kwargs["start"] = case.start
    return kwargs


def _task_context(run_name: str, action_name: str, custom: Mapping[str, str], root: Path) -> Any:
    import flyte.report
    from flyte.models import ActionID, RawDataPath, TaskContext

    root.mkdir(parents=True, exist_ok=True)
    return TaskContext(
        action=ActionID(name=action_name, run_name=run_name, project="p", domain="development"),
        version="v1",
        raw_data_path=RawDataPath(path=str(root)),
        output_path=str(root),
        run_base_dir=str(root),
        report=flyte.report.Report(name=action_name),
        mode="remote",
        custom_context=dict(custom),
    )


def run_launcher(spec: Spec, node: int) -> list[dict[str, Any]]:
    """Execute every case of ``spec`` as one node's launcher; return one result per case."""
    import flyte._context

    from flyteplugins.wandb import wandb_config

    os.environ.update(spec.env)
    custom = dict(wandb_config(project=spec.project))
    results: list[dict[str, Any]] = []
    for i, case in enumerate(spec.cases):
        if spec.port_base is not None:
            os.environ["PET_RDZV_ENDPOINT"] = f"127.0.0.1:{spec.port_base + i}"
        task = _make_task(spec, case)
        run_name = f"{spec.run_prefix}{i}"
        tctx = _task_context(run_name, "a0", custom, Path(spec.out) / "flyte" / str(node))
        started = time.monotonic()
        result: dict[str, Any] = {"case": case.name, "node": node, "run_name": run_name}
        saved = {name: os.environ.get(name) for name in case.env}
        os.environ.update(case.env)
        try:
            with flyte._context.internal_ctx().replace_task_context(tctx):
                result["value"] = asyncio.run(task.execute())
            result["ok"] = True
        except Exception as exc:
            result["ok"] = False
            result["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        result["wall_s"] = time.monotonic() - started
        result["ended_at"] = time.time()  # every worker has exited
        results.append(result)
    return results


def clustered_worker(spec_path: str) -> int:
    """One worker of a Flyte clustered ``TorchRun`` task, started by a real ``torchrun``.

    The ``clustered`` launcher exports ``NODE_RANK``/``NNODES``/``NPROC_PER_NODE`` and execs
    ``torchrun``, whose workers run the task through Flyte's runtime, i.e. the task template's
    own ``execute`` under the action's (remote) task context. This does the same for every case
    of the spec in turn, inside one process group, after removing the variables named in
    ``drop_env`` (to exercise core's fallbacks for launchers that do not export them).

    One process per rank runs every case: the decorated tasks of a long-lived worker, one after
    another. A case that raises is recorded (``ok`` false) and the next case runs; every rank
    of a case shares its task's storage (``output_path``), as a cluster's ranks share the
    remote storage of their action.
    """
    import flyte
    import flyte._context
    import torch.distributed as dist

    from flyteplugins.wandb import wandb_config, wandb_init

    try:
        from flyte.clustered import ClusteredTaskEnvironment
    except ImportError:  # flyte < 2.5 (the lowest supported flyte): a task run under torchrun
        ClusteredTaskEnvironment = None  # type: ignore[assignment,misc]

    raw = json.loads(Path(spec_path).read_text())
    for name in raw.get("drop_env", []):
        os.environ.pop(name, None)
    dist.init_process_group("gloo")
    custom = dict(wandb_config(project=raw["project"]))
    results = []
    for i, c in enumerate(raw["cases"]):
        case = Case(**c)
        env = (
            ClusteredTaskEnvironment(
                name=f"clustered_{case.name}", replicas=raw["nnodes"], nproc_per_node=raw["nproc"]
            )
            if ClusteredTaskEnvironment is not None
            else flyte.TaskEnvironment(name=f"clustered_{case.name}")
        )
        case_dict = asdict(case)
        out = raw["out"]

        def train(case_dict: dict[str, Any] = case_dict, out: str = out) -> float:
            return worker_body(case_dict, out)

        train.__name__ = train.__qualname__ = f"train_{case.name}"
        kwargs = decorator_kwargs(case)
        task = wandb_init(**kwargs)(env.task(train)) if kwargs else wandb_init(env.task(train))
        run_name = f"{raw['run_prefix']}{i}"
        root = Path(out) / "flyte" / run_name
        tctx = _task_context(run_name, "a0", custom, root)
        result: dict[str, Any] = {"case": case.name, "rank": int(os.environ["RANK"])}
        started = time.monotonic()
        try:
            with flyte._context.internal_ctx().replace_task_context(tctx):
                result["value"] = asyncio.run(task.execute())
            result["ok"] = True
        except Exception as exc:
            result["ok"] = False
            result["error"] = f"{type(exc).__name__}: {exc}"
        result["run_name"] = run_name
        result["wall_s"] = time.monotonic() - started
        results.append(result)
    dist.destroy_process_group()
    Path(raw["out"], f"worker-{os.environ['RANK']}.json").write_text(json.dumps(results))
    return 0


def plain_worker(spec_path: str) -> int:
    """One worker of a plain ``torchrun`` job: each case is a decorated *function* (no Flyte
    task, no Flyte context), called in turn; its name is ``train_<case>`` in every job.

    A case that raises makes the worker exit with an error after the remaining cases, so
    ``torchrun --max-restarts`` restarts the job. The workers join one gloo group for all
    cases before the first call (a second group of the same attempt cannot be formed), unless
    the spec's ``group_in_call`` lets each decorated call form its own group inside (one case).
    """
    import torch.distributed as dist

    from flyteplugins.wandb import wandb_init

    raw = json.loads(Path(spec_path).read_text())
    group_in_call = bool(raw.get("group_in_call"))
    if group_in_call and len(raw["cases"]) > 1:
        raise ValueError("group_in_call needs a single case: a gloo group forms once")
    if not group_in_call:
        dist.init_process_group("gloo")
    rank = int(os.environ["RANK"])
    restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    results = []
    failed = False
    for c in raw["cases"]:
        case = Case(**c)
        case_dict = asdict(case)
        out = raw["out"]

        def train(case_dict: dict[str, Any] = case_dict, out: str = out) -> float:
            return worker_body(case_dict, out)

        train.__name__ = train.__qualname__ = f"train_{case.name}"
        kwargs: dict[str, Any] = {"project": raw["project"]}
        if case.run_mode is not None:
            kwargs["run_mode"] = case.run_mode
        if case.rank_scope is not None:
            kwargs["rank_scope"] = case.rank_scope
        result: dict[str, Any] = {"case": case.name, "rank": rank, "restart": restart}
        try:
            result["value"] = wandb_init(**kwargs)(train)()
            result["ok"] = True
        except Exception as exc:
            result["ok"] = False
            result["error"] = f"{type(exc).__name__}: {exc}"
            failed = True
        results.append(result)
    if not group_in_call:
        dist.destroy_process_group()
    Path(raw["out"], f"worker-{rank}-restart-{restart}.json").write_text(json.dumps(results))
    return 1 if failed else 0


def main(argv: Sequence[str]) -> int:
    if argv[0] == "--clustered":
        return clustered_worker(argv[1])
    if argv[0] == "--plain":
        return plain_worker(argv[1])
    spec_path, node = argv[0], int(argv[1])
    raw = json.loads(Path(spec_path).read_text())
    raw["cases"] = [Case(**c) for c in raw["cases"]]
    spec = Spec(**raw)
    results = run_launcher(spec, node)
    Path(spec.out, f"launcher-{node}.json").write_text(json.dumps(results))
    return 0


# --------------------------------------------------------------------------- test side


def fake_agent_store(monkeypatch: Any) -> Any:
    """A real ``TCPStore`` server in this process, and the variables a torchrun worker has for
    its agent's store pointing at it (``monkeypatch`` undoes them)."""
    from datetime import timedelta

    import torch.distributed as dist

    server = dist.TCPStore(
        "127.0.0.1", 0, is_master=True, wait_for_workers=False, timeout=timedelta(seconds=10)
    )
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(server.port))
    return server


def free_ports(n: int) -> int:
    """A base port with ``n`` consecutive free ports after it.

    Chosen below the kernel's ephemeral range (32768+ on Linux), where the client sockets of
    earlier cases and of wandb would otherwise take them between the check and the use.
    """
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 32000 - n)
        ok = True
        for p in range(base, base + n):
            with closing(socket.socket()) as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError(f"no {n} consecutive free ports in 20000-32000")


# W&B variables of the test process that must not leak into a job unless a test sets them:
# a job started without them proves, e.g., that offline runs never ask for an API key.
_NOT_INHERITED = (
    "WANDB_API_KEY",
    "WANDB_BASE_URL",
    "WANDB_SERVICE",
    "WANDB_RUN_ID",
    "WANDB_SWEEP_ID",
    "WANDB_SWEEP_PARAM_PATH",
    "WANDB_PROJECT",
    "WANDB_ENTITY",
)


def _clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}


@dataclass
class LaunchResult:
    out: Path
    results: list[dict[str, Any]]  # every launcher's per-case results
    returncodes: list[int]
    wall_s: float
    logs: list[str]
    ended_at: float = 0.0  # wall clock when the last launcher (or torchrun) exited

    def case(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.results if r["case"] == name]

    def exits(self, name: str) -> list[float]:
        """When the workers of case ``name`` exited (cases with ``rows_after_pause``)."""
        files = sorted((self.out / name).glob("exit-rank-*.json"))
        return [float(json.loads(p.read_text())["exited_at"]) for p in files]

    def evidence(self, name: str) -> list[dict[str, Any]]:
        folder = self.out / name
        files = sorted(folder.glob("rank-*.json")) if folder.exists() else []
        return [json.loads(p.read_text()) for p in files]


def launch(
    out: Path,
    cases: Sequence[Case],
    *,
    nnodes: int = 1,
    nproc_per_node: int = 2,
    run_prefix: str = "r",
    env: Mapping[str, str] | None = None,
    launcher_env: Mapping[str, str] | None = None,
    timeout_s: float = 300,
) -> LaunchResult:
    """Run ``cases`` as a job of ``nnodes`` launcher processes; wait for all of them."""
    out.mkdir(parents=True, exist_ok=True)
    spec = Spec(
        run_prefix=run_prefix,
        out=str(out),
        nnodes=nnodes,
        nproc_per_node=nproc_per_node,
        cases=list(cases),
        port_base=free_ports(len(cases)) if nnodes > 1 else None,
        env=dict(launcher_env or {}),
    )
    spec_path = out / "spec.json"
    spec_path.write_text(json.dumps(asdict(spec)))
    child_env = {**_clean_environ(), **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), child_env.get("PYTHONPATH", "")) if p
    )
    started = time.monotonic()
    procs = []
    logs = []
    for node in range(nnodes):
        log = out / f"launcher-{node}.log"
        logs.append(str(log))
        with open(log, "wb") as fh:
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(HERE / "torchrun_harness.py"), str(spec_path), str(node)],
                    env=child_env,
                    cwd=str(out),
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                )
            )
    codes = []
    try:
        for p in procs:
            codes.append(p.wait(timeout=max(1.0, timeout_s - (time.monotonic() - started))))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    wall = time.monotonic() - started
    ended_at = time.time()
    results: list[dict[str, Any]] = []
    for node in range(nnodes):
        path = out / f"launcher-{node}.json"
        if path.exists():
            results.extend(json.loads(path.read_text()))
    return LaunchResult(
        out=out, results=results, returncodes=codes, wall_s=wall, logs=logs, ended_at=ended_at
    )


def launch_torchrun(
    out: Path,
    cases: Sequence[Case],
    *,
    nnodes: int = 2,
    nproc_per_node: int = 2,
    run_prefix: str = "t",
    env: Mapping[str, str] | None = None,
    drop_env: Sequence[str] = (),
    project: str = "dist-tests",
    timeout_s: float = 300,
    plain: bool = False,
    group_in_call: bool = False,
    rdzv: Sequence[str] | None = None,
    max_restarts: int = 0,
) -> LaunchResult:
    """One real ``torchrun`` per node (``--nnodes/--node_rank/--master_addr/--master_port``, the
    static rendezvous Flyte's clustered launcher uses), exporting what that launcher exports;
    every worker runs :func:`clustered_worker` over all ``cases``.

    ``plain``: the workers run :func:`plain_worker` instead (decorated functions, no Flyte;
    ``group_in_call``: its process group is formed inside the decorated call).
    ``rdzv``: torchrun's rendezvous arguments instead of the static ``--master_addr/_port``
    (``{port}`` in them is replaced by a free port).
    """
    out.mkdir(parents=True, exist_ok=True)
    spec = {
        "out": str(out),
        "cases": [asdict(c) for c in cases],
        "run_prefix": run_prefix,
        "project": project,
        "nnodes": nnodes,
        "nproc": nproc_per_node,
        "drop_env": list(drop_env),
        "group_in_call": group_in_call,
    }
    spec_path = out / "clustered-spec.json"
    spec_path.write_text(json.dumps(spec))
    port = free_ports(1)
    started = time.monotonic()
    procs, logs = [], []
    for node in range(nnodes):
        child_env = {**_clean_environ(), **(env or {})}
        child_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(HERE), child_env.get("PYTHONPATH", "")) if p
        )
        child_env.update(
            NODE_RANK=str(node),
            NNODES=str(nnodes),
            NPROC_PER_NODE=str(nproc_per_node),
            FLYTE_CLUSTERED_WORKER="1",
            OMP_NUM_THREADS="1",
        )
        log = out / f"torchrun-{node}.log"
        logs.append(str(log))
        rendezvous = (
            [a.replace("{port}", str(port)) for a in rdzv]
            if rdzv is not None
            else [f"--node_rank={node}", "--master_addr=127.0.0.1", f"--master_port={port}"]
        )
        argv = [
            sys.executable, "-m", "torch.distributed.run",
            f"--nnodes={nnodes}", f"--nproc_per_node={nproc_per_node}", *rendezvous,
            f"--max_restarts={max_restarts}",
            str(HERE / "torchrun_harness.py"), "--plain" if plain else "--clustered",
            str(spec_path),
        ]  # fmt: skip
        with open(log, "wb") as fh:
            procs.append(
                subprocess.Popen(
                    argv,
                    env=child_env,
                    cwd=str(out),
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its workers can be stopped with it
                )
            )
    codes = []
    try:
        for p in procs:
            codes.append(p.wait(timeout=max(1.0, timeout_s - (time.monotonic() - started))))
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)  # the session this call started: torchrun's
                p.wait()
    wall = time.monotonic() - started
    ended_at = time.time()
    results: list[dict[str, Any]] = []
    for path in sorted(out.glob("worker-*.json")):
        results.extend(json.loads(path.read_text()))
    return LaunchResult(
        out=out, results=results, returncodes=codes, wall_s=wall, logs=logs, ended_at=ended_at
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
