"""Pure Block Kit builders: state in, (text, blocks) out. Tested by comparing dicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..protocol import FileStat, TodoEntry, Usage
from .mrkdwn import clip, compose, escape, link, mention, split, to_mrkdwn

Blocks = list[dict[str, Any]]
ANSWER_INLINE_LIMIT = 12_000  # longer answers also go into a file
MAX_FILES_LISTED = 20


@dataclass
class StatusState:
    task_id: int
    state: str = "queued"  # queued | working | done | failed | stopped | interrupted
    position: int = 0
    phase: str = ""
    command: str = ""
    commands: int = 0
    plan: tuple[TodoEntry, ...] = ()
    note: str = ""
    elapsed_s: float = 0.0
    error: str = ""
    stopped_by: str = ""
    files: tuple[FileStat, ...] = field(default_factory=tuple)

    @property
    def final(self) -> bool:
        return self.state in ("done", "failed", "stopped", "interrupted")


def clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def short(text: str, limit: int = 80) -> str:
    lines = text.strip().splitlines() or [""]
    first = lines[0]
    more = len(lines) > 1
    if len(first) > limit:
        first, more = first[: limit - 1], True
    return first + ("…" if more else "")


def headline(st: StatusState) -> str:
    """The status line, as mrkdwn: also the message's `text`, which Slack renders (and pings) too."""
    tag = f"#{st.task_id}"
    if st.state == "queued":
        return f"⏳ Queued (position {st.position}) • {tag}" if st.position else f"⏳ Queued • {tag}"
    if st.state == "working":
        return f"⚙️ Working… {tag} • {clock(st.elapsed_s)}"
    if st.state == "done":
        return f"✅ Done {tag} • {clock(st.elapsed_s)}"
    if st.state == "stopped":
        who = compose(" by ", mention(st.stopped_by)) if st.stopped_by else ""
        return f"⏹️ Stopped{who} {tag} • {clock(st.elapsed_s)}"
    if st.state == "interrupted":
        return f"⚠️ Interrupted {tag}: {escape(short(st.error, 300)) or 'the bot restarted'}"
    return f"❌ Failed {tag}: {escape(short(st.error, 300)) or 'unknown error'}"


def status_blocks(st: StatusState) -> tuple[str, Blocks]:
    text = headline(st)
    blocks: Blocks = [_section(clip(text, 2900))]
    details = []
    if not st.final:
        if st.phase:
            details.append(escape(short(st.phase, 200)))
        if st.command:
            details.append(f"`{escape(short(st.command))}`")
    if st.commands:
        details.append(f"{st.commands} command{'s' if st.commands != 1 else ''} run")
    if st.note and not st.final:
        details.append(escape(st.note))
    if details:
        blocks.append(_context(clip(" • ".join(details), 2900)))
    if st.plan:
        lines = [f"{'✅' if p.completed else '▫️'} {escape(short(p.text, 120))}" for p in st.plan[:12]]
        if len(st.plan) > 12:
            lines.append(f"…and {len(st.plan) - 12} more")
        blocks.append(_section(clip("\n".join(lines), 2900)))
    if not st.final:
        blocks.append({"type": "actions", "block_id": f"task_{st.task_id}", "elements": [{
            "type": "button", "action_id": "task_stop", "value": str(st.task_id), "style": "danger",
            "text": {"type": "plain_text", "text": "Stop"}}]})
    return text, blocks


def files_text(files: tuple[FileStat, ...]) -> str:
    lines = [f"`{escape(f.path)}` +{f.added} −{f.removed}" + (" (new)" if f.kind == "add" else
                                                             " (deleted)" if f.kind == "delete" else "")
             for f in files[:MAX_FILES_LISTED]]
    if len(files) > MAX_FILES_LISTED:
        lines.append(f"…and {len(files) - MAX_FILES_LISTED} more")
    return "*Files changed*\n" + "\n".join(lines)


def usage_text(task_id: int, elapsed_s: float, usage: Usage) -> str:
    return (f"#{task_id} • ⏱ {clock(elapsed_s)} • {usage.input_tokens:,} tokens in "
            f"({usage.cached_input_tokens:,} cached) / {usage.output_tokens:,} out")


def final_blocks(*, task_id: int, state: str, answer: str, error: str, files: tuple[FileStat, ...],
                 elapsed_s: float, usage: Usage, stopped_by: str = "", branch: str = "", pushable: bool = False,
                 pr_url: str = "", note: str = "", plan: str = "") -> tuple[str, Blocks, bool]:
    """The final reply: (fallback text, blocks, whether the answer also needs attaching as a file).
    `plan` "awaiting": the answer is a plan, with Approve, Revise and Cancel."""
    blocks: Blocks = []
    if plan == "awaiting":
        blocks.append(_section(PLAN_HEADLINE))
    if state == "failed":
        blocks.append(_section(f"❌ *Failed:* {clip(escape(error), 2800) or 'unknown error'}"))
    elif state == "stopped":
        who = compose(" by ", mention(stopped_by)) if stopped_by else ""
        blocks.append(_section(f"⏹️ Stopped{who}."))
    elif state == "interrupted":
        why = clip(escape(error), 2800) or "Interrupted by a restart"
        blocks.append(_section(f"⚠️ {why} — reply to continue."))
    body = to_mrkdwn(answer.strip())
    attach = len(body) > ANSWER_INLINE_LIMIT
    if attach:
        body = clip(body, ANSWER_INLINE_LIMIT) + "\n…"
    chunks = split(body) if body else []
    blocks += [_section(c) for c in chunks]
    if attach:
        blocks.append(_context("The full answer is attached as a file."))
    if files:
        blocks.append(_section(clip(files_text(files), 2900)))
    if note:
        blocks.append(_section(clip(escape(note), 2900)))
    elif pr_url:
        blocks.append(_section(f"Pull request: {link(pr_url)}"))
    elif branch and files:
        blocks.append(_context(f"Branch `{escape(branch)}`"))
    blocks.append(_context(usage_text(task_id, elapsed_s, usage)))
    buttons = plan_buttons(task_id) if plan == "awaiting" else []
    if pushable and not pr_url:
        buttons.append(_button("task_push", "Push branch", task_id, style="primary"))
    buttons.append(_button("task_transcript", "Transcript", task_id))
    blocks.append({"type": "actions", "block_id": f"result_{task_id}", "elements": buttons})
    fallback = clip(escape(answer.strip() or error or state), 3000)
    return fallback, blocks, attach


PLAN_HEADLINE = "📋 *Plan for approval* — nothing is changed until it is approved."


def plan_buttons(task_id: int) -> list[dict[str, Any]]:
    return [_button("plan_approve", "Approve", task_id, style="primary"), _button("plan_revise", "Revise", task_id),
            _button("plan_cancel", "Cancel", task_id, style="danger")]


def notice_blocks(*parts: str) -> tuple[str, Blocks]:
    """A notice: plain strings are escaped (they may quote git, a command or a person); only
    `Mrkdwn` parts our code built, such as `mention(user)`, keep their markup."""
    safe = clip(compose(*parts), 2900)
    return safe, [_section(safe)]


def _button(action_id: str, label: str, task_id: int, style: str = "") -> dict[str, Any]:
    button = {"type": "button", "action_id": action_id, "value": str(task_id),
              "text": {"type": "plain_text", "text": label}}
    if style:
        button["style"] = style
    return button


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}
