"""What the model sees at the start of a task: the system prompt (with AGENTS.md), the thread's
history (compacted when over budget, the summary stored so it is made once) and the request."""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable

from ..agent import Model
from ..agent.history import SUMMARY_PROMPT, Row, plan, repair, summary_message, transcript_for_summary
from ..agent.prompts import system_prompt
from ..protocol import Usage
from ..store import AgentThread, Store, Task

log = logging.getLogger(__name__)


def estimate_tokens(message: dict[str, Any]) -> int:
    return len(json.dumps(message)) // 4 + 4


async def build_messages(
        store: Store, model: Model, task: Task, thread: AgentThread, *, budget: int, instructions: str = "",
        attached: str = "", on_summary: Callable[[], Awaitable[None]] | None = None) -> tuple[list[dict[str, Any]], Usage]:
    assert task.id is not None and thread.id is not None  # both read from the store
    # `attached`: what the request brings along (the skills it names), kept with it in the history.
    request = {"role": "user", "content": f"{task.prompt}\n\n{attached}" if attached else task.prompt}
    await store.add_history(thread.id, task.id, request, estimate_tokens(request))
    rows = [Row(r.id, json.loads(r.data), r.tokens) for r in await store.history(thread.id) if r.id is not None]
    system = {"role": "system", "content": system_prompt(instructions)}
    summary, upto = thread.summary, thread.summary_upto
    # What the model would see: the first message, the stored summary, everything after it.
    seen = _with_summary(rows, summary, upto)
    # The API's count at the end of the last task (it saw `seen` then), plus this request.
    measured = 0
    if thread.context_tokens:
        measured = max(thread.context_tokens - estimate_tokens(system), 1) + estimate_tokens(request)
    compaction = plan(seen, budget - estimate_tokens(system), measured=measured)
    usage = Usage()
    fresh = [r for r in compaction.middle if r.id > upto] if compaction else []
    if fresh:  # (only the summary itself in the middle: nothing more to compress)
        assert compaction is not None
        if on_summary:
            await on_summary()
        reply = await model.complete(
            [{"role": "system", "content": SUMMARY_PROMPT},
             {"role": "user", "content": transcript_for_summary(summary, fresh)}], [])
        summary, upto, usage = reply.text, compaction.upto, reply.usage
        await store.set_summary(thread.id, summary, upto)
        log.info("thread %s: history up to row %s summarised", thread.id, upto)
        seen = _with_summary(rows, summary, upto)
    return [system] + repair([r.message for r in seen]), usage


def _with_summary(rows: list[Row], summary: str, upto: int) -> list[Row]:
    if not summary or not rows:
        return rows
    message = summary_message(summary)
    if rows[0].id > upto:  # the rows the summary stands for are gone (retention): it comes first
        return [Row(upto, message, estimate_tokens(message))] + rows
    return [rows[0], Row(upto, message, estimate_tokens(message))] + [r for r in rows if r.id > upto]
