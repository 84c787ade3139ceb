"""The automation form: `/automation` alone opens it; its submission is checked field by field
(each error shows on its field) and creates the automation, confirmed ephemerally in the channel
the command came from (a webhook's secret included, so only its creator sees it)."""

from __future__ import annotations

import inspect
import json
import logging
from typing import Any, Awaitable, Callable

from ...access import may_start, tell
from ...deps import Deps
from ...ids import parse_id
from ...intake import reason
from ....store import LinkedRepo
from ..commands.automation_forms import (
    EXAMPLE, NAME_MAX, NOT_HERE, Draft, FormError, check_branch, check_name, check_notify, read_when, refusal,
    repo_home, repo_linked, repo_named, resolve_channel, user_tz,
)

log = logging.getLogger(__name__)
CALLBACK_ID = "automation_create"
NO_REPO = "none"
REPOS_LISTED = 99  # a static select holds 100 options, one is "No repository"
Create = Callable[[Deps, Draft, str], Awaitable[str]]


def form_view(channel: str, repos: list[LinkedRepo], tz: str) -> dict[str, Any]:
    """The modal; `repos`: the channel's (no repository block when there are none)."""
    blocks: list[dict[str, Any]] = [
        _input("name", "Name", _text(max_length=NAME_MAX, placeholder="Morning triage")),
        _input("prompt", "Prompt", _text(multiline=True, max_length=3000,
                                         placeholder="Triage the issues opened since yesterday and summarise them")),
        _input("trigger", "Trigger", _text(max_length=500, placeholder="every weekday at 09:00"),
               hint=f'every day at 09:00 · every monday at 8:30 · every 2 hours · "0 9 * * mon-fri" · '
                    f'on message in #alerts matching "ERROR" · on webhook. Times are in your time zone ({tz}) '
                    "unless you add tz=Area/City."),
    ]
    if repos:
        options = [_option(f"{r.repo.name}{' (default)' if r.is_default else ''}", str(r.repo.id))
                   for r in repos[:REPOS_LISTED]]
        none = _option("No repository", NO_REPO)
        default = next((o for o, r in zip(options, repos) if r.is_default), none)
        blocks.append(_input("repo", "Repository", {"type": "static_select", "action_id": "value",
                                                    "options": [*options, none], "initial_option": default}))
    blocks += [
        _input("branch", "Branch", _text(max_length=100, placeholder="the repository's branch"), optional=True),
        _input("channel", "Channel for results", {
            "type": "conversations_select", "action_id": "value", "initial_conversation": channel,
            "filter": {"include": ["public", "private"], "exclude_bot_users": True}}),
        _input("notify", "Tell the channel", {
            "type": "radio_buttons", "action_id": "value",
            "options": [_option("Always", "always"), _option("Only when something changed or failed", "changes")],
            "initial_option": _option("Always", "always")}),
        _input("enabled", "Enabled", {
            "type": "checkboxes", "action_id": "value", "options": [_option("Run it", "enabled")],
            "initial_options": [_option("Run it", "enabled")]}, optional=True),
    ]
    return {"type": "modal", "callback_id": CALLBACK_ID, "private_metadata": json.dumps({"channel": channel}),
            "title": _plain("New automation"), "submit": _plain("Create"), "close": _plain("Cancel"),
            "blocks": blocks}


async def open_form(deps: Deps, command: dict[str, Any]) -> str:
    """Opens the form; "" when it opened, otherwise what to tell the person."""
    user, channel = command["user_id"], command.get("channel_id", "")
    if deps.automations is None:
        return NOT_HERE
    if why := await refusal(deps, user) or await may_start(deps, user=user, channel=None):
        return why
    view = form_view(channel, await deps.repos.channel_repos(channel), await user_tz(deps, user))
    try:
        await deps.client.views_open(trigger_id=command.get("trigger_id", ""), view=view)
    except Exception as exc:
        log.warning("views.open for /automation failed: %s", exc)
        return (f"I could not open the form ({reason(exc)}). The text form does the same, for example {EXAMPLE}; "
                "`/automation help` lists them all.")
    return ""


