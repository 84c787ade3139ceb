"""A failing setup command, without a Docker engine.

The real run of a task (`TaskRun`) over real parts: the store (SQLite), the event bus, watch-mode
workspace disks and host git (a local bare repository linked with a setup command). Only the
containers are faked: `RecordingProvider` answers each one-shot step as its container would and
records every call. A setup command exiting 3 must fail the task with its exit code and last
output line, keep its output as a command item in the task's events, and never start the agent's
container nor call the model.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from slackbot.protocol import Mount, Sandbox, Step, StepResult, TaskStatus
from slackbot.repos import GitRunner, Mirrors, Results
from slackbot.repos.scripts import RESULT_MARK
from slackbot.runs import EventBus, RunContext
from slackbot.runs.repo_ops import RepoOps
from slackbot.runs.states import move
from slackbot.runs.task_run import TaskRun
from slackbot.sandbox import WorkspaceDisks
from slackbot.settings import Settings
from slackbot.store import Limits, Queue, RepoBinding, RepoStore, Store
from slackbot.store.models import utcnow
from tests.git_helpers import make_remote

SETUP = "apt-get install -y no-such-package"
SETUP_OUTPUT = "installing…\nE: package not found"


class RecordingProvider:
    """The `SandboxProvider` protocol without Docker. Steps are answered by name, as their
    containers would answer them here: the clone succeeds (its outcome is only its exit code), the
    setup command fails, and the finishing step finds the workspace unchanged."""

    def __init__(self) -> None:
        self.worker = "w1"
        self.calls: list[tuple[str, Any]] = []
        self.answers = {
            "clone": StepResult(0, ""),
            "setup": StepResult(3, SETUP_OUTPUT),
            "finish": StepResult(0, "\n" + RESULT_MARK + json.dumps({"changed": False, "left_out": []}) + "\n"),
        }

    def steps(self) -> list[str]:
        return [step.name for kind, step in self.calls if kind == "run_step"]

    async def start(self, *, task_id: int, mounts: tuple[Mount, ...], network: str = "",
                    env: dict[str, str] | None = None) -> Sandbox:
        self.calls.append(("start", task_id))
        raise AssertionError("the agent's container was started")

    def keep_warm(self) -> None:
        pass

    async def take_warm(self, *, task_id: int, mounts: tuple[Mount, ...], **limits: Any) -> Sandbox | None:
        return None  # no warm containers without an engine

    async def run_step(self, step: Step) -> StepResult:
        self.calls.append(("run_step", step))
        return self.answers.get(step.name, StepResult(127, f"the fake has no answer for step {step.name!r}"))

    async def open_network(self, task_id: int, allow: tuple[str, ...]) -> tuple[str, dict[str, str]]:
        self.calls.append(("open_network", task_id))
        return f"net-{task_id}", {}

    async def close_network(self, task_id: int) -> None:
        self.calls.append(("close_network", task_id))

    async def remove_task(self, task_id: int) -> None:
        self.calls.append(("remove_task", task_id))

    async def reap(self, live_workers: Collection[str] = ()) -> list[str]:
        self.calls.append(("reap", tuple(live_workers)))
        return []

    async def remove_worker(self, worker: str) -> list[str]:
        self.calls.append(("remove_worker", worker))
        return []


class NoModel:
    """A model that must never be asked."""

    def __init__(self) -> None:
        self.calls = 0

    async def complete(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        raise AssertionError("the model was called")


async def test_a_failing_setup_command_fails_the_task_before_the_agent_starts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = Settings(SLACKBOT_DATA_DIR=data, SLACKBOT_WORKSPACE_QUOTA_MODE="watch",
                        SLACKBOT_WORKSPACE_QUOTA="64m", SLACKBOT_DISK_RESERVE="1m", DATABASE_URL="")
    data.mkdir()  # as the bot does before opening its database
    store = Store(settings.db_url)
    await store.upgrade()
    git = GitRunner(timeout_s=30)
    disks = WorkspaceDisks(settings.workspaces_dir, quota_bytes=settings.size("workspace_quota"), mode="watch",
                           tmp_dir=settings.tmp_dir, reserve_bytes=settings.size("disk_reserve"))
    provider, model = RecordingProvider(), NoModel()
    models: list[str] = []

    def model_for(name: str, effort: str = "") -> Any:
        models.append(name)
        return model

    ctx = RunContext(settings, store, EventBus(store), provider, disks, git,
                     Results(git, settings.tmp_dir, expanded_cap=8 * settings.size("result_max")), model_for,
                     RepoOps(settings, store, Mirrors(settings.mirrors_dir, git, data_dir=data)))
    try:
        # A linked repository with a setup command; a new thread bound to it, its task claimed by w1.
        remote = make_remote(tmp_path / "app.git", tmp_path / "app-work")
        repos = RepoStore(store)
        repo = await repos.link("C1", name="app", url=str(remote), branch="main", github="", user="UADMIN")
        assert repo.id is not None
        await repos.configure(repo.id, setup=SETUP)
        _, recorded = await store.new_task(
            channel="C1", thread_ts="100.1", requester="U1", requester_name="Ada", prompt="fix the tests",
            mention_ts="100.1", model="", repo=RepoBinding(repo.id, str(remote), "main"))
        assert recorded.id is not None
        assert await move(store, recorded.id, TaskStatus.QUEUED, queued_at=utcnow())
        task = await Queue(store).claim_next(Limits(8, 8, 8), "w1")
        assert task is not None and task.id == recorded.id and task.status == TaskStatus.RUNNING
        thread = await store.get_thread(task.thread_id)
        assert thread is not None

        await TaskRun(ctx, task, thread, worker="w1").run()

        done = await store.get_task(task.id)
        assert done is not None
        assert done.status == TaskStatus.FAILED
        assert done.error == "The setup command failed (exit 3): E: package not found"

        events = await store.events(task.id)
        setup_items = [e["item"] for e in events
                       if e["type"] == "item.completed" and e["item"]["type"] == "command_execution"]
        assert setup_items == [{"id": f"task_{task.id}_setup", "command": SETUP, "aggregated_output": SETUP_OUTPUT,
                                "exit_code": 3, "status": "failed", "type": "command_execution"}]
        assert events[-1]["type"] == "task.finished"
        assert events[-1]["status"] == "failed" and "exit 3" in events[-1]["error"]
        assert {"type": "turn.failed", "error": {"message": done.error}} in events

        # The checkout ran, then setup with its command; the agent's container never started.
        steps = provider.steps()
        assert steps[:2] == ["clone", "setup"], steps
        setup_step = next(step for kind, step in provider.calls if kind == "run_step" and step.name == "setup")
        assert setup_step.argv[-1] == SETUP
        assert "start" not in [kind for kind, _ in provider.calls]
        assert model.calls == 0 and models == []
    finally:
        disks.close()
        git.close()
        await store.aclose()
