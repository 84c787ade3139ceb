"""End to end through Socket Mode: the real bot, the fake Slack and model, a real Docker sandbox."""

from __future__ import annotations

import json

import pytest

from slackbot.app import Bot
from tests.conftest import TEST_OPENAI_KEY, make_settings
from tests.fakes import error, shell, text, tool_calls
from tests.helpers import block_text, bot_messages, mention, unfenced, wait_final


def tool_results(body: dict) -> list[str]:
    return [unfenced(m["content"]) for m in body["messages"] if m["role"] == "tool"]


@pytest.mark.docker
async def test_mention_runs_commands_in_a_real_sandbox(slack, model, bot):
    model.script([
        tool_calls([("update_plan", {"plan": [{"step": "write the file", "status": "in_progress"},
                                             {"step": "read it back", "status": "pending"}]})]),
        shell("echo 'hello from the sandbox' > greet.txt && id -un"),
        shell("cat greet.txt"),
        text("I wrote **greet.txt** and read it back."),
    ])
    ts = await mention(slack, "write a greeting file")

    # Within a moment: 👀 on the mention, a status message in the thread.
    await slack.wait_for(lambda: "eyes" in slack.reactions_on("C1", ts), timeout=10)
    await slack.wait_for(lambda: any("#" in (m.get("text") or "") for m in bot_messages(slack, "C1", ts)), timeout=10)

    final = await wait_final(slack, "C1", ts)
    body = block_text(final)
    assert "*greet.txt*" in body
    assert "`greet.txt` +1 −0 (new)" in body
    assert "tokens in" in body

    # The second command read what the first one wrote, in a real container, as the sandbox user.
    results = [tool_results(r.body) for r in model.requests if r.path.endswith("/chat/completions")]
    assert "agent" in results[2][-1]
    assert "hello from the sandbox" in results[3][-1]

    # One status message, edited in place, ending in Done, without a Stop button.
    status = bot_messages(slack, "C1", ts)[0]
    await slack.wait_for(lambda: slack.message("C1", status["ts"])["text"].startswith("✅ Done"), timeout=15)
    final_status = slack.message("C1", status["ts"])
    assert all(b["type"] != "actions" for b in final_status["blocks"])
    assert len(final_status["edits"]) >= 1
    assert slack.block_errors == []

    # The model saw the system prompt and the request, and the bot's key never reached the sandbox.
    first = model.requests[0].body
    assert first["messages"][0]["role"] == "system"
    assert first["messages"][-1] == {"role": "user", "content": "write a greeting file"}
    assert TEST_OPENAI_KEY not in json.dumps([r.body for r in model.requests])


@pytest.mark.docker
async def test_failing_command_and_timeout_are_reported(slack, model, tmp_path):
    settings = make_settings(tmp_path / "d", slack, model, SLACKBOT_COMMAND_TIMEOUT_S=2)
    model.script([
        shell("ls /no/such/dir"),
        shell("sleep 600; echo never"),
        shell("ps -eo args | grep -c '[s]leep 600' || true"),
        text("Done with errors."),
    ])
    async with Bot(settings, port=0):
        ts = await mention(slack, "try things")
        await wait_final(slack, "C1", ts)
    results = tool_results(model.requests[-1].body)
    assert results[0].startswith("exit code: 2")
    assert "No such file or directory" in results[0]
    assert "timed out after 2s" in results[1]
    assert "never" not in results[1]
    assert results[2].splitlines()[1] == "0"  # the timed-out command is really gone


@pytest.mark.docker
async def test_model_500_then_recovery(slack, model, bot):
    model.script([error(500, "overloaded"), error(503, "busy"), shell("echo ok"), text("Recovered fine.")])
    ts = await mention(slack, "be resilient")
    final = await wait_final(slack, "C1", ts)
    assert "Recovered fine." in block_text(final)


@pytest.mark.docker
async def test_permanent_model_failure_tells_the_thread(slack, model, tmp_path):
    settings = make_settings(tmp_path / "d", slack, model, SLACKBOT_MODEL_RETRIES=1)
    model.script([error(500, "down"), error(500, "still down")])
    async with Bot(settings, port=0):
        ts = await mention(slack, "anything")
        final = await wait_final(slack, "C1", ts)
        body = block_text(final)
        assert "Failed" in body and "500" in body
        status = bot_messages(slack, "C1", ts)[0]
        await slack.wait_for(lambda: slack.message("C1", status["ts"])["text"].startswith("❌ Failed"), timeout=15)


@pytest.mark.docker
async def test_bad_model_request_fails_without_retry(slack, model, bot):
    model.script([error(400, "model not found")])
    ts = await mention(slack, "anything")
    final = await wait_final(slack, "C1", ts)
    assert "model not found" in block_text(final)
    assert len([r for r in model.requests if r.path.endswith("/chat/completions")]) == 1


async def test_docker_unavailable_tells_the_thread(slack, model, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    settings = make_settings(tmp_path / "d", slack, model, SLACKBOT_DOCKER_TIMEOUT_S=5)
    model.script([text("should not be asked")])
    async with Bot(settings, port=0):
        ts = await mention(slack, "anything")
        final = await wait_final(slack, "C1", ts)
    assert "Docker" in block_text(final)
    assert model.requests == []


async def test_no_task_starts_on_a_nearly_full_disk(slack, model, tmp_path):
    settings = make_settings(tmp_path / "d", slack, model, SLACKBOT_DISK_RESERVE="1000t")
    async with Bot(settings, port=0):
        ts = await mention(slack, "fill me up")
        final = await wait_final(slack, "C1", ts)
    assert "disk is nearly full" in block_text(final)
    assert model.requests == []
