"""Every request gets an answer: odd task ids, a mention whose recording fails, a model endpoint that
answers 200 with something that is not a completion."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from slackbot.app import Bot
from tests.conftest import make_settings
from tests.fakes import raw, shell, text
from tests.helpers import block_text, bot_messages, mention, wait_final
from tests.slack_actions import command, ephemeral_texts, press


async def test_agent_stop_answers_odd_ids(slack, model, bot):
    assert (await command(slack, "stop ²")).startswith("Usage: `/agent stop ID`")
    assert (await command(slack, "stop ٣")).startswith("Usage: `/agent stop ID`")
    assert await command(slack, "stop 99999999999999999999") == "There is no task #99999999999999999999."
    assert await command(slack, "stop 9223372036854775807") == "There is no task #9223372036854775807."
    assert await command(slack, "stop #42") == "There is no task #42."
    assert (await command(slack, "stop")).startswith("Usage: `/agent stop ID`")


async def test_buttons_answer_odd_values(slack, model, bot):
    model.script([text("Nothing to do.")])
    ts = await mention(slack, "a quick one")
    final = await wait_final(slack, "C1", ts)
    where = {"user": "U1", "channel": "C1", "message_ts": final["ts"], "thread_ts": ts}
    for value in ("²", "99999999999999999999"):
        for action_id, pressed, answer in (
                ("task_stop", value, f"There is no task #{value}."),
                ("task_push", value, f"There is no task #{value} in this channel."),
                ("repo_choose_0", f"{value}:1", f"There is no task #{value} to choose for here.")):
            await press(slack, action_id, pressed, **where)
            await slack.wait_for(lambda a=answer: a in ephemeral_texts(slack, "U1"), timeout=10)
    before = len(bot_messages(slack, "C1", ts))
    await press(slack, "task_transcript", "99999999999999999999", **where)
    await slack.wait_for(lambda: len(bot_messages(slack, "C1", ts)) > before, timeout=10)
    assert "no transcript of that task" in block_text(bot_messages(slack, "C1", ts)[-1])


def seen_keys(db: str) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT key FROM seen")}


@pytest.mark.docker
async def test_a_mention_whose_recording_fails_is_answered_and_not_marked_seen(slack, model, settings, bot):
    db = str(settings.data_dir / "slackbot.db")
    with sqlite3.connect(db) as conn:  # the database refuses new tasks, as a full disk would
        conn.execute("CREATE TRIGGER no_tasks BEFORE INSERT ON task BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    payload, ts = slack.mention("C1", "U1", f"<@{slack.bot_user_id}> please record me")
    await slack.wait_ack(await slack.socket_send("events_api", payload))
    await slack.wait_for(lambda: any("could not start this task" in block_text(m) and "disk full" in block_text(m)
                                     for m in bot_messages(slack, "C1", ts)), timeout=15)
    assert not {f"msg:C1:{ts}", f"event:{payload['event_id']}"} & seen_keys(db)
    assert slack.count("reactions.add") == 0  # 👀 only on what was taken

    # Slack's retry of the same delivery, once the database works again, starts the task; the
    # `message` twin and a second retry start nothing more.
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER no_tasks")
    model.script([text("Recorded at last.")])
    await slack.wait_ack(await slack.socket_send("events_api", payload, retry_attempt=1, retry_reason="timeout"))
    await slack.wait_ack(await slack.socket_send("events_api", slack.message_event("C1", ts)))
    await slack.wait_ack(await slack.socket_send("events_api", payload, retry_attempt=2, retry_reason="timeout"))
    final = await wait_final(slack, "C1", ts)
    assert "Recorded at last." in block_text(final)
    await asyncio.sleep(1)
    assert len(model.requests) == 1
    assert slack.count("reactions.add") == 1
    assert {f"msg:C1:{ts}", f"event:{payload['event_id']}"} <= seen_keys(db)


@pytest.mark.docker
async def test_model_answering_html_fails_the_task_with_a_clear_message(slack, model, tmp_path):
    settings = make_settings(tmp_path / "d", slack, model, SLACKBOT_MODEL_RETRIES=2)
    page = "<html><body><h1>502 Bad Gateway</h1> <!channel></body></html>"
    model.script([raw(page), raw(page), raw(page)])
    async with Bot(settings, port=0):
        ts = await mention(slack, "talk to a broken proxy")
        final = await wait_final(slack, "C1", ts)
    assert len(model.requests) == 3  # retried like a transient error, then given up
    shown = block_text(final)
    assert "The model endpoint returned a malformed response" in shown and "502 Bad Gateway" in shown
    assert "<!channel>" not in shown and "&lt;html&gt;" in shown


@pytest.mark.docker
async def test_malformed_completions_are_retried(slack, model, tmp_path):
    settings = make_settings(tmp_path / "d", slack, model, SLACKBOT_MODEL_RETRIES=3)
    model.script([
        raw({"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": None}]}),
        raw({"id": "x", "object": "chat.completion", "choices": []}),
        raw(["not", "an", "object"]),
        shell("echo fine"),
        text("Worked after all."),
    ])
    async with Bot(settings, port=0):
        ts = await mention(slack, "survive odd answers")
        final = await wait_final(slack, "C1", ts)
    assert "Worked after all." in block_text(final)
    assert len(model.requests) == 5
