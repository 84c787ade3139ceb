"""The model client's retries against the scripted model server over HTTP: HTTP errors by the openai
SDK (Retry-After honoured), malformed bodies by ours, both under one deadline per call."""

from __future__ import annotations

import time

import openai
import pytest

from slackbot.agent import ModelError, OpenAIModel
from tests.fakes import ScriptedModel, error, raw, text

MESSAGES = [{"role": "user", "content": "hello"}]


def client(model: ScriptedModel, **options) -> OpenAIModel:
    values = {"name": "test-model", "api": "chat", "base_url": model.base_url, "api_key": "sk-test",
              "retries": 2, "backoff_s": 0.01, "timeout_s": 30.0}
    values.update(options)
    return OpenAIModel(**values)


def gaps(model: ScriptedModel) -> list[float]:
    times = [r.time for r in model.requests]
    return [b - a for a, b in zip(times, times[1:])]


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_429_with_retry_after_is_retried_by_the_sdk_after_the_wait(model, api):
    model.script([error(429, "slow down", retry_after=1), text("ok")])
    llm = client(model, api=api)
    reply = await llm.complete(MESSAGES, [])
    await llm.aclose()
    assert reply.text == "ok" and len(model.requests) == 2
    assert gaps(model)[0] >= 0.95  # the SDK's own backoff would have been at most 0.5 s


async def test_500_then_success(model):
    model.script([error(500, "hiccup"), text("ok")])
    llm = client(model)
    assert (await llm.complete(MESSAGES, [])).text == "ok"
    await llm.aclose()
    assert len(model.requests) == 2


async def test_http_errors_once_retries_are_spent_and_refusals_at_once(model):
    model.script([error(503, "down for maintenance")] * 3)
    llm = client(model, retries=2)
    with pytest.raises(ModelError) as failed:
        await llm.complete(MESSAGES, [])
    assert str(failed.value) == "The model endpoint answered 503: down for maintenance" and failed.value.retryable
    assert len(model.requests) == 3  # not 9: ours do not retry what the SDK gave up on

    model.script([error(400, "context too long"), text("never")])
    with pytest.raises(ModelError) as refused:
        await llm.complete(MESSAGES, [])
    await llm.aclose()
    assert str(refused.value) == "The model endpoint answered 400: context too long" and not refused.value.retryable
    assert len(model.requests) == 4


async def test_malformed_bodies_are_retried_by_ours(model):
    model.script([
        raw("<html><body>502 Bad Gateway</body></html>"),
        raw({"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": None}]}),
        raw({"id": "x", "object": "chat.completion", "choices": []}),
        text("ok"),
    ])
    llm = client(model, retries=3)
    assert (await llm.complete(MESSAGES, [])).text == "ok"
    await llm.aclose()
    assert len(model.requests) == 4


async def test_the_two_kinds_of_retry_are_counted_apart(model):
    # retries=1: the SDK may retry the 503 once, and ours the page once, within one call.
    model.script([error(503, "down"), raw("<html>proxy</html>"), text("ok")])
    llm = client(model, retries=1)
    assert (await llm.complete(MESSAGES, [])).text == "ok"
    await llm.aclose()
    assert len(model.requests) == 3


async def test_the_deadline_stops_a_long_retry_after(model):
    model.script([error(429, "slow down", retry_after=30), text("too late")])
    llm = client(model, retries=5, timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(ModelError) as failed:
        await llm.complete(MESSAGES, [])
    await llm.aclose()
    assert time.monotonic() - started < 3
    assert str(failed.value).startswith("The model endpoint gave no usable answer within 1s (SLACKBOT_MODEL_TIMEOUT_S)")
    assert len(model.requests) == 1


async def test_the_deadline_stops_our_retries_and_names_the_last_answer(model):
    model.script([raw("<html>proxy error</html>")] * 20)
    llm = client(model, retries=20, backoff_s=0.3, timeout_s=1.5)
    with pytest.raises(ModelError) as failed:
        await llm.complete(MESSAGES, [])
    await llm.aclose()
    message = str(failed.value)
    assert message.startswith("The model endpoint gave no usable answer within 1.5s")
    assert "The last answer: The model endpoint returned a malformed response" in message and "proxy error" in message
    assert 2 <= len(model.requests) < 8


async def test_a_shared_client_gets_retries_and_stays_open(model):
    shared = openai.AsyncOpenAI(base_url=model.base_url, api_key="sk-test", max_retries=0)  # as app.py makes it
    model.script([error(500, "hiccup"), text("one"), text("two")])
    llm = OpenAIModel(name="test-model", api="chat", retries=2, client=shared)
    assert (await llm.complete(MESSAGES, [])).text == "one"
    await llm.aclose()  # not its client to close
    assert shared.max_retries == 0 and not shared.is_closed()
    assert (await shared.chat.completions.create(model="test-model", messages=MESSAGES)).choices[0].message.content == "two"
    await shared.close()
