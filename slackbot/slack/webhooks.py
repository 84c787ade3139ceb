"""`POST /hooks/automations/ID` with `Authorization: Bearer SECRET`: a JSON body starts the
automation's run. Whatever is wrong with the caller's credentials, the answer is the same 401."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from ..automations.service import Automations, HookCode

log = logging.getLogger(__name__)


class WebhookRoute:
    def __init__(self, automations: Automations, *, max_body: int) -> None:
        self.automations = automations
        self.max_body = max_body

    async def __call__(self, request: web.Request) -> web.Response:
        raw_id = request.match_info.get("automation_id", "")
        auth = request.headers.get("Authorization", "")
        secret = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not raw_id.isdigit() or len(raw_id) > 12 or not secret or len(secret) > 200:
            return _answer(401, "unauthorized")
        if request.content_length is not None and request.content_length > self.max_body:
            return _answer(413, f"the body is larger than {self.max_body} bytes")
        raw = await request.content.read(self.max_body + 1)
        if len(raw) > self.max_body:
            return _answer(413, f"the body is larger than {self.max_body} bytes")
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, RecursionError):
            # Checked before the secret only in cost, not in what it tells: a 400 says nothing of the secret.
            return _answer(400, "the body must be JSON")
        delivery = request.headers.get("X-GitHub-Delivery") or request.headers.get("X-Request-Id") or ""
        try:
            result = await self.automations.on_webhook(int(raw_id), secret, body, delivery=delivery)
        except Exception:
            log.exception("webhook for automation %s failed", raw_id)
            return _answer(500, "the run could not be started")
        if result.code == HookCode.DENIED:
            return _answer(401, "unauthorized")
        if result.code == HookCode.PAUSED:
            return _answer(409, "the automation is paused")
        if result.code == HookCode.LIMITED:
            return _answer(429, "too many runs of this automation in the last hour")
        if result.code == HookCode.DUPLICATE:
            return web.json_response({"ok": True, "duplicate": True}, status=200)
        run = result.run
        return web.json_response({"ok": True, "run": run.number if run else 0}, status=202)


def _answer(status: int, error: str) -> web.Response:
    return web.json_response({"ok": False, "error": error}, status=status)
