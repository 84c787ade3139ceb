"""Attacks on the warm pool (commits 0a2d4af, fde9647; SECURITY.md rows W1-W11): started agent containers on
slot directories the host binds a task's workspace, home and skills into, the first checkout made in them with the
mirror lent at /mirror, the container removed and its binds undone at the task's end. Real tasks on a bot shared
by the module, or the provider against the real engine where a step must be timed. Rows where the attack works
today were `xfail(strict=True)` until fixed.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from pathlib import Path

import docker
import pytest
import pytest_asyncio

from slackbot.protocol import Mount
from slackbot.sandbox import DockerSandboxes, WorkspaceDisks
from slackbot.sandbox.slots import mount_points
from tests.attack_rig import (command, git, make_remote, run_task, running_bot, thread_task_ids, thread_text,
                              tool_outputs)
from tests.docker_fixtures import chown_sandbox, engine, settings  # noqa: F401
from tests.fakes import shell, text
from tests.helpers import final_replies, mention, wait_final

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.docker]
if os.geteuid() != 0:  # CI runs as root: there these rows must run
    pytestmark.append(pytest.mark.skipif(not os.environ.get("CI"), reason="warm sandboxes need root"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pool-attacks")
    async with running_bot(tmp / "data", SLACKBOT_ADMINS="UADMIN", SLACKBOT_WORKSPACE_QUOTA="64m",
                           SLACKBOT_EGRESS_ALLOW="pypi.org") as r:
        r.tmp = tmp  # type: ignore[attr-defined]
        yield r


async def until(check, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def settled(provider) -> None:
    """The pool full and nothing being made (a container being proven has a probe bound at /mirror)."""
    pool, shape = provider.pool, provider.shape()

    def full() -> bool:
        if not pool._fills:
            pool.warm(shape)  # (a fill that failed under load is tried again 30 s later)
        return pool.settled(shape) and not pool._fills
    await until(full)


def in_slots(data: Path) -> list[str]:
    """Binds inside slots (a task's directories, a lent mirror, a probe): a waiting slot has none."""
    root = f"{data / 'pool'}/"
    return sorted(p for p in mount_points() if p.startswith(root) and not Path(p).name.startswith("slot-"))


def hostile_remote(tmp: Path, name: str, files: dict[str, str], links: dict[str, str]) -> Path:
    remote, seed = make_remote(tmp, name, files), tmp / f"{name}-seed"
    for rel, target in links.items():
        os.symlink(target, seed / rel)
    git("add", "-A", cwd=seed)
    git("commit", "-qm", "links", cwd=seed)
    git("push", "-q", str(remote), "HEAD:main", cwd=seed)
    return remote


def task_dirs(tmp: Path, name: str, *, skills_writable: bool = False) -> tuple[Mount, ...]:
    work, home, skills = tmp / name / "work", tmp / name / "home", tmp / name / "skills"
    for path in (work / "sub", home, skills):
        path.mkdir(parents=True)
    (skills / "SKILL.md").write_text("a skill\n")
    for path in (work, home, *([skills] if skills_writable else [])):  # (then only the read-only flag protects it)
        chown_sandbox(path)
    return (Mount(str(work), "/workspace"), Mount(str(home), "/home/agent"), Mount(str(skills), "/skills", True))


def lent_mirror(tmp: Path, content: str) -> Path:
    (tmp / "mirror").mkdir()
    (tmp / "mirror" / "HEAD").write_text(content)
    return tmp / "mirror"


@pytest_asyncio.fixture(loop_scope="module")
async def provider(engine, settings):  # noqa: F811
    settings.warm_pool = 2
    made = DockerSandboxes(settings, instance=f"test-{os.urandom(3).hex()}", worker="w1")
    try:
        made.keep_warm()
        await settled(made)
        yield made
    finally:
        await made.reap()
        await made.aclose()


SHOW = "grep -c /pool/ /proc/self/mountinfo; ls /sys/class/net | tr '\\n' ' '; echo; ls -A /mirror 2>/dev/null | wc -l"


# ---- W1: a hostile tree checked out in the warm container, another thread's result in the mirror -----

async def test_w1_a_hostile_tree_checked_out_warm_never_shows_the_mirror(rig):
    slack, model = rig.slack, rig.model
    hook = "#!/bin/sh\ntouch /tmp/W1-MARK-hook\n"
    remote = hostile_remote(rig.tmp, "hostile", {
        "README.md": "# hostile\n", "notes.txt": "$Id$\n", ".githooks/post-checkout": hook, "hooks/post-checkout": hook,
        ".gitattributes": "* filter=evil diff=evil merge=evil\n*.txt ident\n",
        ".gitmodules": '[submodule "m"]\n\tpath = m\n\turl = /mirror\n\tupdate = !touch /tmp/W1-MARK-submodule\n',
        ".lfsconfig": "[lfs]\n\turl = file:///mirror\n", ".profile": "touch /tmp/W1-MARK-profile\n",
        ".bashrc": "touch /tmp/W1-MARK-bashrc\n"}, {"leak": "/mirror", "cfg": "/mirror/config"})
    for channel in ("CW1A", "CW1B"):
        await command(slack, f"repo add hostile {remote} main", channel=channel)
    await settled(rig.bot.sandboxes)
    await run_task(slack, model, "w1-owner", ["echo W1-OTHER-THREAD-SECRET > other.txt"], channel="CW1A", user="U2")
    blob = subprocess.run(["git", "hash-object", "--stdin"], input=b"W1-OTHER-THREAD-SECRET\n",
                          capture_output=True, check=True).stdout.decode().strip()
    mirror = rig.bot.runs.ctx.repo_ops.mirrors.path_for(str(remote))
    assert subprocess.run(["git", "-C", str(mirror), "cat-file", "-e", blob]).returncode == 0  # control: it is there
    await settled(rig.bot.sandboxes)
    probe = (f"{SHOW}; cat README.md; ls -la leak cfg; ls leak/ cfg 2>&1 | head -3; "
             f"git cat-file -e {blob} 2>/dev/null && echo FOREIGN-PRESENT || echo FOREIGN-ABSENT; "
             "git for-each-ref --format='%(refname)'; git config --list --show-origin | grep -i -e filter -e lfs; "
             "ls -A /tmp /var/tmp /run /dev/shm ~; cat /proc/self/mountinfo; "
             "grep -rl W1-OTHER-THREAD /workspace /home/agent /tmp 2>/dev/null | wc -l")
    # The first command is asked for while the checkout is still being made (it goes out with it).
    await run_task(slack, model, "w1-intruder", [probe, f"sleep 1; {SHOW}"], channel="CW1B")
    first, later = tool_outputs(model, "w1-intruder")[-2:]
    assert first.splitlines()[1:4] == ["4", "lo ", "0"], first  # warm (four slot mounts), no network, /mirror empty
    assert "# hostile" in first and "FOREIGN-ABSENT" in first, first  # checked out; nothing of the other thread
    assert "W1-MARK" not in first and "refs/slackbot" not in first and "filter" not in first, first
    assert str(mirror) not in first and first.rstrip().endswith("\n0"), first
    assert later.splitlines()[1:4] == ["4", "lo ", "0"], later
    await settled(rig.bot.sandboxes)
    assert not in_slots(rig.settings.data_dir), "a slot still holds an ended task's directories"


# ---- W2: anything holding the lent mirror when it is taken back ------------------------------------

async def test_w2_a_process_holding_the_lent_mirror_makes_the_sandbox_go(provider, engine, tmp_path):  # noqa: F811
    mirror = lent_mirror(tmp_path, "W2-MIRROR-CONTENT\n")
    box = await provider.take_warm(task_id=2, mounts=task_dirs(tmp_path, "w2"))
    assert box is not None
    slot = box._pooled.slot.root
    holders = ("cat /mirror/HEAD > ~/seen; (cd /mirror && sleep 300) </dev/null >/dev/null 2>&1 & "
               "exec 3</mirror/HEAD; (setsid sleep 300 <&3 >/dev/null 2>&1 &); sleep 0.3; echo held")
    with pytest.raises(Exception, match="busy"):
        await box.with_mount(Mount(str(mirror), "/mirror", read_only=True), holders, timeout_s=30, env={})
    assert (tmp_path / "w2" / "home" / "seen").read_text() == "W2-MIRROR-CONTENT\n"  # control: it was held
    with pytest.raises(docker.errors.NotFound):
        engine.api.inspect_container(box.container_id)  # the sandbox is gone, and its holders with it
    assert not [p for p in mount_points() if p.startswith(str(slot))] and not slot.exists()
    assert (mirror / "HEAD").exists() and (tmp_path / "w2" / "work").is_dir()  # only rmdir ran


# ---- W3: what one task leaves behind, and a planted login profile ----------------------------------

async def test_w3_nothing_of_one_task_reaches_the_next_and_a_profile_never_sees_the_mirror(rig, tmp_path):
    slack, model = rig.slack, rig.model
    canary = tmp_path / "canary.txt"
    canary.write_text("W3-CANARY\n")
    await command(slack, f"repo add app {make_remote(rig.tmp, 'app')} main", channel="CW3")
    await settled(rig.bot.sandboxes)
    profile = ("echo ran >> ~/profile-ran; ls -A /mirror >> ~/mirror-seen; cp -r /mirror/. ~/stolen/ 2>/dev/null; "
               "(cd /mirror && sleep 600) </dev/null >/dev/null 2>&1 &")
    plant = ("mkdir -p ~/stolen; for f in .profile .bashrc .bash_profile .bash_login; do echo '" + profile
             + "' > ~/$f; done; setsid sleep 600 </dev/null >/dev/null 2>&1 & "
             "for d in /tmp /var/tmp /run /dev/shm; do echo W3-LEFT > $d/w3-left; done; "
             f"ln -s / root-link; ln -s {canary} canary-link; mkdir -p workspace mirror .stage slot-x; "
             f"ln -s {rig.settings.data_dir} data-link; echo kept > kept.txt")
    ts, _ = await run_task(slack, model, "w3-first", [plant], channel="CW3")
    await settled(rig.bot.sandboxes)
    assert not in_slots(rig.settings.data_dir), "a slot still holds the ended task's directories"
    assert canary.read_text() == "W3-CANARY\n"
    fresh = ("ps -eo args | grep -c '[s]leep 600'; ls -A /tmp /var/tmp /run /dev/shm ~ | grep -c -e w3 -e profile; "
             f"{SHOW}")
    await run_task(slack, model, "w3-other-thread", [fresh], channel="CW3", user="U2")
    other = tool_outputs(model, "w3-other-thread")[-1]
    assert other.splitlines()[1:4] == ["0", "0", "4"], other  # no process, file or profile of the first; warm
    follow = f"cat ~/profile-ran | wc -l; cat ~/mirror-seen | wc -w; ls -A ~/stolen | wc -l; cat kept.txt; {SHOW}"
    await run_task(slack, model, "w3-follow", [follow], channel="CW3", thread_ts=ts, thread_key="w3-first", count=2)
    lines = tool_outputs(model, "w3-first")[-1].splitlines()
    assert int(lines[1]) >= 1, lines  # control: the planted profile runs in the follow-up...
    assert lines[2:5] == ["0", "0", "kept"], lines  # ...and never saw a mirror: a follow-up lends none
    assert lines[7] == "0", lines


# ---- W4: a login profile in the home while the mirror is lent (latent) ------------------------------

async def test_w4_a_login_profile_never_runs_while_the_mirror_is_lent(provider, tmp_path):
    from slackbot.repos import scripts

    mirror = lent_mirror(tmp_path, "W4-MIRROR-CONTENT\n")
    mounts = task_dirs(tmp_path, "w4")
    (tmp_path / "w4" / "home" / ".profile").write_text("mkdir -p /tmp/stolen; cp -r /mirror/. /tmp/stolen/\n")
    chown_sandbox(tmp_path / "w4" / "home")
    box = await provider.take_warm(task_id=4, mounts=mounts)
    assert box is not None
    try:
        _, env = scripts.clone(base_sha="0" * 40, branch="slackbot/w4", origin="")
        done = await box.with_mount(Mount(str(mirror), "/mirror", read_only=True), "cat /mirror/HEAD", timeout_s=30,
                                    env=env)
        assert done.output == "W4-MIRROR-CONTENT\n"  # control: the lent command itself reads it
        later = await box.exec("cat /tmp/stolen/HEAD 2>/dev/null; ls -A /mirror | wc -l", timeout_s=30)
        assert later.output.split() == ["0"], later.output
    finally:
        await box.close()


# ---- W5: /skills read-only, and no mount going back from the container -------------------------------

async def test_w5_skills_stay_read_only_and_no_mount_propagates_to_the_host(provider, tmp_path):
    box = await provider.take_warm(task_id=5, mounts=task_dirs(tmp_path, "w5", skills_writable=True))
    assert box is not None
    slot = box._pooled.slot
    try:
        attempts = ("touch /skills/a; echo x >> /skills/SKILL.md; touch /proc/self/root/skills/b /proc/1/root/skills/c; "
                    "chmod 777 /skills; mount -o remount,rw /skills; mount -o remount,bind,rw /skills; "
                    "mount --make-shared /workspace; mount -t tmpfs none /workspace/sub; mount --bind /tmp /workspace/sub; "
                    "unshare -Urm sh -c 'mount -t tmpfs none /workspace/sub; mount -o remount,rw /skills'; "
                    "echo ok > /workspace/sub/written; awk '{print $5, $6}' /proc/self/mountinfo")
        done = await box.exec(attempts, timeout_s=30)
        flags = dict(line.split(" ", 1) for line in done.output.splitlines() if line.startswith("/"))  # the top ones
        assert flags["/skills"].startswith("ro,") and "nosuid,nodev" in flags["/skills"], flags
        assert "nosuid,nodev" in flags["/workspace"] and "nosuid,nodev" in flags["/home/agent"], flags
        skills = tmp_path / "w5" / "skills"
        assert sorted(os.listdir(skills)) == ["SKILL.md"] and (skills / "SKILL.md").read_text() == "a skill\n"
        assert os.listdir(tmp_path / "w5" / "work" / "sub") == ["written"]  # control: the workspace is writable
        under = sorted(p for p in mount_points() if p.startswith(f"{slot.root}/") or p.startswith(f"{tmp_path}/w5"))
        assert under == sorted(str(slot.path(t)) for t in ("/workspace", "/home/agent", "/skills")), under
    finally:
        await box.close()


# ---- W6: what the mount table of a warm sandbox tells ---------------------------------------------

async def test_w6_a_warm_sandbox_s_mount_table_names_no_worker(rig):
    await command(rig.slack, f"repo add app6 {make_remote(rig.tmp, 'app6')} main", channel="CW6")
    await settled(rig.bot.sandboxes)
    await run_task(rig.slack, rig.model, "w6-mounts", ["cat /proc/self/mountinfo; grep -c /pool/ /proc/self/mountinfo"],
                   channel="CW6")
    out = tool_outputs(rig.model, "w6-mounts")[-1]
    assert out.rstrip().endswith("\n4"), out  # control: a warm sandbox
    worker = rig.bot.runs.worker_name
    assert worker not in out and f":{os.getpid()}:" not in out, worker


# ---- W7: a Stop (or the deadline, or a shutdown) while a warm container is handed out ------------------

async def test_w7_a_cancelled_hand_out_leaves_no_container(provider, engine, tmp_path):  # noqa: F811
    for attempt in range(5):
        job = asyncio.create_task(provider.take_warm(task_id=70 + attempt, mounts=task_dirs(tmp_path, f"w7-{attempt}")))
        await asyncio.sleep(0)  # the hand-out is with the engine's threads now
        job.cancel()
        try:
            await (await job).close()  # it was quicker than the cancellation: again
        except asyncio.CancelledError:
            break
    else:
        pytest.fail("the hand-out always finished first")
    await asyncio.sleep(2)  # the hand-out's thread has finished
    await settled(provider)
    names = [c["Names"][0] for c in engine.api.containers(
        all=True, filters={"label": f"slackbot.instance={provider.instance}"})]
    assert len(names) == provider.pool.ready(provider.shape()) and all("-warm-" in n for n in names), names
    assert not in_slots(provider.settings.data_dir), in_slots(provider.settings.data_dir)


async def test_w7b_a_stop_while_the_warm_sandbox_gets_its_directories_leaves_nothing(rig):
    slack, sandboxes = rig.slack, rig.bot.sandboxes
    await command(slack, f"repo add app7 {make_remote(rig.tmp, 'app7')} main", channel="CW7")
    await settled(sandboxes)
    api, gate = docker.APIClient(), threading.Event()

    def taken() -> list[str]:
        return [c["Names"][0] for c in api.containers(filters={"label": f"slackbot.instance={sandboxes.instance}"})
                if "-task-" in c["Names"][0]]
    rig.model.script_for("w7b-stopped", [shell("echo W7B-RAN"), text("never")])
    git, fetched = rig.bot.git._executor, threading.Event()
    for _ in range(git._max_workers):  # the repository is fetched only once the engine is slow (below)
        git.submit(fetched.wait, 120)
    ts = await mention(slack, "w7b-stopped", channel="CW7", user="U7")
    try:
        await until(taken, timeout=60)  # taken while the workspace is prepared
        for _ in range(sandboxes._pool._max_workers):  # then the engine's threads are all busy (a slow engine)
            sandboxes._pool.submit(gate.wait, 120)
        assert not [p for p in in_slots(rig.settings.data_dir) if p.endswith("/workspace")]  # not yet bound
        fetched.set()
        await asyncio.sleep(3)  # prepared: waiting for its directories
        task_id = (await thread_task_ids(rig.bot, "CW7", ts))[-1]
        await command(slack, f"stop {task_id}", user="U7", channel="CW7")
        await asyncio.sleep(2)  # the Stop lands while the directories wait for a thread
    finally:
        fetched.set()
        gate.set()
    assert "W7B-RAN" not in thread_text(slack, "CW7", ts)  # control: stopped before the agent's command
    await wait_final(slack, "CW7", ts, timeout=120)
    await settled(sandboxes)
    await asyncio.sleep(2)
    left = taken()
    api.close()
    await sandboxes.remove_task(task_id)  # (what is left goes, so that the bot's exit leaves nothing either)
    assert not left, left
    assert not in_slots(rig.settings.data_dir), in_slots(rig.settings.data_dir)


# ---- W8: a process killed with -9 while a warm sandbox holds a loop-mounted workspace ----------------

def loop_devices(image: Path) -> list[str]:
    return subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True).stdout.splitlines()


