"""Offline runs uploaded by Flyte: ``sync="after"``, the sync task and ``sync_wandb``.

A task decorated with ``@wandb_init(sync="after")`` (or under ``wandb_config(sync="after")``)
logs offline whatever its pod's network (the resolver forces ``mode="offline"``). When a run
ends, the process that wrote it copies its run folder into the Flyte run's storage, under

    <run_base_dir>/wandb-offline/<W&B run id>/<upload key>/<offline-run-... folder>/

next to a small ``flyte-wandb.json`` (run id, server, entity, project, writer label). Every
attempt and every rank uploads its own folder under its own key, so nothing is overwritten.

The sync task (:func:`wandb_sync_task`, declared on an environment the user chooses, with the
W&B secret and network) downloads that tree and hands every folder not yet synced to the
client's own ``wandb sync``, which uploads the folders of one run one after another in the
order they were started (a retry's rewind after the attempt it rewinds; the writers of a shared
run one by one, each adding its rows). After each folder the client writes its marker
``run-<id>.wandb.synced`` next to the run file; the task copies that marker back into the
Flyte run's storage, so a retried or repeated sync skips the folder (``wandb sync`` skips
folders with the marker): nothing is uploaded twice. :func:`sync_wandb` calls the sync task
for the current Flyte run.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from ._extension import Extension

"""Values of the ``sync`` setting: ``"after"`` logs offline and leaves the upload to the sync
task."""

OFFLINE_FOLDER: Final = "wandb-offline"
"""The folder under the Flyte run's storage (``run_base_dir``) that holds the run folders."""

METADATA_FILE: Final = "flyte-wandb.json"
SYNCED_SUFFIX: Final = ".synced"
"""The client's marker of a synced run file: ``run-<id>.wandb.synced`` (``wandb sync`` skips it)."""

DEFAULT_TASK_NAME: Final = "wandb_sync"

_T = TypeVar("_T")


class WandbSyncFailed(RuntimeError):
    """Some offline run folders could not be uploaded; they stay in the Flyte run's storage."""

    def __init__(self, message: str, failed: list[str]) -> None:
        super().__init__(message)
        self.failed = failed


class WandbOfflineRunNotSaved(UserWarning):
    """An offline run folder of a ``sync="after"`` task could not be copied to Flyte's storage."""


# --------------------------------------------------------------------------------------------
# Where the folders go


def offline_root(run_base_dir: str) -> str:
    """The prefix of a Flyte run's offline W&B folders."""
    from flyte.storage import join

    return join(run_base_dir, OFFLINE_FOLDER)


def current_root() -> str:
    """:func:`offline_root` of the Flyte run the caller runs in."""
    import flyte

    tctx = flyte.ctx()
    if tctx is None or not tctx.run_base_dir:
        raise RuntimeError(
            "sync_wandb() runs inside a Flyte task (it syncs the offline W&B runs of that Flyte "
            "run); outside Flyte, upload run folders with `wandb sync <folder>`"
        )
    return offline_root(str(tctx.run_base_dir))


def _run_coroutine(make: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to its end from synchronous code, inside or outside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_as_coroutine(make))
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(_as_coroutine(make))
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="flyteplugins-wandb-persist")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


async def _as_coroutine(make: Callable[[], Awaitable[_T]]) -> _T:
    return await make()


@dataclass(frozen=True)
class Persisted:
    """One run folder copied to Flyte's storage."""

    run_id: str
    remote: str
    folder: str


WRITE_WAIT_S: Final = 30.0
"""How long a finished run's folder is waited for: the client's service writes the end of the
run file in the background, after ``finish()`` returned."""


