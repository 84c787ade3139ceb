"""What listeners need, built once by the composition root and captured by `register(app, deps)`:
the parts, and Slack look-ups (people, user groups, channels, our own workspace) cached briefly."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from slack_sdk.web.async_client import AsyncWebClient

from ..automations.digest_job import DigestJob
from ..automations.service import Automations
from ..redact import Redactor
from ..runs import RunManager
from ..runs.effective import effective
from ..settings import Settings
from ..store import RepoStore, Store
from .renderer import SlackRenderer

log = logging.getLogger(__name__)
USER_TTL_S = 300.0
GROUP_TTL_S = 60.0  # someone taken out of a user group loses the right within it
CHANNEL_TTL_S = 60.0
KEPT = 5000  # entries per cache before it starts afresh


class LookupFailed(Exception):
    """Slack could not answer a look-up the decision needs (its error code as the message)."""


@dataclass
class Deps:
    settings: Settings
    store: Store
    runs: RunManager
    renderer: SlackRenderer
    client: AsyncWebClient
    repos: RepoStore
    automations: Automations | None = None  # None in a process without Slack's front
    digest: DigestJob | None = None
    bot_user_id: str = ""
    bot_id: str = ""  # our posts carry it (message events from apps name their bot, not a user)
    _users: dict[str, tuple[float, dict]] = field(default_factory=dict)
    _groups: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict)
    _channels: dict[str, tuple[float, dict]] = field(default_factory=dict)
    _home: tuple[str, str] | None = None  # (team id, enterprise id) of the workspace we are installed in
    redactor: Redactor = field(init=False)  # for what leaves without the client (response URLs)

    def __post_init__(self) -> None:
        self.redactor = Redactor(self.settings.secrets())

    async def user(self, user_id: str) -> dict:
        """users.info, cached for USER_TTL_S (an admin demoted in Slack loses the right within it);
        an empty dict when Slack cannot tell."""
        try:
            return await _cached(self._users, user_id, USER_TTL_S, lambda: self.client.users_info(user=user_id),
                                 "user", {})
        except Exception as exc:
            log.warning("users.info failed for %s: %s", user_id, exc)
            return {}

    async def user_email(self, user_id: str) -> str:
        return (await self.user(user_id)).get("profile", {}).get("email", "")

    async def user_name(self, user_id: str) -> str:
        u = await self.user(user_id)
        profile = u.get("profile") or {}
        return profile.get("display_name") or u.get("real_name") or profile.get("real_name") or u.get("name") or user_id

    async def group_members(self, group_id: str) -> frozenset[str]:
        """usergroups.users.list, cached for GROUP_TTL_S; LookupFailed when Slack cannot tell (a
        failure is not cached: the next request asks again)."""
        try:
            return frozenset(await _cached(self._groups, group_id, GROUP_TTL_S,
                                           lambda: self.client.usergroups_users_list(usergroup=group_id), "users", ()))
        except Exception as exc:
            log.warning("usergroups.users.list failed for %s: %s", group_id, exc)
            raise LookupFailed(_code(exc)) from None

    async def channel(self, channel_id: str) -> dict:
        """conversations.info, cached for CHANNEL_TTL_S; an empty dict when Slack cannot tell."""
        try:
            return await _cached(self._channels, channel_id, CHANNEL_TTL_S,
                                 lambda: self.client.conversations_info(channel=channel_id), "channel", {})
        except Exception as exc:
            log.info("conversations.info failed for %s: %s", channel_id, exc)
            return {}

    async def home(self) -> tuple[str, str]:
        """(team id, enterprise id) of the workspace the bot is installed in (auth.test, asked until
        it answers); ("", "") when Slack cannot tell."""
        if self._home is None:
            try:
                auth = await self.client.auth_test()
            except Exception as exc:
                log.warning("auth.test failed: %s", exc)
                return "", ""
            self._home = (str(auth.get("team_id") or ""), str(auth.get("enterprise_id") or ""))
        return self._home

    async def ours(self, info: dict) -> bool:
        """Whether a users.info record is a person of our own organisation: not a stranger, and of
        our workspace (or of another workspace of our Enterprise Grid organisation). False when
        that cannot be told."""
        team, enterprise = await self.home()
        if not info or info.get("is_stranger") or not team:
            return False
        if info.get("team_id") == team:
            return True
        theirs = (info.get("enterprise_user") or {}).get("enterprise_id") or ""
        return bool(enterprise) and theirs == enterprise

    async def is_admin(self, user_id: str) -> bool:
        """Listed (SLACKBOT_ADMINS, and those admins saved; read at each call, so a change saved in
        any process counts at once), or an admin or owner of this Slack workspace. Slack's own flag
        counts only for people of our organisation: another organisation's admin is not ours."""
        if user_id in (await effective(self.store, self.settings)).admin_ids:
            return True
        u = await self.user(user_id)
        return bool(u.get("is_admin") or u.get("is_owner")) and not is_guest(u) and await self.ours(u)


def is_guest(info: dict) -> bool:
    """A guest account (multi-channel: is_restricted; single-channel: is_ultra_restricted)."""
    return bool(info.get("is_restricted") or info.get("is_ultra_restricted"))


async def _cached(cache: dict[str, tuple[float, Any]], key: str, ttl: float, call: Callable[[], Awaitable[Any]],
                  field: str, empty: Any) -> Any:
    """`field` of a Slack answer, kept for `ttl` seconds; a failed call raises and is not kept. Callers
    asking at once share one call (fifty mentions from ten people: ten users.info calls, not fifty)."""
    kept = cache.get(key)
    if kept is not None and time.monotonic() - kept[0] <= ttl:
        return kept[1]
    slot = (id(cache), key)
    asking = _asking.get(slot)
    if asking is None:
        asking = _asking[slot] = asyncio.ensure_future(_ask(cache, key, call, field, empty))
        asking.add_done_callback(lambda done: (_asking.pop(slot, None), done.cancelled() or done.exception()))
    return await asyncio.shield(asking)  # (one caller cancelled does not cancel the others' call)


_asking: dict[tuple[int, str], asyncio.Future[Any]] = {}


async def _ask(cache: dict[str, tuple[float, Any]], key: str, call: Callable[[], Awaitable[Any]], field: str,
               empty: Any) -> Any:
    value = (await call()).get(field) or empty
    if len(cache) >= KEPT:
        cache.clear()
    cache[key] = (time.monotonic(), value)
    return value


def _code(exc: Exception) -> str:
    """Slack's error code when it gave one (`no_such_subteam`), else the exception's first line."""
    response = getattr(exc, "response", None)
    code = response.get("error") if response is not None and hasattr(response, "get") else None
    lines = str(exc).splitlines()
    return str(code or (lines[0] if lines else exc.__class__.__name__))[:80]