async def test_w8_a_killed_process_s_slot_never_mounts_a_workspace_twice_or_lets_a_removal_in(engine, settings,  # noqa: F811
                                                                                              tmp_path):
    settings.warm_pool = 1
    disks = [WorkspaceDisks(tmp_path / "ws", quota_bytes=64 << 20, mode="loop", tmp_dir=tmp_path / "tmp")
             for _ in range(2)]  # the killed process's and the next one's
    image = tmp_path / "ws" / "thread-1.img"
    dead = DockerSandboxes(settings, instance=f"test-{os.urandom(3).hex()}", worker="w-dead")
    alive = DockerSandboxes(settings, instance=dead.instance, worker="w-alive")
    try:
        disk = await disks[0].attach(1)
        dead.keep_warm()
        await settled(dead)
        box = await dead.take_warm(task_id=8, mounts=(Mount(str(disk.path), "/workspace"),
                                                      Mount(str(disk.home), "/home/agent")))
        assert box is not None
        await box.exec("echo kept > kept.txt; echo kept > ~/kept.txt; ln -s / root-link; ln -s /etc etc-link; "
                       "mkdir -p workspace home mirror .stage slot-x", timeout_s=60)
        await settled(dead)
        dead._pool.shutdown(wait=False)  # kill -9: no close, no drain, no unmount
        for _ in range(2):  # the thread's next tasks, in the next process, before any reaping
            again = await disks[1].attach(1)
            assert len(loop_devices(image)) == 1, loop_devices(image)  # one device: one filesystem, not two
            await disks[1].detach(1)
        removed = await alive.reap(["w-alive"])
        assert box.container_name in removed
        assert not in_slots(settings.data_dir) and not any((settings.data_dir / "pool").glob("*/slot-*"))
        again = await disks[1].attach(1)
        assert (again.path / "kept.txt").read_text() == "kept\n" and (again.home / "kept.txt").exists()
        assert os.readlink(again.path / "root-link") == "/" and (again.path / "slot-x").is_dir()  # only rmdir ran
        await disks[1].detach(1)
        assert not loop_devices(image)
    finally:
        await alive.reap(["w-alive"])
        await alive.aclose()
        if dead._client is not None:
            dead._client.close()
        for d in disks:
            d.close()


