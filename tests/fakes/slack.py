"""FakeSlack: a stateful Slack Web API + Socket Mode server on 127.0.0.1 for end-to-end tests.

The app under test talks to it over real HTTP (SLACK_API_URL=fake.api_url), so slack_sdk, its retry
handlers and slack_bolt run unchanged. Method handlers live in slack_methods.py (user groups in
slack_groups.py), Socket Mode in slack_socket.py, payload builders and signed delivery in
slack_payloads.py, streaming (chat.startStream/appendStream/stopStream) in slack_streams.py, agent
sessions and the Messages tab's suggested prompts in slack_sessions.py.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web

from tests.fakes.serve import serve

from .slack_files import SlackFiles
from .slack_groups import SlackGroups
from .slack_methods import SlackError, SlackMethods
from .slack_payloads import SlackPayloads
from .slack_sessions import SlackSessions
from .slack_socket import SlackSocket
from .slack_streams import SlackStreams

# Form fields that slack_sdk JSON-encodes when it sends form data instead of a JSON body.
_JSON_FIELDS = {"blocks", "attachments", "view", "files", "metadata", "unfurl_links", "chunks", "prompts"}
# Per-minute limits of methods in low rate tiers (Tier 2: 20+/min, Tier 3: 50+/min, Tier 4: 100+/min;
# docs/slack.md).
TIER_LIMITS = {"chat.startStream": 20, "chat.stopStream": 20, "chat.appendStream": 100,
               "agents.sessions.setStatus": 50, "assistant.threads.setSuggestedPrompts": 100}


@dataclass
class Call:
    method: str
    params: dict
    time: float
    status: int = 200
    response: dict | None = None


@dataclass
class _Fault:
    status: int
    retry_after: int
    error: str
    times: int


class FakeSlack(SlackMethods, SlackGroups, SlackSocket, SlackPayloads, SlackStreams, SlackSessions, SlackFiles):
    def __init__(
        self,
        signing_secret: str = "test-signing-secret",
        bot_token: str = "xoxb-test",
        app_token: str = "xapp-test",
        bot_user_id: str = "UBOT",
        team_id: str = "T0001",
    ) -> None:
        self.signing_secret = signing_secret
        self.bot_token = bot_token
        self.app_token = app_token
        self.bot_user_id = bot_user_id
        self.bot_id = "B0001"
        self.team_id = team_id
        self.enterprise_id = ""  # set: the workspace belongs to an Enterprise Grid organisation
        self.app_id = "A0001"
        self.team_domain = "fake"
        # Extra bot tokens accepted besides bot_token (e.g. a second install).
        self.extra_tokens: set[str] = set()

        # Rate limits (set rate_limits=False to switch all of them off).
        self.rate_limits = True
        self.update_limit_per_min = 50
        self.post_burst = 5
        self.post_per_sec = 1.0
        self.tier_limits = dict(TIER_LIMITS)
        self._tier_times: dict[str, list[float]] = defaultdict(list)

        # Recorded traffic and problems.
        self.calls: list[Call] = []
        self.block_errors: list[str] = []
        self.rate_limited: list[tuple[str, float]] = []
        self.responses: list[dict] = []  # POSTs to response_url
        self.update_times: list[float] = []  # successful chat.update calls

        # Workspace state.
        self.messages: dict[str, dict[str, dict]] = defaultdict(dict)  # channel -> ts -> message
        self.ephemerals: list[dict] = []
        self.home_views: dict[str, dict] = {}
        self.opened_views: list[dict] = []
        self.views: dict[str, dict] = {}  # view id -> view (modals and homes)
        self.files: list[dict] = []
        self.users: dict[str, dict] = {}  # overrides merged into users.info answers
        self.channels: dict[str, dict] = {}  # overrides merged into conversations.info answers

        self._faults: dict[str, list[_Fault]] = defaultdict(list)
        self._delays: dict[str, float] = {}
        self._post_buckets: dict[str, tuple[float, float]] = {}  # channel -> (tokens, last time)
        self._ts_counter = 0
        self._id_counter = 0
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        SlackSocket._init_socket(self)
        SlackPayloads._init_payloads(self)
        SlackGroups._init_groups(self)
        SlackStreams._init_streams(self)
        SlackSessions._init_sessions(self)
        SlackFiles._init_files(self)

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    async def start(self) -> "FakeSlack":
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_post("/response/{rid}", self._handle_response_url)
        app.router.add_get("/socket", self._handle_socket)
        self._add_file_routes(app)
        self._runner, self.port = await serve(app)
        return self

    async def stop(self) -> None:
        await self._close_sockets()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "FakeSlack":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # ---- configuration ---------------------------------------------------------------------

    def fail_next(
        self, method: str, *, status: int = 429, retry_after: int = 1, error: str = "ratelimited", times: int = 1
    ) -> None:
        """Make the next `times` calls of `method` fail: 429 + Retry-After, 200 ok:false `error`, or 5xx."""
        self._faults[method].append(_Fault(status, retry_after, error, times))

    def set_delay(self, method: str, seconds: float) -> None:
        self._delays[method] = seconds

    # ---- ids -------------------------------------------------------------------------------

    def next_ts(self) -> str:
        # Unique and increasing both as strings (fixed width) and as floats.
        self._ts_counter += 1
        micros = self._ts_counter * 100
        return f"{1700000000 + micros // 1_000_000}.{micros % 1_000_000:06d}"

    def next_id(self, prefix: str) -> str:
        self._id_counter += 1
        return f"{prefix}{self._id_counter:06d}"

    # ---- HTTP dispatch ---------------------------------------------------------------------

    async def _read_params(self, request: web.Request) -> dict:
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    params.update(body)
            else:
                form = await request.post()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
        for key in _JSON_FIELDS:
            value = params.get(key)
            if isinstance(value, str) and value[:1] in ("[", "{"):
                try:
                    params[key] = json.loads(value)
                except ValueError:
                    pass
        return params

    def _token_of(self, request: web.Request, params: dict) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return params.pop("token", None)

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params = await self._read_params(request)
        token = self._token_of(request, params)
        params.pop("token", None)
        call = Call(method, params, time.monotonic())
        self.calls.append(call)
        status, body, headers = await self._answer(method, params, token)
        call.status, call.response = status, body
        return web.json_response(body, status=status, headers=headers)

    async def _answer(self, method: str, params: dict, token: str | None) -> tuple[int, dict, dict]:
        if not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if method == "apps.connections.open":
            if token != self.app_token:
                err = "not_allowed_token_type" if token.startswith("xoxb-") else "invalid_auth"
                return 200, {"ok": False, "error": err}, {}
        elif token not in {self.bot_token, *self.extra_tokens}:
            err = "not_allowed_token_type" if token == self.app_token else "invalid_auth"
            return 200, {"ok": False, "error": err}, {}

        delay = self._delays.get(method)
        if delay:
            await asyncio.sleep(delay)

        faults = self._faults.get(method)
        if faults:
            fault = faults[0]
            fault.times -= 1
            if fault.times <= 0:
                faults.pop(0)
            if fault.status == 429:
                body = {"ok": False, "error": fault.error}
                return 429, body, {"Retry-After": str(max(1, int(fault.retry_after)))}
            if fault.status >= 500:
                return fault.status, {"ok": False, "error": fault.error or "internal_error"}, {}
            return 200, {"ok": False, "error": fault.error}, {}

        handler = self.METHODS.get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}

        wait = self._rate_check(method, params)
        if wait is not None:
            self.rate_limited.append((method, time.monotonic()))
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(wait)}

        try:
            result = await handler(self, params)
        except SlackError as e:
            return 200, {"ok": False, "error": e.code, **e.extra}, {}
        if method == "chat.update":
            self.update_times.append(time.monotonic())
        return 200, {"ok": True, **result}, {}

    # ---- rate limits -----------------------------------------------------------------------

    def _rate_check(self, method: str, params: dict) -> int | None:
        """Seconds to wait (Retry-After) when this call is over the limit, else None."""
        if not self.rate_limits:
            return None
        now = time.monotonic()
        if method == "chat.update":
            recent = [t for t in self.update_times if t > now - 60]
            if len(recent) >= self.update_limit_per_min:
                return max(1, math.ceil(recent[0] + 60 - now))
        elif method == "chat.postMessage":
            # Token bucket per channel: a burst of post_burst, refilled at post_per_sec.
            channel = str(params.get("channel", ""))
            tokens, last = self._post_buckets.get(channel, (float(self.post_burst), now))
            tokens = min(float(self.post_burst), tokens + (now - last) * self.post_per_sec)
            if tokens < 1:
                self._post_buckets[channel] = (tokens, now)
                return max(1, math.ceil((1 - tokens) / self.post_per_sec))
            self._post_buckets[channel] = (tokens - 1, now)
        elif method in self.tier_limits:
            times = self._tier_times[method] = [t for t in self._tier_times[method] if t > now - 60]
            if len(times) >= self.tier_limits[method]:
                return max(1, math.ceil(times[0] + 60 - now))
            times.append(now)
        return None

    def max_updates_in_window(self, window: float = 60.0) -> int:
        """Largest number of successful chat.update calls inside any `window`-second span."""
        times = sorted(self.update_times)
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while times[lo] <= t - window:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    # ---- query helpers for tests -----------------------------------------------------------

    def message(self, channel: str, ts: str) -> dict | None:
        return self.messages.get(channel, {}).get(ts)

    def thread(self, channel: str, thread_ts: str) -> list[dict]:
        """Root message and its replies, oldest first."""
        msgs = self.messages.get(channel, {}).values()
        found = [m for m in msgs if m["ts"] == thread_ts or m.get("thread_ts") == thread_ts]
        return sorted(found, key=lambda m: float(m["ts"]))

    def reactions_on(self, channel: str, ts: str) -> list[str]:
        msg = self.message(channel, ts) or {}
        return [r["name"] for r in msg.get("reactions", [])]

    def count(self, method: str) -> int:
        return sum(1 for c in self.calls if c.method == method)

    def calls_to(self, method: str) -> list[dict]:
        return [c.params for c in self.calls if c.method == method]

    def dump(self, limit: int = 30) -> str:
        lines = [f"last {limit} calls:"]
        for c in self.calls[-limit:]:
            brief = {k: (str(v)[:80]) for k, v in c.params.items()}
            err = (c.response or {}).get("error")
            lines.append(f"  {c.method} {c.status} {err or ''} {brief}")
        lines.append("messages:")
        for channel, msgs in self.messages.items():
            for m in sorted(msgs.values(), key=lambda m: float(m["ts"])):
                who = m.get("bot_id") or m.get("user")
                lines.append(
                    f"  {channel} {m['ts']} thread={m.get('thread_ts')} {who}: {str(m.get('text'))[:100]!r}"
                    f" edits={len(m.get('edits', []))}"
                )
        if self.block_errors:
            lines.append(f"block_errors: {self.block_errors}")
        if self.rate_limited:
            lines.append(f"rate_limited: {len(self.rate_limited)}")
        return "\n".join(lines)

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.05) -> Any:
        """Poll a sync predicate until it returns something truthy; return that value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"condition not met within {timeout}s\n{self.dump()}")
            await asyncio.sleep(interval)