def handler(deps: Deps, create: Create):
    """`create` stores a checked draft and returns its confirmation (the command module's)."""
    async def automation_create(ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = body["user"]["id"]
        try:
            origin = str(json.loads(view.get("private_metadata") or "{}").get("channel", ""))
        except (ValueError, AttributeError):
            origin = ""
        fields = {b.get("block_id") for b in view.get("blocks") or []} or {"name"}
        try:
            draft = await read_form(deps, view, user=user, origin=origin)
            text = await create(deps, draft, user)
        except Problems as exc:
            await ack(response_action="errors", errors=exc.errors)
            return
        except Exception as exc:  # never silent: the form stays open and says what broke
            log.exception("the automation form failed")
            field = "name" if "name" in fields else str(next(iter(fields)))
            await ack(response_action="errors", errors={field: f"Sorry, that did not work: {reason(exc)}"})
            return
        await ack()
        await tell(deps, channel=origin, user=user, text=deps.redactor.text(text))
    return automation_create


class Problems(Exception):
    """Every field's error at once, keyed by block id."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


async def read_form(deps: Deps, view: dict[str, Any], *, user: str, origin: str) -> Draft:
    if deps.automations is None:
        raise Problems({"name": NOT_HERE})
    if why := await refusal(deps, user) or await may_start(deps, user=user, channel=None):
        raise Problems({"name": why})
    if not origin:  # private_metadata is ours: only a form from elsewhere lacks it
        raise Problems({"name": "This form lost its channel; open it again with `/automation`."})
    values = (view.get("state") or {}).get("values") or {}
    blocks = {b.get("block_id") for b in view.get("blocks") or []} | set(values)
    errors: dict[str, str] = {}

    async def check(field: str, fn: Callable[[], Any]) -> Any:
        """fn()'s value (awaited when it is a coroutine); None, with the error noted, when it fails."""
        try:
            value = fn()
            return await value if inspect.isawaitable(value) else value
        except FormError as exc:
            errors.setdefault(exc.field if exc.field in blocks else field, str(exc))
            return None

    name = await check("name", lambda: check_name(_value(values, "name")))
    prompt = _value(values, "prompt").strip()
    if not prompt:
        errors["prompt"] = "What should it do? Write the task here, for example: triage new issues and summarise."
    # Form values can be forged: the channel picked (or the one the form came from) must be one the
    # person is in, private or public, before results go there or its repositories are used.
    picked = _selected(values, "channel", "selected_conversation") or origin
    found = await check("channel", lambda: resolve_channel(deps, picked, genuine=True, field="channel", member=user))
    target = found[0] if found else origin
    tz = await user_tz(deps, user)
    when = await check("trigger", lambda: read_when(deps, _value(values, "trigger"), tz=tz, escaped=False,
                                                    with_prompt=False))
    repo = (_selected(values, "repo", "selected_option") or {}).get("value")
    repo_id = parse_id(repo) if repo and repo != NO_REPO else None
    home = repo_home(when[0], target) if when else target
    if repo == NO_REPO:
        chosen = None
    elif repo_id is not None:
        chosen = await check("repo", lambda: repo_linked(deps, home, repo_id))
    else:  # no repository block (none linked where the form opened): that channel's default
        chosen = await check("repo", lambda: repo_named(deps, home, None))
    branch = await check("branch", lambda: check_branch(_value(values, "branch")))
    notify = await check("notify", lambda: check_notify(
        (_selected(values, "notify", "selected_option") or {}).get("value") or "always"))
    enabled = "enabled" not in values or any(
        o.get("value") == "enabled" for o in _selected(values, "enabled", "selected_options") or [])
    for channel, field in ((target, "channel"), (when[0].watch_channel if when else "", "trigger")):
        if channel and not errors and (why := await may_start(deps, user=user, channel=channel)):
            errors[field] = why
    if errors:
        raise Problems(errors)
    return Draft(name=name, prompt=prompt, when=when[0], channel=target, repo_id=chosen, branch=branch,
                 notify=notify, enabled=enabled)


def _value(values: dict[str, Any], block: str) -> str:
    return str(((values.get(block) or {}).get("value") or {}).get("value") or "")


def _selected(values: dict[str, Any], block: str, key: str) -> Any:
    return ((values.get(block) or {}).get("value") or {}).get(key)


def _input(block_id: str, label: str, element: dict[str, Any], *, optional: bool = False,
           hint: str = "") -> dict[str, Any]:
    block = {"type": "input", "block_id": block_id, "label": _plain(label), "element": element,
             "optional": optional}
    if hint:
        block["hint"] = _plain(hint)
    return block


def _text(*, multiline: bool = False, max_length: int, placeholder: str) -> dict[str, Any]:
    return {"type": "plain_text_input", "action_id": "value", "multiline": multiline, "max_length": max_length,
            "placeholder": _plain(placeholder)}


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": _plain(text[:75]), "value": value}


def _plain(text: str) -> dict[str, str]:
    return {"type": "plain_text", "text": text}
