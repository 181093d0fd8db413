"""``sync="after"``: each process that wrote an offline run copies its folder, once the run ended,
to ``<run_base_dir>/wandb-offline/<run id>/<time-pid>/<folder>/``; the sync task runs ``wandb
sync`` on the folders without a ``.synced`` marker and copies each new marker back."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, NamedTuple

from ._extension import Extension
from ._resilience import CLIENT_BOUNDS, env_var
from ._settings import check_seconds

METADATA_FILE: Final = "flyte-wandb.json"
WRITE_WAIT_S: Final = 30.0  # the client's service ends the run file after finish() returned
SYNCED_SUFFIX: Final = ".synced"  # the client's marker: run-<id>.wandb.synced


class WandbOfflineRunNotSaved(UserWarning):
    """An offline run folder of a ``sync="after"`` task could not be copied to Flyte's storage."""


def current_root() -> str:  # where the Flyte run the caller runs in keeps its offline W&B folders
    import flyte
    from flyte.storage import join

    tctx = flyte.ctx()
    if tctx is None or not tctx.run_base_dir:
        raise RuntimeError(
            "sync_wandb() runs inside a Flyte task (it syncs the offline W&B runs of that Flyte "
            "run); outside Flyte, upload run folders with `wandb sync <folder>`"
        )
    return join(str(tctx.run_base_dir), "wandb-offline")


def _wait_written(folder: Path) -> bool:
    """Wait until every run file in ``folder`` holds its exit record and stopped growing."""
    from ._records import read_run

    deadline, files = time.monotonic() + WRITE_WAIT_S, list(folder.glob("run-*.wandb"))
    sizes: dict[Path, int] = {}
    while True:
        done = bool(files)
        for path in files:
            done = done and sizes.get(path) == path.stat().st_size and read_run(path).finished
            sizes[path] = path.stat().st_size
        if done or time.monotonic() >= deadline:
            return done
        time.sleep(0.1)


class AfterRun(Extension):
    """Saves the finished run's folder for the sync task."""

    def ended(self, call: Any, exc: BaseException | None, code: int) -> None:
        active, run = call.active, call.run
        if active is None or run is None or active.settings.get("sync") != "after":
            return
        folder = Path(str(getattr(run.settings, "sync_dir", "") or ""))
        run_id = str(getattr(run, "id", "") or "")
        try:
            if not run_id or not folder.is_dir():
                raise FileNotFoundError(f"the run has no local folder ({folder})")
            from flyte.storage import join, put

            remote = join(current_root(), run_id, f"{time.time_ns()}-{os.getpid()}", folder.name)
            complete = _wait_written(folder)
            meta = {"run_id": run_id, "host": active.host, "entity": run.entity or None,
                    "project": run.project or None, "folder": folder.name,
                    "label": getattr(active.plan, "label", None)}  # fmt: skip
            (folder / METADATA_FILE).write_text(json.dumps(meta))
            with ThreadPoolExecutor(1, thread_name_prefix="flyteplugins-wandb-persist") as pool:
                # on an event loop of its own, whether or not the task runs one in this thread
                pool.submit(asyncio.run, put(str(folder), remote, recursive=True)).result()
        except Exception as exc:
            msg = (f"the offline W&B run {run_id or '?'} (sync='after') could not be copied to the "
                   f"Flyte run's storage ({type(exc).__name__}: {exc}); its data stays in "
                   f"{folder}: upload it with `wandb sync {folder}`")  # fmt: skip
            warnings.warn(msg, WandbOfflineRunNotSaved, stacklevel=2)
            return
        if not complete:
            msg = (f"the offline W&B run {run_id} had not finished writing {folder} after "
                   f"{WRITE_WAIT_S:.0f} s; what was written is saved")  # fmt: skip
            warnings.warn(msg, WandbOfflineRunNotSaved, stacklevel=2)
        print(f"W&B offline run {run_id} saved for the sync task: {remote}", flush=True)


class WandbSyncFailed(RuntimeError):
    """Some offline run folders could not be uploaded; they stay in the Flyte run's storage."""

    def __init__(self, message: str, failed: list[str]) -> None:
        super().__init__(message)
        self.failed = failed


class StoredFolder(NamedTuple):  # a run folder: its path under the root, its run, if synced
    rel: str
    run_id: str
    synced: bool


