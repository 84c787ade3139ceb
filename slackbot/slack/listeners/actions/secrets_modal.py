"""The secrets form of `/agent secrets NAME`: a repository's secret names (never values), and fields
to add or replace one and to remove some. Admins only, checked again on submission (a submission can
be forged with this form's callback id). Errors show on their fields; a value is never echoed: not in
an error, a confirmation, a log line or a view the bot sends."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from ....secret_box import SecretBox, SecretsKeyError, name_problem, value_problem
from ....store import RepoSecrets, Repository, SecretInfo
from ...access import tell
from ...deps import Deps
from ...mrkdwn import compose, mention

log = logging.getLogger(__name__)
CALLBACK_ID = "repo_secrets"
MAX_SECRETS = 50  # per repository; the form lists them all
LINES_PER_SECTION = 20  # a section holds 3,000 characters
REFUSED = ("Only admins can see or change a repository's secrets. Ask a workspace admin or one of the "
           "people in SLACKBOT_ADMINS.")
KEY_MISSING = "SLACKBOT_SECRETS_KEY is not set or not valid, so secrets cannot be saved: see `/agent secrets`."


def secrets_view(repo: Repository, channel: str, listed: list[SecretInfo]) -> dict[str, Any]:
    """The form; `listed`: the repository's secrets as they are now (names only)."""
    assert repo.id is not None  # read from the store
    lines = [compose("`", s.name, "` — set by ", mention(s.updated_by), f" on {s.updated_at:%Y-%m-%d}")
             for s in listed]
    blocks: list[dict[str, Any]] = [_section(compose(
        "*Secrets of `", repo.name, "`*\nThey reach its setup command only, as environment variables, in the "
        "setup's own container before the agent starts; never the agent. Values are never shown again, "
        "and are redacted from everything the bot posts or keeps."))]
    if not lines:
        blocks.append(_section("_No secrets yet._"))
    for start in range(0, len(lines), LINES_PER_SECTION):
        blocks.append(_section("\n".join(lines[start:start + LINES_PER_SECTION])))
    blocks += [
        {"type": "divider"},
        _input("name", "Name", {"type": "plain_text_input", "action_id": "value", "max_length": 64,
                                "placeholder": _plain("NPM_TOKEN")},
               hint="Capital letters, digits and _. A secret of the same name is replaced."),
        _input("value", "Value", {"type": "plain_text_input", "action_id": "value", "max_length": 3000,
                                  "placeholder": _plain("the token")},
               hint="The setup command reads it as $NAME. It is stored encrypted and never shown again."),
    ]
    if listed:
        blocks.append(_input("remove", "Remove", {
            "type": "multi_static_select", "action_id": "value", "placeholder": _plain("Secrets to remove"),
            "options": [{"text": _plain(s.name), "value": s.name} for s in listed[:100]]}))
    return {"type": "modal", "callback_id": CALLBACK_ID,
            "private_metadata": json.dumps({"repo": repo.id, "channel": channel}),
            "title": _plain("Repository secrets"), "submit": _plain("Save"), "close": _plain("Cancel"),
            "blocks": blocks}


