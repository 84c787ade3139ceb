"""The docker sandbox against a real engine and the real `slackbot-sandbox:latest` image.

Build the image first (CI does): `bash ci/base-image.sh` then
`slackbot sandbox build --base slackbot-base:bookworm`. Without Docker these tests skip on a
laptop and fail under CI=true.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path

import docker
import pytest

from slackbot.sandbox import DockerSandboxes, SandboxError
from slackbot.settings import Settings

IMAGE = "slackbot-sandbox:latest"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"Docker sandbox tests need Docker and {IMAGE}: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=10)
        client.ping()
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        _unavailable(f"image {IMAGE} is missing (run `slackbot sandbox build --base slackbot-base:bookworm`)")
    except Exception as exc:  # no engine at all
        _unavailable(f"Docker is not reachable: {exc}")
    return client


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings pointing at a temporary data directory (nothing read from a .env file)."""
    return Settings(data_dir=tmp_path / "data", sandbox_image=IMAGE, docker_timeout_s=30,
                    sandbox_memory="512m", sandbox_cpus=1.0, sandbox_pids=256)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    (path / "README.md").write_text("hello from the host\n")
    return path


@pytest.fixture
async def sandboxes(engine, settings):
    provider = DockerSandboxes(settings, instance=f"test-{secrets.token_hex(3)}")
    yield provider
    await provider.reap()
    await provider.aclose()


async def test_files_persist_between_commands_and_reach_the_host(sandboxes, workspace):
    box = await sandboxes.start(task_id=1, workspace=workspace)
    try:
        first = await box.exec("echo written-in-sandbox > notes.txt && cat README.md", timeout_s=30)
        assert first.exit_code == 0, first.output
        assert "hello from the host" in first.output
        second = await box.exec("cat notes.txt; pwd; id -u", timeout_s=30)
        assert second.output.split() == ["written-in-sandbox", "/workspace", "1000"]
        assert (workspace / "notes.txt").read_text() == "written-in-sandbox\n"
        assert second.duration_s > 0 and not second.timed_out
    finally:
        await box.close()


async def test_failing_command_reports_exit_code_and_stderr(sandboxes, workspace):
    box = await sandboxes.start(task_id=2, workspace=workspace)
    try:
        result = await box.exec("echo out; echo err >&2; printf '\\xff\\n'; exit 3", timeout_s=30)
        assert result.exit_code == 3
        assert not result.timed_out
        assert "out" in result.output and "err" in result.output
        assert "\ufffd" in result.output  # undecodable bytes are replaced, not fatal
    finally:
        await box.close()


async def test_command_outliving_its_timeout_is_killed(sandboxes, workspace):
    box = await sandboxes.start(task_id=3, workspace=workspace)
    try:
        started = time.monotonic()
        result = await box.exec("echo begin; sleep 1000", timeout_s=2)
        assert result.timed_out
        assert result.exit_code in (124, 137)
        assert "begin" in result.output
        assert time.monotonic() - started < 15
        ps = await box.exec("ps -eo args", timeout_s=30)
        assert "sleep 1000" not in ps.output.splitlines(), ps.output
    finally:
        await box.close()


async def test_cancelled_exec_kills_its_command(sandboxes, workspace):
    box = await sandboxes.start(task_id=4, workspace=workspace)
    try:
        pending = asyncio.create_task(box.exec("sleep 1001 & sleep 1002", timeout_s=600))
        await asyncio.sleep(1.5)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        for _ in range(20):  # the pool thread notices within about a second
            ps = await box.exec("ps -eo args", timeout_s=30)
            if not {"sleep 1001", "sleep 1002"} & set(ps.output.splitlines()):
                break
            await asyncio.sleep(0.5)
        assert not {"sleep 1001", "sleep 1002"} & set(ps.output.splitlines()), ps.output
    finally:
        await box.close()


async def test_network_off_has_only_loopback(sandboxes, workspace):
    box = await sandboxes.start(task_id=5, workspace=workspace, network="off")
    try:
        result = await box.exec("ls /sys/class/net; ip -o link | wc -l", timeout_s=30)
        assert result.output.split() == ["lo", "1"], result.output
    finally:
        await box.close()


async def test_setup_network_then_disconnect_leaves_only_loopback(sandboxes, workspace):
    box = await sandboxes.start(task_id=6, workspace=workspace, network="setup")
    try:
        before = await box.exec("ls /sys/class/net", timeout_s=30)
        assert "eth0" in before.output.split()
        await box.disconnect_network()
        after = await box.exec("ls /sys/class/net", timeout_s=30)
        assert after.output.split() == ["lo"], after.output
        await box.disconnect_network()  # twice is fine
    finally:
        await box.close()


