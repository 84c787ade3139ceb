"""The settings modal: one input per setting admins may save (runs/setting_fields.py), for the
workspace and, opened from a channel, that channel's overrides; and reading its submission back
into values to save (None: back to the default)."""

from __future__ import annotations

import json
from typing import Any

from ..runs.setting_fields import FIELDS, SettingField
from ..settings import Settings

CALLBACK_ID = "settings_save"
DEFAULT = "__default__"  # the select option that removes a saved value
NONE = "none"  # an empty choice's option value (Slack wants one)
WORKSPACE, CHANNEL = "ws", "ch"


def settings_view(env: Settings, workspace: dict[str, Any], channel: str = "",
                  own: dict[str, Any] | None = None) -> dict[str, Any]:
    """`env`: the environment's settings (placeholders); `workspace`/`own`: the saved values."""
    blocks: list[dict[str, Any]] = []
    if channel:
        blocks += [_header("This channel"),
                   _context(f"Overrides for <#{channel}>. Empty: the workspace's value.")]
        blocks += [_input(f, CHANNEL, (own or {}).get(f.key), env) for f in FIELDS if f.scope == "channel"]
    blocks += [_header("Whole workspace"),
               _context("Empty: the default from the environment (shown greyed). Saved values apply to the next "
                        "task in every process.")]
    blocks += [_input(f, WORKSPACE, workspace.get(f.key), env) for f in FIELDS]
    return {"type": "modal", "callback_id": CALLBACK_ID, "private_metadata": json.dumps({"channel": channel}),
            "title": _plain("Settings"), "submit": _plain("Save"), "close": _plain("Cancel"), "blocks": blocks}


def read_values(view: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """(scope, key) → the value to save, None to remove; a number that is not one stays a string
    (validation reports it on its field)."""
    state = (view.get("state") or {}).get("values") or {}
    found: dict[tuple[str, str], Any] = {}
    for field in FIELDS:
        for scope in (CHANNEL, WORKSPACE):
            block = state.get(block_id(scope, field)) if isinstance(state, dict) else None
            entry = block.get("value") if isinstance(block, dict) else None
            if isinstance(entry, dict):  # (a forged submission may hold anything)
                found[(scope, field.key)] = _read(field, entry)
    return found


def block_id(scope: str, field: SettingField) -> str:
    return f"{scope}:{field.key}"


def _read(field: SettingField, entry: dict[str, Any]) -> Any:
    kind = entry.get("type")
    if kind in ("static_select", "radio_buttons"):
        option = entry.get("selected_option")
        value = option.get("value") if isinstance(option, dict) else None
        if value is None or value == DEFAULT:
            return None
        if field.widget == "switch":
            return value == "on"
        return "" if value == NONE and "" in field.choices else value
    if kind in ("multi_users_select", "multi_conversations_select"):
        chosen = entry.get("selected_users" if kind == "multi_users_select" else "selected_conversations")
        return ",".join(str(c) for c in chosen) or None if isinstance(chosen, list) else None
    text = str(entry.get("value") or "").strip()
    if not text:
        return None
    if field.widget == "lines":
        return ",".join(line.strip() for line in text.splitlines() if line.strip())
    if field.widget == "number":
        try:
            number = float(text)
        except ValueError:
            return text
        number = number * 60 if field.unit == "minutes" else number
        return int(number) if number.is_integer() else number
    return text


def _input(field: SettingField, scope: str, saved: Any, env: Settings) -> dict[str, Any]:
    default = getattr(env, field.key)
    element = _element(field, saved, default)
    block: dict[str, Any] = {"type": "input", "block_id": block_id(scope, field), "label": _plain(field.label),
                             "element": element, "optional": True}
    if field.hint:
        block["hint"] = _plain(field.hint[:150])
    return block


def _element(field: SettingField, saved: Any, default: Any) -> dict[str, Any]:
    if field.widget in ("switch", "choice"):
        values = ("on", "off") if field.widget == "switch" else field.choices
        shown = _shown(field, default)
        options = [_option(f"default ({shown})", DEFAULT)] + [_option(_label(v), v) for v in values]
        element: dict[str, Any] = {"type": "static_select", "action_id": "value", "options": options}
        current = ("on" if saved else "off") if field.widget == "switch" and saved is not None else saved
        current = NONE if current == "" else current
        chosen = next((o for o in options if current is not None and o["value"] == current), None)
        if chosen:
            element["initial_option"] = chosen
        return element
    if field.widget == "users":
        element = {"type": "multi_users_select", "action_id": "value"}
        if saved:
            element["initial_users"] = _ids(saved)
        return element
    if field.widget == "channels":
        element = {"type": "multi_conversations_select", "action_id": "value",
                   "filter": {"include": ["public", "private"], "exclude_bot_users": True}}
        if field.key == "digest_channel":
            element["max_selected_items"] = 1
        if saved:
            element["initial_conversations"] = _ids(saved)
        return element
    if field.widget == "number":
        number = (saved / 60 if field.unit == "minutes" else saved) if isinstance(saved, (int, float)) else None
        element = {"type": "number_input", "action_id": "value",
                   "is_decimal_allowed": field.key in ("sandbox_cpus", "task_timeout_s")}
        if number is not None:
            element["initial_value"] = f"{number:g}"
        element["placeholder"] = _plain(_shown(field, default))
        return element
    element = {"type": "plain_text_input", "action_id": "value", "multiline": field.widget == "lines",
               "max_length": 2000, "placeholder": _plain(_shown(field, default))}
    if saved not in (None, ""):
        text = str(saved)
        element["initial_value"] = "\n".join(_ids(text)) if field.widget == "lines" else text
    return element


def _shown(field: SettingField, value: Any) -> str:
    if isinstance(value, bool):
        text = "on" if value else "off"
    elif field.unit == "minutes" and isinstance(value, (int, float)):
        text = f"{value / 60:g}"
    else:
        text = str(value if value not in (None, "") else "none")
    return text[:140]


def _label(value: str) -> str:
    return value or "the model's default"


def _ids(text: str) -> list[str]:
    return [part.strip() for part in str(text).split(",") if part.strip()]


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": _plain(text)}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": _plain(text[:75]), "value": value or NONE}


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}
