"""Automations' way into Slack: the run's top-level post, its task, notices and the digest."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from slack_sdk.web.async_client import AsyncWebClient

from ..store import Automation, RepoBinding
from .access import may_start
from .blocks import notice_blocks
from .deps import Deps
from .intake import say, start_task
from .pacing import Poster
from .wording import run_headline

if TYPE_CHECKING:
    from ..automations.digest import Digest

log = logging.getLogger(__name__)
LINKS_MAX = 40  # permalinks asked for per digest (one API call each)


class SlackSurface:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.digests = DigestPoster(deps.client, deps.renderer.poster)

    async def announce_run(self, automation: Automation, number: int) -> str:
        fallback, blocks = notice_blocks(run_headline(automation.name, number))
        resp = await self.deps.renderer.poster.post(channel=automation.channel, text=fallback, blocks=blocks)
        return str(resp["ts"])

    async def start_task(self, *, channel: str, thread_ts: str, user: str, text: str, ts: str, key: str,
                         automation_id: int, repo: RepoBinding | None) -> int | None:
        creator = await self.deps.user(user)  # {} when Slack cannot tell: the run goes ahead
        if creator.get("deleted") or creator.get("is_restricted") or creator.get("is_ultra_restricted"):
            raise PermissionError("its creator may no longer start tasks here (deactivated, or now a guest); "
                                  "a member can make it again, or an admin delete it")
        if creator and (why := await may_start(self.deps, user=user, channel=channel)):
            raise PermissionError(f"its creator may not start tasks here now ({why.rstrip('.')}); "
                                  "an admin can change that or delete it")
        ref = await start_task(self.deps, channel=channel, thread_ts=thread_ts, user=user, text=text, ts=ts,
                               keys=(key,), repo=repo, automation_id=automation_id)
        return ref.task_id if ref else None

    async def say(self, channel: str, thread_ts: str, text: str) -> None:
        await say(self.deps, channel, thread_ts, text)

    async def post_digest(self, digest: Digest, chart: bytes | None) -> None:
        await self.digests.post_digest(digest, chart)


class DigestPoster:
    """The digest's message, with thread links, and its chart in the message's thread."""

    def __init__(self, client: AsyncWebClient, poster: Poster | None = None) -> None:
        self.client = client
        self.poster = poster or Poster(client)  # the front's own, so channel pacing is shared

    async def post_digest(self, digest: Digest, chart: bytes | None) -> None:
        from .digest_view import digest_blocks

        fallback, blocks = digest_blocks(digest, await self.links(digest))
        to = digest.post_to or digest.channel
        resp = await self.poster.post(channel=to, text=fallback, blocks=blocks, unfurl_links=False)
        if chart:
            try:
                await self.client.files_upload_v2(
                    channel=to, thread_ts=resp["ts"], content=chart,
                    filename=f"digest-{digest.day.isoformat()}.png", title="Tasks per day, last two weeks")
            except Exception:  # the digest is out; only its chart is missing
                log.exception("could not upload the digest chart for %s", digest.channel)

    async def links(self, digest: Digest) -> dict[int, str]:
        links: dict[int, str] = {}
        for item in [*digest.finished, *digest.running][:LINKS_MAX]:
            try:
                resp = await self.client.chat_getPermalink(channel=digest.channel, message_ts=item.thread_ts)
                links[item.task_id] = resp["permalink"]
            except Exception as exc:  # a digest without a link is still a digest
                log.info("no permalink for task %s: %s", item.task_id, exc)
        return links
