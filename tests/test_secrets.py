"""Repository secrets at rest: Fernet round trip, clear errors for a missing or wrong key (never quoting a
key, a ciphertext or a value), the rules for names and values, the store (ciphertext only) on SQLite and
PostgreSQL, and the redactor learning values at run time."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from slackbot.redact import MARK, Redactor
from slackbot.secret_box import (
    KEY_VARIABLE, MAKE_KEY, MAX_VALUE_BYTES, SecretBox, SecretsKeyError, SecretUnreadable, name_problem, usable,
    value_problem,
)
from slackbot.store import RepoSecrets, RepoStore
from tests.test_store_db import store  # noqa: F401 (the fixture: a migrated store)

VALUE = "npm_Zq9rT4uV8wX2yA6bC0dE"


def key() -> str:
    return Fernet.generate_key().decode()


# ---- sealing ----------------------------------------------------------------------------------------

def test_round_trip_and_ciphertext_hides_the_value():
    box = SecretBox(key())
    sealed = box.seal(VALUE)
    assert VALUE not in sealed and sealed != box.seal(VALUE)  # a fresh IV each time
    assert box.open(sealed) == VALUE
    assert box.open_all({"A_TOKEN": sealed, "B": box.seal("é ünïcode ✓ value")}) == {
        "A_TOKEN": VALUE, "B": "é ünïcode ✓ value"}
    assert SecretBox(f"  {key()}\n").seal("x")  # surrounding whitespace of an environment value is not the key


@pytest.mark.parametrize("bad", ["", "   ", "not-a-key", "A" * 44, Fernet.generate_key().decode()[:-2]])
def test_a_missing_or_invalid_key_is_a_clear_error(bad):
    with pytest.raises(SecretsKeyError) as caught:
        SecretBox(bad)
    message = str(caught.value)
    assert KEY_VARIABLE in message and MAKE_KEY in message
    if bad.strip():
        assert "not a valid key" in message and bad.strip() not in message  # the key is never quoted
    else:
        assert "is not set" in message


def test_another_key_or_an_altered_ciphertext_names_the_secret_only():
    sealed = SecretBox(key()).seal(VALUE)
    other = SecretBox(key())
    for ciphertext in (sealed, sealed[:-4] + "AAAA", "garbage", ""):
        with pytest.raises(SecretUnreadable) as caught:
            other.open_all({"NPM_TOKEN": ciphertext})
        message = str(caught.value)
        assert "NPM_TOKEN" in message and KEY_VARIABLE in message and "/agent secrets" in message
        assert VALUE not in message and (not ciphertext or ciphertext not in message)
        assert caught.value.__cause__ is None and caught.value.__suppress_context__


# ---- names and values -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["NPM_TOKEN", "_X", "A", "PIP_INDEX_URL", "GH_TOKEN", "X" * 64, "TOKEN_2"])
def test_names_allowed(name):
    assert name_problem(name) == ""


@pytest.mark.parametrize("name, says", [
    ("", "environment variable name"), ("npm_token", "capital letters"), ("2FA", "not starting with a digit"),
    ("X" * 65, "at most 64"), ("A-B", "capital letters"), ("A B", "capital letters"), ("NPM_TOKEN\n", "capital"),
    ("PATH", "set by the sandbox"), ("HOME", "set by the sandbox"), ("LANG", "set by the sandbox"),
    ("HTTP_PROXY", "egress proxy"), ("HTTPS_PROXY", "egress proxy"), ("NO_PROXY", "egress proxy"),
    ("ALL_PROXY", "egress proxy"), ("http_proxy", "capital letters"), ("https_proxy", "capital letters"),
    ("no_proxy", "capital letters"), ("BASH_ENV", "shell starts"), ("ENV", "shell starts"), ("IFS", "shell"),
    ("SLACKBOT_SECRETS_KEY", "SLACKBOT_"), ("SLACKBOT_ANYTHING", "SLACKBOT_"), ("SLACK_BOT_TOKEN", "SLACK_"),
    ("GIT_SSH_COMMAND", "GIT_"), ("GIT_CONFIG_GLOBAL", "GIT_"), ("LD_PRELOAD", "loaded"),
    ("BASH_FUNC_X", "shell functions"), ("DOCKER_HOST", "Docker"), ("LC_ALL", "locale"),
    ("GITHUB_TOKEN", "the bot's own settings"), ("OPENAI_API_KEY", "the bot's own settings"),
    ("DATABASE_URL", "the bot's own settings"),
])
def test_names_refused_with_a_reason(name, says):
    assert says in name_problem(name), name


def test_values():
    assert value_problem(VALUE) == ""
    assert value_problem("x" * MAX_VALUE_BYTES) == ""
    assert "8 KiB" in value_problem("x" * (MAX_VALUE_BYTES + 1))
    assert "8 KiB" in value_problem("é" * (MAX_VALUE_BYTES // 2 + 1))  # bytes, not characters
    assert "NUL" in value_problem("abc\x00defgh")
    assert "Give" in value_problem("")
    assert "shorter than 6" in value_problem("abc12")
    for bad in ("abc\x00defgh", "x" * (MAX_VALUE_BYTES + 1), "abc12"):
        assert bad not in value_problem(bad)
    assert usable({"NPM_TOKEN": VALUE, "PATH": "/evil/bin", "SHORT": "abc", "lower": VALUE}) == {"NPM_TOKEN": VALUE}


# ---- the redactor learns values at run time --------------------------------------------------------

def test_redactor_add():
    r = Redactor(["configured-secret-1"])
    line = f"token={VALUE} and configured-secret-1"
    assert r.text(line) == f"token={VALUE} and {MARK}"
    r.add([VALUE, "", "abc"])  # empty and short values are ignored (they would blank ordinary words)
    assert r.text(line) == f"token={MARK} and {MARK}"
    assert r.text("abc abc") == "abc abc"
    r.add([VALUE])  # again: nothing changes
    tricky = "p&ss<w>rd\"\\/+=?"
    r.add([tricky])
    assert r.text("x p&amp;ss&lt;w&gt;rd\"\\/+=? y") == f"x {MARK} y"  # as Slack escapes it
    assert tricky not in r.text(json.dumps({"v": tricky}))
    assert json.dumps(tricky)[1:-1] not in r.text(json.dumps({"v": tricky}))  # inside a JSON string
    assert "p%26ss%3Cw%3Erd" not in r.text("https://x.example/?t=p%26ss%3Cw%3Erd%22%5C%2F%2B%3D%3F")  # in a URL
    assert r.value({"a": [f"x{VALUE}x", (VALUE,)]}) == {"a": [f"x{MARK}x", (MARK,)]}


# ---- the store --------------------------------------------------------------------------------------

async def test_store_keeps_ciphertext_only(store, db_url):
    repo = await RepoStore(store).link("C1", name="app", url="https://example.com/a.git", branch="", github="",
                                       user="UADMIN")
    other = await RepoStore(store).link("C1", name="other", url="https://example.com/o.git", branch="",
                                        github="", user="UADMIN")
    assert repo.id is not None and other.id is not None
    box, secrets = SecretBox(key()), RepoSecrets(store)
    assert await secrets.put(repo.id, "NPM_TOKEN", box.seal(VALUE), by="UADMIN") is False
    assert await secrets.put(repo.id, "PIP_TOKEN", box.seal("pip-value-123"), by="UADMIN") is False
    assert await secrets.put(repo.id, "NPM_TOKEN", box.seal(VALUE + "2"), by="UOTHER") is True  # replaced
    assert await secrets.put(other.id, "NPM_TOKEN", box.seal("other-value"), by="UADMIN") is False
    listed = await secrets.listed(repo.id)
    assert [(s.name, s.updated_by) for s in listed] == [("NPM_TOKEN", "UOTHER"), ("PIP_TOKEN", "UADMIN")]
    assert box.open_all(await secrets.sealed(repo.id)) == {"NPM_TOKEN": VALUE + "2", "PIP_TOKEN": "pip-value-123"}
    assert await secrets.remove(repo.id, ["PIP_TOKEN", "NOT_THERE"]) == ["PIP_TOKEN"]
    assert await secrets.remove(repo.id, []) == []
    assert list(await secrets.sealed(repo.id)) == ["NPM_TOKEN"]
    assert box.open_all(await secrets.sealed(other.id)) == {"NPM_TOKEN": "other-value"}

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(text("SELECT * FROM repo_secret"))]
    finally:
        engine.dispose()
    assert {r["name"] for r in rows} == {"NPM_TOKEN"} and len(rows) == 2
    assert not any(VALUE in str(v) or "other-value" in str(v) for r in rows for v in r.values())
