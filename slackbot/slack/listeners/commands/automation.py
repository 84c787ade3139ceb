"""`/automation …`: create, list, show, pause, resume, delete and run automations; alone, it opens
the form. Every answer is ephemeral, and every bad input is answered with an example."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from ...access import may_start
from ...deps import Deps
from ...home import ICONS, age
from ...ids import parse_id
from ...intake import reason
from ...mrkdwn import Mrkdwn, clip, compose, escape, link, mention
from ....automations.runner import describe
from ....automations.service import Automations
from ....store import Automation
from ..actions.automation_modal import open_form
from .automation_forms import EXAMPLE, EXAMPLE_HOOK, EXAMPLE_WATCH, NOT_HERE, Draft, FormError, read_text, refusal

log = logging.getLogger(__name__)

HELP = f"""*Automations* — work I start by myself and post in a channel.
• `/automation` — a form to create one
• `/automation add WHEN PROMPT [name="…"] [repo=NAME] [branch=B] [notify=always|changes] [tz=Area/City] [channel=#channel]`
   WHEN is `"0 9 * * mon-fri"` (cron, in your time zone unless tz= says another), `every day at 09:00`, `every monday at 8:30`, `every weekday at 9am`, `every 2 hours`, `on message in #channel [matching "REGEX"]` or `on webhook`.
   For example {EXAMPLE}, {EXAMPLE_WATCH} or {EXAMPLE_HOOK}
• `/automation list` — this channel's automations
• `/automation show ID` — its trigger, prompt, next runs and last results
• `/automation pause ID` · `resume ID` · `delete ID` · `run ID` (now) — its creator or an admin
• `/automation help` — this message"""
USAGE_ID = "Usage: `/automation {verb} ID` (the number shown as #ID in `/automation list`), for example " \
           "`/automation {verb} 3`."
LISTED = 40
NOTIFY = {"always": "after every run", "changes": "only when something changed or failed"}
HOOK_PATH = "/hooks/automations/{id}"
CURL = ("curl -X POST -H \"Authorization: Bearer {secret}\" -H \"Content-Type: application/json\" "
        "-d '{{\"text\": \"hello\"}}' https://YOUR-BOT{path}")


def handler(deps: Deps):
    async def automation(ack, command: dict[str, Any], respond) -> None:
        await ack()
        try:
            text = await answer(deps, command)
        except Exception as exc:  # never silent: an answer, even when something broke
            log.exception("/automation failed")
            text = f"Sorry, that did not work: {escape(reason(exc))}"
        if text:
            # Answers go to the response URL, not through the Web API client that redacts: redact here.
            await respond(deps.redactor.text(text))
    return automation


async def answer(deps: Deps, command: dict[str, Any]) -> str:
    """The answer to one `/automation` command as mrkdwn; "" when the form opened instead."""
    raw = (command.get("text") or "").strip()
    channel, user = command.get("channel_id", ""), command["user_id"]
    if not raw:
        return await open_form(deps, command)
    verb, rest = (re.split(r"\s+", raw, maxsplit=1) + [""])[:2]
    verb = verb.lower()
    if verb not in ("add", "list", "show", "pause", "resume", "delete", "run"):
        return HELP if verb == "help" else f"Unknown command `{escape(verb[:40])}`.\n\n{HELP}"
    if deps.automations is None:
        return NOT_HERE
    if verb == "add":
        return await add(deps, rest, user=user, channel=channel)
    if verb == "list":
        return await list_here(deps, deps.automations, channel)
    args = rest.split()
    automation_id = parse_id(args[0]) if len(args) == 1 else None
    if automation_id is None:
        return USAGE_ID.format(verb=verb)
    a = await deps.automations.store.get(automation_id)
    if a is None:
        return f"There is no automation #{automation_id}. `/automation list` shows this channel's."
    if verb == "show":
        return await show(deps, deps.automations, a, user=user, channel=channel)
    return await change(deps, deps.automations, verb, a, user=user, channel=channel)


async def add(deps: Deps, raw: str, *, user: str, channel: str) -> str:
    if why := await refusal(deps, user) or await may_start(deps, user=user, channel=None):
        return why
    try:
        draft = await read_text(deps, raw, user=user, channel=channel)
    except FormError as exc:
        return escape(str(exc))
    if why := await may_start_runs(deps, user, draft.channel, draft.when.watch_channel):
        return why
    return await create(deps, draft, user)


async def may_start_runs(deps: Deps, user: str, *channels: str) -> str:
    """Why `user` may not have an automation start tasks in these channels (where its runs post,
    and the channel it watches, whose threads its runs answer in); "" when they may."""
    for channel in dict.fromkeys(c for c in channels if c):
        if why := await may_start(deps, user=user, channel=channel):
            return why
    return ""


async def create(deps: Deps, draft: Draft, user: str) -> str:
    """Stores the automation; the confirmation, with a webhook's secret (shown this once)."""
    assert deps.automations is not None
    when = draft.when
    row = Automation(name=draft.name, prompt=draft.prompt, channel=draft.channel, creator=user,
                     trigger=when.trigger, cron=when.cron, tz=when.tz or "UTC", label=when.label,
                     watch_channel=when.watch_channel, pattern=when.pattern, repo_id=draft.repo_id,
                     branch=draft.branch, notify=draft.notify, enabled=draft.enabled)
    a, secret = await deps.automations.create(row)
    return await confirmation(deps, a, secret, when.note)


