"""The sandbox's persistent command channel against a real engine: exit codes, the whole process
group killed at a timeout, binary and huge output, a background process that outlives its command
without delaying it, and the channel's own process killed or corrupted mid-command (a clear error,
then `docker exec` for the rest)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from slackbot.protocol import Mount
from slackbot.sandbox import DockerSandboxes
from tests.docker_fixtures import chown_sandbox, engine, sandboxes, settings, workspace  # noqa: F401


def ws(path: Path) -> tuple[Mount, ...]:
    return (Mount(str(path), "/workspace"),)


async def channel_pid(box) -> str:
    """The pid and command line of what started the command's shell: the channel, or `timeout`."""
    result = await box.exec("echo $PPID; tr '\\0' ' ' < /proc/$PPID/cmdline | cut -c1-40", timeout_s=30)
    return result.output


@pytest.mark.docker
async def test_commands_go_through_one_long_lived_process(sandboxes, workspace):
    box = await sandboxes.start(task_id=1, mounts=ws(workspace))
    try:
        first = await box.exec("echo $$; echo out; echo err >&2; printf '\\xff\\n'; exit 3", timeout_s=30)
        assert first.exit_code == 3 and not first.timed_out
        assert "out" in first.output and "err" in first.output and "\ufffd" in first.output
        assert (await box.exec("kill -9 $$", timeout_s=30)).exit_code == 137
        one, two = await channel_pid(box), await channel_pid(box)
        assert one == two and "python3" in one  # the same server answered both
        env = await box.exec("pwd; id -u; echo $SLACKBOT_EXEC; echo $HOME", timeout_s=30)
        lines = env.output.split()
        assert lines[0] == "/workspace" and lines[1] == "1000" and len(lines[2]) == 16 and lines[3] == "/home/agent"
    finally:
        await box.close()


@pytest.mark.docker
async def test_a_timeout_kills_the_whole_group(sandboxes, workspace):
    box = await sandboxes.start(task_id=2, mounts=ws(workspace))
    try:
        started = time.monotonic()
        result = await box.exec("sleep 301 & sleep 302 & echo begun; sleep 303", timeout_s=1)
        assert result.timed_out and result.exit_code == 124 and "begun" in result.output
        assert time.monotonic() - started < 15
        left = await box.exec("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -o 'sleep 30[123]' "
                              "| wc -l", timeout_s=30)
        assert left.output.strip() == "0", left.output
    finally:
        await box.close()


@pytest.mark.docker
async def test_huge_and_binary_output_is_capped_at_both_ends(sandboxes, workspace):
    box = await sandboxes.start(task_id=3, mounts=ws(workspace))
    try:
        result = await box.exec("echo FIRST; head -c 20000000 /dev/urandom; echo; echo LAST", timeout_s=60)
        assert result.exit_code == 0
        assert result.output.startswith("FIRST") and result.output.rstrip().endswith("LAST")
        assert "bytes of output omitted" in result.output
        assert len(result.output.encode()) < 12_000_000
    finally:
        await box.close()


@pytest.mark.docker
async def test_a_background_process_outlives_its_command_without_delaying_it(sandboxes, workspace):
    box = await sandboxes.start(task_id=4, mounts=ws(workspace))
    try:
        started = time.monotonic()
        result = await box.exec("python3 -m http.server 8321 --bind 127.0.0.1 & sleep 0.5; echo serving",
                                timeout_s=60)
        assert result.exit_code == 0 and "serving" in result.output
        assert time.monotonic() - started < 20  # not held until the command's 60 s limit
        query = await box.exec("python3 -c \"import urllib.request as u; "
                               "print(u.urlopen('http://127.0.0.1:8321/').status)\"", timeout_s=30)
        assert query.output.strip().endswith("200"), query.output
    finally:
        await box.close()


@pytest.mark.docker
@pytest.mark.parametrize("attack", ["kill -9 $PPID", "echo garbage > /proc/$PPID/fd/1; sleep 2",
                                    "printf 'SLACKBOT-FRAME 999999999\\n' > /proc/$PPID/fd/1; sleep 2"],
                         ids=["killed", "garbage", "oversized"])
async def test_a_killed_or_corrupted_channel_fails_the_command_clearly_then_falls_back(sandboxes, workspace,
                                                                                     attack):
    box = await sandboxes.start(task_id=5, mounts=ws(workspace))
    try:
        assert (await box.exec("true", timeout_s=30)).exit_code == 0
        started = time.monotonic()
        hit = await box.exec(f"sleep 300 & {attack}; echo after", timeout_s=120)
        assert time.monotonic() - started < 30  # the host noticed; it did not wait for the limit
        assert hit.exit_code == 125 and "command channel failed" in hit.output, hit
        after = await box.exec("echo fine; cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' "
                               "| grep -o 'slee[p] 300' | wc -l", timeout_s=30)
        assert after.exit_code == 0 and after.output.split() == ["fine", "0"], after.output  # docker exec now
        assert "python3" not in await channel_pid(box)
    finally:
        await box.close()


@pytest.mark.docker
async def test_the_channel_can_be_turned_off(engine, settings, workspace):  # noqa: F811
    provider = DockerSandboxes(settings.model_copy(update={"command_channel": False}), instance="test-nochannel")
    try:
        box = await provider.start(task_id=6, mounts=ws(workspace))
        assert "python3" not in await channel_pid(box)
        assert (await box.exec("exit 4", timeout_s=30)).exit_code == 4
        await box.close()
    finally:
        await provider.reap()
        await provider.aclose()


@pytest.mark.docker
async def test_commands_see_the_login_environment_and_its_changes(sandboxes, workspace, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    chown_sandbox(home)
    box = await sandboxes.start(task_id=7, mounts=ws(workspace) + (Mount(str(home), "/home/agent"),))
    try:
        before = await box.exec("echo ${FROM_PROFILE:-unset}; echo $PATH", timeout_s=30)
        assert before.output.split()[0] == "unset"
        await box.exec("echo 'export FROM_PROFILE=yes; export PATH=$HOME/tools:$PATH' >> ~/.profile", timeout_s=30)
        after = await box.exec("echo ${FROM_PROFILE:-unset}; echo $PATH", timeout_s=30)
        assert after.output.split()[0] == "yes" and after.output.split()[1].startswith("/home/agent/tools:")
    finally:
        await box.close()
