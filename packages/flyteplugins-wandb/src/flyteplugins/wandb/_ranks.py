"""Where this process sits in a distributed job, with the one rule for a lone ``RANK``.

Core reads the topology from the environment (:meth:`Topology.from_env`) and refuses a
``RANK`` without ``WORLD_SIZE`` (or the reverse). Such a lone variable is often a leftover of a
shell or a pod spec, in a task that is not distributed at all; failing every decorated task for
it helps nobody. :func:`read_topology` is the only place that decides:

* the process was started by a distributed launcher (``TORCHELASTIC_RUN_ID``: torchrun and the
  Elastic plugin's ``elastic_launch``; ``FLYTE_CLUSTERED_WORKER``: Flyte's clustered launcher,
  also for ``JaxRun``): the job is broken, and core's :class:`TopologyError` stands. Every
  process of an Elastic or clustered task that runs distributed is started so;
* otherwise: a :class:`WandbStrayRank` warning names the variable and the process is planned as
  a single process. This includes an Elastic task in Flyte's local mode, which Flyte runs
  inline as one process without workers.

Every other malformed value (``RANK=x``, a rank outside the world) is an error everywhere.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

from flyteplugins.wandb_core import Topology, TopologyError

#: Variables that only a distributed launcher sets in the processes it starts.
LAUNCHER_MARKERS = ("TORCHELASTIC_RUN_ID", "FLYTE_CLUSTERED_WORKER")


class WandbStrayRank(UserWarning):
    """``RANK`` or ``WORLD_SIZE`` is set alone in a process no distributed launcher started."""


def launched_distributed(environ: Mapping[str, str]) -> bool:
    """Whether a distributed launcher (torchelastic, Flyte's clustered launcher) started us."""
    return any(environ.get(name) for name in LAUNCHER_MARKERS)


def read_topology(environ: Mapping[str, str]) -> Topology | None:
    """The process's topology; ``None`` when it is not part of a distributed job."""
    try:
        return Topology.from_env(environ)
    except TopologyError as exc:
        if exc.present is None or launched_distributed(environ):
            raise
        warnings.warn(
            f"{exc.present}={environ[exc.present].strip()} is set but {exc.missing} is not, and no "
            f"distributed launcher started this process (neither {' nor '.join(LAUNCHER_MARKERS)} "
            f"is set): {exc.present} is ignored and W&B treats this task as a single process. "
            f"Unset {exc.present} in the task's environment to silence this warning.",
            WandbStrayRank,
            stacklevel=3,
        )
        return None
