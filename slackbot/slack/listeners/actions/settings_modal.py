"""`/agent settings` and the App Home's Settings button open the settings modal (admins only); its
submission is checked field by field (errors on their fields), then saved, and the admin is told
what changed. Saved values are read at each use, so every process applies them at once."""

from __future__ import annotations

import json
import logging
from typing import Any

from ....runs.effective import SettingInvalid, check
from ....runs.setting_fields import BY_KEY
from ....store import SavedSettings
from ...access import tell
from ...deps import Deps
from ...intake import reason
from ...mrkdwn import escape
from ...settings_view import CALLBACK_ID, CHANNEL, WORKSPACE, block_id, read_values, settings_view

log = logging.getLogger(__name__)
ACTION_ID = "settings_open"  # the App Home's button
REFUSED = ("Only admins can change settings. Ask a workspace admin, an owner or one of the people in "
           "SLACKBOT_ADMINS.")


async def open_settings(deps: Deps, command: dict[str, Any], respond: Any) -> None:
    """`/agent settings`: the modal, or an ephemeral reason why not."""
    problem = await open_modal(deps, command["user_id"], command.get("trigger_id", ""),
                               command.get("channel_id", ""))
    if problem:
        await respond(problem)


async def open_modal(deps: Deps, user: str, trigger_id: str, channel: str) -> str:
    """Opens the modal; "" when it opened, otherwise what to tell the person."""
    if not await deps.is_admin(user):
        return REFUSED
    # A direct message has no channel overrides: its settings are the workspace's.
    scope = channel if channel[:1] in ("C", "G") else ""
    try:
        workspace, own = await SavedSettings(deps.store).scoped(scope)
        await deps.client.views_open(trigger_id=trigger_id, view=settings_view(deps.settings, workspace, scope, own))
    except Exception as exc:
        log.warning("could not open the settings modal: %s", exc)
        return f"Sorry, I could not open the settings: {escape(reason(exc))}"
    return ""


def button_handler(deps: Deps):
    async def settings_open(ack, body: dict[str, Any]) -> None:
        await ack()
        user = body.get("user", {}).get("id", "")
        problem = await open_modal(deps, user, body.get("trigger_id", ""), "")
        if problem:
            await tell(deps, channel=user, user=user, text=problem)
    return settings_open


def handler(deps: Deps):
    async def settings_save(ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = body.get("user", {}).get("id", "")
        if not await deps.is_admin(user):  # checked again: a submission can be forged
            await ack(response_action="errors", errors={f"{WORKSPACE}:model": REFUSED})
            return
        values = read_values(view)
        checked: dict[tuple[str, str], Any] = {}
        errors: dict[str, str] = {}
        for (scope, key), value in values.items():
            field = BY_KEY[key]
            if scope == CHANNEL and field.scope != "channel":
                errors[block_id(scope, field)] = "This setting is for the whole workspace only."
                continue
            try:
                checked[(scope, key)] = None if value is None else check(deps.settings, key, value)
            except SettingInvalid as exc:
                errors[block_id(scope, field)] = str(exc)[:300]
            except Exception:  # a validator's surprise must not lose the answer
                log.exception("checking the setting %s failed", key)
                errors[block_id(scope, field)] = "Not a valid value."
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        channel = _channel(view)
        try:
            changed = await save(deps, checked, channel=channel, user=user)
        except Exception as exc:  # never silent
            log.exception("saving settings failed")
            await tell(deps, channel=channel or user, user=user,
                       text=f"Sorry, the settings were not saved: {escape(reason(exc))}")
            return
        await tell(deps, channel=channel or user, user=user, text=summary(changed, channel))
    return settings_save


async def save(deps: Deps, checked: dict[tuple[str, str], Any], *, channel: str,
               user: str) -> list[tuple[str, str, Any]]:
    """Saves what differs from what is saved; returns (scope, key, value) of each change."""
    saved = SavedSettings(deps.store)
    workspace, own = await saved.scoped(channel)
    changed = []
    for (scope, key), value in checked.items():
        if scope == CHANNEL and not channel:
            continue
        current = (own if scope == CHANNEL else workspace).get(key)
        if value == current:
            continue
        await saved.save(key, value, scope=channel if scope == CHANNEL else "", by=user)
        changed.append((scope, key, value))
    return changed


def summary(changed: list[tuple[str, str, Any]], channel: str) -> str:
    if not changed:
        return "Settings: nothing changed."
    lines = []
    for scope, key, value in changed:
        where = f"<#{channel}>" if scope == CHANNEL else "workspace"
        shown = "default" if value is None else escape(_shown(value))
        lines.append(f"• {escape(BY_KEY[key].label)} ({where}): {shown}")
    return "Settings saved; the next task uses them.\n" + "\n".join(lines)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)[:200] or "(empty)"


def _channel(view: dict[str, Any]) -> str:
    try:
        channel = json.loads(view.get("private_metadata") or "{}").get("channel", "")
    except ValueError:
        return ""
    return channel if isinstance(channel, str) and channel[:1] in ("C", "G") else ""
