"""What the model sees at the start of a task: the system prompt (with AGENTS.md), the thread's
history (compacted when over budget, the summary stored so it is made once) and the request."""

from __future__ import annotations

import json
import logging
from typing import Any

from ..agent import Model
from ..agent.history import SUMMARY_PROMPT, Row, plan, repair, summary_message, transcript_for_summary
from ..agent.prompts import system_prompt
from ..protocol import Usage
from ..store import AgentThread, Store, Task

log = logging.getLogger(__name__)


def estimate_tokens(message: dict[str, Any]) -> int:
    return len(json.dumps(message)) // 4 + 4


async def build_messages(store: Store, model: Model, task: Task, thread: AgentThread, *, budget: int,
                         instructions: str = "") -> tuple[list[dict[str, Any]], Usage]:
    request = {"role": "user", "content": task.prompt}
    await store.add_history(thread.id, task.id, request, estimate_tokens(request))
    rows = [Row(r.id, json.loads(r.data), r.tokens) for r in await store.history(thread.id)]
    system = {"role": "system", "content": system_prompt(instructions)}
    compaction = plan(rows, budget - estimate_tokens(system))
    if compaction is None:
        return [system] + repair([r.message for r in rows]), Usage()
    usage = Usage()
    summary, upto = thread.summary, thread.summary_upto
    if upto < compaction.upto:
        fresh = [r for r in compaction.middle if r.id > upto]
        reply = await model.complete(
            [{"role": "system", "content": SUMMARY_PROMPT},
             {"role": "user", "content": transcript_for_summary(summary, fresh)}], [])
        summary, upto, usage = reply.text, compaction.upto, reply.usage
        await store.set_summary(thread.id, summary, upto)
        log.info("thread %s: history up to row %s summarised", thread.id, upto)
    kept = [r.message for r in rows if r.id > upto]
    return [system] + repair([r.message for r in compaction.head] + [summary_message(summary)] + kept), usage
