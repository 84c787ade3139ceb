"""The daily digest as Slack receives it: posted by the scheduled job once per channel and day,
with its chart uploaded in the message's thread; nothing for idle channels; `/agent digest`
previews it to the person asking; `slackbot digest --now` posts it from the terminal."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlmodel import Session

from slackbot.app import Bot
from slackbot.store.models import AgentThread, Task, utcnow
from tests.conftest import make_settings
from tests.helpers import block_text
from tests.slack_actions import command
from tests.test_cli import cli_env, run_cli
from tests.test_digest import UNTIL, seed

OUTPUT = Path(__file__).resolve().parent.parent / "storage" / "test-output"  # git-ignored


def digests(slack, channel: str) -> list:
    """chat.postMessage calls that posted a digest in `channel` (each with its params and response)."""
    return [c for c in slack.calls if c.method == "chat.postMessage" and c.params.get("channel") == channel
            and "Daily digest" in str(c.params.get("text"))]


async def test_the_scheduled_digest_posts_once_per_active_channel_with_its_chart(slack, model, tmp_path):
    settings = make_settings(tmp_path / "data", slack, model, SLACKBOT_TIMEZONE="Europe/Paris",
                             SLACKBOT_PRICES="gpt-5.5=1.25/0.125/10")
    async with Bot(settings, port=0, worker=False) as bot:
        await bot.store.run(seed)
        posted = await bot.digest.post_due(UNTIL, "17:00", "Europe/Paris")
        assert [d.channel for d in posted] == ["C1"]  # C2 was idle that day, C3 had terminal tasks only
        [call] = digests(slack, "C1")
        assert digests(slack, "C2") == [] and digests(slack, "C3") == []
        message = slack.message("C1", call.response["ts"])
        text = block_text(message)
        assert "Daily digest" in text and "Fixed the login bug" in text and "<@U1>" in text
        assert "https://github.com/acme/api/pull/7" in text and "4m 12s" in text
        assert "<!channel>" not in text  # a hostile summary is shown, not obeyed
        assert slack.block_errors == []
        # The chart: a PNG in the digest's thread, from the files API.
        [chart] = [f for f in slack.files if f["name"].endswith(".png")]
        assert chart["channel"] == "C1" and chart["thread_ts"] == message["ts"]
        assert chart["content"][:8] == b"\x89PNG\r\n\x1a\n"
        OUTPUT.mkdir(parents=True, exist_ok=True)
        (OUTPUT / "digest-chart.png").write_bytes(chart["content"])
        (OUTPUT / "digest-message.json").write_text(json.dumps(
            {k: message[k] for k in ("channel", "text", "blocks")}, indent=2, ensure_ascii=False))
        # Every process's scheduler fires at 17:00: the day's digest goes out once.
        assert await bot.digest.post_due(UNTIL + timedelta(seconds=2), "17:00", "Europe/Paris") == []
        assert len(digests(slack, "C1")) == 1
        # The digest job is scheduled in APScheduler at the configured time and zone.
        job = bot.scheduler.aps.get_job("digest-17:00-Europe/Paris")
        assert job is not None and job.next_run_time.strftime("%H:%M") == "17:00"


async def test_a_channel_may_have_its_own_digest_time(slack, model, tmp_path):
    settings = make_settings(tmp_path / "data", slack, model)
    async with Bot(settings, port=0, worker=False) as bot:
        await bot.store.run(seed)
        await bot.digest.saved.save("digest_time", "09:30", scope="C1", by="U9")
        await bot.scheduler.sync(force=True)
        assert {"digest-17:00-UTC", "digest-09:30-UTC"} <= bot.scheduler.job_ids()
        assert await bot.digest.post_due(UNTIL, "17:00", "UTC") == []  # C1 posts at 09:30 now
        assert [d.channel for d in await bot.digest.post_due(UNTIL, "09:30", "UTC")] == ["C1"]


async def test_a_saved_digest_channel_and_prices_apply(slack, model, tmp_path):
    settings = make_settings(tmp_path / "data", slack, model)
    async with Bot(settings, port=0, worker=False) as bot:
        await bot.store.run(seed)
        await bot.digest.saved.save("digest_channel", "C9", by="UADMIN")  # the workspace's: every channel's goes there
        await bot.digest.saved.save("prices", "gpt-5.5=1.25/0.125/10", by="UADMIN")
        [digest] = await bot.digest.post_due(UNTIL, "17:00", "UTC")
        assert digest.channel == "C1" and digest.post_to == "C9" and digest.priced
        assert digests(slack, "C1") == []
        [call] = digests(slack, "C9")
        text = block_text(slack.message("C9", call.response["ts"]))
        assert "<#C1>" in text and "$0.15" in text


def recent(s: Session) -> None:
    """A task finished an hour ago, so that a digest made now has something to say."""
    thread = AgentThread(channel="C1", thread_ts="9.1")
    s.add(thread)
    s.flush()
    s.add(Task(thread_id=thread.id, channel="C1", requester="U1", status="done", prompt="bump the version",
               answer="Bumped to 2.0.", model="test-model", started_at=utcnow() - timedelta(hours=1, minutes=2),
               finished_at=utcnow() - timedelta(hours=1), input_tokens=1200, output_tokens=80))
    s.commit()


async def test_agent_digest_previews_to_the_person_asking(slack, model, tmp_path):
    settings = make_settings(tmp_path / "data", slack, model)
    async with Bot(settings, port=0, worker=False):
        assert "Nothing to digest here" in await command(slack, "digest", channel="C1")
    async with Bot(settings, port=0, worker=False) as bot:
        await bot.store.run(recent)
        await command(slack, "digest", channel="C1")
        preview = slack.responses[-1]["body"]
        assert "Daily digest" in preview["text"] and "Bumped to 2.0." in json.dumps(preview["blocks"])
        assert preview.get("response_type", "ephemeral") == "ephemeral"
        assert digests(slack, "C1") == []  # a preview posts nothing in the channel


async def test_digest_now_from_the_terminal(slack, model, tmp_path):
    env = cli_env(tmp_path, slack, model)
    code, out, err = await run_cli(env, "digest", "--now")
    assert code == 0, err
    assert "No channel had activity" in out and digests(slack, "C1") == []
    settings = make_settings(tmp_path / "data", slack, model)
    async with Bot(settings, port=0, worker=False) as bot:
        await bot.store.run(recent)
    code, out, err = await run_cli(env, "digest", "--now", "--channel", "C1")
    assert code == 0, err
    assert "posted the digest in C1" in out
    [call] = digests(slack, "C1")
    assert "Bumped to 2.0." in str(call.params["blocks"])
