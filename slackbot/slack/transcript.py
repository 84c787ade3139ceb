"""A task's full transcript as plain text, rendered from its stored events."""

from __future__ import annotations

from typing import Any


def render_transcript(task: Any, events: list[dict[str, Any]]) -> str:
    lines = [f"Task #{task.id} requested by {task.requester_name or task.requester}",
             f"Status: {task.status}", f"Request: {task.prompt}", ""]
    for e in events:
        kind, item = e.get("type", ""), e.get("item") or {}
        if kind == "item.completed" and item.get("type") == "command_execution":
            lines += [f"$ {item['command']}", item.get("aggregated_output", "").rstrip(),
                      f"[exit {item.get('exit_code')}]", ""]
        elif kind == "item.completed" and item.get("type") == "agent_message":
            lines += ["--- agent ---", item.get("text", ""), ""]
        elif kind == "item.completed" and item.get("type") == "user_message":
            lines += [f"--- message from {item.get('user') or 'someone'} ---", item.get("text", ""), ""]
        elif kind == "item.completed" and item.get("type") == "todo_list":
            lines += ["--- plan ---"] + [("[x] " if i["completed"] else "[ ] ") + i["text"]
                                         for i in item.get("items", [])] + [""]
        elif kind == "item.completed" and item.get("type") == "file_change":
            lines += ["--- files changed ---"] + [f"{c['kind']} {c['path']}" for c in item.get("changes", [])] + [""]
        elif kind == "item.completed" and item.get("type") == "error":
            lines += [f"!!! {item.get('message', '')}", ""]
        elif kind == "task.progress":
            lines.append(f"[{e.get('text', '')}]")
        elif kind == "turn.failed":
            lines += [f"Failed: {(e.get('error') or {}).get('message', '')}", ""]
        elif kind == "task.finished":
            usage = e.get("usage") or {}
            lines.append(f"Finished: {e.get('status')} in {e.get('elapsed_s', 0):.1f}s, "
                         f"{usage.get('input_tokens', 0)} tokens in, {usage.get('output_tokens', 0)} out")
    return "\n".join(lines) + "\n"
