"""`/agent repo …` and `/agent repos`: linking repositories to a channel (admins only)."""

from __future__ import annotations

import re

from ...deps import Deps
from ...mrkdwn import escape
from ...options import unwrap
from ....store import RepoConflict, SavedSettings

USAGE = ("Usage: `/agent repo add NAME URL [BRANCH] [github=OWNER/REPO]` · `/agent repo default NAME` · "
         "`/agent repo remove NAME` · `/agent repo set NAME setup=\"COMMAND\" network=off|setup|on "
         "auto_push=on|off plan=on|off` · `/agent repos` (`plan=` is this channel's: plan first, then edit)")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
GITHUB = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


async def repo_command(deps: Deps, args: list[str], *, channel: str, user: str) -> str:
    if not args:
        return USAGE
    verb, rest = args[0].lower(), args[1:]
    if verb not in ("add", "default", "remove", "set"):
        return f"Unknown repo command `{escape(verb)}`.\n{USAGE}"
    if not await deps.is_admin(user):
        return ("Only admins can link, change or remove repositories. Ask a workspace admin or one of "
                "the people in SLACKBOT_ADMINS.")
    if verb == "add":
        return await _add(deps, rest, channel=channel, user=user)
    if not rest:
        return USAGE
    linked = {r.repo.name: r.repo for r in await deps.repos.channel_repos(channel)}
    repo = linked.get(rest[0])
    if repo is None:  # only this channel's links: changing another channel's would surprise it
        return f"No repository named `{escape(rest[0])}` is linked here. {await list_repos(deps, channel)}"
    assert repo.id is not None  # read from the store
    if verb == "default":
        await deps.repos.set_default(channel, repo.id)
        return f"`{escape(repo.name)}` is now this channel's default repository."
    if verb == "remove":
        await deps.repos.unlink(channel, repo.id)
        return f"`{escape(repo.name)}` is no longer linked to this channel."
    return await _set(deps, repo, rest[1:], channel=channel, user=user)


async def _add(deps: Deps, args: list[str], *, channel: str, user: str) -> str:
    github = ""
    plain = []
    for a in args:
        if a.startswith("github="):
            github = a.split("=", 1)[1]
        else:
            plain.append(unwrap(a))
    if len(plain) not in (2, 3):
        return USAGE
    name, url = plain[0], plain[1]
    branch = plain[2] if len(plain) == 3 else ""
    if not NAME.match(name):
        return "A repository name is letters, digits, `.`, `_` or `-` (at most 40)."
    if github and not GITHUB.match(github):
        return "`github=` takes OWNER/REPO, for example `github=acme/api`."
    problem = await deps.runs.check_repo(url, branch)
    if problem:
        return escape(problem)  # it may quote git or the remote
    try:
        repo = await deps.repos.link(channel, name=name, url=url, branch=branch, github=github, user=user)
    except RepoConflict as exc:
        return escape(str(exc))
    linked = await deps.repos.channel_repos(channel)
    default = next((r.repo.name for r in linked if r.is_default), "")
    note = " It is this channel's default." if default == repo.name else ""
    return f"Linked `{escape(repo.name)}` ({escape(repo.url)}) to this channel.{note}"


async def _set(deps: Deps, repo, args: list[str], *, channel: str, user: str) -> str:
    changes: dict[str, object] = {}
    plan: bool | None = None
    for a in args:
        key, _, value = a.partition("=")
        if key == "plan" and value in ("on", "off"):
            plan = value == "on"
        elif key == "setup":
            changes["setup"] = value
        elif key == "network" and value in ("off", "setup", "on"):
            changes["network"] = value
        elif key == "auto_push" and value in ("on", "off"):
            changes["auto_push"] = value == "on"
        elif key == "branch":
            changes["branch"] = value
        else:
            return f"I do not understand `{escape(a)}`.\n{USAGE}"
    if not changes and plan is None:
        return USAGE
    notes = []
    if plan is not None:  # a channel setting (the settings modal's "Plan first, then edit")
        await SavedSettings(deps.store).save("plan_mode", plan, scope=channel, by=user)
        notes.append("Plan first is now " + ("on in this channel: tasks post a plan for approval before they edit."
                                             if plan else "off in this channel: tasks edit at once."))
    if changes:
        repo = await deps.repos.configure(repo.id, **changes)
        notes.insert(0, f"Updated `{escape(repo.name)}`: {describe(repo)}")
    return "\n".join(notes)


def describe(repo) -> str:
    parts = [escape(repo.url), f"branch `{escape(repo.branch or 'default')}`", f"network {escape(repo.network)}",
             f"auto_push {'on' if repo.auto_push else 'off'}"]
    if repo.github:
        parts.append(f"github {escape(repo.github)}")
    if repo.setup:
        parts.append(f"setup `{escape(repo.setup[:200])}`")
    return " · ".join(parts)


async def list_repos(deps: Deps, channel: str) -> str:
    linked = await deps.repos.channel_repos(channel)
    if not linked:
        return "No repositories are linked to this channel. An admin can add one with `/agent repo add NAME URL`."
    lines = [f"• `{escape(r.repo.name)}`{' (default)' if r.is_default else ''}: {describe(r.repo)}" for r in linked]
    return "*Repositories of this channel*\n" + "\n".join(lines)
