"""Secrets reach the setup step and nothing else, without a Docker engine.

The real run of a task (`TaskRun`) over real parts: the store (SQLite), the event bus with the
bot's redactor, watch-mode workspace disks and host git (a local bare repository linked with a setup
command and secrets sealed with the real key). Only the containers are faked, by a provider that
implements the protocol: each step is answered as its container would answer it and every call is
recorded, so what each container would have been given is seen exactly. (test_secrets_e2e.py runs
the same paths in real containers.)
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any, Callable

import pytest
from cryptography.fernet import Fernet

from slackbot.protocol import Mount, Sandbox, Step, StepResult, TaskStatus
from slackbot.redact import MARK, Redactor
from slackbot.repos import GitRunner, Mirrors, Results
from slackbot.repos.scripts import RESULT_MARK
from slackbot.runs import EventBus, RunContext
from slackbot.runs.repo_ops import RepoOps
from slackbot.runs.states import move
from slackbot.runs.task_run import TaskRun
from slackbot.sandbox import SandboxError, WorkspaceDisks
from slackbot.secret_box import SecretBox
from slackbot.settings import Settings
from slackbot.store import Limits, Queue, RepoBinding, RepoSecrets, RepoStore, Store
from slackbot.store.models import utcnow
from tests.git_helpers import make_remote

KEY = Fernet.generate_key().decode()
VALUE = "npm_Hk3Jd9Pq2Ws7Xe5Rt1Yu"
PROXY_ENV = {"HTTP_PROXY": "http://10.213.0.2:3128", "HTTPS_PROXY": "http://10.213.0.2:3128",
             "NO_PROXY": "localhost,127.0.0.1,::1"}


class Provider:
    """The `SandboxProvider` protocol without Docker. The setup step's answer is computed from what the
    step was given (so a setup that echoes its secret is modelled faithfully); the agent's container
    records its environment and then fails to start, which ends the task there."""

    def __init__(self, setup: Callable[[Step], StepResult]) -> None:
        self.worker = "w1"
        self.calls: list[tuple[str, Any]] = []
        self.setup = setup

    def step(self, name: str) -> Step:
        return next(step for kind, step in self.calls if kind == "run_step" and step.name == name)

    def agent_env(self) -> dict[str, str] | None:
        return next((env for kind, env in self.calls if kind == "start"), None)

    async def start(self, *, task_id: int, mounts: tuple[Mount, ...], network: str = "",
                    env: dict[str, str] | None = None, **limits: Any) -> Sandbox:
        self.calls.append(("start", dict(env or {})))
        raise SandboxError("no engine in this test: the agent's container stops here")

    def keep_warm(self) -> None:
        pass

    async def take_warm(self, *, task_id: int, mounts: tuple[Mount, ...], **limits: Any) -> Sandbox | None:
        return None  # no warm containers without an engine

    async def run_step(self, step: Step) -> StepResult:
        self.calls.append(("run_step", step))
        if step.name == "setup":
            return self.setup(step)
        if step.name == "finish":
            return StepResult(0, "\n" + RESULT_MARK + json.dumps({"changed": False, "left_out": []}) + "\n")
        return StepResult(0, "")

    async def open_network(self, task_id: int, allow: tuple[str, ...]) -> tuple[str, dict[str, str]]:
        self.calls.append(("open_network", task_id))
        return f"net-{task_id}", dict(PROXY_ENV)

    async def close_network(self, task_id: int) -> None:
        self.calls.append(("close_network", task_id))

    async def remove_task(self, task_id: int) -> None:
        self.calls.append(("remove_task", task_id))

    async def reap(self, live_workers: Collection[str] = ()) -> list[str]:
        return []

    async def remove_worker(self, worker: str) -> list[str]:
        return []


class NoModel:
    async def complete(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the model was called")


def echo_setup(exit_code: int = 0) -> Callable[[Step], StepResult]:
    """A setup command that prints its token (as `echo "token: $NPM_TOKEN"` would) and a last line."""
    def answer(step: Step) -> StepResult:
        env = dict(step.env)
        return StepResult(exit_code, f"token: {env.get('NPM_TOKEN', '')}\nauth failed for {env.get('NPM_TOKEN', '')}")
    return answer


class Rig:
    def __init__(self, tmp_path: Path, provider: Provider, *, key: str = KEY) -> None:
        self.tmp, self.provider = tmp_path, provider
        self.data = tmp_path / "data"
        self.settings = Settings(SLACKBOT_DATA_DIR=self.data, SLACKBOT_WORKSPACE_QUOTA_MODE="watch",
                                 SLACKBOT_WORKSPACE_QUOTA="64m", SLACKBOT_DISK_RESERVE="1m", DATABASE_URL="",
                                 SLACKBOT_SECRETS_KEY=key)
        self.data.mkdir(parents=True, exist_ok=True)

    async def __aenter__(self) -> "Rig":
        s = self.settings
        self.store = Store(s.db_url)
        await self.store.upgrade()
        self.git = GitRunner(timeout_s=30)
        self.disks = WorkspaceDisks(s.workspaces_dir, quota_bytes=s.size("workspace_quota"), mode="watch",
                                    tmp_dir=s.tmp_dir, reserve_bytes=s.size("disk_reserve"))
        self.bus = EventBus(self.store, redactor=Redactor(s.secrets()))
        self.ctx = RunContext(s, self.store, self.bus, self.provider, self.disks, self.git,
                              Results(self.git, s.tmp_dir, expanded_cap=8 * s.size("result_max")),
                              lambda *_: NoModel(),
                              RepoOps(s, self.store, Mirrors(s.mirrors_dir, self.git, data_dir=self.data)))
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.disks.close()
        self.git.close()
        await self.store.aclose()

    async def repo(self, *, setup: str, network: str, secrets: dict[str, str]) -> Any:
        remote = make_remote(self.tmp / "app.git", self.tmp / "app-work")
        repos = RepoStore(self.store)
        repo = await repos.link("C1", name="app", url=str(remote), branch="main", github="", user="UADMIN")
        await repos.configure(repo.id, setup=setup, network=network)
        box = SecretBox(KEY)
        for name, value in secrets.items():  # straight into the store: these may break the form's rules
            await RepoSecrets(self.store).put(repo.id, name, box.seal(value), by="UADMIN")
        return await repos.get(repo.id)

    async def run_task(self, repo: Any, *, thread_ts: str = "100.1", before: Callable | None = None) -> Any:
        _, recorded = await self.store.new_task(
            channel="C1", thread_ts=thread_ts, requester="U1", requester_name="Ada", prompt="fix the tests",
            mention_ts=thread_ts, model="", repo=RepoBinding(repo.id, repo.url, "main"))
        assert await move(self.store, recorded.id, TaskStatus.QUEUED, queued_at=utcnow())
        task = await Queue(self.store).claim_next(Limits(8, 8, 8), "w1")
        thread = await self.store.get_thread(task.thread_id)
        if before is not None:
            await before(thread, task)
        await TaskRun(self.ctx, task, thread, worker="w1").run()
        return await self.store.get_task(task.id)

    async def stored_text(self, task_id: int) -> str:
        rows = await self.store.events(task_id)
        return json.dumps(rows, ensure_ascii=False) + json.dumps(
            [r.data for r in await self.store.history(1)], ensure_ascii=False)


def setup_item(events: list[dict]) -> dict:
    return next(e["item"] for e in events
                if e["type"] == "item.completed" and e["item"].get("id", "").endswith("_setup"))


async def test_the_secret_reaches_the_setup_step_only(tmp_path):
    """network=on: the setup and the agent's container both get the proxy's variables, from one dict;
    only the setup's copy carries the secret. The setup's output quoting it is redacted when stored."""
    provider = Provider(echo_setup(0))
    async with Rig(tmp_path, provider) as rig:
        repo = await rig.repo(setup="npm ci", network="on", secrets={"NPM_TOKEN": VALUE})
        task = await rig.run_task(repo)
        setup_env = dict(provider.step("setup").env)
        assert setup_env["NPM_TOKEN"] == VALUE
        assert {k: setup_env[k] for k in PROXY_ENV} == PROXY_ENV
        assert provider.agent_env() == PROXY_ENV  # the agent's container: the proxy, never the secret
        for kind, step in provider.calls:
            if kind == "run_step" and step.name != "setup":
                assert VALUE not in json.dumps(step.env) + " ".join(step.argv), step.name
        events = await rig.store.events(task.id)
        assert setup_item(events)["aggregated_output"] == f"token: {MARK}\nauth failed for {MARK}"
        assert VALUE not in await rig.stored_text(task.id) and VALUE not in task.error + task.answer
        assert rig.bus.redactor.text(VALUE) == MARK  # this worker redacts it in every later task too


async def test_a_failing_setup_that_prints_the_secret_fails_without_it(tmp_path):
    provider = Provider(echo_setup(1))
    async with Rig(tmp_path, provider) as rig:
        repo = await rig.repo(setup="npm ci", network="off", secrets={"NPM_TOKEN": VALUE})
        task = await rig.run_task(repo)
        assert task.status == TaskStatus.FAILED
        assert task.error == f"The setup command failed (exit 1): auth failed for {MARK}"
        assert VALUE not in await rig.stored_text(task.id)
        assert provider.agent_env() is None  # the agent never started


async def test_names_the_bot_uses_never_replace_its_variables(tmp_path):
    """Rows stored around the form's rules (by hand, or under older rules) are left out at run time, and
    the sandbox's own variables win over any secret."""
    provider = Provider(echo_setup(0))
    async with Rig(tmp_path, provider) as rig:
        repo = await rig.repo(setup="npm ci", network="on", secrets={
            "NPM_TOKEN": VALUE, "PATH": "/workspace/evil-bin", "HTTPS_PROXY": "http://evil.example:3128",
            "BASH_ENV": "/workspace/.evil-rc", "GIT_SSH_COMMAND": "sh /workspace/x", "lower_case": "whatever1"})
        await rig.run_task(repo)
        setup_env = dict(provider.step("setup").env)
        assert setup_env == {**PROXY_ENV, "NPM_TOKEN": VALUE}


