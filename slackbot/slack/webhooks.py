"""`POST /hooks/automations/ID` with `Authorization: Bearer SECRET`: a JSON body starts the
automation's run. The credentials are checked before the body is read, and whatever is wrong
with them (a malformed id or secret, an unknown id, another kind of automation, a wrong secret)
the answer is the same 401."""

from __future__ import annotations

import json
import logging
import re

from aiohttp import web

from ..automations.service import Automations, HookCode
from .ids import parse_id

log = logging.getLogger(__name__)
SECRET = re.compile(r"[A-Za-z0-9_-]{16,200}")  # what secrets.token_urlsafe makes


class WebhookRoute:
    def __init__(self, automations: Automations, *, max_body: int) -> None:
        self.automations = automations
        self.max_body = max_body

    async def __call__(self, request: web.Request) -> web.Response:
        raw_id = request.match_info.get("automation_id", "")
        automation_id = parse_id(raw_id) if raw_id.isascii() and raw_id.isdigit() else None
        auth = request.headers.get("Authorization", "")
        secret = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not automation_id or not SECRET.fullmatch(secret):
            return _answer(401, "unauthorized")
        try:
            automation = await self.automations.authenticate(automation_id, secret)
        except Exception:
            log.exception("webhook for automation %s: could not check the secret", automation_id)
            return _answer(503, "try again later")
        if automation is None:
            return _answer(401, "unauthorized")
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        delivery = request.headers.get("X-GitHub-Delivery") or request.headers.get("X-Request-Id") or ""
        try:
            result = await self.automations.on_webhook(automation, body, delivery=delivery)
        except Exception:
            log.exception("webhook for automation %s failed", automation_id)
            return _answer(500, "the run could not be started")
        if result.code == HookCode.PAUSED:
            return _answer(409, "the automation is paused")
        if result.code == HookCode.LIMITED:
            return _answer(429, "too many runs of this automation in the last hour")
        if result.code == HookCode.DUPLICATE:
            return web.json_response({"ok": True, "duplicate": True}, status=200)
        run = result.run
        return web.json_response({"ok": True, "run": run.number if run else 0}, status=202)

    async def _body(self, request: web.Request) -> object:
        """The JSON body, read whole however it is sent (chunked too) up to the cap; or the answer."""
        too_big = _answer(413, f"the body is larger than {self.max_body} bytes")
        if request.content_length is not None and request.content_length > self.max_body:
            return too_big
        raw = bytearray()
        async for chunk in request.content.iter_any():
            raw += chunk
            if len(raw) > self.max_body:
                return too_big
        try:
            return json.loads(bytes(raw) or b"{}")
        except (ValueError, RecursionError):
            return _answer(400, "the body must be JSON")


def _answer(status: int, error: str) -> web.Response:
    response = web.json_response({"ok": False, "error": error}, status=status)
    if status in (401, 413):  # a body we will not read: close, rather than wait for it to drain
        response.force_close()
    return response
