"""The sync task: upload the offline runs a Flyte run kept (see ``_sync``) with ``wandb sync``.

It lists the tree under ``<run_base_dir>/wandb-offline/``, downloads only the folders not yet
synced (into a temporary folder it removes), runs the client's own ``wandb sync`` with the
plugin's bounds on its retries (stopped when it finishes no folder for ``sync_timeout`` seconds),
and copies each folder's ``.synced`` marker back, so a repeated sync uploads nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ._resilience import CLIENT_BOUNDS, env_var
from ._settings import check_seconds
from ._sync import METADATA_FILE, current_root

SYNCED_SUFFIX: Final = ".synced"
"""The client's marker of a synced run file: ``run-<id>.wandb.synced`` (``wandb sync`` skips it)."""


DEFAULT_TASK_NAME: Final = "wandb_sync"


DEFAULT_SYNC_TIMEOUT: Final = 600.0
"""Seconds the sync task lets the client's ``wandb sync`` go without finishing a run folder
before it stops it and fails (``wandb_sync_task(env, sync_timeout=...)``; 0: no bound)."""


POLL_S: Final = 0.5


STOP_GRACE_S: Final = 5.0


class WandbSyncFailed(RuntimeError):
    """Some offline run folders could not be uploaded; they stay in the Flyte run's storage."""

    def __init__(self, message: str, failed: list[str]) -> None:
        super().__init__(message)
        self.failed = failed


def check_sync_timeout(value: Any) -> None:
    """``sync_timeout`` of the sync task: seconds >= 0 (0: no bound)."""
    check_seconds(
        "sync_timeout",
        value,
        "how long `wandb sync` may go without finishing a run folder; 0: no bound",
    )


def check_environment(env: Any) -> None:
    """The sync task is declared on a ``flyte.TaskEnvironment``."""
    import flyte

    if not isinstance(env, flyte.TaskEnvironment):
        raise TypeError(
            f"wandb_sync_task({env!r}): expected a flyte.TaskEnvironment (the environment the "
            f"sync task runs in, with the W&B secret and network), got {type(env).__name__}"
        )


@dataclass(frozen=True)
class StoredFolder:
    """A run folder in the Flyte run's storage, as listed: where it is under the tree's root,
    its run file, and whether the client's marker says it was synced."""

    rel: str
    run_file: str
    synced: bool

    @property
    def run_id(self) -> str:
        return self.run_file.removeprefix("run-").removesuffix(".wandb")


def find_folders(files: Iterable[str]) -> list[StoredFolder]:
    """The run folders among ``files`` (paths relative to the tree's root, ``/``-separated): every
    folder holding a ``run-<id>.wandb`` file, in a stable order (run id, upload key)."""
    present = set(files)
    out = []
    for path in present:
        folder, _, name = path.rpartition("/")
        if name.startswith("run-") and name.endswith(".wandb"):
            out.append(StoredFolder(folder, name, f"{path}{SYNCED_SUFFIX}" in present))
    return sorted(out, key=lambda f: (f.rel, f.run_file))


def relative_to_root(path: str, root: str) -> str | None:
    """``path`` (as ``Dir.walk`` names a file) relative to the tree's ``root``, or ``None``."""

    def plain(text: str) -> str:
        if text.startswith("file://") or "://" not in text:
            return os.path.abspath(text.removeprefix("file://"))
        return text.split("://", 1)[1].rstrip("/")

    base, full = plain(root), plain(path)
    if full.startswith(base + "/"):
        return full[len(base) + 1 :]
    return None


@dataclass
class LocalFolder:
    """A pending run folder downloaded for the client: its run file, its place in Flyte's
    storage, what its writer said about it (``flyte-wandb.json``)."""

    path: Path
    run_file: Path
    remote: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def marker(self) -> Path:
        return self.run_file.with_name(self.run_file.name + SYNCED_SUFFIX)

    @property
    def synced(self) -> bool:
        return self.marker.exists()


def _remote(root: str, rel: str) -> str:
    from flyte.storage import join

    return join(root, *rel.split("/")) if rel else root


async def _download(stored: StoredFolder, remote_root: str, local_root: Path) -> LocalFolder:
    import flyte.io

    remote = _remote(remote_root, stored.rel)
    local = local_root / stored.rel
    local.parent.mkdir(parents=True, exist_ok=True)
    await flyte.io.Dir(path=remote).download(str(local))
    meta_path = local / METADATA_FILE
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    except ValueError:
        meta = {}
    return LocalFolder(local, local / stored.run_file, remote, meta)


