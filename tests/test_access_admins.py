"""Admins (issue 10): SLACKBOT_ADMINS, the admins an admin saves (seen by a running bot within 10 s
of another process saving them, on SQLite and PostgreSQL), and Slack's workspace admins and owners
of our own organisation only. What needs an admin still does: linking repositories and others'
automations."""

from __future__ import annotations

import asyncio
import re
import sys
import time

from slackbot.app import Bot
from tests.attack_rig import make_remote
from tests.conftest import make_settings
from tests.slack_actions import automation, command

NOT_ADMIN = "Only admins can link, change or remove repositories."
SAVE = """
import asyncio, sys
from slackbot.store import SavedSettings, Store

async def main():
    store = Store(sys.argv[1])
    try:
        await SavedSettings(store).save("admins", sys.argv[2] or None, by="UADMIN")
    finally:
        await store.aclose()

asyncio.run(main())
"""


async def save_admins_elsewhere(db_url: str, admins: str) -> None:
    """Another process (not this bot's) saves the `admins` setting, as an admin's modal would."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", SAVE, db_url, admins,
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()


async def within(seconds: float, ask, wanted: str) -> str:  # type: ignore[no-untyped-def]
    """`ask()`'s answer once it contains `wanted`, asked until `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while True:
        answer = await ask()
        if wanted in answer or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.5)


async def test_admins_saved_in_another_process_count_within_ten_seconds(slack, model, tmp_path, db_url):
    settings = make_settings(tmp_path / "data", slack, model, DATABASE_URL=db_url, SLACKBOT_ADMINS="UADMIN")
    remote = make_remote(tmp_path, "app")
    async with Bot(settings, port=0) as bot:
        assert (await command(slack, f"repo add app {remote} main", user="U7")).startswith(NOT_ADMIN)
        created = await automation(slack, "add every day at 09:00 mine", user="U1")
        aid = int(re.search(r"\*#(\d+)\*", created)[1])
        assert (await automation(slack, f"pause {aid}", user="U7")).startswith("Only the creator")

        await save_admins_elsewhere(db_url, "U7, U8")
        saved_at = time.monotonic()
        answer = await within(10, lambda: command(slack, f"repo add app {remote} main", user="U7"), "Linked")
        assert answer.startswith("Linked `app`"), answer
        assert time.monotonic() - saved_at < 10
        assert "Paused" in await automation(slack, f"pause {aid}", user="U8")  # others' automations too
        assert "is now this channel's default" in await command(slack, "repo default app", user="UADMIN")

        await save_admins_elsewhere(db_url, "")  # removed again: the right goes as fast
        answer = await within(10, lambda: command(slack, "repo default app", user="U7"), NOT_ADMIN)
        assert answer.startswith(NOT_ADMIN), answer
        assert bot.deps.settings.admins == "UADMIN"  # the environment's list is untouched


async def test_slack_admins_count_only_for_our_own_organisation(slack, model, settings, bot):
    slack.users["UWSADMIN"] = {"is_admin": True}
    slack.users["UOWNER"] = {"is_owner": True}
    slack.users["UEXTADMIN"] = {"is_admin": True, "team_id": "TOTHERORG"}  # an admin of their own workspace
    slack.users["USTRANGE"] = {"is_owner": True, "is_stranger": True}
    for user in ("UWSADMIN", "UOWNER"):
        assert "No repository named `x`" in await command(slack, "repo default x", user=user), user
    for user in ("UEXTADMIN", "USTRANGE", "U1"):
        assert (await command(slack, "repo default x", user=user)).startswith(NOT_ADMIN), user


async def test_an_enterprise_grid_sibling_workspace_is_our_organisation(slack, model, tmp_path):
    slack.enterprise_id = "EORG"
    slack.users["USIBADMIN"] = {"is_admin": True, "team_id": "TSIBLING", "enterprise_user": {"enterprise_id": "EORG"}}
    slack.users["UFARADMIN"] = {"is_admin": True, "team_id": "TFAR", "enterprise_user": {"enterprise_id": "EFAR"}}
    async with Bot(make_settings(tmp_path / "data", slack, model), port=0):
        assert "No repository named `x`" in await command(slack, "repo default x", user="USIBADMIN")
        assert (await command(slack, "repo default x", user="UFARADMIN")).startswith(NOT_ADMIN)
