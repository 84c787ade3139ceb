"""`/agent skills`: the skills a task in this channel can use, where each comes from, what it
shadows, and the skill folders that could not be loaded (and why)."""

from __future__ import annotations

from ....agent.skill_catalog import Catalog
from ....agent.skills import Skill
from ...deps import Deps
from ...home import short
from ...mrkdwn import escape

LIMIT = 11_000  # one ephemeral message


async def list_skills(deps: Deps, channel: str) -> str:
    linked = await deps.repos.channel_repos(channel)
    repo = next((r.repo for r in linked if r.is_default), linked[0].repo if len(linked) == 1 else None)
    catalog, note = await deps.runs.skills(repo)
    return skills_text(catalog, note)


def skills_text(catalog: Catalog, note: str = "") -> str:
    if not catalog.skills and not catalog.problems:
        return "No skills are available here."
    shadows: dict[str, list[Skill]] = {}
    for winner, loser in catalog.shadowed:
        shadows.setdefault(winner.name, []).append(loser)
    lines = ["*Skills this channel can use* — name one as `$name` in a mention, e.g. "
             "`@slackbot $code-review branch=feature-x`."]
    if note:
        lines.append(f"_{note}_")
    for skill in catalog.skills:
        line = f"• `{skill.name}` ({skill.source}) — {escape(short(skill.description, 160))}"
        if skill.name in shadows:
            line += " · shadows the " + ", ".join(f"{s.source}" for s in shadows[skill.name]) + " one"
        if skill.allowed_tools:
            line += f" · allowed-tools: {escape(', '.join(skill.allowed_tools)[:120])} (shown, not enforced)"
        lines.append(line)
    if catalog.problems:
        lines.append("*Not loaded*")
        lines += [f"• `{escape(_tail(p.path))}` ({p.source}): {escape(p.reason[:300])}" for p in catalog.problems]
    text = "\n".join(lines)
    return text if len(text) <= LIMIT else text[:LIMIT - 20] + "\n… (more not shown)"


def _tail(path: str) -> str:
    """Where to find the folder, without the host's paths: from a repository's skill root on, else the
    folder and its parent."""
    for root in (".agents/skills/", ".codex/skills/"):
        if root in path:
            return root + path.split(root, 1)[1]
    return "/".join(path.rstrip("/").split("/")[-2:])
