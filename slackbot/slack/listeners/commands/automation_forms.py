"""What `/automation add …` and the automation modal say, read into a new automation: the trigger
(a schedule, a watched channel or a webhook), the options, and the checks (who may, which
repository, which channel). Every error names its field, so the modal shows it on that field.

Text from the command arrives escaped by Slack (`should_escape: true`): a `<#C…|name>` in it is a
channel reference Slack made, one the person can see; the same characters typed by hand arrive as
`&lt;#…&gt;`. The modal's plain text inputs arrive as typed, so nothing in them is taken as a
reference Slack made.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Callable, TypeVar

from ...deps import Deps
from ...intake import reason
from ...mrkdwn import unescape
from ....automations.matching import PatternError, compile_pattern
from ....automations.when import ScheduleError, parse_schedule, parse_when, validate_tz

log = logging.getLogger(__name__)
T = TypeVar("T")

NAME_MAX = 80
DEFAULT_NAME_MAX = 40
PAGES_MAX = 50  # conversations.list pages looked through for a #name (200 channels each)
EXAMPLE = "`/automation add every day at 09:00 summarise yesterday's merged PRs repo=app`"
EXAMPLE_WATCH = '`/automation add on message in #alerts matching "ERROR|FATAL" find the cause`'
EXAMPLE_HOOK = "`/automation add on webhook triage the issue in the body`"
QUOTED = '["\u201c\u201d]([^"\u201c\u201d]*)["\u201c\u201d]'
_OPTION = re.compile(rf'{QUOTED}|(?<!\S)(name|repo|branch|notify|tz|channel)=({QUOTED}|<[^>]*>|\S*)',
                     re.IGNORECASE)
_ON = re.compile(r"on(?!\S)", re.IGNORECASE)
_ON_WEBHOOK = re.compile(r"on\s+webhooks?(?!\S)", re.IGNORECASE)
_ON_MESSAGE = re.compile(r"on\s+(?:new\s+)?messages?\s+in\s+(<#[^>]*>|\S+)", re.IGNORECASE)
_MATCHING = re.compile(rf"\s*matching\s+(?:{QUOTED}|(\S+))", re.IGNORECASE)
_REF = re.compile(r"^<#([CG][A-Z0-9]+)(?:\|([^>]*))?>$")
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]+$")
_BRANCH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,99}$")
NOT_HERE = "Automations are not available in this bot process. Ask an admin to check the bot's setup."


class FormError(ValueError):
    """Bad input: `field` is the modal block it belongs to; the message says why, with an example."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class When:
    trigger: str  # schedule | message | webhook
    label: str  # the trigger as people read it (plain text)
    cron: str = ""
    tz: str = ""
    watch_channel: str = ""
    pattern: str = ""
    note: str = ""  # told along with the confirmation


@dataclass(frozen=True)
class Draft:
    """A checked automation, ready to store."""

    name: str
    prompt: str
    when: When
    channel: str  # where its runs are posted
    repo_id: int | None
    branch: str
    notify: str
    enabled: bool = True


async def refusal(deps: Deps, user: str) -> str:
    """Why `user` may not create automations; "" when they may."""
    info = await deps.user(user)
    if not info:
        return "I could not look you up in Slack just now, so I cannot create automations for you. Try again."
    if info.get("is_bot"):
        return "Apps and bots cannot create automations."
    if info.get("is_restricted") or info.get("is_ultra_restricted"):
        return "Guests cannot create automations; ask a member of this workspace to make it."
    return ""


async def user_tz(deps: Deps, user: str) -> str:
    """The person's time zone from Slack, or the bot's when Slack has none we know."""
    tz = (await deps.user(user)).get("tz") or ""
    try:
        return validate_tz(tz) if tz else deps.settings.timezone
    except ScheduleError:
        return deps.settings.timezone


def split_options(raw: str) -> tuple[str, dict[str, str]]:
    """`name="…" repo=… branch=… notify=… tz=… channel=…` taken out of the (escaped) command text.
    Quoted text is skipped over, so a pattern or cron in quotes keeps its `=`."""
    found: dict[str, str] = {}

    def take(m: re.Match[str]) -> str:
        if m[2] is None:
            return m[0]  # a quoted string: stays where it is
        value = m[3]
        if value[:1] in '"\u201c\u201d':
            value = value[1:-1]
        found[m[2].lower()] = value
        return ""

    return _OPTION.sub(take, raw), found