# ---- W9: a shutdown while a warm task runs ------------------------------------------------------------

async def test_w9_a_shutdown_while_a_warm_task_runs_leaves_nothing(tmp_path):
    client = docker.from_env()
    async with running_bot(tmp_path / "data", SLACKBOT_WORKSPACE_QUOTA="64m", SLACKBOT_ADMINS="UADMIN") as r:
        instance, data = r.bot.sandboxes.instance, r.settings.data_dir
        await command(r.slack, f"repo add app9 {make_remote(tmp_path, 'app9')} main", channel="CW9")
        await settled(r.bot.sandboxes)
        r.model.script_for("w9-long", [shell("setsid sleep 300 </dev/null >/dev/null 2>&1 & sleep 300"), text("never")])
        await mention(r.slack, "w9-long", channel="CW9")
        await until(lambda: [c for c in client.api.containers(filters={"label": f"slackbot.instance={instance}"})
                             if "-task-" in c["Names"][0] and c["Labels"]["slackbot.role"] == "pool"])
        await r.model.wait_for_requests(1)
        await asyncio.sleep(1.5)  # the agent's command runs
        assert in_slots(data)  # control: the task's directories are bound in its slot
    assert not client.api.containers(all=True, filters={"label": f"slackbot.instance={instance}"})
    assert not [p for p in mount_points() if p.startswith(f"{data}/")], "a mount outlived the shutdown"
    assert not list((data / "pool").rglob("slot-*"))
    client.close()