def _wait_written(folder: Path, wait_s: float = WRITE_WAIT_S) -> bool:
    """Wait until every run file in ``folder`` holds its run's exit record and stopped growing."""
    from ._records import read_run

    deadline = time.monotonic() + wait_s
    files = sorted(folder.glob("run-*.wandb"))
    sizes: dict[Path, int] = {}
    while True:
        done = True
        for path in files:
            size = path.stat().st_size
            if sizes.get(path) != size or not read_run(path).finished:
                done = False
            sizes[path] = size
        if done and files:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def persist_run(run: Any, *, host: str | None, label: str | None = None) -> Persisted | None:
    """Copy the finished offline ``run``'s folder into the current Flyte run's storage.

    Never raises: a failure is a :class:`WandbOfflineRunNotSaved` warning naming the local
    folder and the command that uploads it by hand. ``None`` when nothing was copied.
    """
    settings = getattr(run, "settings", None)
    folder = Path(str(getattr(settings, "sync_dir", "") or ""))
    run_id = str(getattr(run, "id", "") or "")
    try:
        if not run_id or not folder.is_dir():
            raise FileNotFoundError(f"the run has no local folder ({folder})")
        root = current_root()
        complete = _wait_written(folder)
        from flyte.storage import join

        key = f"{time.time_ns()}-{os.getpid()}"
        remote = join(root, run_id, key, folder.name)
        meta = {
            "run_id": run_id,
            "host": host,
            "entity": getattr(run, "entity", None) or None,
            "project": getattr(run, "project", None) or None,
            "label": label,
            "folder": folder.name,
        }
        (folder / METADATA_FILE).write_text(json.dumps(meta))

        async def upload() -> str:
            from flyte.storage import put

            return await put(str(folder), remote, recursive=True)

        _run_coroutine(upload)
        if not complete:
            warnings.warn(
                f"the offline W&B run {run_id} had not finished writing {folder} after "
                f"{WRITE_WAIT_S:.0f} s; what was written is saved for the sync task",
                WandbOfflineRunNotSaved,
                stacklevel=3,
            )
    except Exception as exc:
        warnings.warn(
            f"the offline W&B run {run_id or '?'} (sync='after') could not be copied to the "
            f"Flyte run's storage ({type(exc).__name__}: {exc}); its data stays in {folder}: "
            f"upload it with `wandb sync {folder}`",
            WandbOfflineRunNotSaved,
            stacklevel=3,
        )
        return None
    print(f"W&B offline run {run_id} saved for the sync task: {remote}", flush=True)
    return Persisted(run_id=run_id, remote=remote, folder=str(folder))


def after_run(active: Any, run: Any) -> None:
    """After a call's run finished: save its folder when the call's settings say
    ``sync="after"`` (every process that wrote a run, so every rank of a distributed task)."""
    if active is None or run is None or active.settings.get("sync") != "after":
        return
    persist_run(run, host=active.host, label=getattr(active.plan, "label", None))


# --------------------------------------------------------------------------------------------
# The sync task


@dataclass
class LocalFolder:
    """A downloaded run folder: its run file, its place in Flyte's storage, what it says."""

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

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or self.run_file.stem.removeprefix("run-"))


def find_folders(local_root: Path, remote_root: str) -> list[LocalFolder]:
    """Every run folder under a downloaded tree, in a stable order (run id, upload key)."""
    from flyte.storage import join

    out = []
    for run_file in sorted(local_root.rglob("run-*.wandb")):
        folder = run_file.parent
        rel = folder.relative_to(local_root).as_posix()
        meta_path = folder / METADATA_FILE
        try:
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        except ValueError:
            meta = {}
        out.append(LocalFolder(folder, run_file, join(remote_root, *rel.split("/")), meta))
    return out


def _client_sync(paths: list[Path], env: Mapping[str, str]) -> int:
    """``wandb sync PATHS`` in a child process (the client's own upload, its progress on our
    output); folders already marked synced are skipped by the client itself."""
    argv = [sys.executable, "-m", "wandb", "sync", *(str(p) for p in paths)]
    proc = subprocess.Popen(
        argv,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line.rstrip("\n"), flush=True)
    return proc.wait()


async def _upload_marker(folder: LocalFolder) -> None:
    from flyte.storage import is_remote, join, put

    remote = join(folder.remote, folder.marker.name)
    if not is_remote(remote):
        Path(remote).parent.mkdir(parents=True, exist_ok=True)
    await put(str(folder.marker), remote)