async def read_text(deps: Deps, raw: str, *, user: str, channel: str) -> Draft:
    """`/automation add WHEN PROMPT [options]`, as Slack sent it (escaped)."""
    rest, options = split_options(raw)
    tz = validate(lambda: validate_tz(unescape(options["tz"])), "trigger") if "tz" in options \
        else await user_tz(deps, user)
    target = channel
    if "channel" in options:
        ref = options["channel"]
        target, _ = await resolve_channel(deps, unescape(ref), genuine=ref.startswith("<#"), field="channel",
                                          member=user)
    when, prompt = await read_when(deps, rest, tz=tz, escaped=True, with_prompt=True)
    name = unescape(options.get("name", "")).strip() or default_name(prompt)
    repo = unescape(options["repo"]) if "repo" in options else None
    return Draft(name=check_name(name), prompt=prompt, when=when, channel=target,
                 repo_id=await repo_named(deps, repo_home(when, target), repo), branch=check_branch(unescape(options.get("branch", ""))),
                 notify=check_notify(unescape(options.get("notify", "always"))))


async def read_when(deps: Deps, text: str, *, tz: str, escaped: bool, with_prompt: bool) -> tuple[When, str]:
    """The trigger at the start of `text` and the prompt after it (`with_prompt`: one must follow;
    otherwise nothing may). `escaped`: the command's text, as Slack sent it."""
    plain = unescape if escaped else (lambda s: s)
    text = text.strip()
    if not text:
        raise FormError("trigger", "Say when it should run, for example `every day at 09:00`, "
                                   '`"0 9 * * mon-fri"`, `on message in #alerts` or `on webhook`.')
    if hook := _ON_WEBHOOK.match(text):
        return When("webhook", "on webhook"), _prompt(plain(text[hook.end():]), with_prompt, EXAMPLE_HOOK)
    if watch := _ON_MESSAGE.match(text):
        ref = watch[1]
        cid, info = await resolve_channel(deps, plain(ref), genuine=escaped and ref.startswith("<#"),
                                          field="trigger")
        end, pattern = watch.end(), ""
        if matching := _MATCHING.match(text, end):
            pattern = plain(matching[1] if matching[1] is not None else matching[2])
            end = matching.end()
            validate(lambda: compile_pattern(pattern), "trigger")
        label = f"on message in #{info.get('name') or cid}" + (f' matching "{pattern}"' if pattern else "")
        note = "" if info.get("is_member", True) else \
            f"I am not in <#{cid}> yet: invite me there (`/invite @slackbot`) so I see its messages."
        when = When("message", label, watch_channel=cid, pattern=pattern, note=note)
        return when, _prompt(plain(text[end:]), with_prompt, EXAMPLE_WATCH)
    if _ON.match(text):
        raise FormError("trigger", f"After `on` comes `message in #channel` or `webhook`. For example {EXAMPLE_WATCH} "
                                   f"or {EXAMPLE_HOOK}.")
    if with_prompt:
        schedule, prompt = validate(lambda: parse_schedule(plain(text), tz), "trigger")
    else:
        schedule, prompt = validate(lambda: parse_when(plain(text), tz), "trigger"), ""
    return When("schedule", schedule.label, cron=schedule.cron, tz=schedule.tz), prompt


def _prompt(text: str, wanted: bool, example: str) -> str:
    text = text.strip()
    if wanted and not text:
        raise FormError("prompt", f"What should it do? Put the task after the trigger, for example {example}.")
    if not wanted and text:
        raise FormError("trigger", f"I did not understand “{text[:60]}” after the trigger: the task goes in the "
                                   "prompt field.")
    return text


def validate(fn: Callable[[], T], field: str) -> T:
    """`fn()`, with the errors of when.py and matching.py moved to `field`."""
    try:
        return fn()
    except (ScheduleError, PatternError) as exc:
        raise FormError(field, str(exc)) from None


async def resolve_channel(deps: Deps, ref: str, *, genuine: bool, field: str,
                          member: str = "") -> tuple[str, dict]:
    """(id, conversations.info) of a channel written as `<#C…|name>`, `#name` or an id. Only a reference Slack
    made, or a public channel, is taken: a typed id must not reach a private channel. `member`: that
    person must be in the channel (where runs are posted: nobody sends the bot's posts into a
    channel they are not in)."""
    ref = ref.strip()
    if found := _REF.match(ref):
        cid = found[1]
    elif ref.startswith("#") and len(ref) > 1:
        cid = await channel_named(deps, ref[1:], field)
        if cid is None:
            raise FormError(field, f"I found no public channel named {ref}. Pick it from Slack's suggestions "
                                   f"as you type, for example {EXAMPLE_WATCH}.")
    elif _CHANNEL_ID.match(ref):
        cid = ref
    else:
        raise FormError(field, f"“{ref[:60]}” is not a channel; write it as #name, for example {EXAMPLE_WATCH}.")
    info = await _info(deps, cid)
    if not info:
        raise FormError(field, f"I cannot see the channel {ref[:60]}: invite me there first "
                               "(`/invite @slackbot`), then try again.")
    private = info.get("is_private") or info.get("is_im") or info.get("is_mpim")
    if private and not genuine:
        raise FormError(field, f"{ref[:60]} is private: name it with Slack's channel suggestion in "
                               "`/automation add` so I know you are in it.")
    if member and not await is_member(deps, cid, member):
        raise FormError(field, f"You are not in <#{cid}>: results go only to a channel you are in.")
    return cid, info


