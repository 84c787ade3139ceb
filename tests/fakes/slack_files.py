"""Files people share into the fake workspace (a mixin: `self` is the FakeSlack).

`share_file` makes a file object as Slack's events carry it, served at its `url_private` under the
fake's own base URL to the bot token only (401 otherwise, as a recorded request); `partial` gives
the Slack Connect shape that needs files.info. Every request for a file is recorded with its host
and whether it carried an Authorization header. `Elsewhere` is a server on another port that
records what reaches it (a file URL pointing off Slack must never get the token).
"""

from __future__ import annotations

import re
import time
from typing import Any

from aiohttp import web

from tests.fakes.serve import serve

from .slack_methods import SlackError, _need, method


class SlackFiles:
    def _init_files(self) -> None:
        self.shared_files: dict[str, dict] = {}  # file id -> file object, with its "content"
        self.file_requests: list[dict] = []  # every GET of a file: host, path, authorized, auth

    def _add_file_routes(self, app: web.Application) -> None:
        app.router.add_get("/files-pri/{key}/{name}", self._handle_file)
        app.router.add_get("/files-pri/{key}/download/{name}", self._handle_file)

    def share_file(self, name: str, content: bytes, *, mimetype: str = "text/plain", user: str = "U1",
                   size: int | None = None, url: str | None = None) -> dict:
        """A file object as an event carries it (`size` may be declared falsely; `url` may point elsewhere)."""
        file_id = self.next_id("F")
        slug = re.sub(r"[^A-Za-z0-9._-]", "_", name).strip(".")[:80] or "file"
        base = f"{self.base_url}/files-pri/{self.team_id}-{file_id}"
        obj = {
            "id": file_id, "created": int(time.time()), "timestamp": int(time.time()), "name": name, "title": name,
            "mimetype": mimetype, "filetype": name.rpartition(".")[2] or "binary", "pretty_type": mimetype,
            "user": user, "user_team": self.team_id, "editable": False, "size": len(content) if size is None else size,
            "mode": "hosted", "is_external": False, "external_type": "", "is_public": True,
            "public_url_shared": False, "display_as_bot": False, "username": "",
            "url_private": url or f"{base}/{slug}", "url_private_download": url or f"{base}/download/{slug}",
            "permalink": f"https://{self.team_domain}.slack.com/files/{user}/{file_id}/{slug}",
        }
        self.shared_files[file_id] = {**obj, "content": content}
        return obj

    @staticmethod
    def partial(obj: dict) -> dict:
        """The shape Slack Connect channels deliver: files.info has the rest."""
        return {"id": obj["id"], "mode": "file_access", "file_access": "check_file_info",
                "created": obj["created"], "timestamp": obj["timestamp"], "user": obj["user"], "filetype": ""}

    def file_event(self, channel: str, user: str, text: str, files: list[dict], *, thread_ts: str | None = None,
                   mention: bool = False) -> dict:
        """A message sharing `files` (stored in the workspace): an app_mention event when `mention`,
        else a `message` of subtype file_share (a reply, or a direct message)."""
        if mention and f"<@{self.bot_user_id}>" not in text:
            text = f"<@{self.bot_user_id}> {text}"
        msg = self.store_message(channel, text=text, user=user, team=self.team_id, thread_ts=thread_ts,
                                 files=files, upload=False)
        event = {"type": "app_mention" if mention else "message", "user": user, "text": text, "ts": msg["ts"],
                 "channel": channel, "event_ts": msg["ts"], "team": self.team_id, "files": files, "upload": False,
                 "channel_type": "im" if channel.startswith("D") else "channel"}
        if not mention:
            event["subtype"] = "file_share"
        if thread_ts:
            event["thread_ts"] = thread_ts
        return self.event_callback(event)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        ok = auth == f"Bearer {self.bot_token}"
        self.file_requests.append({"host": request.host, "path": request.path, "authorized": ok, "auth": bool(auth)})
        if not ok:
            return web.Response(status=401, text="not_authed")
        file_id = request.match_info["key"].rpartition("-")[2]
        found = self.shared_files.get(file_id)
        if found is None:
            return web.Response(status=404, text="file_not_found")
        return web.Response(body=found["content"], content_type=found["mimetype"])

    @method("files.info")
    async def _files_info(self, params: dict) -> dict:
        _need(params, "file")
        found = self.shared_files.get(str(params["file"]))
        if found is None:
            raise SlackError("file_not_found")
        return {"file": {k: v for k, v in found.items() if k != "content"}, "comments": [], "has_more": False}


class Elsewhere:
    """A server that is not Slack: records every request (its Authorization header included)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> "Elsewhere":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self._runner, self.port = await serve(app)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _any(self, request: web.Request) -> web.StreamResponse:
        self.requests.append({"path": request.path, "authorization": request.headers.get("Authorization", "")})
        return web.Response(body=b"not from slack", content_type="text/plain")
