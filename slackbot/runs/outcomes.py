"""What core operations report: a code and the facts. Sentences for people are the surface's."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..protocol import TaskStatus


def brief(exc: BaseException) -> str:
    """What went wrong in one short line, for a thread: a database error's full text carries its SQL
    statement and parameters (the worker's id, someone's prompt or email)."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else "")[:300] or exc.__class__.__name__


class StopCode(StrEnum):
    NOT_FOUND = "not_found"
    DEQUEUED = "dequeued"  # it had not started: removed from the queue
    STOPPING = "stopping"  # its worker was told
    ALREADY_STOPPING = "already_stopping"
    NOT_RUNNING = "not_running"  # it has ended


@dataclass(frozen=True)
class StopResult:
    code: StopCode
    task_id: int
    status: TaskStatus | None = None


class PushCode(StrEnum):
    NOT_FOUND = "not_found"
    BUSY = "busy"  # a task is still working in the thread (`task_id`)
    NO_BRANCH = "no_branch"
    UNTRUSTED = "untrusted"  # an ad-hoc repo=URL: fetched without credentials, never pushed
    NO_CHANGES = "no_changes"
    FAILED = "failed"  # the push itself (`detail`)
    PUSHED = "pushed"  # no pull request possible (not tied to GitHub, or no token)
    PR_OPENED = "pr_opened"
    PR_UPDATED = "pr_updated"  # an open pull request got the new commits
    PR_FAILED = "pr_failed"  # pushed, but the pull request could not be opened (`detail`)
    NOT_REQUESTER = "not_requester"  # an automatic push for a follow-up by someone else


@dataclass(frozen=True)
class PushResult:
    code: PushCode
    branch: str = ""
    repo_url: str = ""
    pr_url: str = ""
    detail: str = ""
    task_id: int = 0

    @property
    def ok(self) -> bool:
        return self.code in (PushCode.PUSHED, PushCode.PR_OPENED, PushCode.PR_UPDATED)
