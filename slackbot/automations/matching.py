"""People's patterns for channel watches, matched with a time bound: a catastrophic pattern (or a
long message) gives up instead of hanging the bot. Matching runs off the event loop."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import regex

MAX_PATTERN = 500
MATCH_TIMEOUT_S = 0.1
MAX_TEXT = 40_000  # characters of a message looked at
EXAMPLE = '`/automation add on message in #alerts matching "ERROR|FATAL" find the cause`'
_executor = ThreadPoolExecutor(2, thread_name_prefix="match")


class PatternError(ValueError):
    pass


def compile_pattern(pattern: str) -> regex.Pattern[str] | None:
    """None for an empty pattern (every message matches)."""
    if not pattern:
        return None
    if len(pattern) > MAX_PATTERN:
        raise PatternError(f"The pattern is longer than {MAX_PATTERN} characters. For example {EXAMPLE}")
    try:
        return regex.compile(pattern, regex.IGNORECASE | regex.V0)
    except (regex.error, ValueError, RecursionError) as exc:
        raise PatternError(f"The pattern does not compile ({exc}). For example {EXAMPLE}") from None


def _search(compiled: regex.Pattern[str], text: str) -> bool | None:
    try:
        # concurrent: the GIL is released while matching, so other threads go on meanwhile.
        return compiled.search(text[:MAX_TEXT], timeout=MATCH_TIMEOUT_S, concurrent=True) is not None
    except TimeoutError:
        return None


async def matches(pattern: str, text: str) -> bool | None:
    """True or False; None when the pattern took too long (or no longer compiles): no match."""
    try:
        compiled = compile_pattern(pattern)
    except PatternError:
        return None
    if compiled is None:
        return True
    return await asyncio.get_running_loop().run_in_executor(_executor, _search, compiled, text)