# ---- W10: a repository larger than the quota, checked out in the warm sandbox ------------------------

async def huge_task(rig, channel: str, key: str) -> str:
    remote = make_remote(rig.tmp, f"huge-{channel}", {"README.md": "# huge\n", "big.bin": "0" * (80 << 20)})
    await command(rig.slack, f"repo add huge {remote} main", channel=channel)  # (80 MiB: the quota is 64 MiB)
    await settled(rig.bot.sandboxes)
    ts, _ = await run_task(rig.slack, rig.model, key, [f"{SHOW}; ls"], channel=channel)
    return thread_text(rig.slack, channel, ts)


async def test_w10_a_checkout_over_the_quota_fails_and_leaves_nothing_lent_or_bound(rig):
    """W10 and W10b: the warm checkout of a repository larger than the quota fails the task (before the
    fix it went on with a partial tree, and the result deleted the file); the mirror is taken back."""
    shown = await huge_task(rig, "CW10", "w10-huge")
    assert "could not check out" in shown and "(deleted)" not in shown, shown
    assert str(rig.settings.data_dir) not in shown and "slot-" not in shown, shown
    await settled(rig.bot.sandboxes)
    assert not in_slots(rig.settings.data_dir), in_slots(rig.settings.data_dir)


# ---- W11: a member asking for a network, or taking every warm sandbox ---------------------------------

