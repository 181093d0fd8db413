"""The Elastic job on GPUs: NCCL, one rank per GPU (NCCL refuses two ranks on one device).

Skipped without CUDA. A single-GPU machine runs one rank; a multi-GPU runner (the
``gpu`` workflow on self-hosted GPU runners) runs one rank per device. Besides the table checks,
each rank's run must report the system metrics of its own GPU only (``x_stats_gpu_device_ids``
keyed on ``LOCAL_RANK``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch
from _distributed_expect import STEPS, dump, expected, labels_of, offline_env, records_by_id
from torchrun_harness import Case, launch

from flyteplugins.wandb._records import RunRecord, iter_payloads

# The gpu workflow sets REQUIRE_CUDA=1: on a GPU runner, a missing CUDA fails instead of skipping.
_SKIP = not torch.cuda.is_available() and os.environ.get("REQUIRE_CUDA") != "1"
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.timeout(900),
    pytest.mark.skipif(_SKIP, reason="CUDA not available"),
]

_GPU_KEY = re.compile(r"^gpu\.(\d+)\.")


def _gpu_indices(rec: RunRecord) -> set[int]:
    from wandb.proto import wandb_internal_pb2 as pb

    found: set[int] = set()
    for payload in iter_payloads(rec.path.read_bytes()):
        r = pb.Record()  # type: ignore[attr-defined]
        r.ParseFromString(payload)
        if r.WhichOneof("record_type") == "stats":
            for item in r.stats.item:
                m = _GPU_KEY.match(item.key.split("/l:")[0])
                if m:
                    found.add(int(m.group(1)))
    return found


@pytest.mark.parametrize(("mode", "scope"), [("new", "global"), ("shared", "global")])
def test_nccl_job_one_rank_per_gpu(tmp_path: Path, mode: str, scope: str) -> None:
    assert torch.cuda.is_available(), "REQUIRE_CUDA=1 but torch sees no CUDA device"
    nproc = min(torch.cuda.device_count(), 8)
    case = Case(
        name=f"{mode}_{scope}",
        run_mode=mode,
        rank_scope=scope,
        backend="nccl",
        steps=STEPS,
        step_sleep_s=1.5,  # runs long enough for the system monitor's samples
        init_settings={"x_stats_sampling_interval": 1.0},
    )
    job = launch(tmp_path, [case], nnodes=1, nproc_per_node=nproc, run_prefix="gpu",
                 env=offline_env(tmp_path))  # fmt: skip
    (result,) = job.case(case.name)
    logs = Path(job.logs[0]).read_text(errors="replace")[-4000:]
    assert result["ok"], dump(result) + logs
    base = f"{result['run_name']}-a0"
    want = expected(mode, scope, base, 1, nproc)
    evidence = {e["rank"]: e for e in job.evidence(case.name)}
    assert sorted(evidence) == list(range(nproc))
    for rank, ev in evidence.items():
        assert ev["cuda_device"] == rank  # one rank per GPU
        assert ev["run_id"] == want[rank].run_id
    runs = records_by_id(tmp_path)
    assert set(runs) == {e.run_id for e in want.values()}
    for recs in runs.values():
        for rec in recs:
            assert rec.exit_code == 0
            assert [row["step_i"] for row in rec.history] == list(range(STEPS))
            gpus = _gpu_indices(rec)
            # Each rank watches its own device, not every GPU of the machine.
            assert len(gpus) <= 1, (str(rec.path), gpus)
            if mode == "shared":
                assert len(labels_of(rec)) == 1
