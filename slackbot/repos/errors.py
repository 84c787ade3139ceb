"""Errors of the git layer, worded for a Slack thread, and the redaction that keeps secrets out of them."""

from __future__ import annotations

import base64
import re
from urllib.parse import urlsplit, urlunsplit


class RepoError(Exception):
    """Something about a repository went wrong; `str(exc)` is a plain sentence fit for a Slack thread."""


class GitFailed(Exception):
    """A git command exited non-zero (internal: turned into a RepoError with words for people)."""

    def __init__(self, args: list[str], status: int, stderr: str, stdout: str = "") -> None:
        super().__init__(f"git {' '.join(args[:2])} exited {status}")
        self.status = status
        self.stderr = stderr
        self.stdout = stdout


# user:password@ in any URL git prints
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


def redact(text: str, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """Removes secrets (and the base64 form our auth header gives them) and credentials inside URLs."""
    for secret in secrets:
        if not secret:
            continue
        text = text.replace(secret, "***")
        text = text.replace(basic_auth(secret), "***")
    return _USERINFO.sub(r"\g<scheme>", text)


def basic_auth(token: str) -> str:
    return base64.b64encode(f"x-access-token:{token}".encode()).decode()


def display_url(url: str) -> str:
    """The URL without any user:password part, for messages."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:  # a malformed port or IPv6 literal: at least drop any credentials
        return _USERINFO.sub(r"\g<scheme>", url)
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def short_stderr(stderr: str, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """The line of git's stderr that says what went wrong, without git's prefixes."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    lines = [line for line in lines if not line.lower().startswith(("hint:", "cloning into", "warning:"))]
    picked = next((line for line in reversed(lines) if line.startswith("fatal:")), lines[-1] if lines else "")
    for prefix in ("fatal: ", "error: ", "remote: "):
        picked = picked.removeprefix(prefix)
    picked = redact(picked, secrets)
    return picked[:300] or "git gave no reason"
