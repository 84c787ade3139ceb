"""Downloading an attached file with the bot token, from Slack's own hosts only.

The URL comes from an event, which a hostile member shapes (a file object of another app, a forged
`url_private`): the token goes only to the hosts of the configured Slack API and Slack's file host,
on their own scheme and port; a redirect elsewhere is not followed. The size is counted as the
bytes arrive: a declared size is never trusted alone.
"""

from __future__ import annotations

from typing import IO
from urllib.parse import urljoin, urlsplit

import aiohttp

FILE_HOSTS = ("files.slack.com",)
REDIRECTS = 3
CHUNK = 1 << 16


class FetchError(Exception):
    """Why a file could not be taken, worded for the thread."""


class TooLarge(FetchError):
    def __init__(self, seen: int) -> None:
        super().__init__(f"it is over the limit (more than {seen} bytes arrived)")
        self.seen = seen


class Origins:
    """Where the bot token may be sent: (scheme, host, port) triples."""

    def __init__(self, api_url: str, file_hosts: tuple[str, ...] = FILE_HOSTS) -> None:
        api = urlsplit(api_url)
        host = (api.hostname or "").lower()
        self.allowed = {(api.scheme, host, api.port or _default_port(api.scheme))}
        for name in (*file_hosts, f"files.{host}"):
            self.allowed.add(("https", name, 443))

    def refuse(self, url: str) -> str:
        """Why the token must not go to `url` ("" when it may)."""
        try:
            parts = urlsplit(url)
            port = parts.port or _default_port(parts.scheme)
        except ValueError:
            return "its address is not a valid URL"
        if parts.username or parts.password:
            return "its address carries a user name"
        if (parts.scheme, (parts.hostname or "").lower(), port) not in self.allowed:
            return f"its address is not on Slack's file host ({(parts.hostname or '?')[:60]})"
        return ""


class HttpFetcher:
    """A `FileFetcher` (attachments.py) over HTTP, with the bot token as a Bearer credential."""

    def __init__(self, token: str, origins: Origins, *, timeout_s: float = 300.0) -> None:
        self._token = token
        self.origins = origins
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=15, sock_read=60)

    async def fetch(self, url: str, out: IO[bytes], *, limit: int, html_ok: bool = False) -> int:
        """Writes the file to `out`; its size. Raises FetchError (TooLarge past `limit` bytes)."""
        if not self._token:
            raise FetchError("the bot has no token to download with (SLACK_BOT_TOKEN)")
        async with aiohttp.ClientSession(timeout=self.timeout) as session:
            for _hop in range(REDIRECTS + 1):
                why = self.origins.refuse(url)
                if why:
                    raise FetchError(why)
                try:
                    async with session.get(url, headers={"Authorization": f"Bearer {self._token}"},
                                           allow_redirects=False) as resp:
                        if resp.status in (301, 302, 303, 307, 308):
                            url = urljoin(url, resp.headers.get("Location", ""))
                            continue
                        _check(resp, html_ok)
                        return await _copy(resp, out, limit)
                except aiohttp.ClientError as exc:
                    raise FetchError(f"the download failed ({exc.__class__.__name__})") from None
                except TimeoutError:
                    raise FetchError("the download took too long") from None
        raise FetchError("Slack redirected the download too often")


def _check(resp: aiohttp.ClientResponse, html_ok: bool) -> None:
    if resp.status in (401, 403):
        raise FetchError(f"Slack refused the download ({resp.status}; the app needs the files:read scope)")
    if resp.status == 404:
        raise FetchError("Slack has no such file any more (404)")
    if resp.status != 200:
        raise FetchError(f"Slack answered {resp.status}")
    if resp.content_type == "text/html" and not html_ok:
        # Slack's answer to a token without files:read is its sign-in page, with status 200.
        raise FetchError("Slack sent a web page instead of the file (the app may lack the files:read scope)")


async def _copy(resp: aiohttp.ClientResponse, out: IO[bytes], limit: int) -> int:
    declared = resp.content_length
    if declared is not None and declared > limit:
        raise TooLarge(declared)
    size = 0
    async for chunk in resp.content.iter_chunked(CHUNK):
        size += len(chunk)
        if size > limit:
            raise TooLarge(size)
        out.write(chunk)
    return size


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80 if scheme == "http" else -1
