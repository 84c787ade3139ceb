"""Who may start or steer agent work, and where: the one check every path that starts work on a
person's behalf goes through (mentions and `$skill` mentions, thread replies, direct messages,
automations people create or run). An answer is a short sentence for an ephemeral message to that
person, "" when they may.

The settings are the channel's effective ones (saved values over the environment), read at each
check, so a change saved in any process applies to the next request:
- admins (SLACKBOT_ADMINS, saved admins, and Slack's workspace admins and owners of our own
  organisation) may always;
- apps and bots may not; people Slack cannot tell us about may not (we could not check them);
- people from other organisations (Slack Connect) only with `allow_external`; guests only with
  `allow_guests`;
- with `starters` set, only the people and user groups listed (groups expanded through Slack,
  briefly cached; a group Slack cannot list refuses, saying so);
- with `task_channels` set, only in those conversations (a direct message counts as one).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from ..runs.effective import effective
from ..settings import Settings
from .deps import Deps, LookupFailed, is_guest
from .mrkdwn import escape

log = logging.getLogger(__name__)

UNKNOWN = "I could not look you up in Slack just now, so I did not start this. Try again in a minute."
BOTS = "Apps and bots cannot start tasks."
EXTERNAL = ("People from other organisations cannot start or steer tasks here. Ask someone from this workspace, "
            "or an admin to allow it (setting: People from other organisations may start tasks).")
GUESTS = ("Guests cannot start or steer tasks here. Ask a member of this workspace, or an admin to allow guests "
          "(setting: Guests may start tasks).")
NOT_LISTED = ("Only some people may start or steer tasks here, and you are not among them. Ask an admin to add "
              "you (setting: Who may start tasks).")
GROUPS_FAILED = ("I could not check the user groups that may start tasks (Slack said `{code}`), so I did not start "
                 "this. Try again in a minute, or ask an admin to check the setting Who may start tasks.")
NOT_HERE = "Tasks cannot start here{elsewhere}. An admin can allow this conversation (setting: Where tasks may start)."
SHOWN_CHANNELS = 5
_CONVERSATION = re.compile(r"^[CGD][A-Z0-9]+$")


async def may_start(deps: Deps, *, user: str, channel: str | None, event: dict[str, Any] | None = None) -> str:
    """Why `user` may not start or steer agent work in `channel` ("" when they may). `channel`
    None checks the person only (where is checked once it is known). `event`: the Slack event that
    asks, whose `user_team` / `source_team` count as well."""
    settings = await effective(deps.store, deps.settings, channel or "")
    if user in settings.admin_ids:
        return ""
    info = await deps.user(user)
    if not info:
        return UNKNOWN
    if info.get("is_bot") or info.get("deleted"):
        return BOTS
    team, _ = await deps.home()
    if not team:
        return UNKNOWN
    foreign = await from_elsewhere(deps, info, event)
    if (info.get("is_admin") or info.get("is_owner")) and not foreign and not is_guest(info):
        return ""
    if foreign and not settings.allow_external:
        return EXTERNAL
    if is_guest(info) and not settings.allow_guests:
        return GUESTS
    if settings.starter_ids:
        refused = await not_listed(deps, user, settings.starter_ids)
        if refused:
            return refused
    return "" if channel is None else where(settings, channel)


async def from_elsewhere(deps: Deps, info: dict[str, Any], event: dict[str, Any] | None) -> bool:
    """Whether the person belongs to another organisation: Slack says a stranger, their users.info
    team is not ours (nor of our Enterprise Grid organisation), or the event names another team.
    Any one signal is enough, so a team field that looks like ours proves nothing on its own."""
    if not await deps.ours(info):
        return True
    team, enterprise = await deps.home()
    ours = {team, enterprise, str(info.get("team_id") or "")} - {""}
    for key in ("user_team", "source_team"):
        named = (event or {}).get(key)
        if named and named not in ours:
            return True
    return False


async def not_listed(deps: Deps, user: str, starters: frozenset[str]) -> str:
    """"" when `user` is listed, or in a listed user group (S…); otherwise why not."""
    if user in starters:
        return ""
    problem = ""
    for group in sorted(s for s in starters if s.startswith("S")):
        try:
            if user in await deps.group_members(group):
                return ""
        except LookupFailed as exc:
            problem = problem or str(exc)
    return GROUPS_FAILED.format(code=escape(problem)) if problem else NOT_LISTED


def where(settings: Settings, channel: str) -> str:
    """"" when tasks may start in `channel`; otherwise why not, naming a few places where they may."""
    allowed = settings.task_channel_ids
    if not allowed or channel in allowed:
        return ""
    shown = sorted(c for c in allowed if _CONVERSATION.match(c) and not c.startswith("D"))[:SHOWN_CHANNELS]
    elsewhere = f" (they can in {', '.join(f'<#{c}>' for c in shown)})" if shown else ""
    return NOT_HERE.format(elsewhere=elsewhere)


async def tell(deps: Deps, *, channel: str, user: str, text: str, thread_ts: str | None = None) -> None:
    """`text` to `user` alone: ephemeral in `channel` (in the thread when there is one), a direct
    message when Slack refuses that. Never raises."""
    try:
        await deps.client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts or None)
        return
    except Exception as exc:
        log.info("postEphemeral to %s in %s failed: %s", user, channel, exc)
    try:
        await deps.client.chat_postMessage(channel=user, text=text)
    except Exception:
        log.exception("could not tell %s: %s", user, text)
