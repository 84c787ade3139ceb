"""Markdown (what models write) → Slack mrkdwn, and splitting long text for blocks."""

from __future__ import annotations

import re

_CODE = re.compile(r"(```.*?```|`[^`\n]+`)", re.S)
_BOLD = "\x00"  # stands for a bold asterisk until the italic rule has run
_RULES = [
    (re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.M), _BOLD + r"\1" + _BOLD),      # headings
    (re.compile(r"\*\*(.+?)\*\*|__(.+?)__"), lambda m: f"{_BOLD}{m.group(1) or m.group(2)}{_BOLD}"),
    (re.compile(r"(?<![*\w])\*(?!\s)([^*\n]+?)\*(?![*\w])"), r"_\1_"),        # *italic*
    (re.compile(r"~~(.+?)~~"), r"~\1~"),
    # Links only to web and mail addresses: a target like !channel or @U… would ping people.
    (re.compile(r"!?\[([^\]|]+)\]\(((?:https?://|mailto:)[^\s|)]+)\)"), r"<\2|\1>"),
    (re.compile(r"^(\s*)[-*+]\s+", re.M), "\\1\u2022 "),                      # bullets
]


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """Slack escapes &, < and > in what people write; the model should read them plainly."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def to_mrkdwn(markdown: str) -> str:
    parts = _CODE.split(markdown)
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # code stays as it is, but Slack needs &<> escaped everywhere
            out.append(escape(part))
            continue
        text = escape(part)
        for pattern, repl in _RULES:
            text = pattern.sub(repl, text)
        out.append(text.replace(_BOLD, "*"))
    return "".join(out)


def split(text: str, limit: int = 2900) -> list[str]:
    """Splits at paragraph, then line, then hard boundaries; keeps code fences balanced."""
    chunks: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind("\n\n", 0, limit)
        if cut < limit // 2:
            cut = rest.rfind("\n", 0, limit)
        if cut < limit // 2:
            cut = limit
        head, rest = rest[:cut], rest[cut:].lstrip("\n")
        if head.count("```") % 2:  # close the fence here, reopen it in the next chunk
            head += "\n```"
            rest = "```\n" + rest
        chunks.append(head)
    if rest:
        chunks.append(rest)
    return chunks
