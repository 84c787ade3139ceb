"""`/agent …`: help, tasks, stop. Replies are ephemeral."""

from __future__ import annotations

import logging
import shlex
from typing import Any, Awaitable, Callable

from ....store.models import utcnow
from ...deps import Deps
from ...digest_view import digest_blocks
from ...home import ICONS
from ...ids import is_number
from ...intake import reason
from ...mrkdwn import compose, escape, mention, unescape
from ...stopping import stop_task
from .agent_repo import list_repos, repo_command
from .agent_secrets import open_secrets
from .agent_skills import list_skills
from ..actions.settings_modal import open_settings

log = logging.getLogger(__name__)

HELP = """*slackbot* — a coding agent in your channel.
• Mention me with a task: `@slackbot fix the flaky test in payments`. I answer in the thread, work in a sandbox and post the result.
• Reply in the thread while I work to steer me; press *Stop* to stop. Reply after I finish to follow up.
• Options in a mention: `repo=NAME|URL`, `branch=NAME`, `model=NAME`.
• `/agent repos` — repositories linked to this channel
• `/agent repo add NAME URL [BRANCH] [github=OWNER/REPO]`, `/agent repo default NAME`, `/agent repo remove NAME`, `/agent repo set NAME setup="COMMAND" network=off|setup|on auto_push=on|off plan=on|off` (admins)
• `/agent secrets NAME` — secrets for a repository's setup command, in a form (admins)
• `/agent skills` — the skills tasks here can use (`$name` in a mention runs one)
• `/agent settings` — models, limits, network, access and more, in a form (admins)
• `/agent tasks` — recent tasks in this channel
• `/agent digest` — a preview of this channel's daily digest (only you see it)
• `/automation help` — scheduled, channel-watching and webhook automations
• `/agent stop ID` — stop a task (its requester or an admin)
• `/agent help` — this message"""


def handler(deps: Deps):
    async def agent(ack, command: dict[str, Any], respond) -> None:
        await ack()
        words = (command.get("text") or "").split()
        own = OWN_REPLY.get(words[0].lower() if words else "")
        if own is not None:
            await own(deps, command, respond)
            return
        try:
            text = await answer(deps, command)
        except Exception as exc:  # never silent: an answer, even when something broke
            log.exception("/agent failed")
            text = f"Sorry, that did not work: {escape(reason(exc))}"
        # Answers go to the response URL, not through the Web API client that redacts: redact here.
        await respond(deps.redactor.text(text))
    return agent


async def answer(deps: Deps, command: dict[str, Any]) -> str:
    """The answer to one `/agent` command, as mrkdwn."""
    text = unescape((command.get("text") or "").strip())
    channel, user = command.get("channel_id", ""), command["user_id"]
    try:
        args = shlex.split(text)
    except ValueError as exc:
        return f"I could not read that: {escape(str(exc))}."
    verb = args[0].lower() if args else "help"
    if verb == "help":
        return HELP
    if verb == "repos":
        return await list_repos(deps, channel)
    if verb == "repo":
        return await repo_command(deps, args[1:], channel=channel, user=user)
    if verb == "tasks":
        return await _tasks(deps, channel)
    if verb == "skills":
        return await list_skills(deps, channel)
    if verb == "stop":
        if len(args) != 2 or not is_number(args[1].removeprefix("#")):
            return "Usage: `/agent stop ID` (the number shown as #ID on the task)."
        return await stop_task(deps, args[1], user)
    return f"Unknown command `{escape(verb)}`.\n\n{HELP}"


async def _tasks(deps: Deps, channel: str) -> str:
    tasks = await deps.store.recent_tasks(channel=channel, limit=15)
    if not tasks:
        return "No tasks in this channel yet."
    lines = [compose(f"{ICONS.get(t.status, '•')} *#{t.id}* {t.status} — ", t.prompt[:80], " (",
                     mention(t.requester), ")") for t in tasks]
    return "*Recent tasks*\n" + "\n".join(lines)


async def preview_digest(deps: Deps, command: dict[str, Any], respond: Any) -> None:
    """This channel's digest as it would be posted now, shown only to the person asking."""
    channel = command.get("channel_id", "")
    try:
        digest = await deps.digest.build(channel, utcnow()) if deps.digest else None
        if digest is None:
            await respond("Nothing to digest here: no tasks finished in this channel in the last 24 hours "
                          "and none is running.")
            return
        fallback, blocks = digest_blocks(digest)
        await respond(text=deps.redactor.text(fallback), blocks=deps.redactor.value(blocks))
    except Exception as exc:  # never silent
        log.exception("/agent digest failed")
        await respond(f"Sorry, the digest preview did not work: {escape(reason(exc))}")


# Verbs that answer on their own (a modal, blocks) rather than with one text.
OWN_REPLY: dict[str, Callable[[Deps, dict[str, Any], Any], Awaitable[None]]] = {
    "digest": preview_digest,
    "settings": open_settings,
    "secrets": open_secrets,
}
