"""A thread's workspace around one task: made or reused before the agent runs, its result taken after.

The host never runs git in a workspace, reads anything in it or writes into it. Only data crosses:
in, a clone from the host repository mounted read-only into a one-shot container (and, for
follow-ups, a bundle of newer base commits on stdin); out, a bundle the finishing container writes
to stdout once the agent's container is gone, checked and fetched into the host repository.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from ..protocol import FileStat, Mount, Step, StepResult
from ..repos import RepoError, ResultRefused, branch_name, ensure_scratch, scratch_start, scripts
from ..repos.errors import display_url
from ..sandbox import WorkspaceDisk
from ..secret_box import SecretBox, SecretsKeyError, SecretUnreadable, usable
from ..store import AgentThread, Repository, Task
from ..store.secrets import RepoSecrets
from .effective import bot_branch

if TYPE_CHECKING:
    from .task_run import RunContext

log = logging.getLogger(__name__)
AGENTS_MD_CAP = 32 * 1024
MAX_PATCH_CHARS = 5_000_000
STEP_TIMEOUT_S = 600.0


class SetupFailed(Exception):
    """The repository's setup command failed; the message quotes its last line."""


@dataclass
class Prepared:
    disk: WorkspaceDisk
    repo: Path  # the host repository: a mirror, or the thread's scratch repository
    parent: str  # the thread's tip when the task starts
    mounts: tuple[Mount, ...]  # for the setup and agent containers
    instructions: str = ""
    fresh: str = ""  # the base commit a first checkout is still to be made of
    remade: bool = False  # `fresh` is the scratch start, made again in place (no mirror needed)


@dataclass
class Outcome:
    files: tuple[FileStat, ...] = ()
    patch: str = ""
    left_out: list[tuple[str, int]] = field(default_factory=list)
    refused: str = ""  # why the result was not taken


Progress = Callable[[str], Awaitable[None]]


