"""Slack's agent messaging experience (the Messages tab): suggested prompts when a conversation
with the bot opens. What people then write there is a direct message, a task like any mention
(message.py `direct`).

Two ways in, one per experience (docs/slack.md): an app with `assistant_view` gets
`assistant_thread_started` for each new thread and sets that thread's prompts; an app with
`agent_view` (our manifest) gets `app_home_opened` with tab "messages" and sets the
conversation's prompts without `thread_ts` (Slack ignores a call with one for agents).
`assistant_thread_context_changed` (the person looks at another channel) needs nothing from us.
Everything here is best-effort: a failure is logged, a workspace that refuses is asked no more."""

from __future__ import annotations

import logging
import time
from typing import Any

from ...deps import Deps
from ...sessions import SESSION_REFUSALS
from ...stream import Window, error_code

log = logging.getLogger(__name__)
TITLE = "What should I work on?"
PROMPTS = [  # at most four (documented)
    {"title": "Fix a failing test in…", "message": "Run the tests, find the failing one and fix it."},
    {"title": "Review my branch…", "message": "Review the changes on my branch and list the problems you find."},
    {"title": "What changed this week?", "message": "What changed in the repository this week?"},
]
CALLS_PER_MIN = 50  # setSuggestedPrompts is Tier 4 (100+ per minute)
AGAIN_AFTER_S = 600.0  # the Messages tab opens often: its prompts are set again at most this often
KEPT = 5000


class Prompts:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.refused = ""
        self._set: dict[str, float] = {}  # conversation -> when its prompts were set
        self._calls = Window()

    async def show(self, channel: Any, thread_ts: Any = None) -> None:
        # Only a conversation with the bot (a DM), named by strings: an odd or forged event sets nothing.
        if self.refused or not (_id(channel) and channel.startswith("D")):
            return
        if thread_ts is not None and not _id(thread_ts):
            return
        if thread_ts is None:
            if time.monotonic() - self._set.get(channel, -AGAIN_AFTER_S) < AGAIN_AFTER_S:
                return
            if len(self._set) >= KEPT:
                self._set.clear()
            self._set[channel] = time.monotonic()
        # People open conversations at will: a budget per minute, well inside the method's Tier 4.
        if self._calls.room(CALLS_PER_MIN) > 0:
            log.info("suggested prompts are spent for this minute: %s shows none", channel)
            return
        self._calls.take()
        try:
            await self.deps.client.assistant_threads_setSuggestedPrompts(
                channel_id=channel, thread_ts=thread_ts, title=TITLE, prompts=PROMPTS)
        except Exception as exc:
            code = error_code(exc)
            if code in SESSION_REFUSALS:
                self.refused = code
                log.info("Slack refuses suggested prompts (%s): the Messages tab shows none", code)
            else:
                log.warning("assistant.threads.setSuggestedPrompts failed in %s: %s", channel, code)


def handlers(deps: Deps):
    prompts = Prompts(deps)

    async def assistant_thread_started(event: dict[str, Any]) -> None:
        thread = event.get("assistant_thread")
        if isinstance(thread, dict) and _id(thread.get("channel_id")) and _id(thread.get("thread_ts")):
            await prompts.show(thread["channel_id"], thread["thread_ts"])

    async def assistant_thread_context_changed(event: dict[str, Any]) -> None:
        return None  # acknowledged (Bolt answers 404 to an event no listener takes)

    async def messages_tab_opened(event: dict[str, Any]) -> None:
        await prompts.show(event.get("channel"))

    return assistant_thread_started, assistant_thread_context_changed, messages_tab_opened


async def is_messages_tab(event: dict[str, Any]) -> bool:
    return event.get("tab") == "messages"


def _id(value: Any) -> bool:
    """A channel id or a ts as Slack sends them (a short string)."""
    return isinstance(value, str) and 0 < len(value) <= 64
