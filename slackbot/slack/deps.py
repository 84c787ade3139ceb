"""What listeners need, built once by the composition root and captured by `register(app, deps)`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from slack_sdk.web.async_client import AsyncWebClient

from ..automations.digest_job import DigestJob
from ..automations.service import Automations
from ..redact import Redactor
from ..runs import RunManager
from ..settings import Settings
from ..store import RepoStore, Store
from .renderer import SlackRenderer

log = logging.getLogger(__name__)
USER_TTL_S = 300.0
USERS_KEPT = 5000


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
    redactor: Redactor = field(init=False)  # for what leaves without the client (response URLs)

    def __post_init__(self) -> None:
        self.redactor = Redactor(self.settings.secrets())

    async def user(self, user_id: str) -> dict:
        """users.info, cached for USER_TTL_S (an admin demoted in Slack loses the right within it);
        an empty dict when Slack cannot tell."""
        cached = self._users.get(user_id)
        if cached is None or time.monotonic() - cached[0] > USER_TTL_S:
            try:
                resp = await self.client.users_info(user=user_id)
            except Exception as exc:
                log.warning("users.info failed for %s: %s", user_id, exc)
                return {}
            if len(self._users) >= USERS_KEPT:
                self._users.clear()
            cached = self._users[user_id] = (time.monotonic(), resp.get("user") or {})
        return cached[1]

    async def user_email(self, user_id: str) -> str:
        return (await self.user(user_id)).get("profile", {}).get("email", "")

    async def user_name(self, user_id: str) -> str:
        u = await self.user(user_id)
        profile = u.get("profile") or {}
        return profile.get("display_name") or u.get("real_name") or profile.get("real_name") or u.get("name") or user_id

    async def is_admin(self, user_id: str) -> bool:
        if user_id in self.settings.admin_ids:
            return True
        u = await self.user(user_id)
        return bool(u.get("is_admin") or u.get("is_owner"))