def retry_hint(remote_folders: Iterable[str]) -> str:
    shown = list(remote_folders)
    return (
        "The folders stay in the Flyte run's storage; run the sync task again "
        "(`await sync_wandb(<your sync task>)`: it skips what was uploaded), or by hand: copy a "
        "folder to a machine with network and run `wandb sync <folder>`. Not synced: "
        + ", ".join(shown)
    )


async def sync_folders(
    folders: Any, run_ids: list[str] | None = None, workdir: str | None = None
) -> dict[str, list[str]]:
    """The sync task's work: upload every run folder under ``folders`` (a ``flyte.io.Dir`` of
    a Flyte run's ``wandb-offline`` tree) that is not synced yet.

    Returns ``{"synced": [...], "skipped": [...]}`` (places in Flyte's storage); raises
    :class:`WandbSyncFailed` naming the folders left and how to retry.
    """
    from ._client import read_defaults
    from ._resolve import sync_environment

    local = Path(tempfile.mkdtemp(prefix="wandb-sync-", dir=workdir))
    await folders.download(str(local))
    found = find_folders(local, str(folders.path))
    if run_ids is not None:
        wanted = set(run_ids)
        found = [f for f in found if f.run_id in wanted]
    skipped = [f for f in found if f.synced]
    pending = [f for f in found if not f.synced]
    runs = sorted({f.run_id for f in pending})
    print(
        f"W&B sync: {len(pending)} run folder(s) of {len(runs)} run(s) to upload"
        + (f", {len(skipped)} already synced" if skipped else ""),
        flush=True,
    )
    by_host: dict[str | None, list[LocalFolder]] = {}
    for f in pending:
        by_host.setdefault(f.meta.get("host"), []).append(f)
    defaults = read_defaults()
    synced: list[LocalFolder] = []
    for i, (host, group) in enumerate(by_host.items(), start=1):
        where = host or "the sync task's default server"
        print(f"W&B sync [{i}/{len(by_host)}]: {len(group)} folder(s) to {where}", flush=True)
        _client_sync([f.path for f in group], sync_environment(host, defaults))
        for f in group:
            if f.synced:
                await _upload_marker(f)
                synced.append(f)
    failed = [f for f in pending if f not in synced]
    report = {"synced": [f.remote for f in synced], "skipped": [f.remote for f in skipped]}
    print(f"W&B sync: {len(synced)} uploaded, {len(failed)} failed", flush=True)
    if failed:
        raise WandbSyncFailed(
            f"{len(failed)} of {len(pending)} W&B run folder(s) were not uploaded (see the "
            "client's messages above). " + retry_hint(f.remote for f in failed),
            [f.remote for f in failed],
        )
    return report


def wandb_sync_task(env: Any, *, name: str = DEFAULT_TASK_NAME, **task_options: Any) -> Any:
    """Declare the sync task on ``env`` (give the environment the W&B secret and network).

    Assign the result to a module-level name equal to ``name`` (Flyte finds a task in a
    deployed image by its module and name)::

        sync_env = flyte.TaskEnvironment(
            name="wandb-sync",
            secrets=[flyte.Secret(key="wandb_api_key", as_env_var="WANDB_API_KEY")],
        )
        wandb_sync = wandb_sync_task(sync_env)

    ``task_options`` go to ``env.task`` (``retries=``, ``timeout=``, ...).
    """
    import flyte.io

    if not name.isidentifier():
        raise ValueError(f"name={name!r}: a sync task's name must be a Python identifier")
    caller = sys._getframe(1).f_globals.get("__name__", __name__)

    async def sync_task(
        folders: flyte.io.Dir, run_ids: list[str] | None = None
    ) -> dict[str, list[str]]:
        return await sync_folders(folders, run_ids)

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


class AfterRun(Extension):
    """``sync="after"``: the extension that saves the finished run's folder for the sync task."""

    def ended(self, call: Any, exc: BaseException | None, code: int) -> None:
        after_run(call.active, call.run)
