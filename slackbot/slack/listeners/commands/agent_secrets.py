"""`/agent secrets NAME`: opens the secrets form of a repository linked to this channel (admins only).
Values are typed into the form, never into a command."""

from __future__ import annotations

import logging
from typing import Any

from ....secret_box import SecretBox, SecretsKeyError
from ....store import RepoSecrets
from ...deps import Deps
from ...intake import reason
from ...mrkdwn import compose, escape, unescape
from ...options import unwrap
from ..actions.secrets_modal import REFUSED, secrets_view

log = logging.getLogger(__name__)


async def open_secrets(deps: Deps, command: dict[str, Any], respond: Any) -> None:
    try:
        text = await _open(deps, command)
    except Exception as exc:  # never silent
        log.exception("/agent secrets failed")
        text = f"Sorry, that did not work: {escape(reason(exc))}"
    if text:
        await respond(deps.redactor.text(text))


async def _open(deps: Deps, command: dict[str, Any]) -> str:
    """Opens the form; "" when it opened, otherwise what to tell the person."""
    user, channel = command["user_id"], command.get("channel_id", "")
    if not await deps.is_admin(user):
        return REFUSED
    try:
        SecretBox(deps.settings.secrets_key)
    except SecretsKeyError as exc:
        return escape(str(exc))
    words = unescape(command.get("text") or "").split()[1:]
    linked = await deps.repos.channel_repos(channel)
    names = ", ".join(compose("`", r.repo.name, "`") for r in linked) or "none yet"
    usage = f"Usage: `/agent secrets NAME`, NAME a repository linked here ({names}). The form asks for the values."
    if len(words) != 1:
        # Whatever follows the name is dropped unread: a value belongs in the form, not in a command.
        return ("Nothing was stored: type values into the form, never into a command. " if len(words) > 1
                else "") + usage
    name = unwrap(words[0])
    repo = next((r.repo for r in linked if r.repo.name == name), None)
    if repo is None or repo.id is None:  # only this channel's links, as `/agent repo set`
        return compose("No repository named `", name, "` is linked here. ") + usage
    view = secrets_view(repo, channel, await RepoSecrets(deps.store).listed(repo.id))
    try:
        await deps.client.views_open(trigger_id=command.get("trigger_id", ""), view=view)
    except Exception as exc:
        log.warning("views.open for /agent secrets failed: %s", exc)
        return f"I could not open the form ({escape(reason(exc))}); try the command again."
    return ""
