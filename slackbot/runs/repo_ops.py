"""Repository work around tasks: checking a URL, preparing a thread's checkout, pushing and PRs.
Everything here runs on the host, with the host's git credentials; nothing enters a sandbox."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..repos import Mirrors, RepoError, branch_name
from ..repos.github import GitHub, GitHubError
from ..settings import Settings
from ..store import AgentThread, RepoStore, Repository, Store, Task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushResult:
    message: str
    pr_url: str = ""
    ok: bool = True


class RepoOps:
    def __init__(self, settings: Settings, store: Store, mirrors: Mirrors) -> None:
        self.settings = settings
        self.store = store
        self.repos = RepoStore(store)
        self.mirrors = mirrors

    async def check(self, url: str, branch: str = "") -> str:
        """An empty string when the URL (and branch) can be fetched; else what is wrong, in words."""
        try:
            await self.mirrors.check(url=url, branch=branch or None)
        except RepoError as exc:
            return str(exc)
        return ""

    async def repository(self, thread: AgentThread) -> Repository | None:
        return await self.repos.get(thread.repo_id) if thread.repo_id else None

    async def prepare(self, thread: AgentThread, task: Task, dest: Path) -> AgentThread:
        """The thread's checkout: made at its first task on a new branch, reused by follow-ups."""
        if thread.branch and await self.mirrors.existing(dest) is not None:
            return thread
        branch = branch_name(self.settings.branch_prefix, task.prompt, task.id)
        checkout = await self.mirrors.prepare(url=thread.repo_url, branch=thread.base_branch or None, dest=dest,
                                              new_branch=branch)
        return await self.store.update_thread(thread.id, branch=checkout.branch, base_branch=checkout.base_branch,
                                              workspace=str(dest))

    async def push(self, thread: AgentThread, task: Task) -> PushResult:
        """Pushes the thread's branch; opens (or finds) the PR when tied to GitHub with a token."""
        if not thread.repo_url or not thread.branch:
            return PushResult("This thread has no repository branch to push.", ok=False)
        try:
            await self.mirrors.push(path=Path(thread.workspace), url=thread.repo_url, branch=thread.branch)
        except RepoError as exc:
            return PushResult(f"I could not push `{thread.branch}`: {exc}", ok=False)
        repo = await self.repository(thread)
        if thread.pr_url:
            return PushResult(f"Pushed `{thread.branch}`; the pull request is updated: {thread.pr_url}",
                              thread.pr_url)
        if not (repo and repo.github and self.settings.github_token):
            return PushResult(f"Pushed the branch `{thread.branch}` to {thread.repo_url}.")
        github = GitHub(self.settings.github_api_url, self.settings.github_token)
        try:
            url = await github.create_pull_request(
                repo.github, head=thread.branch, base=thread.base_branch or repo.branch or "main",
                title=_title(task), body=_body(task))
        except GitHubError as exc:
            if not exc.existing_url:
                return PushResult(f"Pushed `{thread.branch}`, but could not open a pull request: {exc}", ok=False)
            url = exc.existing_url  # opened earlier (by hand, or by another push): keep using it
        finally:
            await github.aclose()
        await self.store.update_thread(thread.id, pr_url=url)
        return PushResult(f"Pushed `{thread.branch}` and opened a pull request: {url}", url)


def _title(task: Task) -> str:
    first = task.prompt.strip().splitlines()[0] if task.prompt.strip() else f"slackbot task #{task.id}"
    return first[:100]


def _body(task: Task) -> str:
    who = task.requester_name or task.requester
    answer = task.answer.strip() or "(no summary)"
    return (f"Requested in Slack by {who} (task #{task.id}).\n\n**Request**\n\n{task.prompt}\n\n"
            f"**Summary**\n\n{answer[:60_000]}")
