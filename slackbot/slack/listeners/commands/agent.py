"""`/agent …`: help, tasks, stop. Replies are ephemeral."""

from __future__ import annotations

import shlex
from typing import Any

from ...deps import Deps
from ...home import ICONS
from ...mrkdwn import escape, unescape
from ...stopping import stop_task
from .agent_repo import list_repos, repo_command

HELP = """*slackbot* — a coding agent in your channel.
• Mention me with a task: `@slackbot fix the flaky test in payments`. I answer in the thread, work in a sandbox and post the result.
• Reply in the thread while I work to steer me; press *Stop* to stop. Reply after I finish to follow up.
• Options in a mention: `repo=NAME|URL`, `branch=NAME`, `model=NAME`.
• `/agent repos` — repositories linked to this channel
• `/agent repo add NAME URL [BRANCH] [github=OWNER/REPO]`, `/agent repo default NAME`, `/agent repo remove NAME`, `/agent repo set NAME setup="COMMAND" network=off|setup|on auto_push=on|off` (admins)
• `/agent tasks` — recent tasks in this channel
• `/agent stop ID` — stop a task (its requester or an admin)
• `/agent help` — this message"""


def handler(deps: Deps):
    async def agent(ack, command: dict[str, Any], respond) -> None:
        await ack()
        text = unescape((command.get("text") or "").strip())
        try:
            args = shlex.split(text)
        except ValueError as exc:
            await respond(f"I could not read that: {exc}.")
            return
        verb = args[0].lower() if args else "help"
        if verb == "help":
            await respond(HELP)
        elif verb == "repos":
            await respond(await list_repos(deps, command.get("channel_id", "")))
        elif verb == "repo":
            await respond(await repo_command(deps, args[1:], channel=command.get("channel_id", ""),
                                             user=command["user_id"]))
        elif verb == "tasks":
            await respond(await _tasks(deps, command.get("channel_id", "")))
        elif verb == "stop":
            if len(args) != 2 or not args[1].lstrip("#").isdigit():
                await respond("Usage: `/agent stop ID` (the number shown as #ID on the task).")
                return
            await respond(await stop_task(deps, int(args[1].lstrip("#")), command["user_id"]))
        else:
            await respond(f"Unknown command `{escape(verb)}`.\n\n{HELP}")
    return agent


async def _tasks(deps: Deps, channel: str) -> str:
    tasks = await deps.store.recent_tasks(channel=channel, limit=15)
    if not tasks:
        return "No tasks in this channel yet."
    lines = [f"{ICONS.get(t.status, '•')} *#{t.id}* {t.status} — {escape(t.prompt[:80])} (<@{t.requester}>)"
             for t in tasks]
    return "*Recent tasks*\n" + "\n".join(lines)