class WorkspaceSteps:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.s = ctx.settings

    async def prepare(self, thread: AgentThread, task: Task, progress: Progress) -> tuple[AgentThread, Prepared]:
        """The workspace, mounted. A thread's first task still has its checkout to make (`fresh`, then
        `clone`): the caller may start the agent's container meanwhile, or make it through a warm one."""
        ctx = self.ctx
        assert thread.id is not None  # read from the store, as every thread and task here
        # The workspace's disk is mounted while the repository is fetched (it refuses when the disk is
        # nearly full); the caller detaches it however this ends.
        attaching = asyncio.ensure_future(ctx.disks.attach(thread.id))
        start = ""
        try:
            if thread.repo_url:
                thread, repo, fresh = await self._mirror(thread, task, attaching, progress)
            else:
                repo, sha, start = await ctx.git.run(_scratch, self.s.scratch_dir, thread.id)
                fresh = None if thread.tip_sha else sha
            disk = await attaching
        finally:
            if not attaching.done():
                attaching.cancel()
                await asyncio.gather(attaching, return_exceptions=True)
        if disk.moved_aside:
            await progress("This thread's workspace was made by an older version; starting a fresh one")
            fresh = fresh or thread.base_sha or thread.tip_sha
        instructions = ""
        if thread.repo_url and not bot_branch(thread.base_branch, self.s):  # (an agent may have written it)
            instructions = await ctx.results.instructions(repo, fresh or thread.latest_base_sha or thread.base_sha,
                                                          AGENTS_MD_CAP)
        mounts = (Mount(str(disk.path), "/workspace"), Mount(str(disk.home), "/home/agent"))
        return thread, Prepared(disk, repo, fresh or thread.tip_sha, mounts, instructions, fresh or "",
                                remade=bool(fresh) and not thread.repo_url and fresh == start)

    async def _mirror(self, thread: AgentThread, task: Task, disk: Awaitable[WorkspaceDisk],
                      progress: Progress) -> tuple[AgentThread, Path, str | None]:
        """Fetches the mirror. Returns the base commit to clone for a thread's first task (else None)."""
        mirrors, first = self.ctx.repo_ops.mirrors, not thread.tip_sha
        thread_id = thread.id  # (a local: `thread` is reassigned below, which drops mypy's narrowing of thread.id)
        assert thread_id is not None and task.id is not None
        try:
            found = await mirrors.update(url=thread.repo_url, branch=thread.base_branch or None,
                                         trusted=thread.repo_trusted)
        except RepoError:
            if first:
                raise
            # A follow-up carries on with what the mirror has.
            log.warning("thread %s: could not fetch %s", thread.id, display_url(thread.repo_url), exc_info=True)
            return thread, mirrors.path_for(thread.repo_url, thread.repo_trusted), None
        if first:
            branch = branch_name(self.s.branch_prefix, task.prompt, task.id)
            thread = await self.ctx.store.update_thread(thread_id, base_branch=found.base_branch, branch=branch)
            return thread, found.mirror, found.base_sha
        if found.base_sha not in (thread.latest_base_sha, thread.base_sha):
            await self._hand_in(thread, task, await disk, found.mirror, found.base_branch, progress)
            thread = await self.ctx.store.update_thread(thread_id, latest_base_sha=found.base_sha)
        return thread, found.mirror, None

    async def clone(self, thread: AgentThread, task: Task, prepared: Prepared, progress: Progress,
                    via: Any = None) -> AgentThread:
        """The first checkout of `prepared.fresh`: in a one-shot container, or in the agent's warm
        container `via` before the agent has run in it (the mirror lent to it read-only meanwhile)."""
        assert thread.id is not None
        repo, disk, base = prepared.repo, prepared.disk, prepared.fresh
        branch = thread.branch or f"{self.s.branch_prefix}scratch-{task.id}"
        await asyncio.gather(
            progress("Checking out the repository" if thread.repo_url else "Preparing a scratch workspace"),
            self.ctx.results.start_thread(repo, thread.id, base))
        argv, env = scripts.clone(base_sha=base, branch=branch,
                                  origin=display_url(thread.repo_url) if thread.repo_url else "",
                                  scratch=not thread.repo_url)
        mirror = Mount(str(repo), "/mirror", read_only=True)
        if via is not None and prepared.remade:  # nothing to read from a mirror
            done = await via.exec(argv[-1], timeout_s=STEP_TIMEOUT_S, env=env, login=False)
            result = StepResult(done.exit_code, done.output)
        elif via is not None:
            done = await via.with_mount(mirror, argv[-1], timeout_s=STEP_TIMEOUT_S, env=env)
            result = StepResult(done.exit_code, done.output)
        else:
            result = await self._step(task, "clone", argv, env, (mirror, Mount(str(disk.path), "/workspace")))
        prepared.fresh = ""
        if result.exit_code != 0:
            raise RepoError(f"I could not check out the repository: {_last_line(result.output)}")
        return await self.ctx.store.update_thread(
            thread.id, base_sha=base, tip_sha=base, latest_base_sha=base, branch=branch, workspace=str(disk.path))

    async def _hand_in(self, thread: AgentThread, task: Task, disk: WorkspaceDisk, repo: Path, base_branch: str,
                       progress: Progress) -> None:
        """Newer commits of the base branch reach the workspace as origin/<base>, by a bundle on stdin."""
        assert task.id is not None
        path = self._tmp("base.bundle")
        try:
            exclude = [thread.tip_sha, thread.latest_base_sha or thread.base_sha]
            if not await self.ctx.results.base_bundle(repo, f"refs/heads/{base_branch}", exclude, path):
                return
            argv, env = scripts.hand_in(ref=f"refs/heads/{base_branch}", base_branch=base_branch)
            result = await self.ctx.sandboxes.run_step(Step(
                task.id, "handin", argv, (Mount(str(disk.path), "/workspace"),), env=tuple(env.items()),
                timeout_s=STEP_TIMEOUT_S, stdin_path=str(path)))
            if result.exit_code == 0:
                await progress(f"`{base_branch}` has new commits: they are in `origin/{base_branch}`")
        finally:
            path.unlink(missing_ok=True)

    async def setup(self, thread: AgentThread, task: Task, repo: Repository | None, prepared: Prepared,
                    network: str, network_env: dict[str, str]) -> tuple[AgentThread, StepResult | None]:
        """The repository's setup command, in a container of its own, once per thread (again when an
        admin changes it). What it installs stays in the workspace and the thread's home directory.

        The repository's secrets are in this container's environment only (the agent's gets
        `network_env`, never this copy), and only while no agent has worked in the thread: its files
        (an ~/.npmrc, a package's install scripts) would run with them. From here on they are
        redacted from everything this process stores or posts, the setup's output first."""
        if not needs_setup(thread, repo):
            return thread, None
        assert repo is not None and repo.id is not None and thread.id is not None and task.id is not None
        env = dict(network_env)
        note = ""
        sealed = await RepoSecrets(self.ctx.store).sealed(repo.id)
        if sealed:
            try:
                values = SecretBox(self.s.secrets_key).open_all(sealed)
            except (SecretsKeyError, SecretUnreadable) as exc:
                log.warning("thread %s: the secrets of %s cannot be used: %s", thread.id, repo.name, exc)
                return thread, StepResult(1, f"The setup command did not run. {exc}")
            self.ctx.bus.redactor.add(values.values())
            given = usable(values)
            if set(given) != set(values):
                log.warning("thread %s: secrets of %s left out (names or values no longer allowed): %s",
                            thread.id, repo.name, ", ".join(sorted(set(values) - set(given))))
            touched = bool(thread.context_tokens or thread.summary or await self.ctx.store.history(thread.id))
            if touched and given:
                note = (f"[slackbot] This repository's secrets ({', '.join(sorted(given))}) were not given to the "
                        "setup command: an agent has worked in this thread's workspace and home directory, and "
                        "what it left there could hand them on. A new thread runs the setup with them.")
            else:
                env = {**given, **network_env}  # the sandbox's own variables win (names are checked too)
        # No profile or rc file: the home directory and the workspace are the agent's, and setup may
        # have the network the agent has not.
        argv = ("timeout", "-k", "5", f"{self.s.command_timeout_s:g}", "bash", "--noprofile", "--norc", "-c",
                repo.setup)
        result = await self.ctx.sandboxes.run_step(Step(
            task.id, "setup", argv, prepared.mounts, network=network, env=tuple(env.items()),
            timeout_s=self.s.command_timeout_s + 30))
        # Redacted here as well as by the event bus: a failure's last line becomes the task's error.
        output = self.ctx.bus.redactor.text(result.output)
        result = replace(result, output=f"{output.rstrip()}\n{note}" if note else output)
        if result.exit_code == 0:
            thread = await self.ctx.store.update_thread(thread.id, setup_hash=setup_digest(repo.setup))
        return thread, result

    async def finish(self, thread: AgentThread, task: Task, prepared: Prepared,
                     message: str) -> tuple[AgentThread, Outcome]:
        """After the agent's container is gone: the workspace's changes as one commit by the bot on the
        thread's branch, checked on the way into the host repository."""
        assert thread.id is not None
        path = self._tmp("result.bundle")
        try:
            argv, env = scripts.finish(parent=prepared.parent, branch=thread.branch, message=message,
                                       max_file=self.s.size("max_file"))
            result = await self._step(task, "finish", argv, env, (Mount(str(prepared.disk.path), "/workspace"),),
                                      stdout=path)
            meta = scripts.result_meta(result.output)
            if result.stdout_over_cap:
                return thread, Outcome(refused=f"The task's changes are larger than {self.s.result_max} "
                                               "(SLACKBOT_RESULT_MAX), so they were not taken.")
            if meta is None:
                return thread, Outcome(refused=f"Committing the changes failed: {_last_line(result.output)}")
            left = [(str(p), int(n)) for p, n in meta.get("left_out", [])]
            if not meta.get("changed"):
                return thread, Outcome(left_out=left)
            async with self.ctx.repo_ops.mirrors.lock(thread.repo_url or f"scratch:{thread.id}", thread.repo_trusted):
                tip = await self.ctx.results.receive(prepared.repo, path, thread_id=thread.id,
                                                     parent=prepared.parent, message=message)
            thread = await self.ctx.store.update_thread(thread.id, tip_sha=tip)
            changes = await self.ctx.results.changes(prepared.repo, prepared.parent, tip, MAX_PATCH_CHARS)
            return thread, Outcome(changes.files, changes.patch, left)
        except ResultRefused as exc:
            return thread, Outcome(refused=str(exc))
        finally:
            path.unlink(missing_ok=True)

    async def _step(self, task: Task, name: str, argv: tuple[str, ...], env: dict[str, str],
                    mounts: tuple[Mount, ...], stdout: Path | None = None) -> StepResult:
        assert task.id is not None
        return await self.ctx.sandboxes.run_step(Step(
            task.id, name, argv, mounts, env=tuple(env.items()), timeout_s=STEP_TIMEOUT_S,
            stdout_path=str(stdout) if stdout else "", stdout_cap=self.s.size("result_max") if stdout else 0))

    def _tmp(self, name: str) -> Path:
        self.s.tmp_dir.mkdir(parents=True, exist_ok=True)
        return self.s.tmp_dir / f"{uuid.uuid4().hex[:12]}-{name}"


def setup_digest(command: str) -> str:
    return hashlib.sha256(command.encode()).hexdigest()[:16]


def needs_setup(thread: AgentThread, repo: Repository | None) -> bool:
    return repo is not None and bool(repo.setup.strip()) and thread.setup_hash != setup_digest(repo.setup)


def _last_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def _scratch(root: Path, thread_id: int) -> tuple[Path, str, str]:
    """A thread's scratch repository, its start, and the start every new scratch thread has (blocking)."""
    repo, sha = ensure_scratch(root, thread_id)
    return repo, sha, scratch_start(root)
