"""A pick from the repository chooser. Only the requester may answer."""

from __future__ import annotations

import logging
from typing import Any

from ...access import may_start
from ...deps import Deps
from ...ids import parse_id
from ...intake import post_status_and_enqueue
from ...mrkdwn import clip, compose, escape, mention
from ...repo_choice import NO_REPO, thread_fields
from ....protocol import TaskStatus

log = logging.getLogger(__name__)


def handler(deps: Deps):
    async def repo_choose(ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        user = body["user"]["id"]
        channel = (body.get("channel") or {}).get("id", "")
        message = body.get("message") or {}

        async def tell(text: str) -> None:  # only the person who pressed sees it
            try:
                await deps.client.chat_postEphemeral(channel=channel, user=user, thread_ts=message.get("thread_ts"),
                                                     text=text)
            except Exception:
                log.exception("could not answer the repository choice of %s", user)

        raw_task, _, raw_repo = str(action.get("value", "")).partition(":")
        task_id, repo_id = parse_id(raw_task), parse_id(raw_repo)
        task = await deps.store.get_task(task_id) if task_id is not None else None
        if task is None or task.channel != channel or repo_id is None:
            await tell(f"There is no task #{clip(escape(raw_task), 40)} to choose for here.")
            return
        if task.status != TaskStatus.CHOOSING:
            return  # answered already (a double click): the message says which
        assert task.id is not None  # read from the store
        if user != task.requester:
            await tell(compose("Only ", mention(task.requester), f" can choose for task #{task.id}."))
            return
        if why := await may_start(deps, user=user, channel=channel):  # (settings may have changed since)
            await tell(why)
            return
        # Only a repository linked in this channel: a stale or forged value must not bind another's.
        linked = {r.repo.id: r.repo for r in await deps.repos.channel_repos(channel)}
        repo = linked.get(repo_id) if repo_id != NO_REPO else None
        if repo_id != NO_REPO and repo is None:
            await tell("That repository is no longer known; pick another one.")
            return
        binding = thread_fields(repo.id, repo.url, repo.branch) if repo else thread_fields(None, "", "")
        chosen = await deps.runs.choose_repo(task.id, binding)
        if chosen is None:
            return  # a double click: the first one won
        choice = f"`{escape(repo.name)}`" if repo else "no repository (a scratch workspace)"
        text = f"Task #{task.id} works on {choice}."
        deps.renderer.updater.submit(channel, message.get("ts", ""), text,
                                     [{"type": "section", "text": {"type": "mrkdwn", "text": text}}], final=True)
        await post_status_and_enqueue(deps, chosen)
    return repo_choose
