"""The App Home tab: the user's recent threads, running and queued tasks, channel defaults.
Refreshed when the user's tasks change, at most once per `min_interval_s` per user."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any

from ..protocol import Event, TaskRef, TaskStatus
from ..runs.states import ACTIVE
from .deps import Deps
from .mrkdwn import escape

log = logging.getLogger(__name__)
ICONS = {"queued": "⏳", "running": "⚙️", "done": "✅", "failed": "❌", "stopped": "⏹️", "interrupted": "⚠️",
         "pending": "⏳", "choosing": "❓"}
REFRESH_ON = ("task.queued", "thread.started", "task.finished")


def thread_link(channel: str, thread_ts: str) -> str:
    return f"https://slack.com/archives/{channel}/p{thread_ts.replace('.', '')}"


def age(when: datetime, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    minutes = int((now - when).total_seconds() // 60)
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes} min ago"
    if minutes < 48 * 60:
        return f"{minutes // 60} h ago"
    return f"{minutes // 1440} days ago"


def home_view(rows: list[dict[str, Any]], active: list[dict[str, Any]], defaults: list[str],
              skills: list[str] | None = None, admin: bool = False) -> dict[str, Any]:
    """rows/active: dicts with id, status, prompt, channel, thread_ts, repo, created_at; `skills`: one
    line each; `admin`: the viewer may open the settings."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "slackbot"}},
        {"type": "section", "text": {"type": "mrkdwn", "text":
            "Mention me in a channel with a task. Reply in the thread to steer me; `/agent help` for more."}},
    ]
    if admin:
        blocks.append({"type": "actions", "elements": [{
            "type": "button", "action_id": "settings_open", "text": {"type": "plain_text", "text": "Settings"}}]})
    blocks.append({"type": "header", "text": {"type": "plain_text", "text": "Running and queued"}})
    if not active:
        blocks.append(_context("Nothing is running."))
    for t in active[:10]:
        blocks.append(_task_section(t))
    blocks.append({"type": "header", "text": {"type": "plain_text", "text": "Your recent threads"}})
    if not rows:
        blocks.append(_context("No threads yet."))
    for t in rows[:20]:
        blocks.append(_task_section(t))
    if defaults:
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": "Channel defaults"}})
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(defaults)[:2900]}})
    if skills:
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": "Skills"}})
        blocks.append(_context("Name one as `$name` in a mention; `/agent skills` in a channel also lists "
                               "its repository's own."))
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(skills)[:2900]}})
    return {"type": "home", "blocks": blocks[:100]}


def _task_section(t: dict[str, Any]) -> dict[str, Any]:
    repo = f" • `{escape(t['repo'])}`" if t.get("repo") else ""
    line = (f"{ICONS.get(t['status'], '•')} *#{t['id']}* {escape(t['prompt'][:100])}\n"
            f"{t['status']}{repo} • <#{t['channel']}> • {age(t['created_at'])} • "
            f"<{thread_link(t['channel'], t['thread_ts'])}|open thread>")
    return {"type": "section", "text": {"type": "mrkdwn", "text": line[:2900]}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


async def publish_home(deps: Deps, user: str) -> None:
    try:
        await deps.client.views_publish(user_id=user, view=await _view_for(deps, user))
    except Exception:
        log.exception("could not publish the Home tab of %s", user)


async def _view_for(deps: Deps, user: str) -> dict[str, Any]:
    tasks = await deps.store.recent_tasks(user=user, limit=20)
    # Only the viewer's own: others' prompts may come from channels the viewer cannot see.
    active = [t for t in await deps.store.tasks_with_status(*(ACTIVE - {TaskStatus.PENDING})) if t.requester == user]
    threads = await deps.store.get_threads({t.thread_id for t in tasks + active})

    def row(t: Any) -> dict[str, Any]:
        th = threads[t.thread_id]
        return {"id": t.id, "status": t.status, "prompt": t.prompt, "channel": t.channel,
                "thread_ts": th.thread_ts, "repo": th.repo_url.rsplit("/", 1)[-1] if th.repo_url else "",
                "created_at": t.created_at}
    defaults = []
    for channel in dict.fromkeys(t.channel for t in tasks):
        linked = await deps.repos.channel_repos(channel)
        default = next((r.repo.name for r in linked if r.is_default), "")
        if default:
            defaults.append(f"<#{channel}>: `{escape(default)}`")
    try:
        catalog, _ = await deps.runs.skills(None)
        skills = [f"• `{k.name}` ({k.source}) — {escape(short(k.description))}" for k in catalog.skills]
    except Exception:  # the Home tab shows the rest
        log.exception("could not list the skills for the Home tab")
        skills = []
    return home_view([row(t) for t in tasks], [row(t) for t in active], defaults, skills,
                     await deps.is_admin(user))


def short(text: str, most: int = 120) -> str:
    one = " ".join(text.split())
    return one if len(one) <= most else one[:most - 1] + "…"


class HomeRefresher:
    """An event sink: republishes a requester's Home tab when their tasks change, throttled."""

    def __init__(self, deps: Deps, min_interval_s: float = 10.0) -> None:
        self.deps = deps
        self.min_interval_s = min_interval_s
        self._due: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._wake = asyncio.Event()

    async def handle(self, task: TaskRef, event: Event) -> None:
        if event.type in REFRESH_ON and task.channel != "cli":
            self._due.setdefault(task.requester, time.monotonic())
            self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._due:
                now = time.monotonic()
                ready = [u for u in self._due if now - self._last.get(u, -1e9) >= self.min_interval_s]
                for user in ready:
                    self._due.pop(user)
                    self._last[user] = time.monotonic()
                    await publish_home(self.deps, user)
                if self._due:
                    await asyncio.sleep(0.5)
