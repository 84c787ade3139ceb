"""Tests of the Slack and model fakes, driven by the real slack_sdk, slack_bolt and openai clients."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes import FakeSlack, error, shell, text, tool_calls

# The `slack` and `model` fixtures come from conftest.py.


def client_for(slack: FakeSlack, **kw) -> AsyncWebClient:
    return AsyncWebClient(base_url=slack.api_url, token=slack.bot_token, **kw)


# ---- Web API --------------------------------------------------------------------------------------


async def test_post_update_thread_and_calls(slack):
    client = client_for(slack)
    auth = await client.auth_test()
    assert auth["user_id"] == "UBOT" and auth["bot_id"] == "B0001" and auth["team_id"] == "T0001"

    root = slack.post_user_message("C1", "U1", "hello")
    r1 = await client.chat_postMessage(channel="C1", thread_ts=root, text="working",
                                       blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}])
    r2 = await client.chat_postMessage(channel="C1", thread_ts=root, text="second")
    assert float(r2["ts"]) > float(r1["ts"]) > float(root)
    assert r1["message"]["bot_id"] == "B0001"
    await client.chat_update(channel="C1", ts=r1["ts"], text="done")
    await client.chat_update(channel="C1", ts=r1["ts"], text="really done")

    msgs = slack.thread("C1", root)
    assert [m["text"] for m in msgs] == ["hello", "really done", "second"]
    assert [e["text"] for e in msgs[1]["edits"]] == ["done", "really done"]
    assert msgs[0]["user"] == "U1" and "bot_id" not in msgs[0]
    assert slack.count("chat.update") == 2 and slack.calls_to("chat.update")[0]["ts"] == r1["ts"]

    replies = await client.conversations_replies(channel="C1", ts=root)
    assert [m["ts"] for m in replies["messages"]] == [root, r1["ts"], r2["ts"]]

    with pytest.raises(SlackApiError) as e:
        await client.chat_update(channel="C1", ts="1.000000", text="x")
    assert e.value.response["error"] == "message_not_found"

    # Form-encoded requests (token as a field, blocks as a JSON string) are understood too.
    async with aiohttp.ClientSession() as s:
        form = {"token": "xoxb-test", "channel": "C2", "text": "via form",
                "blocks": json.dumps([{"type": "divider"}])}
        async with s.post(slack.api_url + "chat.postMessage", data=form) as resp:
            body = await resp.json()
    assert body["ok"] and slack.message("C2", body["ts"])["blocks"] == [{"type": "divider"}]
    assert slack.block_errors == []


async def test_auth_and_unknown_method(slack):
    bad = AsyncWebClient(base_url=slack.api_url, token="xoxb-wrong")
    with pytest.raises(SlackApiError) as e:
        await bad.auth_test()
    assert e.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as e:
        await client_for(slack).api_call("nope.nothing")
    assert e.value.response["error"] == "unknown_method"


async def test_block_validation(slack):
    client = client_for(slack)
    cases = [
        [{"type": "bogus"}],
        [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}],
        [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
        [{"type": "divider"}] * 51,
    ]
    for blocks in cases:
        with pytest.raises(SlackApiError) as e:
            await client.chat_postMessage(channel="C1", text="t", blocks=blocks)
        assert e.value.response["error"] == "invalid_blocks"
    assert len(slack.block_errors) == 4
    assert slack.messages.get("C1", {}) == {}
    with pytest.raises(SlackApiError) as e:
        await client.views_publish(user_id="U1", view={"type": "home", "blocks": [{"type": "divider"}] * 101})
    assert e.value.response["error"] == "invalid_blocks"


async def test_post_rate_limit_and_retry_handler(slack):
    client = client_for(slack)
    for i in range(5):
        await client.chat_postMessage(channel="C1", text=f"m{i}")
    with pytest.raises(SlackApiError) as e:
        await client.chat_postMessage(channel="C1", text="too many")
    assert e.value.response.status_code == 429
    assert int(e.value.response.headers["Retry-After"]) >= 1
    assert slack.rate_limited and slack.rate_limited[0][0] == "chat.postMessage"
    await client.chat_postMessage(channel="C2", text="other channel is fine")

    retrying = client_for(slack, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)])
    t0 = time.monotonic()
    await retrying.chat_postMessage(channel="C1", text="after waiting")
    assert time.monotonic() - t0 >= 0.9


async def test_update_rate_limit_window(slack):
    slack.update_limit_per_min = 3
    client = client_for(slack)
    ts = (await client.chat_postMessage(channel="C1", text="x"))["ts"]
    for i in range(3):
        await client.chat_update(channel="C1", ts=ts, text=str(i))
    with pytest.raises(SlackApiError) as e:
        await client.chat_update(channel="C1", ts=ts, text="over")
    assert e.value.response.status_code == 429
    assert slack.max_updates_in_window() == 3


async def test_fault_injection_and_delay(slack):
    client = client_for(slack)
    slack.fail_next("chat.postMessage", status=200, error="channel_not_found")
    with pytest.raises(SlackApiError) as e:
        await client.chat_postMessage(channel="C1", text="x")
    assert e.value.response["error"] == "channel_not_found"
    slack.fail_next("chat.postMessage", status=500, error="internal_error")
    with pytest.raises(SlackApiError) as e:
        await client.chat_postMessage(channel="C1", text="x")
    assert e.value.response.status_code == 500
    slack.fail_next("reactions.add", status=429, retry_after=1)
    retrying = client_for(slack, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=3)])
    ts = slack.post_user_message("C1", "U1", "hi")
    await retrying.reactions_add(channel="C1", timestamp=ts, name="eyes")
    assert slack.count("reactions.add") == 2 and slack.reactions_on("C1", ts) == ["eyes"]
    assert slack.rate_limited == []  # injected faults are not counted as real limits

    slack.set_delay("auth.test", 0.3)
    t0 = time.monotonic()
    await client.auth_test()
    assert time.monotonic() - t0 >= 0.3


async def test_misc_methods(slack):
    client = client_for(slack)
    ts = slack.post_user_message("C1", "U1", "hi")
    await client.reactions_add(channel="C1", timestamp=ts, name="eyes")
    with pytest.raises(SlackApiError) as e:
        await client.reactions_add(channel="C1", timestamp=ts, name="eyes")
    assert e.value.response["error"] == "already_reacted"
    await client.reactions_remove(channel="C1", timestamp=ts, name="eyes")
    assert slack.reactions_on("C1", ts) == []

    await client.chat_postEphemeral(channel="C1", user="U1", text="only you")
    assert slack.ephemerals[0]["user"] == "U1"
    link = await client.chat_getPermalink(channel="C1", message_ts=ts)
    assert link["permalink"].startswith("https://")

    slack.users["UADMIN"] = {"is_admin": True, "real_name": "Ada"}
    info = await client.users_info(user="UADMIN")
    assert info["user"]["is_admin"] and info["user"]["profile"]["email"] == "UADMIN@example.com"
    assert info["user"]["real_name"] == "Ada"
    assert not (await client.users_info(user="U1"))["user"]["is_admin"]
    assert (await client.conversations_info(channel="C1"))["channel"]["id"] == "C1"

    await client.chat_postMessage(channel="C1", text="md", blocks=[{"type": "markdown", "text": "**ok**"}])
    await client.views_publish(user_id="U1", view={"type": "home", "blocks": [{"type": "divider"}]})
    assert slack.home_views["U1"]["blocks"] == [{"type": "divider"}]
    trigger = slack.slash_command_payload("/automation", "", "U1", "C1")["trigger_id"]
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "New"}, "blocks": []}
    await client.views_open(trigger_id=trigger, view=modal)
    with pytest.raises(SlackApiError) as e:
        await client.views_open(trigger_id=trigger, view=modal)
    assert e.value.response["error"] == "exchanged_trigger_id"
    assert len(slack.opened_views) == 1

    up = await client.files_upload_v2(channel="C1", thread_ts=ts, content="diff --git", filename="x.diff",
                                      title="Diff", initial_comment="the diff")
    assert up["file"]["name"] == "x.diff"
    assert slack.files[0]["content"] == b"diff --git" and slack.files[0]["thread_ts"] == ts
    assert slack.thread("C1", ts)[-1]["files"][0]["title"] == "Diff"
    assert slack.block_errors == []


async def test_wait_for_dumps_on_timeout(slack):
    assert await slack.wait_for(lambda: 42, timeout=0.1) == 42
    with pytest.raises(AssertionError, match="last 30 calls"):
        await slack.wait_for(lambda: False, timeout=0.1)


# ---- Socket Mode and HTTP delivery through slack_bolt ---------------------------------------------


def bolt_app(slack: FakeSlack, seen: list):
    from slack_bolt.async_app import AsyncApp

    app = AsyncApp(
        client=AsyncWebClient(base_url=slack.api_url, token=slack.bot_token),
        signing_secret=slack.signing_secret,
    )

    @app.event("app_mention")
    async def on_mention(event, say, context):
        seen.append(("mention", event, context.get("user_id")))
        await say(text="on it", thread_ts=event["ts"])

    @app.command("/agent")
    async def on_command(ack, command, respond):
        await ack()
        seen.append(("command", command["text"]))
        await respond(text="help text")

    @app.action("task_stop")
    async def on_stop(ack, body):
        await ack()
        seen.append(("action", body["actions"][0]["value"]))

    return app


async def test_socket_mode_round_trip(slack):
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    seen: list = []
    app = bolt_app(slack, seen)
    handler = AsyncSocketModeHandler(app, app_token=slack.app_token)
    await handler.connect_async()
    try:
        await slack.wait_socket_connected()
        event, ts = slack.mention("C1", "U1", "fix the bug")
        eid = await slack.socket_send("events_api", event)
        ack = await slack.wait_ack(eid)
        assert ack["envelope_id"] == eid
        await slack.wait_for(lambda: any(m["text"] == "on it" for m in slack.thread("C1", ts)), timeout=5)
        assert seen[0][0] == "mention" and seen[0][1]["text"] == "<@UBOT> fix the bug"

        cmd = slack.slash_command_payload("/agent", "help", "U1", "C1")
        await slack.wait_ack(await slack.socket_send("slash_commands", cmd))
        await slack.wait_for(lambda: slack.responses, timeout=5)
        assert slack.responses[0]["body"]["text"] == "help text"

        # The client survives a server-requested reconnect.
        await slack.socket_disconnect()
        await slack.wait_for(lambda: slack.socket_connects >= 2 and slack.sockets, timeout=10)
        action = slack.block_action_payload("task_stop", "42", "U1", "C1", ts)
        await slack.wait_ack(await slack.socket_send("interactive", action))
        await slack.wait_for(lambda: ("action", "42") in seen, timeout=5)
    finally:
        await handler.close_async()
    assert slack.block_errors == []


async def test_signed_http_delivery(slack):
    seen: list = []
    app = bolt_app(slack, seen)
    runner = web.AppRunner(app.web_app(path="/slack/events"))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/slack/events"
    try:
        event, ts = slack.mention("C1", "U1", "hello", thread_ts=None)
        status, _ = await slack.http_deliver(url, event)
        assert status == 200
        await slack.wait_for(lambda: len(slack.thread("C1", ts)) == 2, timeout=5)

        status, _ = await slack.http_deliver(url, event, bad_signature=True)
        assert status == 401
        status, _ = await slack.http_deliver(url, event, timestamp=int(time.time()) - 600)
        assert status == 401
        status, _ = await slack.http_deliver(url, event, retry_num=1, retry_reason="http_timeout")
        assert status == 200

        cmd = slack.slash_command_payload("/agent", "repos", "U1", "C1")
        status, _ = await slack.http_deliver(url, cmd, form=True)
        assert status == 200
        action = slack.block_action_payload("task_stop", "7", "U1", "C1", ts)
        status, _ = await slack.http_deliver(url, action, form=True)
        assert status == 200
        await slack.wait_for(lambda: ("action", "7") in seen and ("command", "repos") in seen, timeout=5)
    finally:
        await runner.cleanup()


# ---- ScriptedModel through the openai client ------------------------------------------------------

TOOLS = [{"type": "function", "function": {"name": "shell", "parameters": {
    "type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}}]


async def test_chat_completions_plain_and_streamed(model):
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=model.base_url, api_key="x", max_retries=0)
    model.script([shell("ls -la"), text("all good")])
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "list files"}]
    r = await client.chat.completions.create(model="gpt-5.5", messages=msgs, tools=TOOLS)
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "shell" and json.loads(call.function.arguments) == {"command": "ls -la"}
    assert r.choices[0].finish_reason == "tool_calls" and r.usage.prompt_tokens > 0
    msgs += [r.choices[0].message.model_dump(exclude_none=True),
             {"role": "tool", "tool_call_id": call.id, "content": "exit 0"}]
    r2 = await client.chat.completions.create(model="gpt-5.5", messages=msgs, tools=TOOLS)
    assert r2.choices[0].message.content == "all good" and not r2.choices[0].message.tool_calls
    assert r2.usage.prompt_tokens_details.cached_tokens > 0  # shared prefix with the first request

    model.script([tool_calls([("shell", {"command": "pwd"}), ("update_plan", {"plan": []})], text="thinking")])
    stream = await client.chat.completions.create(model="gpt-5.5", messages=msgs[:2], tools=TOOLS, stream=True,
                                                  stream_options={"include_usage": True})
    content, calls, usage = "", {}, None
    async for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            content += choice.delta.content or ""
            for d in choice.delta.tool_calls or []:
                c = calls.setdefault(d.index, {"id": d.id, "name": "", "args": ""})
                c["name"] += d.function.name or ""
                c["args"] += d.function.arguments or ""
    assert content == "thinking"
    assert [c["name"] for c in calls.values()] == ["shell", "update_plan"]
    assert json.loads(calls[0]["args"]) == {"command": "pwd"} and calls[0]["id"] != calls[1]["id"]
    assert usage is not None and usage.completion_tokens > 0

    # The stream helper of the SDK assembles the same answer.
    model.script([shell("echo hi")])
    async with client.chat.completions.stream(model="gpt-5.5", messages=msgs[:2], tools=TOOLS) as s:
        final = await s.get_final_completion()
    assert final.choices[0].message.tool_calls[0].function.parsed_arguments in (None, {"command": "echo hi"})

    # Exhausted script -> "done"; errors; dynamic steps.
    r = await client.chat.completions.create(model="gpt-5.5", messages=msgs[:2])
    assert r.choices[0].message.content == "done"
    model.script([error(503, "overloaded"), lambda body: text(f"{len(body['messages'])} messages")])
    with pytest.raises(Exception) as e:
        await client.chat.completions.create(model="gpt-5.5", messages=msgs[:2])
    assert getattr(e.value, "status_code", None) == 503
    r = await client.chat.completions.create(model="gpt-5.5", messages=msgs[:2])
    assert r.choices[0].message.content == "2 messages"
    assert [m.id for m in (await client.models.list()).data] == ["gpt-5.5"]


async def test_responses_api(model):
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=model.base_url, api_key="x", max_retries=0)
    tools = [{"type": "function", "name": "shell", "parameters": TOOLS[0]["function"]["parameters"]}]
    model.script([shell("make test"), text("tests pass")])
    r = await client.responses.create(model="gpt-5.5-codex", input="run the tests", tools=tools)
    fc = r.output[0]
    assert fc.type == "function_call" and json.loads(fc.arguments) == {"command": "make test"}
    assert r.usage.input_tokens > 0 and r.usage.input_tokens_details.cached_tokens == 0
    items = [{"role": "user", "content": "run the tests"}, fc.model_dump(exclude_none=True),
             {"type": "function_call_output", "call_id": fc.call_id, "output": "ok"}]
    r2 = await client.responses.create(model="gpt-5.5-codex", input=items, tools=tools)
    assert r2.output_text == "tests pass"

    model.script([tool_calls([("shell", {"command": "ls"})], text="looking")])
    stream = await client.responses.create(model="gpt-5.5-codex", input=items, tools=tools, stream=True)
    kinds, final = [], None
    async for ev in stream:
        kinds.append(ev.type)
        if ev.type == "response.completed":
            final = ev.response
    assert kinds[0] == "response.created" and "response.function_call_arguments.delta" in kinds
    assert final.output_text == "looking" and final.output[1].name == "shell"
    assert final.usage.output_tokens > 0

    model.script([text("streamed")])  # the SDK's strict stream helper accepts the event sequence
    async with client.responses.stream(model="gpt-5.5-codex", input=items) as s:
        assert (await s.get_final_response()).output_text == "streamed"


async def test_scripts_per_conversation(model):
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=model.base_url, api_key="x", max_retries=0)
    model.script_for("task-A", [shell("echo A", delay=0.2), text("A done")])
    model.script_for("task-B", [shell("echo B"), text("B done")])

    async def run(marker):
        msgs = [{"role": "user", "content": f"please do {marker}"}]
        out = []
        for _ in range(2):
            r = await client.chat.completions.create(model="m", messages=msgs)
            m = r.choices[0].message
            out.append(m.content or m.tool_calls[0].function.arguments)
            msgs.append({"role": "assistant", "content": m.content or ""})
        return out

    a, b = await asyncio.gather(run("task-A"), run("task-B"))
    assert a == ['{"command": "echo A"}', "A done"] and b == ['{"command": "echo B"}', "B done"]
    assert len(model.requests_for("task-A")) == 2 and model.remaining("task-A") == 0
    path, body, t = model.requests[0]
    assert path == "/v1/chat/completions" and isinstance(t, float)
