"""Slack's agent sessions and agent messaging experience in FakeSlack (a mixin: `self` is the
FakeSlack): agents.sessions.setStatus, assistant.threads.setSuggestedPrompts, and the events
agent_session_stopped, assistant_thread_started, assistant_thread_context_changed and
app_home_opened for the Messages tab, with the errors Slack documents (docs/slack.md).

By default the fake answers setStatus as a workspace without the feature would (`session_refusal`,
`feature_disabled`), so every test sees our own Stop button unless it sets `agent_sessions = True`.
`session_failure` makes every setStatus call fail with that error (the feature on or not).
A thread's session lives in `sessions[(channel, thread_ts)]` with the statuses it went through.
chat.stopStream's `session_status` (default `active`) moves it too (slack_streams.py)."""

from __future__ import annotations

import time
from typing import Any

from .slack_methods import SlackError, _need, method

SESSION_STATUSES = ("active", "processing", "suspended", "closed")
TITLE_LIMIT = 200
MAX_PROMPTS = 4


class SlackSessions:
    def _init_sessions(self: Any) -> None:
        self.agent_sessions = False  # the workspace has agent sessions (tests turn it on)
        self.session_refusal = "feature_disabled"  # the answer while it does not
        self.session_failure = ""  # set: every agents.sessions.setStatus call fails with it
        self.stop_event_subscribed = True  # else setStatus warns, as Slack does
        self.sessions: dict[tuple[str, str], dict] = {}
        self.suggested_prompts: list[dict] = []  # every accepted setSuggestedPrompts call

    def session(self: Any, channel: str, thread_ts: str) -> dict | None:
        return self.sessions.get((channel, thread_ts))

    def _move_session(self: Any, channel: str, thread_ts: str, status: str) -> None:
        found = self.sessions.get((channel, thread_ts))
        if found is not None:
            found["status"] = status
            found["statuses"].append(status)

    @method("agents.sessions.setStatus")
    async def _sessions_set_status(self: Any, params: dict) -> dict:
        if self.session_failure:
            raise SlackError(self.session_failure)
        if not self.agent_sessions:
            raise SlackError(self.session_refusal)
        _need(params, "status")
        status = str(params["status"])
        if status not in SESSION_STATUSES:
            raise SlackError("invalid_status")
        channel = str(params.get("channel_id") or "")
        if not channel:
            raise SlackError("channel_not_found")
        record = self.channel_record(channel)
        if not record["is_member"]:
            raise SlackError("not_authorized")
        thread_ts = str(params.get("thread_ts") or "")
        if not thread_ts:
            raise SlackError("thread_ts_required")  # (the fake has no session channels)
        self._find(channel, thread_ts)  # message_not_found for a thread that does not exist
        title = str(params.get("title") or "")
        if len(title) > TITLE_LIMIT:
            raise SlackError("invalid_arguments", response_metadata={"messages": ["title longer than 200"]})
        initiator = params.get("initiator_user_id")
        if initiator and "members" in record and initiator not in record["members"]:
            raise SlackError("user_not_found")
        found = self.sessions.get((channel, thread_ts))
        if found is None:  # title and initiator count only when the session is created
            found = self.sessions[(channel, thread_ts)] = {
                "channel": channel, "thread_ts": thread_ts, "title": title, "initiator": initiator,
                "status": status, "statuses": [status], "created": time.monotonic()}
        else:
            self._move_session(channel, thread_ts, status)
        answer: dict[str, Any] = {"status": status, "agent_status": status, "title": found["title"]}
        if not self.stop_event_subscribed:
            answer["warning"] = "missing_agent_session_stopped_event_subscription"
        return answer

    @method("assistant.threads.setSuggestedPrompts")
    async def _set_suggested_prompts(self: Any, params: dict) -> dict:
        _need(params, "channel_id", "prompts")
        channel = str(params["channel_id"])
        if not self.channel_record(channel)["is_member"]:
            raise SlackError("channel_not_found")
        prompts = params["prompts"]
        if not isinstance(prompts, list) or not prompts or len(prompts) > MAX_PROMPTS or not all(
                isinstance(p, dict) and p.get("title") and p.get("message") for p in prompts):
            raise SlackError("invalid_arguments", response_metadata={
                "messages": [f"prompts: 1 to {MAX_PROMPTS}, each with a title and a message"]})
        thread_ts = params.get("thread_ts")
        if thread_ts and self.message(channel, str(thread_ts)) is None:
            raise SlackError("invalid_thread_ts")
        self.suggested_prompts.append({"channel": channel, "thread_ts": thread_ts, "title": params.get("title"),
                                       "prompts": prompts})
        return {}

    # ---- events ----------------------------------------------------------------------------

    def agent_session_stopped(self: Any, channel: str, thread_ts: str, user: str) -> dict:
        """Someone pressed Slack's own Stop in a thread: Slack stops the app's streams there first
        (listed in the event) and leaves the session's status to the app."""
        stopped = [m["ts"] for m in self.thread(channel, thread_ts) if m.get("streaming")]
        for ts in stopped:
            self.messages[channel][ts]["streaming"] = False
        return self.event_callback({"type": "agent_session_stopped", "channel": channel, "thread_ts": thread_ts,
                                    "user": user, "streaming_message_ts": stopped, "event_ts": self.next_ts()})

    def assistant_thread_started(self: Any, user: str, channel: str = "D1", context_channel: str = "C1") -> dict:
        """A person opened a new assistant thread: Slack posts its root message in their DM."""
        root = self.store_message(channel, user=user, subtype="assistant_app_thread", text="New chat")
        return self.event_callback({"type": "assistant_thread_started", "event_ts": self.next_ts(),
                                    "assistant_thread": self._assistant_thread(user, channel, root["ts"], context_channel)})

    def assistant_thread_context_changed(self: Any, user: str, channel: str, thread_ts: str,
                                         context_channel: str) -> dict:
        return self.event_callback({"type": "assistant_thread_context_changed", "event_ts": self.next_ts(),
                                    "assistant_thread": self._assistant_thread(user, channel, thread_ts, context_channel)})

    def messages_tab_opened(self: Any, user: str, channel: str = "D1") -> dict:
        """The agent messaging experience: opening the app's Messages tab."""
        return self.event_callback({"type": "app_home_opened", "user": user, "channel": channel, "tab": "messages",
                                    "event_ts": self.next_ts()})

    def _assistant_thread(self: Any, user: str, channel: str, thread_ts: str, context_channel: str) -> dict:
        return {"user_id": user, "channel_id": channel, "thread_ts": thread_ts,
                "context": {"channel_id": context_channel, "team_id": self.team_id, "enterprise_id": None}}
