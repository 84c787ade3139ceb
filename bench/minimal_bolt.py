"""The baseline of bench/parallel_tasks.py: a minimal Bolt app with no database, no limits and no pacing.

On app_mention it replies in the thread, starts a container, asks the model, runs the model's shell
commands in the container by `docker exec`, asks again, posts the answer and removes the container.
Not a product: nothing is recorded, nothing is bounded, nothing survives a restart.

    SLACK_BOT_TOKEN=xoxb-… SLACK_APP_TOKEN=xapp-… SLACK_API_URL=… OPENAI_BASE_URL=… OPENAI_API_KEY=… \
        SANDBOX_IMAGE=slackbot-sandbox:latest python bench/minimal_bolt.py

Its containers carry the label `bench.minimal=1` (the bench removes any a killed run left).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import docker
from openai import AsyncOpenAI
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

LABEL = "bench.minimal"
TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "shell", "description": "Run a shell command in the sandbox.",
    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}}]

# Without a retry handler slack_sdk raises on the first 429; with it the baseline finishes and its
# 429s are counted by the fake.
slack = AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"],
                       retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=10)])
app = AsyncApp(client=slack, signing_secret="unused-in-socket-mode", request_verification_enabled=False)
model = AsyncOpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key=os.environ.get("OPENAI_API_KEY", "none"))
engine = docker.from_env()
pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="docker")  # blocking docker calls, off the loop
IMAGE = os.environ.get("SANDBOX_IMAGE", "slackbot-sandbox:latest")


async def blocking(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(pool, functools.partial(fn, *args))


def start_container() -> Any:
    return engine.containers.run(IMAGE, ["sleep", "infinity"], detach=True, network_mode="none", init=True,
                                 labels={LABEL: "1"})


def run_command(container: Any, command: str) -> str:
    code, output = container.exec_run(["bash", "-c", command])
    return f"exit code {code}\n{output.decode(errors='replace')}"


def remove_container(container: Any) -> None:
    container.remove(force=True)


@app.event("app_mention")
async def on_mention(event: dict[str, Any]) -> None:
    channel, thread = event["channel"], event.get("thread_ts") or event["ts"]
    await slack.chat_postMessage(channel=channel, thread_ts=thread, text="Working on it…")
    container = await blocking(start_container)
    try:
        messages: list[Any] = [{"role": "system", "content": "You are a coding agent with a shell."},
                               {"role": "user", "content": event.get("text", "")}]
        while True:
            answer = await model.chat.completions.create(model="bench", messages=messages, tools=TOOLS)
            reply = answer.choices[0].message
            if not reply.tool_calls:
                break
            messages.append(reply.model_dump(exclude_none=True))
            for call in reply.tool_calls:
                command = json.loads(call.function.arguments)["command"]
                output = await blocking(run_command, container, command)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": output})
        await slack.chat_postMessage(channel=channel, thread_ts=thread, text=reply.content or "(no answer)")
    finally:
        await blocking(remove_container, container)


@app.event("message")
async def on_message() -> None:
    pass  # the mention's `message` twin: answered once, as app_mention


async def main() -> None:
    handler = AsyncSocketModeHandler(app, os.environ["SLACK_APP_TOKEN"])
    await handler.start_async()


if __name__ == "__main__":
    asyncio.run(main())
