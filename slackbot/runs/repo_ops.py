"""Repository work around tasks: checking a URL, pushing a thread's branch and opening PRs.
Everything here runs on the host, from host-only mirrors, with the host's git credentials; nothing
enters a sandbox."""

from __future__ import annotations

import functools
import logging

from ..redact import Redactor
from ..repos import Mirrors, RepoError, thread_ref
from ..repos.github import GitHub, GitHubError
from ..settings import Settings
from ..store import AgentThread, RepoStore, Repository, Store, Task
from .outcomes import PushCode, PushResult

log = logging.getLogger(__name__)


class RepoOps:
    def __init__(self, settings: Settings, store: Store, mirrors: Mirrors, *,
                 redactor: Redactor | None = None) -> None:
        """`redactor`: the bus's (which learns repository secrets as tasks meet them)."""
        self.settings = settings
        self.redactor = redactor or Redactor(settings.secrets())
        self.store = store
        self.repos = RepoStore(store)
        self.mirrors = mirrors

    async def check(self, url: str, branch: str = "", *, trusted: bool = True) -> str:
        """An empty string when the URL (and branch) can be fetched; else what is wrong, in words.
        `trusted=False` checks it as a non-admin's ad-hoc URL (public https, no credentials)."""
        try:
            await self.mirrors.check(url=url, branch=branch or None, trusted=trusted)
        except RepoError as exc:
            return str(exc)
        return ""

    async def refusal(self, url: str, *, trusted: bool) -> str:
        """Why a URL given in a mention may not be used ("" when it may); nothing is fetched."""
        return await self.mirrors.refusal(url, trusted)

    async def repository(self, thread: AgentThread) -> Repository | None:
        return await self.repos.get(thread.repo_id) if thread.repo_id else None

    async def push(self, thread: AgentThread, task: Task) -> PushResult:
        """Pushes the thread's branch; opens (or finds) the PR when tied to GitHub with a token."""
        assert task.id is not None and thread.id is not None  # both read from the store
        result = functools.partial(PushResult, branch=thread.branch, repo_url=thread.repo_url, task_id=task.id)
        if not thread.repo_url or not thread.branch:
            return result(PushCode.NO_BRANCH)
        if not thread.repo_trusted:
            return result(PushCode.UNTRUSTED)
        if not thread.tip_sha or thread.tip_sha == thread.base_sha:
            return result(PushCode.NO_CHANGES)
        try:
            await self.mirrors.push(url=thread.repo_url, ref=thread_ref(thread.id), branch=thread.branch)
        except RepoError as exc:
            return result(PushCode.FAILED, detail=str(exc))
        repo = await self.repository(thread)
        if thread.pr_url:
            return result(PushCode.PR_UPDATED, pr_url=thread.pr_url)
        if not (repo and repo.github and self.settings.github_token):
            return result(PushCode.PUSHED)
        github = GitHub(self.settings.github_api_url, self.settings.github_token)
        try:
            clean = self.redactor  # GitHub is outside too
            url = await github.create_pull_request(
                repo.github, head=thread.branch, base=thread.base_branch or repo.branch or "main",
                title=clean.text(_title(task)), body=clean.text(_body(task)))
        except GitHubError as exc:
            if not exc.existing_url:
                return result(PushCode.PR_FAILED, detail=str(exc))
            url = exc.existing_url  # opened earlier (by hand, or by another push): keep using it
        finally:
            await github.aclose()
        await self.store.update_thread(thread.id, pr_url=url)
        return result(PushCode.PR_OPENED, pr_url=url)

    async def auto_push(self, thread: AgentThread, task: Task, answer: str) -> PushResult:
        """A finished task's push of its own (the repository or channel asks for it)."""
        if task.requester != thread.requester:  # only the thread's first requester (or an admin) pushes
            return PushResult(PushCode.NOT_REQUESTER, branch=thread.branch, task_id=task.id or 0)
        task.answer = answer
        try:
            return await self.push(thread, task)
        except Exception as exc:  # the task is done; only the push failed
            log.exception("auto push of task %s failed", task.id)
            return PushResult(PushCode.FAILED, branch=thread.branch, detail=str(exc), task_id=task.id or 0)


def _title(task: Task) -> str:
    first = task.prompt.strip().splitlines()[0] if task.prompt.strip() else f"slackbot task #{task.id}"
    return first[:100]


def _body(task: Task) -> str:
    who = task.requester_name or task.requester
    answer = task.answer.strip() or "(no summary)"
    return (f"Requested in Slack by {who} (task #{task.id}).\n\n**Request**\n\n{task.prompt}\n\n"
            f"**Summary**\n\n{answer[:60_000]}")