class Problems(Exception):
    """Every field's error at once, keyed by block id."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass(frozen=True)
class Change:
    repo: Repository
    channel: str
    box: SecretBox = field(repr=False)
    name: str = ""
    value: str = field(default="", repr=False)  # never in a repr, so never in a log line
    remove: tuple[str, ...] = ()


def handler(deps: Deps):
    async def repo_secrets(ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = body["user"]["id"]
        try:
            change = await read_form(deps, view, user=user)
            text = await apply(deps, change, user=user)
        except Problems as exc:
            await ack(response_action="errors", errors=exc.errors)
            return
        except Exception as exc:  # never silent, and never quoting: the form stays open with the kind of failure
            log.exception("the secrets form failed")
            await ack(response_action="errors",
                      errors={"name": f"Sorry, saving did not work ({exc.__class__.__name__}); try again."})
            return
        await ack()
        await tell(deps, channel=change.channel, user=user, text=text)
    return repo_secrets


async def read_form(deps: Deps, view: dict[str, Any], *, user: str) -> Change:
    if not await deps.is_admin(user):
        log.warning("%s, not an admin, submitted the secrets form: refused", user)
        raise Problems({"name": REFUSED})
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
        repo_id, channel = int(meta["repo"]), str(meta["channel"])
    except (ValueError, TypeError, KeyError, AttributeError):
        raise Problems({"name": "This form lost its repository; open it again with `/agent secrets NAME`."}) from None
    linked = {r.repo.id: r.repo for r in await deps.repos.channel_repos(channel)}
    repo = linked.get(repo_id)
    if repo is None:
        raise Problems({"name": "That repository is no longer linked to the channel the form came from."})
    try:
        box = SecretBox(deps.settings.secrets_key)
    except SecretsKeyError:
        raise Problems({"name": KEY_MISSING}) from None
    values = (view.get("state") or {}).get("values") or {}
    name = _text(values, "name").strip()
    value = _text(values, "value").strip()  # a pasted token's stray spaces or newline are not part of it
    remove = tuple(sorted({str(o.get("value") or "") for o in _selected(values, "remove") if o.get("value")}))
    errors: dict[str, str] = {}
    if not (name or value or remove):
        errors["name"] = "Give a name and a value to add a secret, or pick secrets to remove."
    if name or value:
        if not name:
            errors["name"] = "Give the secret a name (for example NPM_TOKEN)."
        elif why := name_problem(name):
            errors["name"] = why
        if why := value_problem(value):
            errors["value"] = why
    if name and name in remove:
        errors["remove"] = f"{name} is both set and removed here: pick one."
    assert repo.id is not None  # read from the store
    if name and "name" not in errors:
        existing = {s.name for s in await RepoSecrets(deps.store).listed(repo.id)}
        if name not in existing and len(existing - set(remove)) >= MAX_SECRETS:
            errors["name"] = f"A repository has at most {MAX_SECRETS} secrets; remove one first."
    if errors:
        raise Problems(errors)
    return Change(repo, channel, box, name, value, remove)


async def apply(deps: Deps, change: Change, *, user: str) -> str:
    """Stores the change; the confirmation (names only)."""
    repo, secrets = change.repo, RepoSecrets(deps.store)
    assert repo.id is not None  # read from the store
    said: list[str] = []
    if change.name:
        # This process redacts the value from now on (the worker that runs the setup learns it there).
        deps.redactor.add([change.value])
        client_redactor = getattr(deps.client, "redactor", None)
        if client_redactor is not None:
            client_redactor.add([change.value])
        replaced = await secrets.put(repo.id, change.name, change.box.seal(change.value), by=user)
        said.append(compose("Replaced" if replaced else "Saved", " `", change.name, "`."))
        log.info("%s %s secret %s of repository %s", user, "replaced" if replaced else "added", change.name,
                 repo.name)
    removed = await secrets.remove(repo.id, change.remove)
    if removed:
        said.append("Removed " + ", ".join(compose("`", n, "`") for n in removed) + ".")
        log.info("%s removed secrets %s of repository %s", user, ", ".join(removed), repo.name)
    now = [s.name for s in await secrets.listed(repo.id)]
    has = (compose("`", repo.name, "`'s setup command gets ") + ", ".join(compose("`", n, "`") for n in now)
           if now else compose("`", repo.name, "` has no secrets now"))
    return " ".join([*said, has + ".", "Threads whose setup already ran keep what it made; a new thread's "
                                       "setup gets these."])


def _text(values: dict[str, Any], block: str) -> str:
    return str(((values.get(block) or {}).get("value") or {}).get("value") or "")


def _selected(values: dict[str, Any], block: str) -> list[dict[str, Any]]:
    found = ((values.get(block) or {}).get("value") or {}).get("selected_options") or []
    return [o for o in found if isinstance(o, dict)]


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _input(block_id: str, label: str, element: dict[str, Any], *, hint: str = "") -> dict[str, Any]:
    block = {"type": "input", "block_id": block_id, "label": _plain(label), "element": element, "optional": True}
    if hint:
        block["hint"] = _plain(hint)
    return block


def _plain(text: str) -> dict[str, str]:
    return {"type": "plain_text", "text": text}