def client_bounds_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The plugin's bounds on the client's retries (those of a live run, :data:`CLIENT_BOUNDS`)
    as the variables ``wandb sync`` reads, except the ones ``environ`` already sets."""
    out = {}
    for setting, value in CLIENT_BOUNDS.items():
        name = env_var(setting)
        if setting != "init_timeout" and name not in environ:
            out[name] = str(value)
    return out


def _echo(stream: Any) -> None:
    for line in stream:
        print(line.rstrip("\n"), flush=True)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _client_sync(folders: list[LocalFolder], env: Mapping[str, str], timeout: float) -> bool:
    """``wandb sync`` of ``folders`` in a child process (the client's own upload, its messages
    on our output), stopped once it has finished no folder for ``timeout`` seconds (0: never).

    Returns whether it was stopped. The client skips folders already marked synced.
    """
    argv = [sys.executable, "-m", "wandb", "sync", *(str(f.path) for f in folders)]
    proc = subprocess.Popen(
        argv,
        env={**os.environ, **client_bounds_env(os.environ), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    reader = threading.Thread(target=_echo, args=(proc.stdout,), daemon=True)
    reader.start()
    done, progress, stopped = 0, time.monotonic(), False
    while proc.poll() is None and not stopped:
        time.sleep(POLL_S)
        now_done = sum(f.synced for f in folders)
        if now_done > done:
            done, progress = now_done, time.monotonic()
        elif timeout and time.monotonic() - progress >= timeout:
            stopped = True
            _stop(proc)
    reader.join(STOP_GRACE_S)
    return stopped


async def _upload_marker(folder: LocalFolder) -> None:
    from flyte.storage import is_remote, join, put

    remote = join(folder.remote, folder.marker.name)
    if not is_remote(remote):
        Path(remote).parent.mkdir(parents=True, exist_ok=True)
    await put(str(folder.marker), remote)


def retry_hint(remote_folders: Iterable[str], base_url: str | None = None) -> str:
    """What is left to sync and how to finish: the sync task again, or ``wandb sync`` by hand."""
    left = list(remote_folders)
    prefix = f"WANDB_BASE_URL={base_url} " if base_url else ""
    if left and not any("://" in p.removeprefix("file://") for p in left):
        paths = " ".join(shlex.quote(p.removeprefix("file://")) for p in left)
        by_hand = f"`{prefix}wandb sync {paths}`"
    else:
        by_hand = (
            f"copy each folder to a machine with network and run `{prefix}wandb sync <folder>`"
        )
    return (
        f"Left to sync: {', '.join(left)}. The folders stay in the Flyte run's storage; run the "
        "sync task again (`await sync_wandb(<your sync task>)`: it skips what was uploaded), or "
        f"finish by hand: {by_hand}"
    )


async def sync_folders(
    folders: Any,
    run_ids: list[str] | None = None,
    workdir: str | None = None,
    *,
    sync_timeout: float = DEFAULT_SYNC_TIMEOUT,
) -> dict[str, list[str]]:
    """The sync task's work: upload every run folder under ``folders`` (a ``flyte.io.Dir`` of
    a Flyte run's ``wandb-offline`` tree) that is not synced yet.

    The tree is listed first; only the folders not marked synced are downloaded, into a
    temporary folder (under ``workdir``) removed at the end. Returns
    ``{"synced": [...], "skipped": [...]}`` (places in Flyte's storage); raises
    :class:`WandbSyncFailed` naming the folders left and how to finish.
    """
    from ._client import read_defaults
    from ._client_env import sync_environment

    remote_root = str(folders.path)
    listed: list[str] = []
    async for file in folders.walk():
        rel = relative_to_root(str(file.path), remote_root)
        if rel is None:
            raise RuntimeError(f"listing {remote_root} gave {file.path}, a file outside it")
        listed.append(rel)
    found = find_folders(listed)
    if run_ids is not None:
        wanted = set(run_ids)
        found = [f for f in found if f.run_id in wanted]
    skipped = [_remote(remote_root, f.rel) for f in found if f.synced]
    pending = [f for f in found if not f.synced]
    runs = sorted({f.run_id for f in pending})
    print(
        f"W&B sync: {len(pending)} run folder(s) of {len(runs)} run(s) to upload"
        + (f", {len(skipped)} already synced" if skipped else ""),
        flush=True,
    )
    synced: list[LocalFolder] = []
    failed: list[LocalFolder] = []
    stopped_at: list[str] = []
    defaults = read_defaults()
    with tempfile.TemporaryDirectory(prefix="wandb-sync-", dir=workdir) as tmp:
        local = await asyncio.gather(*(_download(f, remote_root, Path(tmp)) for f in pending))
        by_host: dict[str | None, list[LocalFolder]] = {}
        for f in local:
            by_host.setdefault(f.meta.get("host"), []).append(f)
        for i, (host, group) in enumerate(by_host.items(), start=1):
            env = sync_environment(host, defaults)
            where = defaults.server(host).api_url
            print(f"W&B sync [{i}/{len(by_host)}]: {len(group)} folder(s) to {where}", flush=True)
            stopped = await asyncio.to_thread(_client_sync, group, env, sync_timeout)
            if stopped:
                stopped_at.append(where)
            for f in group:
                if f.synced:
                    await _upload_marker(f)
                    synced.append(f)
                else:
                    failed.append(f)
    report = {"synced": [f.remote for f in synced], "skipped": skipped}
    print(f"W&B sync: {len(synced)} uploaded, {len(failed)} failed", flush=True)
    if failed:
        why = (
            f"`wandb sync` finished no run folder for {sync_timeout:g} s (sync_timeout) and was "
            f"stopped; is {' and '.join(stopped_at)} up and answering?"
            if stopped_at
            else "see the client's messages above"
        )
        urls = {defaults.server(f.meta.get("host")).api_url for f in failed}
        base_url = urls.pop() if len(urls) == 1 else None
        raise WandbSyncFailed(
            f"{len(failed)} of {len(pending)} W&B run folder(s) were not uploaded ({why}). "
            + retry_hint((f.remote for f in failed), base_url),
            [f.remote for f in failed],
        )
    return report


def wandb_sync_task(
    env: Any,
    *,
    name: str = DEFAULT_TASK_NAME,
    sync_timeout: float = DEFAULT_SYNC_TIMEOUT,
    **task_options: Any,
) -> Any:
    """Declare the sync task on ``env`` (give the environment the W&B secret and network).

    Assign the result to a module-level name equal to ``name`` (Flyte finds a task in a
    deployed image by its module and name)::

        sync_env = flyte.TaskEnvironment(
            name="wandb-sync",
            secrets=[flyte.Secret(key="wandb_api_key", as_env_var="WANDB_API_KEY")],
        )
        wandb_sync = wandb_sync_task(sync_env)

    The client's ``wandb sync`` runs with the plugin's bounds on its retries (those of a live
    run, unless the environment sets the ``WANDB__*_RETRY_*`` variables) and is stopped when it
    has finished no run folder for ``sync_timeout`` seconds (default 600; 0: no bound): the task
    then fails with :class:`WandbSyncFailed` naming the folders left and the command that
    finishes them. ``task_options`` go to ``env.task`` (``retries=``, ``timeout=``, ...).
    """
    import flyte.io

    check_environment(env)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name={name!r}: a sync task's name must be a Python identifier")
    check_sync_timeout(sync_timeout)
    bound = float(sync_timeout)
    caller = sys._getframe(1).f_globals.get("__name__", __name__)

    async def sync_task(
        folders: flyte.io.Dir, run_ids: list[str] | None = None
    ) -> dict[str, list[str]]:
        return await sync_folders(folders, run_ids, sync_timeout=bound)

    # Real types, not this module's postponed annotation strings: Flyte reads the interface.
    sync_task.__annotations__ = {
        "folders": flyte.io.Dir,
        "run_ids": list[str] | None,
        "return": dict[str, list[str]],
    }
    sync_task.__name__ = sync_task.__qualname__ = name
    sync_task.__module__ = caller
    sync_task.__doc__ = "Upload the offline W&B runs of a Flyte run (flyteplugins-wandb)."
    return env.task(**task_options)(sync_task)


def _check_findable(task: Any) -> None:
    """A sync task must be a module-level name of its module, as Flyte looks tasks up."""
    func = getattr(task, "func", None)
    module = sys.modules.get(getattr(func, "__module__", "") or "")
    name = getattr(func, "__name__", "")
    if module is None or getattr(module, name, None) is not task:
        raise ValueError(
            f"the sync task {getattr(task, 'name', task)!r} is not the module-level name "
            f"{name!r} of module {getattr(func, '__module__', '?')!r}: assign it as "
            f"`{name} = wandb_sync_task(env)` at the top level of that module (or pass "
            "name= matching the variable), so that Flyte can load it in a deployed image"
        )


async def sync_wandb(task: Any, *, run_ids: list[str] | None = None) -> dict[str, list[str]]:
    """Upload the offline W&B runs of the current Flyte run with the sync ``task``.

    Call it in a task after the ``sync="after"`` tasks (``await sync_wandb(wandb_sync)``);
    ``run_ids`` limits it to those W&B runs. Folders uploaded before (by an earlier or retried
    sync) are skipped. Returns what the task returned: ``{"synced": [...], "skipped": [...]}``.
    """
    import flyte.io
    from flyte.storage import exists

    _check_findable(task)
    root = current_root()
    if not await exists(root):
        print("W&B sync: no offline runs were saved in this Flyte run", flush=True)
        return {"synced": [], "skipped": []}
    result: dict[str, list[str]] = await task(flyte.io.Dir(path=root), run_ids)
    return result
