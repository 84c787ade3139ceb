"""Payload builders and signed HTTP delivery of FakeSlack (a mixin: `self` is the FakeSlack).

Builders return what Slack would deliver; they also put human messages into the fake's state so
that later API calls (reactions, replies, permalinks) about them behave as in a real workspace.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web


def sign(secret: str, timestamp: str, body: str) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class SlackPayloads:
    def _init_payloads(self) -> None:
        self.triggers: dict[str, Any] = {}  # trigger_id -> issue time, or "used"
        self.pending_uploads: dict[str, dict] = {}  # file_id -> {name, length, content}
        self.deliveries: list[dict] = []  # every http_deliver: url, status, headers
        self._event_counter = 0

    # ---- endpoints that are not Web API methods --------------------------------------------

    async def _handle_upload(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["file_id"]
        pending = self.pending_uploads.get(file_id)
        if pending is None:
            return web.Response(status=404, text="unknown upload")
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            content = b""
            async for part in reader:
                content = await part.read()  # the (last) file part
        else:
            content = await request.read()
        pending["content"] = content
        return web.Response(text=f"OK - {len(content)}")

    async def _handle_response_url(self, request: web.Request) -> web.StreamResponse:
        raw = await request.text()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"raw": raw}
        if isinstance(body, dict) and body.get("blocks") is not None:
            try:
                self._validate_message("response_url", body)
            except Exception:
                pass  # recorded in block_errors; Slack answers 200 anyway for response_url misuse
        self.responses.append({"url": str(request.url), "body": body, "time": time.monotonic()})
        return web.json_response({"ok": True})

    # ---- ids -------------------------------------------------------------------------------

    def new_trigger_id(self) -> str:
        tid = f"{self.next_id('')}.{self.team_id}.{time.time_ns() % 10**10:x}"
        self.triggers[tid] = time.monotonic()
        return tid

    def new_response_url(self) -> str:
        return f"{self.base_url}/response/{self.next_id('R')}"

    # ---- events ----------------------------------------------------------------------------

    def event_callback(self, event: dict, event_id: str | None = None) -> dict:
        if event_id is None:
            self._event_counter += 1
            event_id = f"Ev{self._event_counter:08d}"
        return {
            "token": "verification-token",
            "team_id": self.team_id,
            "context_team_id": self.team_id,
            "api_app_id": self.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-fake-{event_id}",
        }

    def post_user_message(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> str:
        """Store a human message in the workspace; return its ts."""
        msg = self.store_message(channel, text=text, user=user, team=self.team_id, thread_ts=thread_ts)
        return msg["ts"]

    def message_event(self, channel: str, ts: str, event_id: str | None = None) -> dict:
        """event_callback for a `message` event about a stored message (human or the bot's own)."""
        msg = self.message(channel, ts)
        if msg is None:
            raise KeyError(f"no message {channel}/{ts}")
        event = {k: v for k, v in msg.items() if k not in ("edits", "reactions", "reply_count")}
        event.update(type="message", channel=channel, event_ts=ts, channel_type="channel")
        return self.event_callback(event, event_id)

    def mention(
        self, channel: str, user: str, text: str, thread_ts: str | None = None, event_id: str | None = None,
        extra: dict | None = None,
    ) -> tuple[dict, str]:
        """Store a message mentioning the bot; return (app_mention event_callback, message ts).
        `extra`: more event fields, e.g. Slack Connect's `user_team` / `source_team`, or `edited`."""
        tag = f"<@{self.bot_user_id}>"
        if tag not in text:
            text = f"{tag} {text}"
        ts = self.post_user_message(channel, user, text, thread_ts)
        event = {
            "type": "app_mention",
            "user": user,
            "text": text,
            "ts": ts,
            "channel": channel,
            "event_ts": ts,
            "team": self.team_id,
            "client_msg_id": f"cm-{ts}",
            "blocks": [
                {
                    "type": "rich_text",
                    "block_id": "rt1",
                    "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}],
                }
            ],
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        event.update(extra or {})
        return self.event_callback(event, event_id), ts

    # ---- commands and interactions ---------------------------------------------------------

    def slash_command_payload(
        self, command: str, text: str, user: str, channel: str, *, channel_name: str = "general", **extra: Any
    ) -> dict:
        """Form fields of a slash command (deliver with form=True, or socket_send('slash_commands', ...))."""
        payload = {
            "token": "verification-token",
            "team_id": self.team_id,
            "team_domain": self.team_domain,
            "channel_id": channel,
            "channel_name": channel_name,
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": self.new_response_url(),
            "trigger_id": self.new_trigger_id(),
        }
        payload.update(extra)
        return payload

    def _user_obj(self, user: str) -> dict:
        return {"id": user, "username": user.lower(), "name": user.lower(), "team_id": self.team_id}

    def block_action_payload(
        self,
        action_id: str,
        value: str,
        user: str,
        channel: str,
        message_ts: str,
        thread_ts: str | None = None,
        block_id: str = "actions",
    ) -> dict:
        container = {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False}
        if thread_ts:
            container["thread_ts"] = thread_ts
        msg = self.message(channel, message_ts)
        message = {k: v for k, v in (msg or {}).items() if k not in ("edits", "channel")}
        return {
            "type": "block_actions",
            "user": self._user_obj(user),
            "api_app_id": self.app_id,
            "token": "verification-token",
            "container": container,
            "trigger_id": self.new_trigger_id(),
            "team": {"id": self.team_id, "domain": self.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel, "name": "general"},
            "message": message or {"type": "message", "ts": message_ts, "text": ""},
            "state": {"values": {}},
            "response_url": self.new_response_url(),
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": block_id,
                    "text": {"type": "plain_text", "text": action_id},
                    "value": value,
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }

    def view_submission_payload(self, callback_id: str, values: dict, user: str, view_id: str | None = None) -> dict:
        """`values` is {block_id: {action_id: {"type": ..., "value": ...}}} as Slack sends it."""
        view = dict(self.views.get(view_id, {})) if view_id else {}
        view.update(
            id=view.get("id") or view_id or self.next_id("V"),
            type="modal",
            callback_id=callback_id,
            state={"values": values},
        )
        view.setdefault("private_metadata", "")
        return {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": self.team_domain},
            "user": self._user_obj(user),
            "api_app_id": self.app_id,
            "token": "verification-token",
            "trigger_id": self.new_trigger_id(),
            "view": view,
            "response_urls": [],
            "is_enterprise_install": False,
        }

    # ---- signed HTTP delivery --------------------------------------------------------------

    async def http_deliver(
        self,
        url: str,
        body: dict | str,
        *,
        form: bool = False,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        timestamp: int | str | None = None,
        bad_signature: bool = False,
        timeout: float = 10,
    ) -> tuple[int, str]:
        """POST a signed request to the app, as Slack does in HTTP mode; return (status, text).

        dict + form=False -> JSON (events); dict + form=True -> slash command fields when it has a
        "command" key, otherwise `payload=<json>` (interactions); str -> sent as is.
        """
        if isinstance(body, str):
            raw = body
        elif not form:
            raw = json.dumps(body)
        elif "command" in body:
            raw = urlencode({k: str(v) for k, v in body.items()})
        else:
            raw = urlencode({"payload": json.dumps(body)})
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = sign(self.signing_secret, ts, raw)
        if bad_signature:
            signature = "v0=" + "0" * 64
        headers = {
            "Content-Type": "application/x-www-form-urlencoded" if form else "application/json",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        }
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.post(url, data=raw.encode(), headers=headers) as resp:
                text = await resp.text()
                self.deliveries.append({"url": url, "status": resp.status, "headers": headers, "body": raw})
                return resp.status, text