def find_folders(files: Iterable[str]) -> list[StoredFolder]:
    """The folders holding a ``run-<id>.wandb`` among ``files`` (paths under the tree's root)."""
    present = set(files)
    return sorted(
        StoredFolder(folder, name[4:-6], f"{path}{SYNCED_SUFFIX}" in present)
        for path in present
        for folder, _, name in [path.rpartition("/")]
        if name.startswith("run-") and name.endswith(".wandb")
    )


def _plain(path: str) -> str:  # a store's path without its scheme (gs://, gcs://: the same)
    if path.startswith("file://") or "://" not in path:
        return os.path.abspath(path.removeprefix("file://"))
    return path.split("://", 1)[1].rstrip("/")


def relative_to_root(path: str, root: str) -> str | None:
    """``path`` (as ``Dir.walk`` names a file) relative to the tree's ``root``, or ``None``."""
    base, full = _plain(root), _plain(path)
    return full[len(base) + 1 :] if full.startswith(base + "/") else None


def client_bounds_env(environ: Mapping[str, str]) -> dict[str, str]:
    """A live run's :data:`CLIENT_BOUNDS` as the variables ``wandb sync`` reads, unless set."""
    named = {env_var(k): str(v) for k, v in CLIENT_BOUNDS.items() if k != "init_timeout"}
    return {name: value for name, value in named.items() if name not in environ}


def _client_sync(
    folders: list[Path], markers: list[Path], env: Mapping[str, str], timeout: float
) -> bool:
    """``wandb sync`` of ``folders`` (its messages on our output), stopped once no new marker
    appeared for ``timeout`` seconds (0: never). Returns whether it was stopped."""
    sys.stdout.flush()  # our messages before the client's
    command = [sys.executable, "-m", "wandb", "sync", *map(str, folders)]
    env = {**os.environ, **client_bounds_env(os.environ), **env}
    proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
    done, progress = 0, time.monotonic()
    while proc.poll() is None:
        time.sleep(0.5)
        if (now_done := sum(m.exists() for m in markers)) > done:
            done, progress = now_done, time.monotonic()
        elif timeout and time.monotonic() - progress >= timeout:
            proc.kill()  # the client handles no SIGTERM either: nothing to let it finish
            proc.wait()
            return True
    return False


def retry_hint(remote_folders: Iterable[str], base_url: str | None = None) -> str:
    """What is left to sync and how to finish: the sync task again, or ``wandb sync`` by hand."""
    left, prefix = list(remote_folders), f"WANDB_BASE_URL={base_url} " if base_url else ""
    paths = [p.removeprefix("file://") for p in left]
    by_hand = f"`{prefix}wandb sync {' '.join(map(shlex.quote, paths))}`"
    if not left or any("://" in p for p in paths):
        by_hand = (
            f"copy each folder to a machine with network and run `{prefix}wandb sync <folder>`"
        )
    return (
        f"Left to sync: {', '.join(left)}. The folders stay in the Flyte run's storage; run the "
        "sync task again (`await sync_wandb(<your sync task>)`: it skips what was uploaded), or "
        f"finish by hand: {by_hand}"
    )


def _host(folder: Path) -> Any:  # the host the folder's writer logged for, if it says
    try:
        return json.loads((folder / METADATA_FILE).read_text()).get("host")
    except (OSError, ValueError):
        return None


