"""Process state the agents touch: the client's server variable and ``wandb.agent``.

Both are set only for as long as they are needed and put back as they were (the trials
themselves run in the integration tests, on the real client).
"""

from __future__ import annotations

import os

import pytest
import wandb

from flyteplugins.wandb_sweeps import create_local_sweep
from flyteplugins.wandb_sweeps._agent import client_host, local_wandb_agent
from flyteplugins.wandb_sweeps._controller import lookup

VAR = "WANDB_BASE_URL"


@pytest.mark.parametrize(
    ("before", "host", "during"),
    [
        (None, None, None),
        (None, "http://127.0.0.1:9/", "http://127.0.0.1:9"),
        ("http://other:1", "http://127.0.0.1:9", "http://127.0.0.1:9"),
        ("http://127.0.0.1:9/", "http://127.0.0.1:9", "http://127.0.0.1:9/"),
        ("http://other:1", None, "http://other:1"),
    ],
)
def test_client_host_names_the_server_only_inside_the_block(
    before: str | None, host: str | None, during: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if before is None:
        monkeypatch.delenv(VAR, raising=False)
    else:
        monkeypatch.setenv(VAR, before)
    with client_host(host):
        assert os.environ.get(VAR) == during
    assert os.environ.get(VAR) == before
    with pytest.raises(KeyError), client_host(host):
        raise KeyError("the user's error passes through")
    assert os.environ.get(VAR) == before


def test_wandb_agent_is_replaced_once_and_restored_by_the_last_user() -> None:
    client = wandb.agent
    with local_wandb_agent():
        ours = wandb.agent
        assert ours is not client
        assert ours.__wrapped__ is client  # type: ignore[attr-defined]
        assert ours.__doc__ == client.__doc__
        with local_wandb_agent():
            assert wandb.agent is ours
        assert wandb.agent is ours  # the outer user is still running
    assert wandb.agent is client


def test_a_replacement_made_by_someone_else_meanwhile_is_left_alone() -> None:
    client = wandb.agent

    def theirs(*args: object, **kwargs: object) -> None:
        return None

    try:
        with local_wandb_agent():
            wandb.agent = theirs
        assert wandb.agent is theirs
    finally:
        wandb.agent = client


@pytest.mark.parametrize("sweep_id", ["nosuch", "ent/proj/nosuch"])
def test_offline_wandb_agent_on_a_sweep_no_controller_here_runs_fails_at_once(
    sweep_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    with local_wandb_agent(), pytest.raises(RuntimeError) as raised:
        wandb.agent(sweep_id, function=lambda: None, count=1)
    message = str(raised.value)
    assert f"wandb.agent({sweep_id!r})" in message
    assert "run_agent(" in message
    assert "flyteplugins-wandb-sweeps[local]" in message


def test_wandb_agent_on_a_local_sweep_needs_a_function() -> None:
    with (
        create_local_sweep({"method": "grid", "parameters": {"a": {"value": 1}}}) as sweep,
        local_wandb_agent(),
        pytest.raises(RuntimeError, match="pass function="),
    ):
        wandb.agent(sweep.sweep_id)


def test_a_local_sweep_is_found_until_closed() -> None:
    with create_local_sweep({"method": "grid", "parameters": {"a": {"value": 1}}}) as sweep:
        assert lookup(sweep.sweep_id) is sweep
    assert lookup(sweep.sweep_id) is None
    sweep.close()  # closing twice is harmless


# ----------------------------------------------------------------------------- worker processes


def module_level_objective() -> None:
    return None


def _local_objective() -> object:
    def inner() -> None:
        return None

    return inner


class _Unpicklable:
    __qualname__ = "Unpicklable"

    def __call__(self) -> None:
        return None

    def __reduce__(self) -> object:
        raise TypeError("no pickling here")


@pytest.mark.parametrize(
    ("function", "why"),
    [
        (lambda: None, "it is a lambda"),
        (_local_objective(), "it is defined inside a function"),
        (_Unpicklable(), "pickle cannot send it by reference"),
    ],
)
def test_an_objective_workers_cannot_import_is_refused_naming_it(
    function: object, why: str
) -> None:
    from flyteplugins.wandb_sweeps._parallel import check_importable

    with pytest.raises(TypeError) as raised:
        check_importable(function)  # type: ignore[arg-type]
    message = str(raised.value)
    assert why in message
    assert getattr(function, "__qualname__", "") in message
    assert "module-level function" in message


def test_a_module_level_objective_is_importable() -> None:
    from flyteplugins.wandb_sweeps._parallel import check_importable

    check_importable(module_level_objective)


def test_an_objective_of_python_c_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from flyteplugins.wandb_sweeps._parallel import check_importable

    main = types.ModuleType("__main__")  # what `python -c` and a REPL have: no __file__
    monkeypatch.setitem(sys.modules, "__main__", main)

    def objective() -> None: ...

    objective.__module__ = "__main__"
    objective.__qualname__ = "objective"
    main.objective = objective  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match=r"__main__\.objective .*interactive session"):
        check_importable(objective)
