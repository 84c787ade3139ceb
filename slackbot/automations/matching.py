"""People's patterns for channel watches, matched with a time bound: a catastrophic pattern (or a
long message) gives up instead of hanging the bot. Matching runs off the event loop."""

from __future__ import annotations

import asyncio
import functools
import re
from concurrent.futures import ThreadPoolExecutor

import regex

MAX_PATTERN = 500
MATCH_TIMEOUT_S = 0.1
MAX_TEXT = 40_000  # characters of a message looked at
EXAMPLE = '`/automation add on message in #alerts matching "ERROR|FATAL" find the cause`'
MAX_EXPANSION = 1000  # the product of nested counted repeats: the compiled pattern grows with it
COUNTED = re.compile(r"\{(\d*)(?:,(\d*))?\}")
FUZZY = re.compile(r"\{[^}]*[<>=][^}]*\}")
_executor = ThreadPoolExecutor(2, thread_name_prefix="match")


class PatternError(ValueError):
    pass


def compile_pattern(pattern: str) -> regex.Pattern[str] | None:
    """None for an empty pattern (every message matches)."""
    if not pattern:
        return None
    if len(pattern) > MAX_PATTERN:
        raise PatternError(f"The pattern is longer than {MAX_PATTERN} characters. For example {EXAMPLE}")
    if FUZZY.search(pattern):
        raise PatternError(f"Fuzzy matching (`{{e<=…}}`) is not allowed in a pattern. For example {EXAMPLE}")
    if expansion(pattern) > MAX_EXPANSION:
        raise PatternError(f"The pattern repeats too much (counted repeats like `{{1000}}`, nested, multiply); "
                           f"keep them small. For example {EXAMPLE}")
    try:
        return regex.compile(pattern, regex.IGNORECASE | regex.V0)
    except (regex.error, ValueError, RecursionError) as exc:
        raise PatternError(f"The pattern does not compile ({exc}). For example {EXAMPLE}") from None


def expansion(pattern: str) -> int:
    """How many times the most repeated part of `pattern` is copied when compiled: counted repeats
    (`{n}`, `{n,m}`) multiply through nested groups (`*`, `+`, `?` copy nothing)."""
    stack, i, last = [1], 0, 1  # the largest product inside each open group; the last element's
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i, last = i + 2, 1
            continue
        if c == "[":  # a class is one element; skip to its end
            j = i + 1 + (pattern[i + 1:i + 2] == "^")
            j += pattern[j:j + 1] == "]"
            while j < len(pattern) and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            i, last = j + 1, 1
            stack[-1] = max(stack[-1], 1)
            continue
        if c == "(":
            stack.append(1)
            i += 1
            continue
        if c == ")" and len(stack) > 1:
            last = stack.pop()
            stack[-1] = max(stack[-1], last)
            i += 1
            continue
        counted = COUNTED.match(pattern, i) if c == "{" else None
        if counted and (counted[1] or counted[2]):
            times = max(int(counted[1] or 0), int(counted[2] or 0))
            last *= max(times, 1)
            stack[-1] = max(stack[-1], last)
            i = counted.end()
            continue
        i, last = i + 1, 1
    return max(stack)


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> regex.Pattern[str] | None:
    """Each watcher's pattern is compiled once, not per message."""
    return compile_pattern(pattern)


def _search(compiled: regex.Pattern[str], text: str) -> bool | None:
    try:
        # concurrent: the GIL is released while matching, so other threads go on meanwhile.
        return compiled.search(text[:MAX_TEXT], timeout=MATCH_TIMEOUT_S, concurrent=True) is not None
    except TimeoutError:
        return None


async def matches(pattern: str, text: str) -> bool | None:
    """True or False; None when the pattern took too long (or no longer compiles): no match."""
    try:
        compiled = _compiled(pattern)
    except PatternError:
        return None
    if compiled is None:
        return True
    return await asyncio.get_running_loop().run_in_executor(_executor, _search, compiled, text)
