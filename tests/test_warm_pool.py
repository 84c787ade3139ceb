"""The warm pool against a real engine: hand-out, refill, drain, reaping, and what is never handed out."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from slackbot.protocol import Mount
from slackbot.sandbox import DockerSandboxes
from slackbot.sandbox.slots import mount_points
from tests.docker_fixtures import chown_sandbox, containers_of, engine, settings  # noqa: F401

pytestmark = [pytest.mark.docker, pytest.mark.skipif(os.geteuid() != 0, reason="warm sandboxes need root")]


async def until(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def waiting(engine, provider) -> list[dict]:
    return [c for c in engine.api.containers(all=True, filters={"label": [f"slackbot.instance={provider.instance}",
                                                                           "slackbot.role=pool"]})]


def slot_mounts(settings) -> list[str]:
    root = str(settings.data_dir / "pool")
    return [p for p in mount_points() if p.startswith(root)]


@pytest.fixture
async def pool(engine, settings):
    settings.warm_pool = 2
    provider = DockerSandboxes(settings, instance=f"test-{os.urandom(3).hex()}", worker="w1")
    try:
        provider.keep_warm()
        await until(lambda: provider.pool.ready(provider.shape()) == 2)
        yield provider
    finally:
        try:
            await provider.reap()
        finally:
            await provider.aclose()


def task_dirs(tmp_path: Path, name: str) -> tuple[Mount, ...]:
    work, home, skills = tmp_path / name / "work", tmp_path / name / "home", tmp_path / name / "skills"
    for path in (work, home, skills):
        path.mkdir(parents=True)
    (skills / "SKILL.md").write_text("a skill\n")
    chown_sandbox(work)
    chown_sandbox(home)
    return (Mount(str(work), "/workspace"), Mount(str(home), "/home/agent"), Mount(str(skills), "/skills", True))


async def test_a_task_gets_its_own_directories_and_they_leave_with_it(pool, engine, settings, tmp_path):
    mounts = task_dirs(tmp_path, "t1")
    box = await pool.take_warm(task_id=7, mounts=mounts)
    assert box is not None
    assert "-task-7-" in box.container_name
    assert [c["Labels"]["slackbot.task"] for c in containers_of(engine, pool.instance, 7)] == ["7"]
    done = await box.exec("echo hi > note && pwd && cat /skills/SKILL.md && (touch /skills/x 2>/dev/null || echo refused)"
                          " && ls -A /mirror | wc -l && echo $HOME > ~/where", timeout_s=30)
    assert done.output.split() == ["/workspace", "a", "skill", "refused", "0"], done.output
    assert (tmp_path / "t1" / "work" / "note").read_text() == "hi\n"
    assert (tmp_path / "t1" / "home" / "where").read_text() == "/home/agent\n"
    lent = await box.with_mount(Mount(str(tmp_path / "t1" / "skills"), "/mirror", True), "ls /mirror; touch /mirror/y",
                                timeout_s=30, env={})
    assert lent.output.startswith("SKILL.md") and lent.exit_code != 0
    again = await box.exec("ls -A /mirror | wc -l", timeout_s=30)
    assert again.output.strip() == "0"  # lent only for that command
    await box.close()
    assert not containers_of(engine, pool.instance, 7)
    await until(lambda: pool.pool.ready(pool.shape()) == 2)  # refilled
    assert len(slot_mounts(settings)) == 2  # the two waiting slots, nothing of the task's
    assert (tmp_path / "t1" / "work" / "note").exists()  # releasing never reaches into a workspace


async def test_no_container_is_handed_out_twice(pool, tmp_path):
    boxes = await asyncio.gather(*(pool.take_warm(task_id=20 + i, mounts=task_dirs(tmp_path, f"c{i}"))
                                   for i in range(6)))
    taken = [b for b in boxes if b is not None]
    try:
        assert len(taken) == 2  # the pool held two; the others start cold
        assert len({b.container_id for b in taken}) == 2
        for box in taken:
            result = await box.exec("ls", timeout_s=30)
            assert result.exit_code == 0
    finally:
        for box in taken:
            await box.close()


async def test_a_container_with_other_limits_is_never_used(pool, engine, tmp_path):
    for c in waiting(engine, pool):
        engine.api.update_container(c["Id"], mem_limit="256m", memswap_limit="256m")
    assert await pool.take_warm(task_id=30, mounts=task_dirs(tmp_path, "l")) is None
    await until(lambda: all(c["Labels"].get("slackbot.role") != "pool" or c["State"] != "running" or
                            engine.api.inspect_container(c["Id"])["HostConfig"]["Memory"] == 512 << 20
                            for c in waiting(engine, pool)))
    # Another shape asked for is not served from this one's containers either.
    assert await pool.take_warm(task_id=31, mounts=task_dirs(tmp_path, "m"), memory="768m") is None


async def test_drain_removes_waiting_containers_and_their_slots(engine, settings):
    settings.warm_pool = 2
    provider = DockerSandboxes(settings, instance=f"test-{os.urandom(3).hex()}", worker="w1")
    provider.keep_warm()
    await until(lambda: provider.pool.ready(provider.shape()) == 2)
    assert len(slot_mounts(settings)) == 2
    await provider.aclose()
    assert not waiting(engine, provider)
    assert not slot_mounts(settings)
    assert not any((settings.data_dir / "pool").glob("*/slot-*"))


async def test_a_dead_process_s_pool_is_reaped(engine, settings):
    settings.warm_pool = 2
    dead = DockerSandboxes(settings, instance=f"test-{os.urandom(3).hex()}", worker="w-dead")
    dead.keep_warm()
    await until(lambda: dead.pool.ready(dead.shape()) == 2)
    dead._pool.shutdown(wait=False)  # it dies: nothing of it is drained
    alive = DockerSandboxes(settings, instance=dead.instance, worker="w-alive")
    try:
        removed = await alive.reap(["w-alive"])
        assert len(removed) == 2
        assert not waiting(engine, alive)
        assert not slot_mounts(settings)
        assert not any((settings.data_dir / "pool").glob("*/slot-*"))
    finally:
        await alive.aclose()


async def test_size_zero_turns_it_off(engine, settings, tmp_path):
    settings.warm_pool = 0
    provider = DockerSandboxes(settings, instance=f"test-{os.urandom(3).hex()}", worker="w1")
    try:
        provider.keep_warm()
        assert await provider.take_warm(task_id=1, mounts=task_dirs(tmp_path, "z")) is None
        assert provider.pool.off and not waiting(engine, provider)
    finally:
        await provider.aclose()


async def test_a_scratch_start_is_made_again_in_place_and_an_older_one_cloned(pool, tmp_path):
    from slackbot.repos import ensure_scratch, scripts
    from slackbot.repos.git_env import run_git

    repo, sha = ensure_scratch(tmp_path / "scratch", 1)
    assert sha == ensure_scratch(tmp_path / "scratch", 2)[1]  # every scratch thread starts from the same commit
    older = tmp_path / "older.git"
    run_git(["init", "-q", "--bare", str(older)])
    old_sha = run_git(["commit-tree", "4b825dc642cb6eb9a060e54bf8d69288fbee4904", "-m", "Start of the agent thread"],
                      cwd=older, env={"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a",
                                      "GIT_COMMITTER_EMAIL": "a@b"}).strip()
    run_git(["update-ref", "refs/heads/main", old_sha], cwd=older)
    for source, base in ((repo, sha), (older, old_sha)):
        box = await pool.take_warm(task_id=40, mounts=task_dirs(tmp_path, f"s-{base[:6]}"))
        try:
            argv, env = scripts.clone(base_sha=base, branch="slackbot/scratch-40", origin="", scratch=True)
            done = await box.with_mount(Mount(str(source), "/mirror", True), argv[-1], timeout_s=60, env=env)
            assert done.exit_code == 0, done.output
            seen = await box.exec("git rev-parse HEAD; git branch --show-current; git remote | wc -l; "
                                  "git config user.name; ls .git/objects/pack | wc -l", timeout_s=30)
            packs = "0" if base == sha else "2"  # made in place: loose objects; cloned: a pack and its index
            assert seen.output.split() == [base, "slackbot/scratch-40", "0", "slackbot", packs], seen.output
        finally:
            await box.close()
