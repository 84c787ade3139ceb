"""Plan first, then edits: a read-only phase (enforced by the mount) ends in a plan with Approve,
Revise and Cancel; approval continues the same conversation with a writable workspace.

The real bot against the fake Slack over real HTTP, the scripted model and real Docker sandboxes."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from slack_sdk.models.blocks import Block

from slackbot.app import Bot
from slackbot.protocol import Usage
from slackbot.runs.plan import take_option
from slackbot.slack.blocks import final_blocks
from slackbot.slack.options import parse_options
from slackbot.slack.plan_view import decided_blocks, revise_view
from tests.conftest import make_settings
from tests.fakes import shell, text
from tests.git_helpers import make_remote
from tests.helpers import block_text, bot_messages, mention, reply, unfenced
from tests.slack_actions import button, command, ephemeral_texts, press

pytestmark = pytest.mark.docker

# Every way of writing the mounted directories the plan phase tries (a symlink, the home directory,
# a git hook the finishing step would run, a plain file): each must fail.
WRITES = ("cd /workspace; for f in x README.md .git/hooks/pre-commit; do echo evil > $f 2>&1 && echo WROTE-$f; done; "
          "touch ~/.bashrc-evil 2>&1 && echo WROTE-home; ln -s /workspace/README.md /tmp/l; echo evil > /tmp/l 2>&1 "
          "&& echo WROTE-link; mkdir /workspace/d 2>&1 && echo WROTE-dir; cat README.md; "
          "echo slot-mounts=$(grep -c /pool/ /proc/self/mountinfo); grep -c ' /workspace ro,' /proc/self/mountinfo")
CHECK = ("cd /workspace; ls -a; git status --porcelain | wc -l; test -e x || echo no-x; test -e ~/.bashrc-evil || "
         "echo no-home-file; cat README.md; echo made > x && echo WROTE-NOW")
PLAN = "1. Add x. 2. Keep README.md."


def tool_outputs(body: dict) -> list[str]:
    return [unfenced(m["content"]) for m in body["messages"] if m["role"] == "tool"]


def with_button(slack, ts: str, action_id: str) -> list[dict]:
    return [m for m in bot_messages(slack, "C1", ts) if button(m, action_id)]


async def plan_message(slack, ts: str, needle: str = "") -> dict:
    """The message of the plan (containing `needle`) waiting for approval."""
    def found() -> list[dict]:
        return [m for m in with_button(slack, ts, "plan_approve") if needle in block_text(m)]
    await slack.wait_for(found, timeout=120)
    return found()[-1]


async def message_says(slack, ts: str, needle: str, timeout: float = 60) -> dict:
    await slack.wait_for(lambda: any(needle in block_text(m) for m in bot_messages(slack, "C1", ts)), timeout=timeout)
    return next(m for m in bot_messages(slack, "C1", ts) if needle in block_text(m))


async def linked(slack, tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "remote.git", tmp_path / "work")
    assert "Linked `app`" in await command(slack, f"repo add app {remote}", user="UADMIN")
    answer = await command(slack, "repo set app plan=on", user="UADMIN")
    assert "Plan first is now on" in answer


@pytest.mark.parametrize("warm", [0, 2])
async def test_nothing_is_written_before_approval_then_the_conversation_goes_on(slack, model, tmp_path, warm):
    if warm and os.geteuid() != 0:
        pytest.skip("warm sandboxes need root")
    settings = make_settings(tmp_path / "d", slack, model, SLACKBOT_ADMINS="UADMIN", SLACKBOT_WARM_POOL=warm)
    slack.users["U1"] = {"real_name": "Ada Lovelace", "profile": {"display_name": "Ada"}}
    async with Bot(settings, port=0) as bot:
        await linked(slack, tmp_path)
        if warm:  # the plan phase gets a warm container (its slot's binds, read-only)
            await slack.wait_for(lambda: bot.sandboxes.pool.ready(bot.sandboxes.shape()) == warm, timeout=60)
        model.script([shell(WRITES), text(PLAN)])
        ts = await mention(slack, "add a file x")  # the channel's setting: plan first
        plan = await plan_message(slack, ts)
        assert PLAN in block_text(plan) and "Plan for approval" in block_text(plan)
        assert button(plan, "plan_revise") and button(plan, "plan_cancel") and not button(plan, "task_push")
        writes = tool_outputs(model.requests[1].body)[-1]
        assert "WROTE" not in writes and writes.count("Read-only file system") >= 5
        assert writes.rstrip().endswith("\n1") and ("slot-mounts=0" in writes) == (not warm), writes
        assert "Files changed" not in block_text(plan)
        assert "planning phase" in model.requests[0].body["messages"][0]["content"]

        await press(slack, "plan_approve", "1", user="U9", channel="C1", message_ts=plan["ts"], thread_ts=ts)
        await slack.wait_for(lambda: any("Only <@U1>" in t for t in ephemeral_texts(slack, "U9")), timeout=15)
        await asyncio.sleep(1)
        assert len(model.requests) == 2 and button(slack.message("C1", plan["ts"]), "plan_approve")

        model.script([shell(CHECK), text("Added x.")])
        await press(slack, "plan_approve", "1", user="U1", channel="C1", message_ts=plan["ts"], thread_ts=ts)
        final = await message_says(slack, ts, "Added x.")
        assert "`x` +1 −0 (new)" in block_text(final)
        check = tool_outputs(model.requests[-1].body)[-1]
        assert "\n0\n" in check and "no-x" in check and "no-home-file" in check and "WROTE-NOW" in check
        assert "hello" in check and "evil" not in check  # README.md as it was, nothing added before approval

        # The same conversation: the plan phase's messages, then who approved it.
        messages = model.requests[-2].body["messages"]
        contents = [m.get("content") or "" for m in messages]
        assert contents[1] == "add a file x" and PLAN in contents
        assert contents[-1].startswith("Ada approved the plan.") and "writable" in contents[-1]
        assert "planning phase" not in contents[0]

        updated = slack.message("C1", plan["ts"])
        assert "Approved by <@U1>" in block_text(updated) and "task #2" in block_text(updated)
        assert not button(updated, "plan_approve") and PLAN in block_text(updated)

        await press(slack, "task_transcript", "1", user="U1", channel="C1", message_ts=plan["ts"], thread_ts=ts)
        await slack.wait_for(lambda: any(f["name"] == "task-1-transcript.txt" for f in slack.files), timeout=15)
        transcript = next(f for f in slack.files if f["name"] == "task-1-transcript.txt")["content"].decode()
        assert PLAN in transcript and "[plan approved by U1; continued in task #2]" in transcript
    assert slack.block_errors == []


async def test_double_click_on_approve_starts_one_task(slack, model, settings):
    async with Bot(settings, port=0) as bot:
        model.script([text(PLAN)])
        ts = await mention(slack, "plan=on add a file x")
        plan = await plan_message(slack, ts)
        assert model.requests[0].body["messages"][1]["content"] == "add a file x"  # the option is not the request
        model.script([text("Added x.")])
        await asyncio.gather(*(press(slack, "plan_approve", "1", user="U1", channel="C1", message_ts=plan["ts"],
                                     thread_ts=ts) for _ in range(3)))
        await message_says(slack, ts, "Added x.")
        await asyncio.sleep(1.5)
        tasks = await bot.store.thread_tasks((await bot.store.get_task(1)).thread_id)
        assert [(t.id, t.plan, t.approved_by) for t in tasks] == [(1, "plan", "U1"), (2, "approved", "U1")]
        assert len(model.requests) == 2
        await slack.wait_for(lambda: len(ephemeral_texts(slack, "U1")) >= 2, timeout=15)
        assert all("plan of task #1 was already" in t for t in ephemeral_texts(slack, "U1")), ephemeral_texts(slack, "U1")


async def test_revise_by_form_and_by_reply_then_cancel(slack, model, settings):
    async with Bot(settings, port=0):
        model.script([text("PLAN ONE")])
        ts = await mention(slack, "plan=on tidy the module")
        first = await plan_message(slack, ts)

        # Revise: the form, then a new read-only phase with the changes.
        opened = len(slack.opened_views)
        await press(slack, "plan_revise", "1", user="U1", channel="C1", message_ts=first["ts"], thread_ts=ts)
        await slack.wait_for(lambda: len(slack.opened_views) > opened, timeout=15)
        view = slack.opened_views[-1]
        assert view["callback_id"] == "plan_revise"
        model.script([text("PLAN TWO")])
        values = {"changes": {"value": {"type": "plain_text_input", "value": "also cover the tests"}}}
        payload = slack.view_submission_payload("plan_revise", values, "U1", view_id=view.get("id"))
        await slack.wait_ack(await slack.socket_send("interactive", payload))
        second = await plan_message(slack, ts, "PLAN TWO")
        asked = model.requests[-1].body["messages"]
        assert "also cover the tests" in asked[-1]["content"] and any(m.get("content") == "PLAN ONE" for m in asked)
        assert "Revised by <@U1>" in block_text(slack.message("C1", first["ts"]))
        assert not button(slack.message("C1", first["ts"]), "plan_approve")

        # A reply while a plan waits revises it too (and its buttons go).
        model.script([text("PLAN THREE")])
        await reply(slack, "and keep the old names", channel="C1", thread_ts=ts)
        third = await plan_message(slack, ts, "PLAN THREE")
        assert model.requests[-1].body["messages"][-1]["content"] == "and keep the old names"
        await slack.wait_for(lambda: "Revised by <@U1>" in block_text(slack.message("C1", second["ts"])), timeout=15)

        # Cancel: marked, buttons gone; a replay of any button does nothing and says why.
        await press(slack, "plan_cancel", "3", user="U1", channel="C1", message_ts=third["ts"], thread_ts=ts)
        await slack.wait_for(lambda: "Cancelled by <@U1>" in block_text(slack.message("C1", third["ts"])), timeout=15)
        assert not button(slack.message("C1", third["ts"]), "plan_cancel")
        requests = len(model.requests)
        await press(slack, "plan_approve", "3", user="U1", channel="C1", message_ts=third["ts"], thread_ts=ts)
        await press(slack, "plan_approve", "1", user="U1", channel="C1", message_ts=first["ts"], thread_ts=ts)
        await press(slack, "plan_approve", "99", user="U1", channel="C1", message_ts=first["ts"], thread_ts=ts)
        await slack.wait_for(lambda: len(ephemeral_texts(slack, "U1")) >= 3, timeout=15)
        told = "\n".join(ephemeral_texts(slack, "U1"))
        assert "already cancelled by <@U1>" in told and "already revised by <@U1>" in told
        assert "There is no task #99 here." in told
        await asyncio.sleep(1)
        assert len(model.requests) == requests
    assert slack.block_errors == []


async def test_others_cannot_revise_or_cancel(slack, model, settings):
    async with Bot(settings, port=0):
        model.script([text(PLAN)])
        ts = await mention(slack, "plan=on something")
        plan = await plan_message(slack, ts)
        opened = len(slack.opened_views)
        for action in ("plan_revise", "plan_cancel"):
            await press(slack, action, "1", user="U7", channel="C1", message_ts=plan["ts"], thread_ts=ts)
        await slack.wait_for(lambda: len(ephemeral_texts(slack, "U7")) >= 2, timeout=15)
        assert all("Only <@U1>" in t for t in ephemeral_texts(slack, "U7"))
        # A forged form submission is checked again.
        values = {"changes": {"value": {"type": "plain_text_input", "value": "do evil"}}}
        payload = slack.view_submission_payload("plan_revise", values, "U7")
        payload["view"]["private_metadata"] = json.dumps({"task": 1, "channel": "C1", "ts": plan["ts"]})
        await slack.wait_ack(await slack.socket_send("interactive", payload))
        await slack.wait_for(lambda: len(ephemeral_texts(slack, "U7")) >= 3, timeout=15)
        await asyncio.sleep(1)
        assert len(slack.opened_views) == opened and len(model.requests) == 1
        assert button(slack.message("C1", plan["ts"]), "plan_approve")


async def test_streamed_plan_ends_with_the_buttons(slack, model, tmp_path):
    settings = make_settings(tmp_path / "d", slack, model, SLACKBOT_SLACK_UI="stream", SLACKBOT_PLAN_MODE=True)
    slack.streaming = True
    async with Bot(settings, port=0):
        model.script([shell("touch /workspace/x"), text(PLAN)])
        ts = await mention(slack, "stream a plan")
        plan = await plan_message(slack, ts)
        assert "stream_started" in plan  # the stop call carried the buttons
        assert "Read-only file system" in tool_outputs(model.requests[1].body)[-1]
        model.script([text("Edited.")])
        await press(slack, "plan_approve", "1", user="U1", channel="C1", message_ts=plan["ts"], thread_ts=ts)
        await slack.wait_for(lambda: "Approved by <@U1>" in block_text(slack.message("C1", plan["ts"])), timeout=60)
        await slack.wait_for(lambda: len(model.requests) == 3, timeout=60)
    assert slack.block_errors == []


# ---- pure parts -----------------------------------------------------------------------------------

def test_the_plan_option_is_read_and_taken_out():
    assert take_option("plan=on fix  the bug") == ("fix the bug", "on")
    assert take_option("fix it PLAN=off") == ("fix it", "off")
    assert take_option("explain plan=maybe and the plan") == ("explain plan=maybe and the plan", "")
    assert take_option("no option\nkept as written") == ("no option\nkept as written", "")
    parsed = parse_options("repo=api plan=on fix it")
    assert (parsed.repo, parsed.plan, parsed.text) == ("api", "on", "plan=on fix it")  # queued with the task


def test_plan_blocks():
    _text, blocks, _ = final_blocks(task_id=4, state="done", answer="1. do it", error="", files=(), elapsed_s=3,
                                    usage=Usage(), pushable=True, plan="awaiting")
    actions = [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert actions == ["plan_approve", "plan_revise", "plan_cancel", "task_push", "task_transcript"]
    assert "Plan for approval" in blocks[0]["text"]["text"]
    fallback, decided = decided_blocks(4, "1. do it", "cancelled", "U1")
    assert fallback == "✖️ Cancelled by <@U1> — nothing was changed."
    assert [e["action_id"] for b in decided if b["type"] == "actions" for e in b["elements"]] == ["task_transcript"]
    for block in blocks + decided + revise_view(4, "C1", "1.2")["blocks"]:
        assert Block.parse(block) is not None
        Block.parse(block).validate_json()


async def test_plan_on_alone_asks_for_nothing(slack, model, settings):
    async with Bot(settings, port=0) as bot:
        ts = await mention(slack, "plan=on")
        await message_says(slack, ts, "Tell me what to do")
        assert model.requests == [] and await bot.store.thread_for("C1", ts) is None
