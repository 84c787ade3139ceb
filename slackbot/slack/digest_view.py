"""The daily digest as a Slack message: a pure builder, Digest in, (text, blocks) out.

Summaries, names and branches come from people, the model or git: all escaped. Block Kit's
limits (50 blocks, 3000 characters a section) are kept by listing the first tasks of each
outcome and counting the rest.
"""

from __future__ import annotations

from typing import Any

from ..automations.digest import OUTCOMES, Digest, DigestRun, DigestTask
from .mrkdwn import clip, escape, link, mention

Blocks = list[dict[str, Any]]
MAX_BLOCKS = 50
SECTION_LIMIT = 2900  # under Slack's 3000, with room for the "…and K more" line
LINE_LIMIT = 1500  # one task's line (fields are cut before that): a guard, so two always fit a section
MAX_LISTED = 15  # tasks listed per outcome
TITLES = {"done": "Done", "failed": "Failed", "stopped": "Stopped"}
EMOJI = {"done": "✅", "failed": "❌", "interrupted": "⚠️", "stopped": "⏹️",
         "running": "⚙️", "queued": "⏳"}


def digest_blocks(d: Digest, links: dict[int, str] | None = None) -> tuple[str, Blocks]:
    """`links` maps task ids to their thread's permalink."""
    links = links or {}
    title = f"Daily digest — {d.day:%A}, {d.day.day} {d.day:%b}"
    totals = totals_text(d) if not d.post_to else f"<#{d.channel}> · {totals_text(d)}"
    blocks: Blocks = [{"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}},
                      {"type": "context", "elements": [{"type": "mrkdwn", "text": totals}]}]
    groups: list[tuple[str, list[str]]] = []
    for key in OUTCOMES:
        tasks = [t for t in d.finished if t.outcome == key]
        if tasks:
            groups.append((f"{TITLES[key]} ({len(tasks)})", [task_line(t, d.priced, links) for t in tasks]))
    if d.automation_runs:
        groups.append(("Automations", [run_line(r) for r in d.automation_runs]))
    if d.running:
        groups.append((f"Still running ({len(d.running)})", [task_line(t, d.priced, links) for t in d.running]))
    for i, (heading, lines) in enumerate(groups):
        room = MAX_BLOCKS - len(blocks) - (len(groups) - i - 1)  # each later group keeps one block
        blocks += _group(heading, lines, room)
    return f"{title}: {totals}", blocks


def totals_text(d: Digest) -> str:
    t = d.totals
    parts = [_count(t.finished, "task")]
    parts += [f"{t.counts[o]} {o}" for o in OUTCOMES if t.counts.get(o)]
    parts += [f"{t.counts[s]} {s}" for s in ("running", "queued") if t.counts.get(s)]
    if d.quiet:
        parts.append(f"{d.quiet} with nothing to report")
    tokens = t.tokens.input_tokens + t.tokens.output_tokens
    if tokens:
        parts.append(f"{amount(tokens)} tokens")
    if d.priced and (t.cost or not t.cost_partial):
        parts.append(f"~{dollars(t.cost)}" + (" (some models unpriced)" if t.cost_partial else ""))
    return " · ".join(parts)


def task_line(t: DigestTask, priced: bool, links: dict[int, str]) -> str:
    emoji = EMOJI.get(t.status, "•")
    tag = link(links[t.task_id], f"#{t.task_id}") if t.task_id in links else f"#{t.task_id}"
    head = f"{emoji} {tag} {mention(t.requester)}"
    if t.automation:
        head += f" ⏱ {escape(_cut(t.automation, 60))}"
    details = [escape(t.summary) or "_no summary_"]
    if t.repo:
        details.append(f"`{escape(_cut(t.repo, 60))}`")
    if t.pr_url:
        details.append(link(t.pr_url, "pull request"))
    elif t.branch:
        details.append(f"`{escape(_cut(t.branch, 80))}`")
    if t.duration_s is not None:
        details.append(duration(t.duration_s))
    used = t.tokens.input_tokens + t.tokens.output_tokens
    if used:
        details.append(f"{amount(used)} tokens")
    if priced and used and t.status not in ("running", "queued"):  # nothing spent: nothing to price
        details.append("—" if t.cost is None else dollars(t.cost))
    return clip(f"{head}: " + " · ".join(details), LINE_LIMIT)


def run_line(r: DigestRun) -> str:
    if r.nothing_to_report:
        state = "nothing to report"
    elif r.status == "—" and r.error:
        state = "did not start: " + escape(_cut(r.error, 200))
    else:
        state = escape(r.status)
    return f"⏱ {escape(_cut(r.name, 60))} — run #{r.number}: {state}"


def duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    return f"{s // 3600}h {s % 3600 // 60}m"


def amount(n: int) -> str:
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.0f}k" if n >= 10_000 else f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def dollars(value: float) -> str:
    return "&lt;$0.01" if 0 < value < 0.005 else f"${value:.2f}"  # mrkdwn: "<" escaped


def _cut(text: str, limit: int) -> str:
    """Plain text shortened before escaping, so the line keeps its tail (duration, cost)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _group(heading: str, lines: list[str], room: int) -> Blocks:
    """Sections under a bold heading, at most `room` of them and MAX_LISTED lines; the rest counted."""
    chunks = [f"*{escape(heading)}*"]
    shown = 0
    for line in lines[:MAX_LISTED]:
        if len(chunks[-1]) + 1 + len(line) <= SECTION_LIMIT:
            chunks[-1] += "\n" + line
        elif len(chunks) < room:
            chunks.append(line)
        else:
            break
        shown += 1
    if shown < len(lines):
        chunks[-1] += f"\n…and {len(lines) - shown} more"
    return [{"type": "section", "text": {"type": "mrkdwn", "text": c}} for c in chunks]
