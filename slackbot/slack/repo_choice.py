"""Which repository a new agent thread works on: named in the mention, the channel's default,
its only one, or, when several and no default, the requester's pick from buttons."""

from __future__ import annotations

from dataclasses import dataclass

from ..runs.effective import effective
from ..store import RepoBinding
from .deps import Deps
from .mrkdwn import compose, mention
from .options import MentionOptions, looks_like_url

NO_REPO = 0  # button value for "no repository: a scratch workspace"


@dataclass(frozen=True)
class Resolution:
    repo: RepoBinding | None = None  # the agent thread's repository; None: scratch workspace
    ask: list[tuple[int, str]] | None = None  # (repo id, name) choices
    problem: str = ""  # plain text for `say`, which escapes it


def thread_fields(repo_id: int | None, url: str, branch: str, trusted: bool = True) -> RepoBinding:
    """`trusted`: an admin's repository (credentials, push); a channel member's URL is not."""
    return RepoBinding(repo_id=repo_id, repo_url=url, base_branch=branch, repo_trusted=trusted)


async def model_refusal(deps: Deps, model: str, channel: str) -> str:
    """Why `model=` cannot be used in `channel` ("" when it can; plain text: `say` escapes it).
    Only the channel's default model and the models an admin allowed there: its saved `model` and
    `models`, else the workspace's, else SLACKBOT_MODEL and SLACKBOT_MODELS."""
    if not model:
        return ""
    allowed = (await effective(deps.store, deps.settings, channel)).allowed_models
    if model in allowed:
        return ""
    return (f"The model `{model[:80]}` is not available here; use one of: "
            + ", ".join(f"`{m}`" for m in allowed) + ". An admin can allow more in the settings.")


async def resolve(deps: Deps, channel: str, opts: MentionOptions, user: str = "") -> Resolution:
    refused = await model_refusal(deps, opts.model, channel)
    if refused:
        return Resolution(problem=refused)
    if opts.repo:
        if looks_like_url(opts.repo):
            trusted = await deps.is_admin(user)
            problem = await deps.runs.url_refusal(opts.repo, trusted=trusted)
            if problem:
                return Resolution(problem=problem)
            return Resolution(thread_fields(None, opts.repo, opts.branch, trusted))
        repo = await deps.repos.by_name(channel, opts.repo)
        if repo is None:
            names = ", ".join(f"`{r.repo.name}`" for r in await deps.repos.channel_repos(channel)) or "none"
            return Resolution(problem=f"I do not know a repository named `{opts.repo}` "
                                      f"(this channel has: {names}). Use a name or a URL.")
        return Resolution(thread_fields(repo.id, repo.url, opts.branch or repo.branch))
    linked = await deps.repos.channel_repos(channel)
    chosen = next((r.repo for r in linked if r.is_default), None)
    if chosen is None and len(linked) == 1:
        chosen = linked[0].repo
    if chosen is not None:
        return Resolution(thread_fields(chosen.id, chosen.url, opts.branch or chosen.branch))
    if linked:
        return Resolution(ask=[(r.repo.id, r.repo.name) for r in linked if r.repo.id is not None])
    return Resolution(None)


def chooser_blocks(task_id: int, requester: str, choices: list[tuple[int, str]]) -> tuple[str, list[dict]]:
    text = compose(mention(requester), f", which repository should task #{task_id} work on?")
    buttons = [{"type": "button", "action_id": f"repo_choose_{i}", "value": f"{task_id}:{repo_id}",
                "text": {"type": "plain_text", "text": name[:75]}}
               for i, (repo_id, name) in enumerate(choices[:24])]
    buttons.append({"type": "button", "action_id": f"repo_choose_{len(buttons)}", "value": f"{task_id}:{NO_REPO}",
                    "text": {"type": "plain_text", "text": "No repository"}})
    return text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}},
                  {"type": "actions", "block_id": f"repo_choice_{task_id}", "elements": buttons}]
