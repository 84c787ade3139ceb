"""Ids read from what people type (`/agent stop 42`) and from button values."""

from __future__ import annotations

MAX_ID = 2**31 - 1  # ids are INTEGER columns: int4 on PostgreSQL (a larger value is an SQL error there)


def is_number(text: str) -> bool:
    """ASCII digits only: "²".isdigit() is True, but int() refuses it."""
    return text.isascii() and text.isdigit()


def parse_id(text: str) -> int | None:
    """A database id (`#` allowed in front), or None when it is not one or is too large for any row."""
    text = text.strip().removeprefix("#")
    if not is_number(text):
        return None
    text = text.lstrip("0") or "0"
    if len(text) > len(str(MAX_ID)):  # before int(): huge inputs make int() slow or refuse
        return None
    value = int(text)
    return value if value <= MAX_ID else None
