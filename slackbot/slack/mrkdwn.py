"""Markdown (what models write) → Slack mrkdwn, escaping, and splitting long text for blocks.

Everything placed into mrkdwn is escaped unless our own code built it: `escape` for text from
people, the model, commands or git; `mention` for the one markup we compose (a user mention);
`compose` joins both kinds.
"""

from __future__ import annotations

import re
from typing import Callable
from urllib.parse import urlsplit

_CODE = re.compile(r"(```.*?```|`[^`\n]+`)", re.S)
_BOLD = "\x00"  # stands for a bold asterisk until the italic rule has run
_RULES: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.M), _BOLD + r"\1" + _BOLD),      # headings
    (re.compile(r"\*\*(.+?)\*\*|__(.+?)__"), lambda m: f"{_BOLD}{m.group(1) or m.group(2)}{_BOLD}"),
    (re.compile(r"(?<![*\w])\*(?!\s)([^*\n]+?)\*(?![*\w])"), r"_\1_"),        # *italic*
    (re.compile(r"~~(.+?)~~"), r"~\1~"),
    # Links only to web and mail addresses: a target like !channel or @U… would ping people.
    (re.compile(r"!?\[([^\]|]+)\]\(((?:https?://|mailto:)[^\s|)]+)\)"), lambda m: _link(m.group(2), m.group(1))),
    (re.compile(r"^(\s*)[-*+]\s+", re.M), "\\1\u2022 "),                      # bullets
]


_USER_ID = re.compile(r"^[UW][A-Z0-9]{1,20}$")
_PARTIAL = re.compile(r"(&[a-z]{0,4}|<[^>]*)$")  # an entity or a link cut in half at the end


class Mrkdwn(str):
    """Text that is mrkdwn already, built by our own code (never a value from outside)."""


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(user_id: str) -> Mrkdwn:
    """`<@U…>` for a real user id; anything else is shown as text (it can never ping)."""
    return Mrkdwn(f"<@{user_id}>" if _USER_ID.match(user_id or "") else escape(user_id or "someone"))


def compose(*parts: str) -> Mrkdwn:
    """Joins parts into mrkdwn: `Mrkdwn` parts as they are, every other string escaped."""
    return Mrkdwn("".join(p if isinstance(p, Mrkdwn) else escape(p) for p in parts))


def clip(text: str, limit: int) -> str:
    """Cuts mrkdwn to `limit` characters without leaving half an entity or half a link."""
    return text if len(text) <= limit else _PARTIAL.sub("", text[:limit])


def link(url: str, label: str = "") -> str:
    """A link to a web address (anything else is shown as text); the host stays visible when the
    label says something else."""
    if not url.startswith(("https://", "http://")):
        return escape(url)
    return _link(escape(url).replace("|", "%7C"), escape(label) if label else "")


def unescape(text: str) -> str:
    """Slack escapes &, < and > in what people write; the model should read them plainly."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _link(url: str, label: str) -> str:
    """`url` and `label` are escaped already. A label can claim any address, so unless it is the
    address itself, the real host (or mail address) follows it."""
    if url.startswith("mailto:"):
        shown = url[len("mailto:"):]
    else:
        try:
            shown = escape(urlsplit(unescape(url)).hostname or url)
        except ValueError:  # e.g. a broken [IPv6] host
            shown = url
    if not label:
        return f"<{url}>"
    if label.strip() in (url, shown, url.split("://", 1)[-1]):
        return f"<{url}|{label}>"
    return f"<{url}|{label}> ({shown})"


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
