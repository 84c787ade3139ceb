"""Sentences for people about what the core reported (its result types carry codes and facts)."""

from __future__ import annotations

from ..protocol import LeftOut
from ..runs.outcomes import PushCode, PushResult, StopCode, StopResult


def stop_text(r: StopResult) -> str:
    n = f"#{r.task_id}"
    return {
        StopCode.NOT_FOUND: f"There is no task {n}.",
        StopCode.DEQUEUED: f"Task {n} was removed from the queue.",
        StopCode.STOPPING: f"Stopping task {n}.",
        StopCode.ALREADY_STOPPING: f"Task {n} is already stopping.",
        StopCode.NOT_RUNNING: f"Task {n} is not running ({r.status or 'gone'}).",
    }[r.code]


def push_text(r: PushResult) -> str:
    b = f"`{r.branch}`"
    return {
        PushCode.NOT_FOUND: f"There is no task #{r.task_id}.",
        PushCode.BUSY: f"Task #{r.task_id} is still working in this thread; push when it has finished.",
        PushCode.NO_BRANCH: "This thread has no repository branch to push.",
        PushCode.UNTRUSTED: ("This thread works on a repository given by URL, which I fetch without credentials "
                             "and never push to; the `.patch` above has the changes."),
        PushCode.NO_CHANGES: f"{b} has no changes to push yet.",
        PushCode.FAILED: f"I could not push {b}: {r.detail}",
        PushCode.PUSHED: f"Pushed the branch {b} to {r.repo_url}.",
        PushCode.PR_OPENED: f"Pushed {b} and opened a pull request: {r.pr_url}",
        PushCode.PR_UPDATED: f"Pushed {b}; the pull request is updated: {r.pr_url}",
        PushCode.PR_FAILED: f"Pushed {b}, but could not open a pull request: {r.detail}",
        PushCode.NOT_REQUESTER: ("Not pushed automatically: only whoever started this thread, or an admin, can "
                                 "push it (the Push button)."),
    }[r.code]


def auto_push_text(code: str, branch: str, pr_url: str, detail: str, repo: str) -> str:
    """The final message's line about an automatic push (`code` from the task's final event)."""
    if not code:
        return ""
    r = PushResult(PushCode(code), branch=branch, pr_url=pr_url, detail=detail, repo_url=repo)
    if r.code == PushCode.FAILED:
        return f"The automatic push failed: {detail}"
    return push_text(r)


def left_out_text(files: tuple[LeftOut, ...], limit: str) -> str:
    if not files:
        return ""
    shown = ", ".join(f"`{f.path}` ({_size(f.size)})" for f in files[:10])
    more = f" and {len(files) - 10} more" if len(files) > 10 else ""
    return f"Left out of the commit (larger than {limit}, SLACKBOT_MAX_FILE): {shown}{more}."


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def run_headline(name: str, number: int, outcome: str = "") -> str:
    """The top-level post of an automation's run (escaped by the caller's notice)."""
    return f"⏱ {name} — run #{number}" + (f" · {outcome}" if outcome else "")


NOTHING_TO_REPORT = "Nothing to report."
