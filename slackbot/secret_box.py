"""Repository secrets at rest, and what a secret may be called and hold.

Values are encrypted with Fernet (AES-128-CBC and HMAC-SHA256, from `cryptography`) under the key in
SLACKBOT_SECRETS_KEY. The store keeps only ciphertext; the runs layer opens a repository's secrets for
its setup command, the Slack layer seals what an admin typed. No message here ever carries a value,
a ciphertext or the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken

from .redact import MIN_SECRET
from .settings import Settings

KEY_VARIABLE = "SLACKBOT_SECRETS_KEY"
MAKE_KEY = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
MAX_VALUE_BYTES = 8 * 1024
NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")

# Names a secret may not take, and why. The setup container's environment is the sandbox's own
# (PATH, HOME, …) plus the egress proxy's variables; a secret must not replace them (a PATH or a
# proxy of its own would route the setup's programs or its traffic elsewhere), nor change how its
# shell and programs start (BASH_ENV, LD_PRELOAD, …), nor look like the bot's own configuration,
# which it never is (it only reaches the setup command).
_SANDBOX = {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "OLDPWD", "HOSTNAME", "TERM", "LANG", "LANGUAGE",
            "PAGER", "TMPDIR", "TZ", "MAIL"}
_PROXY = {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "FTP_PROXY"}
_SHELL = {"BASH_ENV", "ENV", "IFS", "PS4", "SHELLOPTS", "BASHOPTS", "CDPATH", "GLOBIGNORE", "PROMPT_COMMAND",
          "POSIXLY_CORRECT", "INPUTRC"}
_PREFIXES = {
    "SLACKBOT_": "the bot's own settings start with SLACKBOT_",
    "SLACK_": "the bot's Slack settings start with SLACK_",
    "GIT_": "GIT_ variables change what git does (the bot's checkouts and commits run git in this sandbox)",
    "LD_": "LD_ variables change how every program is loaded",
    "BASH_FUNC_": "BASH_FUNC_ variables define shell functions",
    "DOCKER_": "DOCKER_ variables configure the bot's Docker engine",
    "LC_": "LC_ variables are the sandbox's locale",
}


def _settings_names() -> frozenset[str]:
    return frozenset(str(f.alias) for f in Settings.model_fields.values() if f.alias)


class SecretsKeyError(Exception):
    """SLACKBOT_SECRETS_KEY is missing or not a key: says so, and how to make one."""


class SecretUnreadable(Exception):
    """A stored secret does not open with the key (the key changed, or the row was altered)."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"The secret {name} could not be decrypted with {KEY_VARIABLE} (was the key changed?). "
            "An admin can set it again with `/agent secrets REPOSITORY`.")
        self.name = name


class SecretBox:
    def __init__(self, key: str) -> None:
        key = key.strip()
        if not key:
            raise SecretsKeyError(
                f"{KEY_VARIABLE} is not set, so repository secrets cannot be stored or used. Make a key with "
                f"`{MAKE_KEY}`, set it in the bot's environment (every process, the same key) and restart.")
        try:
            self._fernet = Fernet(key.encode())
        except (ValueError, TypeError):
            # (The key itself is never quoted: it is one of the values redacted everywhere.)
            raise SecretsKeyError(
                f"{KEY_VARIABLE} is not a valid key (it must be a Fernet key: 32 bytes in URL-safe base64, "
                f"44 characters). Make one with `{MAKE_KEY}`.") from None

    def seal(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def open(self, ciphertext: str, *, name: str = "") -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except (InvalidToken, UnicodeError, ValueError, TypeError):
            raise SecretUnreadable(name or "(unnamed)") from None

    def open_all(self, sealed: Mapping[str, str]) -> dict[str, str]:
        """name -> value; raises SecretUnreadable naming the first that does not open."""
        return {name: self.open(ciphertext, name=name) for name, ciphertext in sealed.items()}


def name_problem(name: str) -> str:
    """Why `name` cannot name a secret ("" when it can)."""
    if not NAME.fullmatch(name):
        return ("A secret's name is an environment variable name: capital letters, digits and _, not starting "
                "with a digit, at most 64 characters (for example NPM_TOKEN).")
    upper = name.upper()
    if upper in _SANDBOX:
        return f"{name} is set by the sandbox itself; a secret must not replace it. Pick a name of its own."
    if upper in _PROXY:
        return (f"{name} is set by the bot to route the setup's traffic through its egress proxy; a secret must "
                "not replace it. Pick a name of its own.")
    if upper in _SHELL:
        return f"{name} changes how the setup's shell starts or reads its command. Pick a name of its own."
    for prefix, why in _PREFIXES.items():
        if upper.startswith(prefix):
            return f"Names starting {prefix} are not available: {why}. Pick a name of its own."
    if upper in _settings_names():
        return (f"{name} is one of the bot's own settings; a secret only reaches the setup command, so give it a "
                f"name of its own (for example NPM_TOKEN) and write `{name}=$NPM_TOKEN …` in the command if a "
                "tool wants that name.")
    return ""


def value_problem(value: str) -> str:
    """Why `value` cannot be a secret's value ("" when it can). Never quotes the value."""
    if not value:
        return "Give the secret's value."
    if "\x00" in value:
        return "The value contains a NUL character, which an environment variable cannot hold."
    if len(value.encode()) > MAX_VALUE_BYTES:
        return f"The value is longer than {MAX_VALUE_BYTES // 1024} KiB."
    if len(value) < MIN_SECRET:
        return (f"The value is shorter than {MIN_SECRET} characters: too short to be told apart from ordinary "
                "text when it is redacted.")
    return ""


def usable(values: Mapping[str, str]) -> dict[str, str]:
    """The secrets whose names and values pass today's rules (a row stored by hand, or under older rules,
    is left out rather than given to the setup)."""
    return {k: v for k, v in values.items() if not name_problem(k) and not value_problem(v)}

