"""@wandb_sweep at decoration time: misuse and bad settings fail before any task runs."""

from __future__ import annotations

import flyte
import pytest

from flyteplugins.wandb_sweeps import SweepConfigError, WandbSweep, get_wandb_sweep_id, wandb_sweep

env = flyte.TaskEnvironment(name="sweeps_unit")


def test_adds_the_sweep_link_and_keeps_the_task_object() -> None:
    @env.task
    def t() -> None: ...

    wrapped = wandb_sweep(project="p")(t)
    assert wrapped is t
    links = [link for link in t.links if isinstance(link, WandbSweep)]
    assert len(links) == 1 and links[0].project == "p"


def test_bare_form() -> None:
    @wandb_sweep
    @env.task
    def t2() -> None: ...

    assert any(isinstance(link, WandbSweep) for link in t2.links)


def test_below_env_task_or_twice_is_refused() -> None:
    with pytest.raises(TypeError, match=r"put it above @env\.task"):

        @env.task
        @wandb_sweep
        def t3() -> None: ...

    @env.task
    def t4() -> None: ...

    wandb_sweep(t4)
    with pytest.raises(ValueError, match="applied twice"):
        wandb_sweep(t4)


def test_bad_settings_fail_at_decoration() -> None:
    with pytest.raises(SweepConfigError, match="unknown sweep method"):
        wandb_sweep(method="hyper")
    with pytest.raises(TypeError, match="download_logs"):
        wandb_sweep(download_logs="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sweep="):
        wandb_sweep(sweep=["not", "a", "dict"])


def test_no_sweep_outside_a_sweep_task() -> None:
    assert get_wandb_sweep_id() is None


def test_the_sweep_link_survives_override() -> None:
    from flyteplugins.wandb import Wandb

    @wandb_sweep(project="p", entity="e", local_controller=True)
    @env.task
    def t5() -> None: ...

    theirs, others = Wandb(project="theirs"), Wandb(project="others")
    replaced = t5.override(links=(theirs,))
    assert replaced.links[0] is theirs
    [ours] = [link for link in replaced.links if isinstance(link, WandbSweep)]
    assert (ours.project, ours.entity, ours.local_controller) == ("p", "e", True)
    again = replaced.override(retries=2).override(links=(others,))
    assert [type(link) for link in again.links] == [Wandb, WandbSweep]
    assert again.links[0] is others


def test_with_wandb_init_both_links_survive_override() -> None:
    from flyteplugins.wandb import Wandb, wandb_init

    @wandb_sweep(project="p", entity="e")
    @wandb_init(project="p", entity="e")
    @env.task
    def t6() -> None: ...

    theirs = Wandb(project="theirs")
    assert [type(link) for link in t6.links] == [Wandb, WandbSweep]
    for replaced in (
        t6.override(links=(theirs,)),
        t6.override(retries=1).override(links=(theirs,)),
    ):
        assert replaced.links[0] is theirs
        assert [(type(link), link.project) for link in replaced.links[1:]] == [
            (Wandb, "p"),
            (WandbSweep, "p"),
        ]
