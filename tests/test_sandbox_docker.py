"""The agent's docker sandbox against a real engine and the real image; workspace disks with real mounts.

One-shot steps and per-task networks are in test_sandbox_steps.py.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from slackbot.protocol import Mount, Step
from slackbot.sandbox import DiskError, DockerSandboxes, SandboxError, WorkspaceDisks
from tests.docker_fixtures import (containers_of, engine, exists, sandboxes, settings,  # noqa: F401
                                   workspace)


def ws(path: Path) -> tuple[Mount, ...]:
    return (Mount(str(path), "/workspace"),)


@pytest.mark.docker
async def test_files_persist_between_commands_and_reach_the_host(sandboxes, workspace):
    box = await sandboxes.start(task_id=1, mounts=ws(workspace))
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


@pytest.mark.docker
async def test_failing_command_reports_exit_code_and_stderr(sandboxes, workspace):
    box = await sandboxes.start(task_id=2, mounts=ws(workspace))
    try:
        result = await box.exec("echo out; echo err >&2; printf '\\xff\\n'; exit 3", timeout_s=30)
        assert result.exit_code == 3
        assert not result.timed_out
        assert "out" in result.output and "err" in result.output
        assert "\ufffd" in result.output  # undecodable bytes are replaced, not fatal
    finally:
        await box.close()


@pytest.mark.docker
async def test_command_outliving_its_timeout_is_killed_with_its_process_group(sandboxes, workspace):
    box = await sandboxes.start(task_id=3, mounts=ws(workspace))
    try:
        started = time.monotonic()
        result = await box.exec("echo begin; sleep 1003 & sleep 1000", timeout_s=2)
        assert result.timed_out
        assert result.exit_code in (124, 137)
        assert "begin" in result.output
        assert time.monotonic() - started < 15
        ps = await box.exec("ps -eo args", timeout_s=30)
        assert not {"sleep 1000", "sleep 1003"} & set(ps.output.splitlines()), ps.output
    finally:
        await box.close()


@pytest.mark.docker
async def test_cancelled_exec_kills_its_command(sandboxes, workspace):
    box = await sandboxes.start(task_id=4, mounts=ws(workspace))
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


@pytest.mark.docker
async def test_no_network_has_only_loopback(sandboxes, workspace):
    box = await sandboxes.start(task_id=5, mounts=ws(workspace))
    try:
        result = await box.exec("ls /sys/class/net; ip -o link | wc -l", timeout_s=30)
        assert result.output.split() == ["lo", "1"], result.output
    finally:
        await box.close()


@pytest.mark.docker
async def test_root_filesystem_is_read_only_but_tmp_and_workspace_are_writable(sandboxes, workspace):
    box = await sandboxes.start(task_id=6, mounts=ws(workspace))
    try:
        root = await box.exec("touch /usr/x", timeout_s=30)
        assert root.exit_code != 0 and "Read-only file system" in root.output, root.output
        home = await box.exec("touch /home/agent/x", timeout_s=30)  # no home volume here: the image's, read-only
        assert home.exit_code != 0, home.output
        ok = await box.exec("echo t > /tmp/t && echo v > /var/tmp/v && echo w > /workspace/w && cat /tmp/t",
                            timeout_s=30)
        assert ok.exit_code == 0 and ok.output.strip() == "t", ok.output
        assert (workspace / "w").read_text() == "w\n"
    finally:
        await box.close()


@pytest.mark.docker
async def test_disk_usage_counts_allocated_bytes(sandboxes, workspace):
    box = await sandboxes.start(task_id=7, mounts=ws(workspace))
    try:
        before = await box.disk_usage()
        made = await box.exec("head -c 3000000 /dev/urandom > blob && truncate -s 10G sparse", timeout_s=60)
        assert made.exit_code == 0, made.output
        after = await box.disk_usage()
        assert 3_000_000 <= after - before < 4_000_000  # the sparse 10 GB file holds no blocks
    finally:
        await box.close()


@pytest.mark.docker
async def test_limits_labels_and_mounts(engine, sandboxes, workspace):
    home = f"slackbot-home-{sandboxes.instance}-thread-1"
    box = await sandboxes.start(task_id=8, mounts=(*ws(workspace), Mount(home, "/home/agent", volume=True)))
    try:
        info = engine.api.inspect_container(box.container_id)
        host = info["HostConfig"]
        assert host["Memory"] == host["MemorySwap"] == 512 * 1024 * 1024
        assert host["NanoCpus"] == 1_000_000_000
        assert host["PidsLimit"] == 256
        assert host["CapDrop"] == ["ALL"]
        assert host["SecurityOpt"] == ["no-new-privileges"]
        assert host["Init"] is True
        assert host["ReadonlyRootfs"] is True
        assert host["NetworkMode"] == "none"
        assert host["Tmpfs"]["/tmp"] == "size=512m,mode=1777"
        assert set(host["Tmpfs"]) == {"/tmp", "/var/tmp", "/run"}
        assert info["Config"]["User"] == "1000:1000"
        labels = {k: v for k, v in info["Config"]["Labels"].items() if k != "slackbot.recipe"}  # the image's
        assert labels == {"slackbot.managed": "1", "slackbot.instance": sandboxes.instance, "slackbot.task": "8",
                          "slackbot.role": "agent", "slackbot.worker": sandboxes.worker}
        assert box.container_name.startswith(f"slackbot-{sandboxes.instance}-task-8-")
        mounts = {m["Destination"]: m for m in info["Mounts"]}
        assert set(mounts) == {"/workspace", "/home/agent"}
        assert (mounts["/workspace"]["Type"], mounts["/workspace"]["Source"], mounts["/workspace"]["RW"]) == (
            "bind", str(workspace.resolve()), True)
        assert (mounts["/home/agent"]["Type"], mounts["/home/agent"]["Name"]) == ("volume", home)
        # the home volume is writable by the agent and survives the container
        wrote = await box.exec("echo kept > ~/.profile-test && id -un", timeout_s=30)
        assert wrote.exit_code == 0 and wrote.output.strip() == "agent", wrote.output
        labels = engine.api.inspect_volume(home)["Labels"]
        assert labels["slackbot.instance"] == sandboxes.instance and "slackbot.task" not in labels
    finally:
        await box.close()
        await sandboxes.remove_volume(home)
        await sandboxes.remove_volume(home)  # twice is fine


@pytest.mark.docker
async def test_host_secrets_stay_out(sandboxes, settings, workspace, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-must-not-leak")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-must-not-leak")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-must-not-leak")
    box = await sandboxes.start(task_id=9, mounts=ws(workspace), env={"SETUP_FLAG": "yes"})
    try:
        result = await box.exec("env; for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ; done 2>/dev/null",
                                timeout_s=30)
        assert "must-not-leak" not in result.output
        assert "OPENAI_API_KEY" not in result.output and "GITHUB_TOKEN" not in result.output
        assert "SETUP_FLAG=yes" in result.output
        pid1 = await box.exec("tr '\\0' '\\n' < /proc/1/environ", timeout_s=30)
        assert pid1.exit_code == 0 and "HOME=/home/agent" in pid1.output and "must-not-leak" not in pid1.output
    finally:
        await box.close()
    leaky = settings.model_copy(update={"openai_api_key": "sk-bot-own-key"})
    guarded = DockerSandboxes(leaky, instance=f"leak-{secrets.token_hex(3)}")
    try:
        with pytest.raises(SandboxError, match="secrets"):
            await guarded.start(task_id=10, mounts=ws(workspace), env={"KEY": "sk-bot-own-key"})
    finally:
        await guarded.reap()
        await guarded.aclose()


@pytest.mark.docker
async def test_close_reap_and_remove_task(engine, sandboxes, workspace):
    closed = await sandboxes.start(task_id=11, mounts=ws(workspace))
    await closed.close()
    await closed.close()  # idempotent
    assert not exists(engine, closed.container_id)

    sandboxes.worker = "worker-alive"
    kept = await sandboxes.start(task_id=12, mounts=ws(workspace))
    sandboxes.worker = "worker-dead"
    stale = await sandboxes.start(task_id=13, mounts=ws(workspace))
    stopped = await sandboxes.start(task_id=14, mounts=ws(workspace))
    sandboxes.worker = "worker-gone"
    orphan = await sandboxes.start(task_id=15, mounts=ws(workspace))
    other = DockerSandboxes(sandboxes.settings, instance=f"other-{secrets.token_hex(3)}")
    foreign = await other.start(task_id=13, mounts=ws(workspace))
    try:
        await sandboxes.remove_task(14)
        assert not exists(engine, stopped.container_id)
        await stopped.close()  # already gone: no error
        await sandboxes.remove_task(14)  # nothing left: no error

        # What one dead worker left; then everything of workers no longer alive.
        assert await sandboxes.remove_worker("worker-dead") == [stale.container_name]
        assert exists(engine, kept.container_id) and exists(engine, orphan.container_id)
        removed = await sandboxes.reap({"worker-alive"})
        assert removed == [orphan.container_name]
        assert exists(engine, kept.container_id) and not exists(engine, stale.container_id)
        assert exists(engine, foreign.container_id)  # another instance's containers are not ours to reap
        assert [c["Id"] for c in containers_of(engine, other.instance)] == [foreign.container_id]
    finally:
        await other.reap()
        await other.aclose()
        await kept.close()


@pytest.mark.docker
async def test_image_checks(sandboxes, settings, workspace):
    assert await sandboxes.image_exists()
    assert not await sandboxes.image_exists("slackbot-no-such-image:latest")
    missing = DockerSandboxes(settings.model_copy(update={"sandbox_image": "slackbot-no-such-image:latest"}),
                              instance=f"missing-{secrets.token_hex(3)}")
    try:
        with pytest.raises(SandboxError, match="slackbot sandbox build"):
            await missing.start(task_id=15, mounts=ws(workspace))
        with pytest.raises(SandboxError, match="slackbot sandbox build"):
            await missing.run_step(Step(15, "clone", ("true",)))
    finally:
        await missing.aclose()


@pytest.mark.docker
async def test_dead_docker_host_gives_sandbox_error(engine, settings, workspace, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    provider = DockerSandboxes(settings.model_copy(update={"docker_timeout_s": 5}), instance="dead")
    try:
        with pytest.raises(SandboxError, match="Docker is not reachable") as error:
            await provider.ping()
        assert "127.0.0.1:9" in str(error.value) and error.value.retryable
        with pytest.raises(SandboxError, match="Docker is not reachable"):
            await provider.start(task_id=16, mounts=ws(workspace))
        with pytest.raises(SandboxError, match="Docker is not reachable"):
            await provider.run_step(Step(16, "clone", ("true",)))
    finally:
        await provider.aclose()


# ---- workspace disks -----------------------------------------------------------------------

def _mounts_under(root: Path) -> list[str]:
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].encode().decode("unicode_escape") for line in f]
    return [p for p in points if p == str(root) or p.startswith(f"{root}/")]


@pytest.fixture
def disk_root(tmp_path: Path):
    root = tmp_path / "workspaces"
    made: list[WorkspaceDisks] = []
    yield root, made
    for disks in made:
        disks.close()
    for point in reversed(_mounts_under(tmp_path)):  # never leave a loop mount behind under tmp_path
        subprocess.run(["umount", "-l", point], check=False)


def _loop_possible() -> bool:
    return os.geteuid() == 0 and bool(shutil.which("mkfs.ext4")) and os.path.exists("/dev/loop-control")


@pytest.mark.docker
@pytest.mark.skipif(not _loop_possible(), reason="loop mode needs root, mkfs.ext4 and loop devices")
async def test_loop_mode_workspace_is_a_quota_filesystem(engine, sandboxes, disk_root):
    root, made = disk_root
    disks = WorkspaceDisks(root, quota_bytes=64 << 20, mode="loop")
    made.append(disks)
    disk = await disks.attach(1)
    assert disk.enforced and disk.path == root / "thread-1" / "work" and not disk.moved_aside
    assert os.path.ismount(root / "thread-1") and (root / "thread-1.img").is_file()
    assert os.stat(disk.path).st_uid == 1000
    again = await disks.attach(1)  # attached twice: the same workspace, mounted once
    assert again.path == disk.path and _mounts_under(root) == [str(root / "thread-1")]

    result = await sandboxes.run_step(Step(1, "fill", ("bash", "-c", "echo kept > /workspace/kept; "
                                                       "head -c 100M /dev/zero > /workspace/big"),
                                           (Mount(str(disk.path), "/workspace"),), timeout_s=60))
    assert result.exit_code != 0 and "No space left on device" in result.output, result.output
    assert (root / "thread-1.img").stat().st_blocks * 512 <= (64 << 20) + (1 << 20)

    await disks.detach(1)
    assert not os.path.ismount(root / "thread-1") and _mounts_under(root) == []
    await disks.detach(1)  # twice is fine
    reused = await disks.attach(1)
    assert reused.path == disk.path and not reused.moved_aside and (reused.path / "kept").read_text() == "kept\n"

    legacy = root / "thread-3"  # a first-release workspace: moved aside, a quota filesystem made instead
    legacy.mkdir()
    (legacy / "README.md").write_text("old checkout\n")
    fresh = await disks.attach(3)
    assert fresh.enforced and fresh.moved_aside and Path(fresh.moved_aside).name.startswith("thread-3.legacy-")
    assert (Path(fresh.moved_aside) / "README.md").exists() and os.path.ismount(legacy)
    assert sorted(p.name for p in fresh.path.iterdir()) == []
    disks.close()
    assert _mounts_under(root) == []


async def test_watch_mode_and_first_release_workspace_moved_aside(disk_root, tmp_path: Path):
    root, made = disk_root
    disks = WorkspaceDisks(root, quota_bytes=64 << 20, mode="watch")
    made.append(disks)
    outside = tmp_path / "outside"
    outside.mkdir()
    legacy = root / "thread-2"
    legacy.mkdir(parents=True)
    (legacy / "README.md").write_text("old checkout\n")
    (legacy / "work").symlink_to(outside)  # a name chosen by a sandbox: never followed

    disk = await disks.attach(2)
    assert not disk.enforced and disk.path == root / "thread-2" / "work"
    assert disk.moved_aside and Path(disk.moved_aside).name.startswith("thread-2.legacy-")
    assert (Path(disk.moved_aside) / "README.md").read_text() == "old checkout\n"
    assert disk.path.is_dir() and not disk.path.is_symlink() and list(outside.iterdir()) == []
    assert (root / "thread-2.layout").is_file() and _mounts_under(root) == []
    if os.geteuid() == 0:
        assert os.stat(disk.path).st_uid == 1000

    (disk.path / "draft.txt").write_text("draft\n")
    again = await disks.attach(2)  # this layout's workspace is reused, not moved aside
    assert again.path == disk.path and not again.moved_aside and (again.path / "draft.txt").exists()
    assert again.home == root / "thread-2" / "home" and again.home.is_dir()
    await disks.detach(2)
    full = WorkspaceDisks(root, quota_bytes=64 << 20, mode="watch", reserve_bytes=1 << 60)
    made.append(full)
    with pytest.raises(DiskError, match="nearly full"):
        await full.attach(4)
