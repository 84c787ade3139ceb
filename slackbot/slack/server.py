"""The HTTP front: /healthz and the automations' webhooks in both modes; /slack/events in HTTP
mode; Socket Mode otherwise."""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HOOKS_PATH = "/hooks/automations/{automation_id}"


class SlackServer:
    def __init__(self, app: AsyncApp, *, port: int, app_token: str = "", http: bool = False,
                 host: str = "0.0.0.0", hooks: Handler | None = None) -> None:
        """`hooks`: the automations' webhook route (in both modes: callers are not Slack)."""
        self.app = app
        self.hooks = hooks
        self.port = port
        self.host = host
        self.socket_mode = bool(app_token) and not http
        self.app_token = app_token
        self.ready = False
        self._runner: web.AppRunner | None = None
        self._socket: AsyncSocketModeHandler | None = None

    async def start(self) -> None:
        web_app = web.Application()
        web_app.router.add_get("/healthz", self._healthz)
        if not self.socket_mode:
            web_app.router.add_post("/slack/events", self._events)
        if self.hooks is not None:
            web_app.router.add_post(HOOKS_PATH, self.hooks)
        # A refused webhook's unread body is drained for at most lingering_time before closing.
        self._runner = web.AppRunner(web_app, access_log=None, lingering_time=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # tests ask for any free port
            self.port = self._runner.addresses[0][1]
        if self.socket_mode:
            self._socket = AsyncSocketModeHandler(self.app, self.app_token)
            await self._socket.connect_async()
        log.info("listening on port %d (%s)", self.port, "Socket Mode" if self.socket_mode else "HTTP")

    async def stop(self) -> None:
        self.ready = False
        if self._socket:
            await self._socket.close_async()
        if self._runner:
            await self._runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        if not self.ready:
            return web.json_response({"ok": False, "status": "starting"}, status=503)
        return web.json_response({"ok": True, "mode": "socket" if self.socket_mode else "http"})

    async def _events(self, request: web.Request) -> web.Response:
        bolt_resp = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_resp)
