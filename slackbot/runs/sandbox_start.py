"""The containers before the agent's loop: the repository's setup command in its own, then the
agent's: a warm one when there is one, else a cold one.

A thread's first checkout is made while the container starts: in a one-shot container beside a
cold start, or in the warm container itself before the agent's first command (a scratch thread's
start, which needs no mirror, in a cold one too). A read-only run (the
plan phase of plan-first tasks) always checks out in a one-shot container, then sees /workspace
and its home directory read-only: the engine's mount enforces it, not the prompt.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from ..protocol import CommandExecution, ItemCompleted, ItemStarted, Mount, StepResult, TaskProgress
from ..store import AgentThread
from .checkout import AfterCheckout
from .workspace import SetupFailed

if TYPE_CHECKING:
    from .task_run import TaskRun

log = logging.getLogger(__name__)


def read_only(mounts: tuple[Mount, ...]) -> tuple[Mount, ...]:
    return tuple(replace(m, read_only=True) for m in mounts)


async def taken_warm(run: TaskRun) -> Any:
    """The warm container taken while preparing (None: there was none, or it is not wanted)."""
    warm, run._warm = run._warm, None
    if warm is None:
        return None
    try:
        return await warm
    except Exception:
        log.warning("task %s: no warm sandbox", run.task.id, exc_info=True)
        return None


async def start_sandbox(run: TaskRun, env: dict[str, str], *, writable: bool = True) -> None:
    """Sets `run.sandbox` (ours to close from the moment it exists, even when stopped)."""
    assert run.prepared is not None
    prepared, s, sandboxes = run.prepared, run.settings, run.ctx.sandboxes
    mounts = prepared.mounts + run.skills.mounts
    if not writable:
        mounts = read_only(mounts)

    def checked_out(thread: AgentThread) -> None:
        run.thread = thread

    def checking_out(sandbox: Any) -> AfterCheckout:
        """`sandbox`, its first checkout made in it while the model's first call goes out."""
        return AfterCheckout(sandbox, run.steps.clone(run.thread, run.task, prepared, run._progress, via=sandbox),
                             checked_out)

    warm = run.sandbox = await taken_warm(run)
    if warm is not None:
        try:
            if run.network or env:
                raise ValueError("a warm sandbox has no network")
            await warm.bind(mounts)
        except Exception:
            log.warning("task %s: the warm sandbox was not used", run.task.id, exc_info=True)
            run.sandbox = None
            await warm.close()
        if run.sandbox is not None:
            if prepared.fresh and writable:
                run.sandbox = checking_out(run.sandbox)
            elif prepared.fresh:  # (it cannot write: a one-shot container makes the checkout)
                checked_out(await run.steps.clone(run.thread, run.task, prepared, run._progress))
            return

    async def start() -> None:
        run.sandbox = await sandboxes.start(task_id=run.ref.task_id, mounts=mounts, network=run.network,
                                            env=env, cpus=s.sandbox_cpus, memory=s.sandbox_memory)
    if not prepared.fresh:
        await start()
        return
    if prepared.remade and writable:  # a scratch start needs no mirror: made in the agent's container
        await start()
        run.sandbox = checking_out(run.sandbox)
        return
    cloned, started = await asyncio.gather(run.steps.clone(run.thread, run.task, prepared, run._progress),
                                           start(), return_exceptions=True)
    if isinstance(cloned, BaseException):
        raise cloned
    if isinstance(started, BaseException):
        raise started
    run.thread = cloned


async def run_setup(run: TaskRun, network_env: dict[str, str]) -> None:
    """The setup command's own container (with the network when allowed), before the agent's."""
    assert run.repo is not None and run.prepared is not None
    await run.emit_soon(TaskProgress("Running the setup command"))
    item_id = f"task_{run.task.id}_setup"
    await run.emit_soon(ItemStarted(CommandExecution(item_id, run.repo.setup)))
    run.thread, result = await run.steps.setup(run.thread, run.task, run.repo, run.prepared, run.network,
                                               network_env)
    assert isinstance(result, StepResult)
    status: Literal["completed", "failed"] = "completed" if result.exit_code == 0 else "failed"
    await run.emit_soon(ItemCompleted(CommandExecution(item_id, run.repo.setup, result.output[-20_000:],
                                                       result.exit_code, status)))
    if result.exit_code != 0:
        last = result.output.strip().splitlines()[-1][:300] if result.output.strip() else ""
        raise SetupFailed(f"The setup command failed (exit {result.exit_code}): {last}")
