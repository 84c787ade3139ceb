"""Redaction of secret-shaped strings: what reaches Slack or a stored transcript never carries a token.

Pure: no project imports, so every layer can use it.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable
from urllib.parse import quote

MARK = "[redacted]"
MIN_SECRET = 6  # shorter configured values would blank out ordinary words

_TOKENS = re.compile("|".join([
    r"xox(?:[abposre]|e\.xox[abposr])-[0-9A-Za-z][0-9A-Za-z-]{7,}",     # Slack bot/user/refresh tokens
    r"xapp-[0-9A-Za-z][0-9A-Za-z-]{7,}",                                   # Slack app-level tokens
    r"gh[pousr]_[0-9A-Za-z]{16,}",                                         # GitHub tokens
    r"github_pat_[0-9A-Za-z_]{16,}",                                       # GitHub fine-grained tokens
    # OpenAI keys: long, and with a digit somewhere, so hyphenated words ("sk-learn-…") stay.
    r"(?<![0-9A-Za-z_-])sk-(?=[0-9A-Za-z_-]*[0-9])[0-9A-Za-z_-]{20,}",
    r"(?<![0-9A-Z])(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z])",                # AWS access key ids
]))
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S)
# The tail of a key whose BEGIN was cut off (text split into chunks): everything up to its END.
_PEM_TAIL = re.compile(r"\A.*?-----END [A-Z0-9 ]*PRIVATE KEY-----", re.S)
_URL_PASSWORD = re.compile(r"(?<=://)[^/@\s:<>|]+:[^/@\s<>|]+@")  # https://user:token@host


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """More values to redact from now on (a repository's secrets, learnt when a task needs them)."""
        values = set(self._secrets)
        for s in secrets:
            if s and len(s) >= MIN_SECRET:
                values |= _forms(s)
        if len(values) != len(self._secrets):
            # One assignment: a reader on another thread sees the old list or the new one.
            self._secrets = sorted(values, key=len, reverse=True)  # longest first: no half-replaced value

    def text(self, s: str) -> str:
        if not s:
            return s
        for secret in self._secrets:
            if secret in s:
                s = s.replace(secret, MARK)
        if "PRIVATE KEY-----" in s:
            s = _PEM.sub(MARK, s)
            s = _PEM_TAIL.sub(MARK, s)
        s = _TOKENS.sub(MARK, s)
        if "://" in s:
            s = _URL_PASSWORD.sub(MARK + "@", s)
        return s

    def value(self, obj: Any) -> Any:
        """Strings inside dicts, lists and tuples, redacted; everything else as it is."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {k: self.value(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.value(v) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self.value(v) for v in obj)
        return obj

    def binary(self, data: bytes) -> bytes:
        """Binary content keeps every byte that is not part of a secret."""
        return self.text(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


def _forms(secret: str) -> set[str]:
    """The value as it may be written: itself; Slack-escaped (&, < and > in Slack text); inside a JSON
    string; percent-encoded in a URL."""
    slack = secret.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {f for f in (secret, slack, json.dumps(secret)[1:-1], quote(secret, safe=""))
            if len(f) >= MIN_SECRET}
