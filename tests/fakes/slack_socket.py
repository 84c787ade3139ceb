"""Socket Mode side of FakeSlack (a mixin: `self` is the FakeSlack).

apps.connections.open hands out ws://127.0.0.1:PORT/socket?ticket=...; the server says hello,
then tests push envelopes with socket_send() and wait for the client's ack with wait_ack().
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from aiohttp import WSMsgType, web

from .slack_methods import SlackError, method

MAX_CONNECTIONS = 10


class SlackSocket:
    def _init_socket(self) -> None:
        self.sockets: list[web.WebSocketResponse] = []
        self.socket_tickets: set[str] = set()
        self.envelopes: list[dict] = []  # every envelope sent, in order
        self.acks: dict[str, dict] = {}  # envelope_id -> ack message from the client
        self.ack_times: dict[str, float] = {}  # envelope_id -> seconds from send to ack
        self.socket_connects = 0
        self._ack_events: dict[str, asyncio.Event] = {}
        self._sent_at: dict[str, float] = {}
        self._connected = asyncio.Event()
        self._rr = 0

    @method("apps.connections.open")
    async def _connections_open(self, params: dict) -> dict:
        ticket = uuid.uuid4().hex
        self.socket_tickets.add(ticket)
        return {"url": f"ws://127.0.0.1:{self.port}/socket?ticket={ticket}"}

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("ticket") not in self.socket_tickets:
            raise web.HTTPUnauthorized(text="invalid ticket")
        # autoping answers the SDK's pings with pongs carrying the same data, which it checks.
        ws = web.WebSocketResponse(autoping=True, timeout=2.0)
        await ws.prepare(request)
        if len(self.sockets) >= MAX_CONNECTIONS:
            await ws.send_json({"type": "disconnect", "reason": "too_many_websockets"})
            await ws.close()
            return ws
        self.sockets.append(ws)
        self.socket_connects += 1
        self._connected.set()
        try:
            await ws.send_json(
                {
                    "type": "hello",
                    "num_connections": len(self.sockets),
                    "debug_info": {"host": "fake-slack", "build_number": 1, "approximate_connection_time": 18060},
                    "connection_info": {"app_id": self.app_id},
                }
            )
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_client_message(msg.data)
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            if ws in self.sockets:
                self.sockets.remove(ws)
            if not self.sockets:
                self._connected.clear()
        return ws

    def _on_client_message(self, data: str) -> None:
        try:
            msg = json.loads(data)
        except ValueError:
            return
        eid = msg.get("envelope_id") if isinstance(msg, dict) else None
        if not eid:
            return
        self.acks[eid] = msg
        if eid in self._sent_at:
            self.ack_times[eid] = time.monotonic() - self._sent_at[eid]
        event = self._ack_events.get(eid)
        if event is not None:
            event.set()

    async def wait_socket_connected(self, timeout: float = 10) -> None:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no Socket Mode client connected within {timeout}s\n{self.dump()}") from None

    async def socket_send(
        self, type: str, payload: dict, *, retry_attempt: int = 0, retry_reason: str = ""
    ) -> str:
        """Send one envelope to ONE connected client (round robin); return its envelope_id."""
        live = [ws for ws in self.sockets if not ws.closed]
        if not live:
            raise RuntimeError("no Socket Mode client is connected")
        ws = live[self._rr % len(live)]
        self._rr += 1
        eid = str(uuid.uuid4())
        envelope = {
            "envelope_id": eid,
            "type": type,
            "payload": payload,
            "accepts_response_payload": type != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
        self._ack_events[eid] = asyncio.Event()
        self._sent_at[eid] = time.monotonic()
        self.envelopes.append(envelope)
        await ws.send_json(envelope)
        return eid

    async def wait_ack(self, envelope_id: str, timeout: float = 5) -> dict:
        event = self._ack_events.get(envelope_id)
        if event is None:
            raise KeyError(f"unknown envelope {envelope_id}")
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"envelope {envelope_id} not acked within {timeout}s\n{self.dump()}") from None
        return self.acks[envelope_id]

    async def socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask every client to reconnect, as Slack does periodically."""
        for ws in list(self.sockets):
            if not ws.closed:
                await ws.send_json({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-slack"}})

    async def _close_sockets(self) -> None:
        for ws in list(self.sockets):
            try:
                await ws.close()
            except Exception:
                pass
        self.sockets.clear()
        self._connected.clear()


__all__ = ["SlackSocket", "SlackError"]
