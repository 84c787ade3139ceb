"""The settings in force for one channel: the environment's, overlaid with what admins saved for the
workspace and then for the channel. Read from the database at each use (a task's start, a mention),
so a change saved in any process applies at once everywhere."""

from __future__ import annotations

import ipaddress
import logging
import math
from typing import Any

from pydantic import ValidationError

from ..sandbox.egress_rules import METADATA, parse_allowlist
from ..settings import Settings, parse_size
from ..store import SavedSettings, Store
from .setting_fields import BY_KEY, LEGACY

log = logging.getLogger(__name__)
# Numbers an admin may save, and their bounds: a typo must not give a task a year or a terabyte.
BOUNDS: dict[str, tuple[float, float]] = {
    "max_steps": (1, 1000), "task_timeout_s": (60, 7 * 86400), "command_timeout_s": (1, 86400),
    "sandbox_cpus": (0.1, 256), "retention_days": (0, 36500)}
MEMORY = (64 << 20, 1 << 40)
MAX_TEXT = 2000


class SettingInvalid(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def check(settings: Settings, key: str, value: Any) -> Any:
    """`value` as `key` holds it once validated (as its environment variable would be), or SettingInvalid."""
    if key not in BY_KEY and key not in LEGACY:
        raise SettingInvalid(key, f"`{key}` is not a setting")
    if isinstance(value, str):
        value = value.strip()
        if len(value) > MAX_TEXT:
            raise SettingInvalid(key, f"At most {MAX_TEXT} characters.")
    copy = settings.model_copy()
    try:
        Settings.__pydantic_validator__.validate_assignment(copy, key, value)
    except ValidationError as exc:
        raise SettingInvalid(key, _message(exc)) from None
    checked = getattr(copy, key)
    if key in BOUNDS:
        low, high = BOUNDS[key]
        if isinstance(checked, bool) or not math.isfinite(checked) or not low <= checked <= high:
            raise SettingInvalid(key, f"Must be between {low:g} and {high:g}.")
    if key == "sandbox_memory":
        size = parse_size(checked)
        if not MEMORY[0] <= size <= MEMORY[1]:
            raise SettingInvalid(key, "Must be between 64m and 1t.")
    if key == "model" and not checked:
        raise SettingInvalid(key, "A default model is needed.")
    if key == "egress_allow" and checked:
        allowlist, errors = parse_allowlist(checked)
        errors += [_too_wide(rule.network) for rule in allowlist.addresses if _too_wide(rule.network)]
        if errors:
            raise SettingInvalid(key, "; ".join(errors)[:300])
    return checked


def overlay(settings: Settings, workspace: dict[str, Any], channel: dict[str, Any]) -> Settings:
    """`settings` with the saved values that pass `check`; a channel's only for keys a channel may set."""
    update: dict[str, Any] = {}
    for scope, saved in (("workspace", workspace), ("channel", channel)):
        for key, value in saved.items():
            field = BY_KEY.get(key)
            if field is None and key not in LEGACY:
                continue
            if scope == "channel" and (field is None or field.scope != "channel"):
                continue
            try:
                update[key] = check(settings, key, value)
            except SettingInvalid as exc:
                log.warning("ignoring the saved setting %s=%r: %s", key, value, exc)
    if "admins" in update:  # the environment's admins stay admins
        update["admins"] = ",".join(dict.fromkeys([*settings.admin_ids, *_ids(update["admins"])]))
    return settings.model_copy(update=update) if update else settings


async def effective(store: Store, settings: Settings, channel: str = "") -> Settings:
    workspace, own = await SavedSettings(store).scoped(channel)
    return overlay(settings, workspace, own)


# A task's settings are the channel's effective settings (kept for the callers of issue 7).
task_settings = effective


def shown(settings: Settings) -> dict[str, Any]:
    """The saved-able settings as a task ran with them, for its transcript (no secrets among them)."""
    return {key: getattr(settings, key) for key in BY_KEY}


def _too_wide(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """Why an address range may not be allowed from Slack ("" when it may): a sandbox's network is for
    package mirrors and the like, not the whole internet or a cloud's metadata service."""
    if network.prefixlen < (8 if network.version == 4 else 32):
        return f"{network} is too wide (at most a /8, or a /32 for IPv6)"
    if any(m.version == network.version and m != network and m.subnet_of(network) for m in METADATA):  # type: ignore[arg-type]
        return f"{network} includes a cloud metadata address"
    return ""


def _ids(text: str) -> list[str]:
    return [a.strip() for a in str(text).split(",") if a.strip()]


def _message(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


def network_policy(repository: str, settings: Settings) -> str:
    """The stricter of a repository's network= and the channel's limit."""
    order = ("off", "setup", "on")
    wanted = repository if repository in order else "off"
    return min(wanted, settings.network_limit, key=order.index)


def pushes(settings: Settings, repository_auto_push: bool) -> bool:
    """Whether a finished task pushes (and opens a PR) by itself."""
    return repository_auto_push if settings.auto_push == "repository" else settings.auto_push == "on"


def extra_instructions(settings: Settings) -> str:
    return f"Answer in {settings.language}." if settings.language else ""


def egress(settings: Settings, startup: tuple[str, ...], startup_text: str) -> tuple[str, ...]:
    """The destinations a task's network reaches: the startup allowlist, unless an admin saved others."""
    if settings.egress_allow == startup_text:
        return startup
    return settings.egress_entries or startup


def bot_branch(branch: str, settings: Settings) -> bool:
    """A branch the bot made (its tasks' branches): what agents wrote there instructs no later task."""
    return bool(branch) and branch.startswith(settings.branch_prefix)