async def is_member(deps: Deps, channel: str, user: str) -> bool:
    """Whether `user` is in `channel` (conversations.members, page by page); False when Slack cannot tell."""
    cursor = ""
    for _ in range(PAGES_MAX):
        try:
            resp = await deps.client.conversations_members(channel=channel, limit=1000, cursor=cursor or None)
        except Exception as exc:
            log.info("conversations.members %s failed: %s", channel, exc)
            return False
        if user in (resp.get("members") or []):
            return True
        cursor = (resp.get("response_metadata") or {}).get("next_cursor") or ""
        if not cursor:
            return False
    return False


async def _info(deps: Deps, cid: str) -> dict:
    try:
        return (await deps.client.conversations_info(channel=cid)).get("channel") or {}
    except Exception as exc:  # channel_not_found: a private channel without us, or none
        log.info("conversations.info %s failed: %s", cid, exc)
        return {}


async def channel_named(deps: Deps, name: str, field: str) -> str | None:
    """The id of the public channel `name`, looked up page by page."""
    name, cursor = name.strip().lower(), ""
    for _ in range(PAGES_MAX):
        try:
            resp = await deps.client.conversations_list(types="public_channel", exclude_archived=True,
                                                        limit=200, cursor=cursor or None)
        except Exception as exc:
            raise FormError(field, f"I could not look up #{name} ({reason(exc)}); pick the channel from Slack's "
                                   "suggestions as you type instead.") from None
        for c in resp.get("channels") or []:
            if name in (str(c.get("name", "")).lower(), str(c.get("name_normalized", "")).lower()):
                return str(c["id"])
        cursor = (resp.get("response_metadata") or {}).get("next_cursor") or ""
        if not cursor:
            return None
    return None


def repo_home(when: When, results: str) -> str:
    """The channel whose repositories a run may use: where its threads are. A watched message's
    run works in that channel's thread, where its members can follow up and read the changes, so
    it may use only what that channel has linked (never a private results channel's repository)."""
    return when.watch_channel if when.trigger == "message" else results


async def repo_named(deps: Deps, channel: str, name: str | None) -> int | None:
    """A repository linked to `channel` by name; None: its default (if any); `none`: no repository."""
    linked = await deps.repos.channel_repos(channel)
    if name is None:
        return next((r.repo.id for r in linked if r.is_default), None)
    if name.lower() in ("none", "no", "-"):
        return None
    for r in linked:
        if r.repo.name == name:
            return r.repo.id
    names = ", ".join(f"`{r.repo.name}`" for r in linked)
    known = f"Linked there: {names}." if names else "No repository is linked there (an admin links one with " \
                                                    "`/agent repo add NAME URL`)."
    raise FormError("repo", f"No repository named `{name[:60]}` is linked to the channel its runs work in. {known} "
                            f"For example {EXAMPLE}, or repo=none.")


async def repo_linked(deps: Deps, channel: str, repo_id: int) -> int:
    """`repo_id` if it is linked to `channel` (a stale or forged modal value must not bind another's)."""
    if any(r.repo.id == repo_id for r in await deps.repos.channel_repos(channel)):
        return repo_id
    raise FormError("repo", "That repository is not linked to the channel its runs work in; pick one linked "
                            "there or No repository.")


def default_name(prompt: str) -> str:
    """The prompt's first words, at most DEFAULT_NAME_MAX characters."""
    words, name = prompt.split(), ""
    for word in words:
        if len(name) + len(word) + 1 > DEFAULT_NAME_MAX:
            break
        name = f"{name} {word}".strip()
    return name or prompt.strip()[:DEFAULT_NAME_MAX]


def check_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise FormError("name", 'Give it a name, for example name="Morning triage".')
    if len(name) > NAME_MAX:
        raise FormError("name", f"The name is longer than {NAME_MAX} characters; keep it short, for example "
                                'name="Morning triage".')
    return name


def check_branch(branch: str) -> str:
    branch = branch.strip()
    if branch and (not _BRANCH.match(branch) or ".." in branch or branch.endswith(("/", ".", ".lock"))):
        raise FormError("branch", f"`{branch[:60]}` is not a branch name; for example branch=main.")
    return branch


def check_notify(notify: str) -> str:
    notify = notify.strip().lower()
    if notify not in ("always", "changes"):
        raise FormError("notify", "notify= takes always or changes (only when something changed or failed), "
                                  f"for example {EXAMPLE[:-1]} notify=changes`.")
    return notify