async def confirmation(deps: Deps, a: Automation, secret: str, note: str = "") -> str:
    lines: list[str] = [
        compose(f"Created automation *#{a.id}* “", a.name, "”; its runs post in ", channel_ref(a.channel), "."),
        compose("Trigger: ", trigger_text(a), *next_run(a)),
        await details(deps, a)]
    if not a.enabled:
        lines.append(f"It is paused: `/automation resume {a.id}` starts it.")
    if note:
        lines.append(note)
    if secret:
        path = HOOK_PATH.format(id=a.id)
        lines += [f"Webhook: `POST {path}` on the bot's address, with `Authorization: Bearer {secret}`.",
                  "This secret is shown only now and only to you (I keep just its hash). For example:",
                  f"```{escape(CURL.format(secret=secret, path=path))}```"]
    lines.append(f"`/automation show {a.id}` · `/automation run {a.id}` · `/automation pause {a.id}` · "
                 f"`/automation delete {a.id}`")
    return "\n".join(lines)


async def list_here(deps: Deps, automations: Automations, channel: str) -> str:
    rows = await automations.store.in_channel(channel)
    if not rows:
        return f"No automations post in this channel yet. Create one with `/automation` (a form) or {EXAMPLE}."
    lines: list[str] = [compose(f"• *#{a.id}* ", clip(a.name, 80), " — ", trigger_text(a), " · ", state(a))
                        for a in rows[:LISTED]]
    if len(rows) > LISTED:
        lines.append(f"…and {len(rows) - LISTED} more.")
    return "*Automations in this channel*\n" + "\n".join(lines)


async def show(deps: Deps, automations: Automations, a: Automation, *, user: str, channel: str) -> str:
    assert a.id is not None  # read from the store
    if a.channel != channel and not await _may_see(deps, a, user):
        return compose(f"Automation #{a.id} posts in ", channel_ref(a.channel), f"; run `/automation show {a.id}` "
                       "there (or ask its creator, ", mention(a.creator), ").")
    lines: list[str] = [
        compose(f"*#{a.id}* “", a.name, "” — ", state(a)), *_elsewhere(a, channel),
        compose("Trigger: ", trigger_text(a)), await details(deps, a),
        compose("Created by ", mention(a.creator), f" · {a.runs} run{'s' if a.runs != 1 else ''} so far"),
        "Prompt:", "> " + clip(escape(a.prompt), 1500).replace("\n", "\n> ")]
    times = Automations.next_times(a, 3)
    if times:
        lines.append("Next runs: " + " · ".join(when_text(t) for t in times))
    runs = await automations.store.recent_runs(a.id, 5)
    lines.append("Last results:" if runs else "No runs yet.")
    for run, task in runs:
        status = (f"could not start: {escape(clip(run.error, 200))}" if run.error and not task
                  else f"{ICONS.get(task.status, '•')} {task.status}" if task else "starting")
        thread = f" · {link(await thread_link(deps, run.channel, run.thread_ts), 'thread')}" if run.thread_ts else ""
        started = f"started by {describe(run.cause)} {age(run.created_at)}"
        lines.append(f"• run #{run.number}, {started} — {status}{thread}")
    return "\n".join(lines)


