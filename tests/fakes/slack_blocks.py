"""Offline Block Kit checks the fake Slack applies to every blocks/view argument.

Slack itself rejects bad blocks with `invalid_blocks`; slack_sdk's model classes give us the same
per-element rules offline, and the explicit limits below cover what those classes do not check.
"""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.models.blocks import Block

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_MARKDOWN_TEXT = 12000
MAX_MESSAGE_TEXT = 40000
MAX_VIEW_BYTES = 250_000


def _text_of(obj: Any) -> str:
    if isinstance(obj, dict):
        return str(obj.get("text") or "")
    return str(obj or "")


def check_blocks(blocks: Any, *, max_blocks: int = MAX_MESSAGE_BLOCKS) -> list[str]:
    """Return a list of problems (empty when the blocks are acceptable)."""
    if blocks is None:
        return []
    if not isinstance(blocks, list):
        return [f"blocks must be a list, got {type(blocks).__name__}"]
    problems: list[str] = []
    if len(blocks) > max_blocks:
        problems.append(f"{len(blocks)} blocks > limit {max_blocks}")
    for i, raw in enumerate(blocks):
        where = f"block[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: not an object")
            continue
        kind = raw.get("type")
        try:
            parsed = Block.parse(raw)
        except Exception as e:  # parse itself can raise on malformed children
            problems.append(f"{where} ({kind}): parse failed: {e}")
            continue
        if parsed is None:
            problems.append(f"{where}: unknown block type {kind!r}")
            continue
        try:
            parsed.validate_json()
        except Exception as e:
            problems.append(f"{where} ({kind}): {e}")
        # Limits the model classes may not enforce (checked on the raw dict).
        if kind == "section":
            n = len(_text_of(raw.get("text")))
            if n > MAX_SECTION_TEXT:
                problems.append(f"{where}: section text {n} chars > {MAX_SECTION_TEXT}")
            for j, f in enumerate(raw.get("fields") or []):
                if len(_text_of(f)) > 2000:
                    problems.append(f"{where}: section field {j} > 2000 chars")
        elif kind == "header":
            n = len(_text_of(raw.get("text")))
            if n > MAX_HEADER_TEXT:
                problems.append(f"{where}: header text {n} chars > {MAX_HEADER_TEXT}")
        elif kind == "markdown":
            n = len(str(raw.get("text") or ""))
            if n > MAX_MARKDOWN_TEXT:
                problems.append(f"{where}: markdown text {n} chars > {MAX_MARKDOWN_TEXT}")
        elif kind == "actions" and len(raw.get("elements") or []) > 25:
            problems.append(f"{where}: actions block has > 25 elements")
        elif kind == "context" and len(raw.get("elements") or []) > 10:
            problems.append(f"{where}: context block has > 10 elements")
    return problems


def check_message(text: Any, blocks: Any) -> tuple[str, list[str]] | None:
    """(error code, problems) for a message body, or None when fine."""
    problems = check_blocks(blocks)
    if problems:
        return "invalid_blocks", problems
    if text is not None and len(str(text)) > MAX_MESSAGE_TEXT:
        return "msg_too_long", [f"text {len(str(text))} chars > {MAX_MESSAGE_TEXT}"]
    return None


def check_view(view: Any) -> tuple[str, list[str]] | None:
    """(error code, problems) for a modal / home view, or None when fine."""
    if not isinstance(view, dict):
        return "invalid_arguments", [f"view must be an object, got {type(view).__name__}"]
    size = len(json.dumps(view).encode())
    if size > MAX_VIEW_BYTES:
        return "view_too_large", [f"view is {size} bytes > {MAX_VIEW_BYTES}"]
    problems = check_blocks(view.get("blocks") or [], max_blocks=MAX_VIEW_BLOCKS)
    if view.get("type") not in ("modal", "home"):
        problems.append(f"view type {view.get('type')!r} is not modal/home")
    if view.get("type") == "modal" and not view.get("title"):
        problems.append("modal view needs a title")
    if problems:
        return "invalid_blocks", problems
    return None
