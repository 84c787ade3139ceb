"""The App Home tab: the user's recent tasks, and what is running or queued."""

from __future__ import annotations

import logging
from typing import Any

from .blocks import clock
from .deps import Deps
from .mrkdwn import escape

log = logging.getLogger(__name__)
ICONS = {"queued": "⏳", "running": "⚙️", "done": "✅", "failed": "❌", "stopped": "⏹️", "interrupted": "⚠️",
         "pending": "⏳"}


def home_view(tasks: list[Any], active: list[Any]) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "slackbot"}},
        {"type": "section", "text": {"type": "mrkdwn", "text":
            "Mention me in a channel with a task. Reply in the thread to steer me; `/agent help` for more."}},
        {"type": "divider"},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Running and queued:* {len(active)}"}},
    ]
    blocks.append({"type": "header", "text": {"type": "plain_text", "text": "Your recent tasks"}})
    if not tasks:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": "No tasks yet."}]})
    for t in tasks[:20]:
        line = f"{ICONS.get(t.status, '•')} *#{t.id}* {escape(t.prompt[:120])}"
        meta = f"{t.status} • <#{t.channel}> • {t.created_at:%Y-%m-%d %H:%M} UTC"
        if t.started_at and t.finished_at:
            meta += f" • took {clock((t.finished_at - t.started_at).total_seconds())}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"{line}\n{meta}"[:2900]}})
    return {"type": "home", "blocks": blocks[:100]}


async def publish_home(deps: Deps, user: str) -> None:
    try:
        tasks = await deps.store.recent_tasks(user=user, limit=20)
        active = await deps.store.tasks_with_status("queued", "running")
        await deps.client.views_publish(user_id=user, view=home_view(tasks, active))
    except Exception:
        log.exception("could not publish the Home tab of %s", user)