async def change(deps: Deps, automations: Automations, verb: str, a: Automation, *, user: str, channel: str) -> str:
    assert a.id is not None  # read from the store
    if not automations.may_change(a, user, admin=await deps.is_admin(user)):
        return compose(f"Only the creator of automation #{a.id} (", mention(a.creator),
                       f") or an admin can {verb} it.")
    if verb in ("run", "resume") and (refused := await refusal(deps, user)
                                      or await may_start_runs(deps, user, a.channel, a.watch_channel)):
        return refused  # starting work needs what creating it needs (a creator since made a guest)
    where = compose(" ", *_elsewhere(a, channel)) if a.channel != channel else Mrkdwn("")
    named = compose(f"automation *#{a.id}* “", clip(a.name, 80), "”")
    if verb == "delete":
        await automations.store.delete(a.id)
        return compose("Deleted ", named, ". The threads of its past runs stay.", where)
    if verb == "run":
        run = await automations.run_now(a)
        if run is None:
            return compose("That run of ", named, " was started already.", where)
        paused = " (it stays paused)" if not a.enabled else ""
        return compose(f"Started run #{run.number} of ", named, paused, ": its thread is in ",
                       channel_ref(a.channel), ".", where)
    enable = verb == "resume"
    if a.enabled == enable:
        return compose(named, f" is {'running' if enable else 'paused'} already.", where)
    updated = await automations.store.update(a.id, enabled=enable)
    if updated is None:
        return f"There is no automation #{a.id} any more."
    if not enable:
        return compose("Paused ", named, f"; `/automation resume {a.id}` starts it again.", where)
    return compose("Resumed ", named, ": ", trigger_text(updated), *next_run(updated), ".", where)


async def details(deps: Deps, a: Automation) -> str:
    repo = await deps.repos.get(a.repo_id) if a.repo_id is not None else None
    where = "none (a scratch workspace)" if a.repo_id is None else \
        f"`{escape(repo.name)}`" if repo else "one that is no longer linked"
    branch = f", branch `{escape(a.branch)}`" if a.branch else ""
    return f"Repository: {where}{branch} · Tells the channel {NOTIFY.get(a.notify, a.notify)}"


def trigger_text(a: Automation) -> Mrkdwn:
    if a.trigger == "message":
        pattern = ("", " matching `", a.pattern, "`") if a.pattern else ("",)
        return compose("on each new message in ", channel_ref(a.watch_channel), *pattern)
    if a.trigger == "webhook":
        return Mrkdwn("on webhook")
    return compose(a.label or a.cron)


def state(a: Automation) -> str:
    if not a.enabled:
        return "⏸ paused"
    times = Automations.next_times(a, 1)
    return f"enabled, next {when_text(times[0])}" if times else "enabled"


def next_run(a: Automation) -> tuple[str, ...]:
    times = Automations.next_times(a, 1)
    return (f" · next run {when_text(times[0])}",) if times else ()


def when_text(t: datetime) -> str:
    return f"{t:%a} {t.day} {t:%b %Y} {t:%H:%M} {t.tzname()}"


def channel_ref(channel: str) -> Mrkdwn:
    return Mrkdwn(f"<#{channel}>") if re.fullmatch(r"[CGD][A-Z0-9]+", channel or "") else compose(channel)


async def thread_link(deps: Deps, channel: str, ts: str) -> str:
    """The thread's permalink; Slack's redirect to it when the permalink cannot be had."""
    try:
        return str((await deps.client.chat_getPermalink(channel=channel, message_ts=ts))["permalink"])
    except Exception as exc:
        log.info("no permalink for %s/%s: %s", channel, ts, exc)
        return f"https://slack.com/app_redirect?channel={channel}&message_ts={ts}"


def _elsewhere(a: Automation, channel: str) -> list[Mrkdwn]:
    return [compose("(It belongs to ", channel_ref(a.channel), ", not this channel.)")] if a.channel != channel else []


async def _may_see(deps: Deps, a: Automation, user: str) -> bool:
    """Another channel's automation: shown when that channel is public, else to its creator or an admin
    (its prompt and threads are that channel's)."""
    if a.creator == user or await deps.is_admin(user):
        return True
    try:
        info = (await deps.client.conversations_info(channel=a.channel)).get("channel") or {}
    except Exception:
        return False
    return bool(info) and not (info.get("is_private") or info.get("is_im") or info.get("is_mpim"))