async def test_a_missing_or_changed_key_fails_setup_clearly(tmp_path):
    for key, says in (("", "SLACKBOT_SECRETS_KEY is not set"),
                      (Fernet.generate_key().decode(), "The secret NPM_TOKEN could not be decrypted")):
        provider = Provider(echo_setup(0))
        async with Rig(tmp_path / f"k{len(key)}", provider, key=key) as rig:
            repo = await rig.repo(setup="npm ci", network="off", secrets={"NPM_TOKEN": VALUE})
            task = await rig.run_task(repo)
            assert task.status == TaskStatus.FAILED
            assert says in task.error and "The setup command did not run" in task.error
            assert "setup" not in [s.name for kind, s in provider.calls if kind == "run_step"]
            stored = await rig.stored_text(task.id)
            assert says in stored and VALUE not in stored and KEY not in stored + task.error


async def test_no_secrets_for_a_setup_in_a_workspace_an_agent_used(tmp_path):
    """An admin changes the setup command: the next task of an old thread runs it again, in a workspace
    and home directory the agent wrote (an ~/.npmrc, a package script), which could hand the secret on.
    That run gets no secrets, and says why."""
    provider = Provider(echo_setup(1))
    async with Rig(tmp_path, provider) as rig:
        repo = await rig.repo(setup="npm ci", network="off", secrets={"NPM_TOKEN": VALUE})

        async def agent_worked_here(thread, task) -> None:  # what an earlier task's agent phase leaves
            await rig.store.add_history(thread.id, task.id, {"role": "user", "content": "earlier request"}, 3)
        task = await rig.run_task(repo, before=agent_worked_here)
        assert "NPM_TOKEN" not in dict(provider.step("setup").env)
        assert task.status == TaskStatus.FAILED
        assert "secrets (NPM_TOKEN) were not given to the setup command" in task.error
        assert "an agent has worked in this thread" in setup_item(await rig.store.events(task.id))["aggregated_output"]
        assert rig.bus.redactor.text(VALUE) == MARK  # redacted all the same (earlier setups had it)


@pytest.mark.parametrize("touched", ["context_tokens", "summary"])
async def test_a_thread_whose_history_is_gone_still_counts_as_used(tmp_path, touched):
    provider = Provider(echo_setup(0))
    async with Rig(tmp_path, provider) as rig:
        repo = await rig.repo(setup="npm ci", network="off", secrets={"NPM_TOKEN": VALUE})

        async def mark(thread, task) -> None:
            await rig.store.update_thread(thread.id, **({"context_tokens": 900} if touched == "context_tokens"
                                                        else {"summary": "what happened before"}))
        await rig.run_task(repo, before=mark)
        assert "NPM_TOKEN" not in dict(provider.step("setup").env)