async def test_limits_labels_and_mount(engine, sandboxes, settings, workspace):
    box = await sandboxes.start(task_id=7, workspace=workspace)
    try:
        info = engine.api.inspect_container(box.container_id)
        host = info["HostConfig"]
        assert host["Memory"] == 512 * 1024 * 1024
        assert host["NanoCpus"] == 1_000_000_000
        assert host["PidsLimit"] == 256
        assert host["CapDrop"] == ["ALL"]
        assert host["SecurityOpt"] == ["no-new-privileges"]
        assert host["Init"] is True
        assert host["NetworkMode"] == "none"
        assert info["Config"]["User"] == "1000:1000"
        assert info["Config"]["Labels"] == {"slackbot.managed": "1", "slackbot.instance": sandboxes.instance,
                                           "slackbot.task": "7"}
        assert box.container_name.startswith(f"slackbot-{sandboxes.instance}-task-7-")
        assert [(m["Source"], m["Destination"], m["RW"]) for m in info["Mounts"]] == [
            (str(workspace.resolve()), "/workspace", True)]
    finally:
        await box.close()


async def test_host_secrets_stay_out(sandboxes, settings, workspace, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-must-not-leak")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-must-not-leak")
    box = await sandboxes.start(task_id=8, workspace=workspace, env={"SETUP_FLAG": "yes"})
    try:
        result = await box.exec("env; cat /proc/1/environ | tr '\\0' '\\n'", timeout_s=30)
        assert "must-not-leak" not in result.output
        assert "OPENAI_API_KEY" not in result.output
        assert "SETUP_FLAG=yes" in result.output
    finally:
        await box.close()
    leaky = settings.model_copy(update={"openai_api_key": "sk-bot-own-key"})
    guarded = DockerSandboxes(leaky, instance="leak")
    try:
        with pytest.raises(SandboxError, match="secrets"):
            await guarded.start(task_id=9, workspace=workspace, env={"KEY": "sk-bot-own-key"})
    finally:
        await guarded.aclose()


async def test_close_reap_and_remove_task(engine, sandboxes, workspace):
    def exists(container_id: str) -> bool:
        try:
            engine.api.inspect_container(container_id)
            return True
        except docker.errors.NotFound:
            return False

    closed = await sandboxes.start(task_id=10, workspace=workspace)
    await closed.close()
    await closed.close()  # idempotent
    assert not exists(closed.container_id)

    kept = await sandboxes.start(task_id=11, workspace=workspace)
    stale = await sandboxes.start(task_id=12, workspace=workspace)
    stopped = await sandboxes.start(task_id=13, workspace=workspace)
    other = DockerSandboxes(sandboxes.settings, instance=f"other-{secrets.token_hex(3)}")
    foreign = await other.start(task_id=12, workspace=workspace)
    try:
        await sandboxes.remove_task(13)
        assert not exists(stopped.container_id)
        await stopped.close()  # already gone: no error

        removed = await sandboxes.reap({11})
        assert removed == [stale.container_name]
        assert exists(kept.container_id) and not exists(stale.container_id)
        assert exists(foreign.container_id)  # another instance's containers are not ours to reap
    finally:
        await foreign.close()
        await other.aclose()
        await kept.close()


async def test_image_checks(sandboxes, settings, workspace):
    assert await sandboxes.image_exists()
    assert not await sandboxes.image_exists("slackbot-no-such-image:latest")
    missing = DockerSandboxes(settings.model_copy(update={"sandbox_image": "slackbot-no-such-image:latest"}),
                              instance="missing")
    try:
        with pytest.raises(SandboxError, match="slackbot sandbox build"):
            await missing.start(task_id=14, workspace=workspace)
    finally:
        await missing.aclose()


async def test_dead_docker_host_gives_sandbox_error(engine, settings, workspace, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    provider = DockerSandboxes(settings.model_copy(update={"docker_timeout_s": 5}), instance="dead")
    try:
        with pytest.raises(SandboxError, match="Docker is not reachable") as error:
            await provider.ping()
        assert "127.0.0.1:9" in str(error.value) and error.value.retryable
        with pytest.raises(SandboxError, match="Docker is not reachable"):
            await provider.start(task_id=15, workspace=workspace)
    finally:
        await provider.aclose()
