"""A pick from the repository chooser. Only the requester may answer."""

from __future__ import annotations

from typing import Any

from ...deps import Deps
from ...intake import post_status_and_enqueue
from ...repo_choice import NO_REPO, thread_fields
from ....runs.worker import task_ref


def handler(deps: Deps):
    async def repo_choose(ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        user = body["user"]["id"]
        channel = (body.get("channel") or {}).get("id", "")
        message = body.get("message") or {}
        task_id, _, repo_id = action.get("value", "").partition(":")
        task = await deps.store.get_task(int(task_id)) if task_id.isdigit() else None
        if task is None or task.status != "choosing":
            return  # answered already (a double click) or gone
        if user != task.requester:
            await deps.client.chat_postEphemeral(channel=channel, user=user, thread_ts=message.get("thread_ts"),
                                                 text=f"Only <@{task.requester}> can choose for task #{task.id}.")
            return
        task = await deps.store.transition(task.id, ("choosing",), status="pending")
        if task is None:
            return  # a double click: the first one won
        repo = await deps.repos.get(int(repo_id)) if repo_id.isdigit() and int(repo_id) != NO_REPO else None
        fields = thread_fields(repo.id, repo.url, repo.branch) if repo else thread_fields(None, "", "")
        thread = await deps.store.update_thread(task.thread_id, **fields)
        choice = f"`{repo.name}`" if repo else "no repository (a scratch workspace)"
        text = f"Task #{task.id} works on {choice}."
        deps.renderer.updater.submit(channel, message.get("ts", ""), text,
                                     [{"type": "section", "text": {"type": "mrkdwn", "text": text}}], final=True)
        await post_status_and_enqueue(deps, task_ref(task, thread))
    return repo_choose
