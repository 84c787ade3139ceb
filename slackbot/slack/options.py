"""Options written into a mention: `repo=NAME|URL`, `branch=NAME`, `model=NAME`, `plan=on|off`.

`plan=` is read here but stays in the text: it travels with the task's prompt, and the run manager
takes it out as it queues the task (runs/plan.py), where the channel's setting is weighed too."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..runs.plan import take_option

_OPTION = re.compile(r"(?<!\S)(repo|branch|model)=(<[^>]+>|\S+)")


@dataclass(frozen=True)
class MentionOptions:
    text: str
    repo: str = ""
    branch: str = ""
    model: str = ""
    plan: str = ""  # "on", "off", or "" (the channel's setting)


def unwrap(value: str) -> str:
    """Slack sends links as <url> or <url|label>."""
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].split("|", 1)[0]
    return value


def parse_options(text: str) -> MentionOptions:
    found: dict[str, str] = {}

    def take(match: re.Match[str]) -> str:
        found[match.group(1)] = unwrap(match.group(2))
        return ""

    rest = _OPTION.sub(take, text)
    return MentionOptions(" ".join(rest.split()), found.get("repo", ""), found.get("branch", ""),
                          found.get("model", ""), take_option(rest)[1])


def looks_like_url(value: str) -> bool:
    return bool(re.match(r"^(https?://|ssh://|git@|file://|/)", value))