async def sync_folders(
    folders: Any, run_ids: list[str] | None, sync_timeout: float
) -> dict[str, list[str]]:
    """Upload each run folder under ``folders`` (a Flyte run's ``wandb-offline`` tree) not synced
    yet; :class:`WandbSyncFailed` names the folders left and how to finish."""
    import flyte.io
    from flyte.storage import join, put

    from ._client import read_defaults
    from ._client_env import sync_environment

    root = str(folders.path)
    listed = [relative_to_root(str(file.path), root) async for file in folders.walk()]
    found = find_folders(filter(None, listed))
    found = [f for f in found if run_ids is None or f.run_id in run_ids]
    remote = {f: join(root, *f.rel.split("/")) if f.rel else root for f in found}
    skipped = [remote[f] for f in found if f.synced]
    pending = [f for f in found if not f.synced]
    already = f", {len(skipped)} already synced" if skipped else ""
    runs = len({f.run_id for f in pending})
    print(f"W&B sync: {len(pending)} run folder(s) of {runs} run(s) to upload{already}", flush=True)
    synced, failed, stopped_at, defaults = [], {}, [], read_defaults()  # failed: folder -> URL
    with tempfile.TemporaryDirectory(prefix="wandb-sync-") as tmp:
        local = {f: Path(tmp, f.rel) for f in pending}
        for path in local.values():
            path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.gather(
            *(flyte.io.Dir(path=remote[f]).download(str(local[f])) for f in pending)
        )
        by_host: dict[str | None, list[StoredFolder]] = {}
        for f in pending:
            by_host.setdefault(_host(local[f]), []).append(f)
        for i, (host, group) in enumerate(by_host.items(), start=1):
            url = defaults.server(host).api_url
            print(f"W&B sync [{i}/{len(by_host)}]: {len(group)} folder(s) to {url}", flush=True)
            markers = [local[f] / f"run-{f.run_id}.wandb{SYNCED_SUFFIX}" for f in group]
            args = ([local[f] for f in group], markers, sync_environment(host, defaults))
            if await asyncio.to_thread(_client_sync, *args, sync_timeout):
                stopped_at.append(url)
            for f, marker in zip(group, markers, strict=True):
                if marker.exists():
                    await put(str(marker), join(remote[f], marker.name))
                    synced.append(remote[f])
                else:
                    failed[remote[f]] = url
    print(f"W&B sync: {len(synced)} uploaded, {len(failed)} failed", flush=True)
    if not failed:
        return {"synced": synced, "skipped": skipped}
    why = "see the client's messages above"
    if stopped_at:
        why = (f"`wandb sync` finished no run folder for {sync_timeout:g} s (sync_timeout) and "
               f"was stopped; is {' and '.join(stopped_at)} up and answering?")  # fmt: skip
    urls = set(failed.values())
    hint = retry_hint(failed, urls.pop() if len(urls) == 1 else None)
    msg = f"{len(failed)} of {len(pending)} W&B run folder(s) were not uploaded ({why}). {hint}"
    raise WandbSyncFailed(msg, list(failed))


def wandb_sync_task(
    env: Any, *, name: str = "wandb_sync", sync_timeout: float = 600.0, **task_options: Any
) -> Any:
    """The sync task on ``env`` (a ``flyte.TaskEnvironment`` with the W&B secret and network), to
    assign to the module-level name ``name`` (``wandb_sync = wandb_sync_task(env)``); its ``wandb
    sync`` is stopped after ``sync_timeout`` s (0: never) without finishing a folder.
    ``task_options`` go to ``env.task``."""
    import flyte
    import flyte.io

    if not isinstance(env, flyte.TaskEnvironment):
        raise TypeError(
            f"wandb_sync_task({env!r}): expected a flyte.TaskEnvironment (the environment the "
            f"sync task runs in, with the W&B secret and network), got {type(env).__name__}"
        )
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name={name!r}: a sync task's name must be a Python identifier")
    check_seconds("sync_timeout", sync_timeout, "0: no bound")

    async def sync_task(folders: Any, run_ids: Any = None) -> Any:
        return await sync_folders(folders, run_ids, float(sync_timeout))

    # Flyte reads the task's interface from real types, not this module's annotation strings.
    types = {"folders": flyte.io.Dir, "run_ids": list[str] | None, "return": dict[str, list[str]]}
    sync_task.__annotations__, sync_task.__name__, sync_task.__qualname__ = types, name, name
    sync_task.__module__ = sys._getframe(1).f_globals.get("__name__", __name__)
    sync_task.__doc__ = "Upload the offline W&B runs of a Flyte run (flyteplugins-wandb)."
    return env.task(**task_options)(sync_task)


async def sync_wandb(task: Any, *, run_ids: list[str] | None = None) -> dict[str, list[str]]:
    """Upload the offline W&B runs (only ``run_ids``, if given) the ``sync="after"`` tasks of the
    current Flyte run kept, with the sync ``task``; ``{"synced": [...], "skipped": [...]}``."""
    import flyte.io
    from flyte.storage import exists

    func = getattr(task, "func", None)
    module, name = getattr(func, "__module__", "") or "", getattr(func, "__name__", "")
    found: Any = getattr(sys.modules.get(module), name, None)
    if found is not task:  # Flyte finds a task by its module and name
        raise ValueError(
            f"the sync task {getattr(task, 'name', task)!r} is not the module-level name "
            f"{name!r} of module {module or '?'!r}: assign it as "
            f"`{name} = wandb_sync_task(env)` at the top level of that module (or pass "
            "name= matching the variable), so that Flyte can load it in a deployed image"
        )
    root = current_root()
    if not await exists(root):
        print("W&B sync: no offline runs were saved in this Flyte run", flush=True)
        return {"synced": [], "skipped": []}
    return await task(flyte.io.Dir(path=root), run_ids)  # type: ignore[no-any-return]