async def test_w11_no_warm_sandbox_with_a_network_and_no_starving_others(rig):
    slack, model, sandboxes = rig.slack, rig.model, rig.bot.sandboxes
    await command(slack, f"repo add net11 {make_remote(rig.tmp, 'net11')} main", channel="CW11N")
    await command(slack, "repo set net11 network=on", channel="CW11N")
    await command(slack, f"repo add app11 {make_remote(rig.tmp, 'app11')} main", channel="CW11")
    await settled(sandboxes)
    before = sandboxes.pool.ready(sandboxes.shape())
    await run_task(slack, model, "w11-net", [SHOW], channel="CW11N", timeout=180)
    net = tool_outputs(model, "w11-net")[-1].splitlines()
    assert net[1] == "0" and "eth0" in net[2], net  # cold, on its own network
    assert sandboxes.pool.ready(sandboxes.shape()) == before  # the warm ones were not touched
    api = docker.APIClient()  # nor can a waiting one be joined to a network later
    waiting = api.containers(filters={"label": [f"slackbot.instance={sandboxes.instance}", "slackbot.role=pool"]})
    with pytest.raises(docker.errors.APIError, match="none"):
        api.connect_container_to_network(waiting[0]["Id"], "bridge")
    api.close()
    hogs = []
    for key in ("w11-hog-a", "w11-hog-b"):  # one member takes both warm sandboxes and keeps them
        model.script_for(key, [shell("sleep 20"), text("hogged")])
        hogs.append(await mention(slack, key, channel="CW11", user="U5"))
    await until(lambda: sandboxes.pool.ready(sandboxes.shape()) < before, timeout=60)
    await run_task(slack, model, "w11-other", ["echo W11-OTHER"], channel="CW11", user="U6")
    assert "W11-OTHER" in tool_outputs(model, "w11-other")[-1]
    assert not any(final_replies(slack, "CW11", ts) for ts in hogs)  # it ran while both were still held
    for ts in hogs:
        await wait_final(slack, "CW11", ts, timeout=120)
    await settled(sandboxes)  # refilled for everyone
