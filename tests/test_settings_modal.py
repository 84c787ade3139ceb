"""`/agent settings`: the modal's round trip through the fake Slack (admins only, errors on their
fields, saved values shown when it opens again), and saved values taking effect in the next task:
model, reasoning effort, language, sandbox CPU and memory, the stricter network, the transcript."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from slackbot.app import Bot
from slackbot.runs.effective import network_policy, overlay
from slackbot.settings import Settings
from slackbot.slack.transcript import render_transcript
from slackbot.store import SavedSettings
from tests.conftest import make_settings
from tests.fakes import shell, text
from tests.helpers import mention, output_of, wait_final
from tests.slack_actions import command, ephemeral_texts


async def open_settings(slack, *, user: str = "UADMIN", channel: str = "C1") -> dict:
    opened = len(slack.opened_views)
    await slack.wait_ack(await slack.socket_send(
        "slash_commands", slack.slash_command_payload("/agent", "settings", user, channel)))
    await slack.wait_for(lambda: len(slack.opened_views) > opened)
    return slack.opened_views[-1]


async def submit(slack, view: dict, values: dict, *, user: str = "UADMIN") -> dict:
    state = {block: {"value": value} for block, value in values.items()}
    payload = slack.view_submission_payload("settings_save", state, user, view_id=view["id"])
    ack = await slack.wait_ack(await slack.socket_send("interactive", payload), timeout=10)
    return ack.get("payload") or {}


def typed(value: str) -> dict:
    return {"type": "plain_text_input", "value": value}


def number(value: str) -> dict:
    return {"type": "number_input", "value": value}


def chosen(value: str) -> dict:
    return {"type": "static_select", "selected_option": {"value": value, "text": {"type": "plain_text",
                                                                                    "text": value}}}


def element(view: dict, block_id: str) -> dict:
    return next(b for b in view["blocks"] if b.get("block_id") == block_id)["element"]


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def remote(tmp: Path) -> Path:
    seed = tmp / "seed"
    git("init", "-q", "-b", "main", str(seed))
    (seed / "README.md").write_text("# app\n")
    git("add", "-A", cwd=seed)
    git("-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-qm", "initial", cwd=seed)
    bare = tmp / "app.git"
    git("clone", "-q", "--bare", str(seed), str(bare))
    return bare


def test_the_stricter_network_holds_and_channels_override_only_channel_fields():
    env = Settings(SLACKBOT_NETWORK="on")
    assert [network_policy(r, env) for r in ("off", "setup", "on")] == ["off", "setup", "on"]
    limited = overlay(env, {"network_limit": "setup"}, {})
    assert [network_policy(r, limited) for r in ("off", "setup", "on", "bogus")] == ["off", "setup", "setup", "off"]
    off = overlay(env, {}, {"network_limit": "off"})
    assert network_policy("on", off) == "off"
    # A channel row for a workspace-only key (written by hand, or forged) is ignored.
    assert overlay(env, {}, {"sandbox_cpus": 64, "admins": "UEVIL"}).sandbox_cpus == env.sandbox_cpus
    assert "UEVIL" not in overlay(env, {}, {"admins": "UEVIL"}).admin_ids


@pytest.mark.docker
async def test_settings_modal_round_trip_and_the_next_task_uses_it(slack, model, tmp_path):
    settings = make_settings(tmp_path / "data", slack, model, SLACKBOT_ADMINS="UADMIN")
    bare = remote(tmp_path)
    async with Bot(settings, port=0) as bot:
        # Only admins open it; others are told, ephemerally.
        assert "Only admins can change settings" in await command(slack, "settings", user="U1")
        view = await open_settings(slack)
        assert view["callback_id"] == "settings_save"
        blocks = {b.get("block_id") for b in view["blocks"]}
        assert {"ch:model", "ch:network_limit", "ch:language", "ws:model", "ws:admins", "ws:sandbox_cpus",
                "ws:retention_days", "ws:prices"} <= blocks
        assert "ch:sandbox_cpus" not in blocks and "ch:admins" not in blocks  # workspace only
        assert element(view, "ws:model")["placeholder"]["text"] == "test-model"  # the environment's
        assert slack.block_errors == []

        # Bad values: each error on its field, nothing saved.
        errors = (await submit(slack, view, {
            "ws:max_steps": number("0"), "ws:sandbox_memory": typed("lots"), "ws:digest_time": typed("25:00"),
            "ws:egress_allow": typed("pypi.org\nbad host!"), "ws:prices": typed("gpt=cheap"),
            "ws:timezone": typed("Mars/Olympus"), "ch:sandbox_cpus": number("4")}))["errors"]
        assert set(errors) == {"ws:max_steps", "ws:sandbox_memory", "ws:digest_time", "ws:egress_allow",
                               "ws:prices", "ws:timezone", "ch:sandbox_cpus"}
        assert "between 1 and 1000" in errors["ws:max_steps"] and "HH:MM" in errors["ws:digest_time"]
        assert await SavedSettings(bot.store).values("C1") == {}
        # A person who is not an admin cannot save by forging the submission.
        forged = await submit(slack, view, {"ws:admins": {"type": "multi_users_select", "selected_users": ["U1"]}},
                              user="U1")
        assert "Only admins" in json.dumps(forged)
        assert await SavedSettings(bot.store).values() == {}

        # Good values are saved, the admin is told what changed.
        ack = await submit(slack, view, {
            "ws:model": typed("model-b"), "ws:reasoning_effort": chosen("low"), "ws:sandbox_cpus": number("0.5"),
            "ws:sandbox_memory": typed("384m"), "ws:task_timeout_s": number("10"), "ch:language": typed("French"),
            "ch:network_limit": chosen("off"), "ws:plan_mode": chosen("on"), "ws:retention_days": number("30"),
            "ws:admins": {"type": "multi_users_select", "selected_users": ["U7"]}, "ch:model": typed(""),
            "ws:egress_allow": typed("pypi.org\n*.example.com:443")})
        assert "errors" not in ack
        await slack.wait_for(lambda: any("Settings saved" in t for t in ephemeral_texts(slack, "UADMIN")))
        workspace, own = await SavedSettings(bot.store).scoped("C1")
        assert workspace == {"model": "model-b", "reasoning_effort": "low", "sandbox_cpus": 0.5,
                             "sandbox_memory": "384m", "task_timeout_s": 600, "plan_mode": True,
                             "retention_days": 30, "admins": "U7", "egress_allow": "pypi.org,*.example.com:443"}
        assert own == {"language": "French", "network_limit": "off"}
        # Opened again, the modal shows what is saved.
        again = await open_settings(slack)
        assert element(again, "ws:model")["initial_value"] == "model-b"
        assert element(again, "ws:task_timeout_s")["initial_value"] == "10"
        assert element(again, "ch:network_limit")["initial_option"]["value"] == "off"
        assert element(again, "ws:admins")["initial_users"] == ["U7"]
        assert element(again, "ws:egress_allow")["initial_value"] == "pypi.org\n*.example.com:443"
        # Saving the same again changes nothing; clearing a select returns it to the default.
        await submit(slack, again, {"ws:model": typed("model-b"), "ch:network_limit": chosen("__default__")})
        await slack.wait_for(lambda: any("Network at most (<#C1>): default" in t
                                         for t in ephemeral_texts(slack, "UADMIN")))
        await SavedSettings(bot.store).save("network_limit", "off", scope="C1")
        # U7, made an admin in the modal, may now open it.
        assert (await open_settings(slack, user="U7"))["callback_id"] == "settings_save"

        # The next task: the saved model, effort and language; the sandbox's limits; no network in C1
        # although the repository allows it; the settings in its transcript.
        assert "Linked `app`" in await command(slack, f"repo add app {bare}", user="UADMIN")
        assert "network on" in await command(slack, "repo set app network=on", user="UADMIN")
        # (cgroup v2 files, or v1's where the host has those)
        model.script([shell("cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes;"
                            " cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us;"
                            " ls /sys/class/net"),
                      text("Done.")])
        ts = await mention(slack, "check the limits")
        await wait_final(slack, "C1", ts)
        first = model.requests[-2].body
        assert first["model"] == "model-b" and first["reasoning_effort"] == "low"
        assert "Answer in French." in first["messages"][0]["content"]
        out = output_of([m["content"] for m in model.requests[-1].body["messages"] if m["role"] == "tool"][-1])
        assert "402653184" in out and "50000" in out
        assert out.split()[-1] == "lo"  # only the loopback: the channel's "off" beat the repository's "on"
        task = (await bot.store.recent_tasks(channel="C1", limit=1))[0]
        transcript = render_transcript(task, await bot.store.events(task.id))
        assert "--- settings ---" in transcript
        for line in ("model = model-b", "network_limit = off", "sandbox_memory = 384m", "language = French",
                     "task_timeout_s = 600.0"):
            assert line in transcript
