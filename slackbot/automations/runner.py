"""Firing an automation: claim the (automation, key) row, post the run's message, start its task."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime

from ..runs.outcomes import brief
from ..store import Automation, AutomationRun, AutomationStore, RepoBinding, RepoStore
from ..agent.untrusted import fence
from ..store.automations import RunCap
from .surface import Surface

log = logging.getLogger(__name__)
CONTEXT_MAX = 20_000  # characters of a message or webhook body handed to the task


@dataclass(frozen=True)
class Firing:
    """Why an automation runs: `key` is unique per automation (a scheduled time, a message's ts,
    a webhook delivery), so a key fires at most once."""

    key: str
    cause: str  # schedule | catch-up | manual | message | webhook
    context: str = ""  # what the task is given besides the prompt
    thread_ts: str = ""  # run in this existing thread (a watched message's) instead of a new post
    channel: str = ""  # that thread's channel; empty: the automation's
    fire_at: datetime | None = None  # the scheduled time


class Runner:
    def __init__(self, automations: AutomationStore, repos: RepoStore, surface: Surface) -> None:
        self.automations = automations
        self.repos = repos
        self.surface = surface

    async def fire(self, automation: Automation, firing: Firing, *, cap: RunCap | None = None) -> AutomationRun | None:
        """The run, or None when the key was claimed before (another process, a retry);
        RunCapReached past `cap`."""
        assert automation.id is not None
        run = await self.automations.claim(automation.id, firing.key, firing.cause, fire_at=firing.fire_at, cap=cap)
        if run is None:
            return None
        assert run.id is not None
        channel = firing.channel or automation.channel
        thread_ts = firing.thread_ts
        try:
            if not thread_ts:
                thread_ts = await self.surface.announce_run(automation, run.number)
            repo = await self._repo(automation)
            task_id = await self.surface.start_task(
                channel=channel, thread_ts=thread_ts, user=automation.creator, ts=thread_ts,
                text=prompt(automation, run.number, firing), key=f"automation-run:{run.id}",
                automation_id=automation.id, repo=repo)
            await self.automations.set_run(run.id, task_id=task_id, channel=channel, thread_ts=thread_ts,
                                           error="" if task_id else "the task could not be started")
        except Exception as exc:
            log.exception("automation %s: run #%s could not start", automation.id, run.number)
            await self.automations.set_run(run.id, channel=channel, thread_ts=thread_ts, error=brief(exc))
            await self.surface.say(channel, thread_ts,
                                   f"Automation “{automation.name}” run #{run.number} could not start: {brief(exc)}")
        return run

    async def _repo(self, automation: Automation) -> RepoBinding | None:
        if automation.repo_id is None:
            return None
        repo = await self.repos.get(automation.repo_id)
        if repo is None:
            raise LookupError("its repository is no longer linked; edit the automation")
        assert repo.id is not None
        return RepoBinding(repo.id, repo.url, automation.branch or repo.branch, True)


def prompt(automation: Automation, number: int, firing: Firing) -> str:
    """The task's request: the automation's prompt, then what triggered it, clearly marked as data."""
    parts = [automation.prompt.strip(), "",
             f"(This is run #{number} of the automation “{automation.name}”, started by {describe(firing.cause)}. "
             "End with the `report` tool; set nothing_to_report when there is nothing worth telling people.)"]
    if firing.context:
        parts += ["", fence(firing.context[:CONTEXT_MAX], "what triggered this run")]
    return "\n".join(parts)


def describe(cause: str) -> str:
    return {"schedule": "its schedule", "catch-up": "its schedule (catching up a missed run)",
            "manual": "hand", "message": "a message in a watched channel", "webhook": "a webhook call"}.get(cause, cause)


def webhook_context(body: object) -> str:
    return "Webhook body (JSON):\n" + json.dumps(body, indent=2, ensure_ascii=False)[:CONTEXT_MAX]
