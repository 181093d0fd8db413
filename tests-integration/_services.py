"""The wandb-core service processes a job started, found through ``/proc`` (Linux).

A service is recognised by its executable's name (``wandb-core``) and the folder it was started
in (the job's folder: the harness starts every job in its own).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Service:
    pid: int
    detached: bool
    rss_bytes: int


def _wandb_core() -> Iterator[tuple[Path, list[bytes]]]:
    """(``/proc`` entry, argv) of every live wandb-core process."""
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if argv and argv[0].endswith(b"wandb-core"):
            yield entry, argv


def services(cwd: Path) -> list[Service]:
    """The live wandb-core processes whose working folder is ``cwd``."""
    want = str(cwd.resolve())
    found = []
    for entry, argv in _wandb_core():
        try:
            if os.readlink(entry / "cwd") != want:
                continue
            rss = 0
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
        except OSError:  # gone meanwhile
            continue
        found.append(Service(int(entry.name), b"--detached" in argv, rss))
    return found


def stop(found: list[Service]) -> None:
    """End the given services (a detached one would otherwise idle out on its own)."""
    for service in found:
        with contextlib.suppress(ProcessLookupError):  # already gone: nothing to end
            os.kill(service.pid, signal.SIGTERM)


def own_services() -> list[int]:
    """The wandb-core services started by this process (their ``--pid`` names it)."""
    me = str(os.getpid()).encode()
    found = []
    for entry, argv in _wandb_core():
        at = argv.index(b"--pid") if b"--pid" in argv else -1
        if at >= 0 and argv[at + 1 : at + 2] == [me]:
            found.append(int(entry.name))
    return found
