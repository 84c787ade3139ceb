"""Slack's streaming methods in FakeSlack (a mixin: `self` is the FakeSlack): chat.startStream,
chat.appendStream and chat.stopStream, with state and the errors Slack documents (docs/slack.md).

By default the fake answers them as a workspace without the feature would (`stream_refusal`, an
error code), so every test sees the classic status message unless it sets `streaming = True`.
A streamed message lives in `messages` like any other (with `streaming`, its `chunks`, and its
Markdown joined in `text`); it stops accepting appends after `stream_max_open_s`, as Slack ends
streams after a few minutes."""

from __future__ import annotations

import time
from typing import Any

from slack_sdk.models.messages.chunk import Chunk

from .slack_blocks import MAX_MARKDOWN_TEXT, check_blocks
from .slack_methods import SlackError, _need, _public, method
from .slack_sessions import SESSION_STATUSES

TASK_STATUSES = ("pending", "in_progress", "complete", "error")
DISPLAY_MODES = ("timeline", "plan")
FIELD_LIMIT = 256  # a task's details and output (see docs/slack.md: not confirmed by Slack's reference)


class SlackStreams:
    def _init_streams(self: Any) -> None:
        self.streaming = False  # the workspace has Slack's streaming (tests turn it on)
        self.stream_refusal = "unknown_method"  # the answer while it does not
        self.stream_max_open_s = 300.0
        self.stream_errors: list[str] = []  # problems found in chunks

    def _stream_allowed(self: Any) -> None:
        if not self.streaming:
            raise SlackError(self.stream_refusal)

    def _check_chunks(self: Any, method_name: str, chunks: Any) -> list[dict]:
        if chunks is None:
            return []
        problems: list[str] = []
        if not isinstance(chunks, list):
            problems.append("chunks must be a list")
            chunks = []
        for i, raw in enumerate(chunks):
            where = f"chunk[{i}]"
            if not isinstance(raw, dict) or Chunk.parse(raw) is None:
                problems.append(f"{where}: unknown chunk {raw!r:.80}")
                continue
            kind = raw["type"]
            if kind == "markdown_text":
                if not isinstance(raw.get("text"), str) or len(raw["text"]) > MAX_MARKDOWN_TEXT:
                    problems.append(f"{where}: markdown_text needs text of at most {MAX_MARKDOWN_TEXT} chars")
            elif kind == "plan_update":
                if not isinstance(raw.get("title"), str) or not raw["title"]:
                    problems.append(f"{where}: plan_update needs a title")
            elif kind == "task_update":
                if not raw.get("id") or not raw.get("title"):
                    problems.append(f"{where}: task_update needs id and title")
                if raw.get("status") not in TASK_STATUSES:
                    problems.append(f"{where}: status {raw.get('status')!r} is not one of {TASK_STATUSES}")
                for name in ("details", "output"):
                    if len(str(raw.get(name) or "")) > FIELD_LIMIT:
                        problems.append(f"{where}: {name} longer than {FIELD_LIMIT}")
            elif kind == "blocks":
                problems += [f"{where}: {p}" for p in check_blocks(raw.get("blocks"))]
        if problems:
            self.stream_errors.append(f"{method_name}: {'; '.join(problems)}")
            raise SlackError("invalid_chunks")
        return list(chunks)

    def _check_markdown(self: Any, params: dict) -> str:
        text = params.get("markdown_text")
        if text is not None and len(str(text)) > MAX_MARKDOWN_TEXT:
            raise SlackError("msg_too_long")
        return str(text or "")

    def _streaming_message(self: Any, params: dict) -> dict:
        msg = self._find(str(params["channel"]), str(params["ts"]))
        if not msg.get("streaming"):
            raise SlackError("message_not_in_streaming_state")
        if time.monotonic() - msg["stream_started"] > self.stream_max_open_s:
            msg["streaming"] = False  # Slack ended it
            raise SlackError("message_not_in_streaming_state")
        return msg

    def _add_chunks(self: Any, msg: dict, chunks: list[dict], markdown: str) -> None:
        if markdown:
            chunks = [*chunks, {"type": "markdown_text", "text": markdown}]
        msg["chunks"].extend(chunks)
        msg["text"] += "".join(c["text"] for c in chunks if c["type"] == "markdown_text")
        for c in chunks:
            if c["type"] == "task_update":
                msg["tasks"][c["id"]] = dict(c)
            elif c["type"] == "plan_update":
                msg["plan_title"] = c["title"]

    @method("chat.startStream")
    async def _start_stream(self: Any, params: dict) -> dict:
        self._stream_allowed()
        _need(params, "channel", "thread_ts")
        channel = str(params["channel"])
        if channel[:1] in ("C", "G"):  # outside a DM, the recipient must be named
            if not params.get("recipient_user_id"):
                raise SlackError("missing_recipient_user_id")
            if not params.get("recipient_team_id"):
                raise SlackError("missing_recipient_team_id")
            if params["recipient_team_id"] != self.team_id:
                raise SlackError("team_not_found")
        if params.get("task_display_mode") not in (None, *DISPLAY_MODES):
            raise SlackError("invalid_arguments")
        if not self.channel_record(channel)["is_member"]:
            raise SlackError("not_in_channel")
        chunks = self._check_chunks("chat.startStream", params.get("chunks"))
        markdown = self._check_markdown(params)
        msg = self.store_message(
            channel, thread_ts=str(params["thread_ts"]), text="", user=self.bot_user_id, bot_id=self.bot_id,
            app_id=self.app_id, team=self.team_id, streaming=True, stream_started=time.monotonic(), chunks=[],
            tasks={}, plan_title="", recipient=params.get("recipient_user_id"),
            task_display_mode=params.get("task_display_mode") or "timeline")
        self._add_chunks(msg, chunks, markdown)
        return {"channel": channel, "ts": msg["ts"]}

    @method("chat.appendStream")
    async def _append_stream(self: Any, params: dict) -> dict:
        self._stream_allowed()
        _need(params, "channel", "ts")
        if not params.get("markdown_text") and not params.get("chunks"):
            raise SlackError("no_text")
        chunks = self._check_chunks("chat.appendStream", params.get("chunks"))
        markdown = self._check_markdown(params)
        msg = self._streaming_message(params)
        self._add_chunks(msg, chunks, markdown)
        return {"channel": msg["channel"], "ts": msg["ts"]}

    @method("chat.stopStream")
    async def _stop_stream(self: Any, params: dict) -> dict:
        self._stream_allowed()
        _need(params, "channel", "ts")
        session_status = params.get("session_status") or "active"  # documented default
        if session_status not in SESSION_STATUSES:
            raise SlackError("invalid_arguments", response_metadata={"messages": ["bad session_status"]})
        chunks = self._check_chunks("chat.stopStream", params.get("chunks"))
        markdown = self._check_markdown(params)
        if params.get("blocks") is not None:  # at most 50, besides any sent in chunks
            self._validate_message("chat.stopStream", {"blocks": params["blocks"]})
        msg = self._streaming_message(params)
        self._add_chunks(msg, chunks, markdown)
        msg["streaming"] = False
        msg["session_status"] = session_status
        self._move_session(msg["channel"], msg.get("thread_ts") or msg["ts"], session_status)
        if params.get("blocks"):
            msg["blocks"] = params["blocks"]
        if params.get("metadata") is not None:
            msg["metadata"] = params["metadata"]
        return {"channel": msg["channel"], "ts": msg["ts"], "message": _public(msg)}

    def streams_in(self: Any, channel: str, thread_ts: str) -> list[dict]:
        """The streamed messages of a thread, oldest first."""
        return [m for m in self.thread(channel, thread_ts) if "stream_started" in m]
