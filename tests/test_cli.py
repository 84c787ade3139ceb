"""The command line, run as a real subprocess against the fakes."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import aiohttp
import pytest

from tests.conftest import SANDBOX_IMAGE, TEST_OPENAI_KEY
from tests.fakes import shell, text


def cli_env(tmp_path, slack, model, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK", "OPENAI", "DATABASE_URL"))}
    env.update({
        "SLACK_BOT_TOKEN": slack.bot_token, "SLACK_APP_TOKEN": slack.app_token,
        "SLACK_SIGNING_SECRET": slack.signing_secret, "SLACK_API_URL": slack.api_url,
        "OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": TEST_OPENAI_KEY, "SLACKBOT_MODEL": "test-model",
        "SLACKBOT_DATA_DIR": str(tmp_path / "data"), "SLACKBOT_SANDBOX_IMAGE": SANDBOX_IMAGE,
    })
    env.update(extra)
    return env


async def run_cli(env: dict[str, str], *args: str, timeout: float = 120) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "slackbot", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.docker
async def test_doctor_green_against_the_fakes(slack, model, tmp_path):
    code, out, _err = await run_cli(cli_env(tmp_path, slack, model), "doctor")
    assert code == 0, out
    assert "✓ Docker" in out and "✓ Slack" in out and "✓ model endpoint" in out and "✓ database" in out


async def test_doctor_red_names_docker_when_it_is_dead(slack, model, tmp_path):
    env = cli_env(tmp_path, slack, model, DOCKER_HOST="tcp://127.0.0.1:1", SLACKBOT_DOCKER_TIMEOUT_S="5")
    code, out, _err = await run_cli(env, "doctor")
    assert code != 0
    assert "✗ Docker" in out
    assert "✓ Slack" in out


async def test_doctor_red_names_a_dead_model_endpoint(slack, model, tmp_path):
    env = cli_env(tmp_path, slack, model, OPENAI_BASE_URL="http://127.0.0.1:1/v1")
    code, out, _err = await run_cli(env, "doctor")
    assert code != 0
    assert "✗ model endpoint" in out and "OPENAI_BASE_URL" in out


@pytest.mark.docker
async def test_exec_json_prints_codex_events(slack, model, tmp_path):
    model.script([shell("echo hi > a.txt; cat a.txt"), text("Wrote a.txt")])
    code, out, err = await run_cli(cli_env(tmp_path, slack, model), "exec", "write a.txt", "--json")
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    types = [e["type"] for e in events]
    assert types[0] == "thread.started" and types[1] == "turn.started"
    assert types[-1] == "turn.completed"
    started = next(e for e in events if e["type"] == "item.started")
    assert started["item"] == {"id": started["item"]["id"], "type": "command_execution",
                               "command": "echo hi > a.txt; cat a.txt", "aggregated_output": "",
                               "exit_code": None, "status": "in_progress"}
    done = next(e for e in events if e["type"] == "item.completed" and e["item"]["type"] == "command_execution")
    assert done["item"]["aggregated_output"].strip() == "hi" and done["item"]["exit_code"] == 0
    assert done["item"]["status"] == "completed"
    message = next(e for e in events if e["type"] == "item.completed" and e["item"]["type"] == "agent_message")
    assert message["item"]["text"] == "Wrote a.txt"
    changes = next(e for e in events if e["type"] == "item.completed" and e["item"]["type"] == "file_change")
    assert changes["item"]["changes"] == [{"path": "a.txt", "kind": "add"}]
    usage = events[-1]["usage"]
    assert set(usage) == {"input_tokens", "cached_input_tokens", "output_tokens"} and usage["input_tokens"] > 0


@pytest.mark.docker
async def test_exec_reports_model_failure(slack, model, tmp_path):
    from tests.fakes import error
    model.script([error(401, "bad key")])
    code, out, _err = await run_cli(cli_env(tmp_path, slack, model), "exec", "x", "--json")
    assert code == 1
    assert json.loads(out.splitlines()[-1]) == {"type": "turn.failed", "error": {
        "message": "The model endpoint answered 401: bad key"}}


async def test_run_serves_healthz_in_socket_mode_and_stops_on_sigterm(slack, model, tmp_path):
    env = cli_env(tmp_path, slack, model)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "slackbot", "run", "--port", "0", env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await slack.wait_socket_connected(timeout=30)
        port = await _port_from_log(proc)
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200:
                        assert (await resp.json())["mode"] == "socket"
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("healthz never answered 200")
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0


async def _port_from_log(proc: asyncio.subprocess.Process) -> int:
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        if not line:
            raise AssertionError("the bot exited before listening")
        if "listening on port" in line:
            return int(line.split("listening on port ")[1].split()[0])


@pytest.mark.docker
async def test_exec_with_the_responses_api(slack, model, tmp_path):
    model.script([shell("echo from-responses"), text("Responses API works.")])
    env = cli_env(tmp_path, slack, model, SLACKBOT_MODEL_API="responses")
    code, out, err = await run_cli(env, "exec", "try the responses api")
    assert code == 0, err
    assert "Responses API works." in out and "from-responses" in out
    paths = [r.path for r in model.requests]
    assert paths == ["/v1/responses", "/v1/responses"]
    second = model.requests[1].body
    assert "instructions" in second and second["input"][0] == {"role": "user", "content": "try the responses api"}
    call = next(i for i in second["input"] if i.get("type") == "function_call")
    output = next(i for i in second["input"] if i.get("type") == "function_call_output")
    assert call["name"] == "shell" and output["call_id"] == call["call_id"]
    assert "from-responses" in output["output"]


def test_log_lines_never_carry_secrets():
    import logging

    from slackbot.cli import RedactingFormatter

    formatter = RedactingFormatter("%(message)s", ["xoxb-secret-123", "short"])
    try:
        raise RuntimeError("token xoxb-secret-123 refused")
    except RuntimeError:
        import sys as _sys
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "using %s", ("xoxb-secret-123",),
                                   _sys.exc_info())
    text = formatter.format(record)
    assert "xoxb-secret-123" not in text and text.count("[redacted]") >= 2


@pytest.mark.docker
async def test_exec_with_a_repository(slack, model, tmp_path):
    from tests.test_e2e_repos import git, make_remote

    remote = make_remote(tmp_path)
    model.script([shell("git branch --show-current; cat greet.py"), text("Looked at the repository.")])
    code, out, err = await run_cli(cli_env(tmp_path, slack, model), "exec", "look at greet", "--repo", str(remote))
    assert code == 0, err
    assert "slackbot/look-at-greet-" in out and "def greet" in out
    assert "slackbot/" not in git("branch", "--list", cwd=remote)  # nothing pushed
