"""Attacks through git in the workspace (SECURITY.md rows G1–G10): each a real task in a real sandbox
whose agent plants what an attacker would, then checks that nothing reached the host."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiohttp import web

from slackbot.app import Bot
from slackbot.repos import Mirrors, GitRunner
from tests.attack_rig import Canaries, command, git, make_remote, patch_of, run_task, thread_text
from tests.conftest import make_settings
from tests.fakes.serve import serve
from tests.helpers import block_text, bot_messages

pytestmark = pytest.mark.docker  # every test here runs containers

USER_GIT = "git -c user.name=x -c user.email=x@y"


@pytest.fixture
async def linked(slack, model, tmp_path):
    remote = make_remote(tmp_path)
    settings = make_settings(tmp_path / "data", slack, model, SLACKBOT_ADMINS="UADMIN")
    async with Bot(settings, port=0) as bot:
        assert "Linked `app`" in await command(slack, f"repo add app {remote} main")
        yield SimpleNamespace(bot=bot, remote=remote, settings=settings, host=Canaries(tmp_path / "host"),
                              tmp=tmp_path)


async def push(slack, final: dict, ts: str, task_id: int) -> str:
    payload = slack.block_action_payload("task_push", str(task_id), "U1", "C1", final["ts"], thread_ts=ts)
    await slack.wait_ack(await slack.socket_send("interactive", payload))
    await slack.wait_for(lambda: any("push" in block_text(m).lower() and m["ts"] != final["ts"]
                                     for m in bot_messages(slack, "C1", ts)[1:]), timeout=60)
    return thread_text(slack, "C1", ts)


async def test_g1_nested_repository_diff_external(slack, model, linked):
    m = linked.host.marker("diff-external")
    ts, final = await run_task(slack, model, "nested-diff", [
        f"git config diff.submodule diff && git config diff.external 'sh -c \"touch {m}\" #' && "
        f"mkdir sub && cd sub && git init -q && git config diff.external 'sh -c \"touch {m}\" #' && "
        f"echo inner > f && git add f && {USER_GIT} commit -qm inner && cd .. && echo more >> README.md"])
    assert "`README.md` +1 −0" in block_text(final)
    assert "Pushed" in await push(slack, final, ts, 1)
    linked.host.assert_untouched()


async def test_g2_symlinks_inside_dot_git(slack, model, linked):
    h = linked.host
    ts, final = await run_task(slack, model, "dotgit-links", [
        f"echo change >> README.md && ln -sf {h.keep} .git/COMMIT_EDITMSG && rm -f .git/index && "
        f"ln -s {h.marker('index')} .git/index && mkdir -p .git/logs && ln -sf {h.marker('logs')} .git/logs/HEAD && "
        f"ln -sf {h.marker('orig')} .git/ORIG_HEAD && ln -sf {h.marker('fetch-head')} .git/FETCH_HEAD"])
    assert "`README.md` +1 −0" in block_text(final)
    assert "Pushed" in await push(slack, final, ts, 1)
    h.assert_untouched()


async def test_g3_alternates_to_another_mirror_never_reach_a_push(slack, model, linked):
    other = make_remote(linked.tmp, "other", {"SECRET.md": "private history of another repository\n"})
    secret_sha = git("rev-parse", "main", cwd=other).strip()
    await command(slack, f"repo add other {other} main")
    await run_task(slack, model, "warm-other", ["ls"], prefix="repo=other ")  # its mirror exists now
    other_mirror = Mirrors(linked.settings.mirrors_dir, GitRunner()).path_for(str(other))
    assert (other_mirror / "objects").is_dir()
    # The ref is written as a file: git in the sandbox could not check an object it cannot see,
    # but the host, where the alternates path exists, would find it.
    ts, final = await run_task(slack, model, "steal-history", [
        f"echo {other_mirror}/objects >> .git/objects/info/alternates; "
        f"echo {secret_sha} > .git/refs/heads/$(git branch --show-current); echo x > x.txt; true"])
    await push(slack, final, ts, 2)
    branch = next(b.strip() for b in git("branch", "--list", "slackbot/*", cwd=linked.remote).splitlines())
    assert "x.txt" in git("ls-tree", "--name-only", branch, cwd=linked.remote)
    assert git("merge-base", "--is-ancestor", "main", branch, cwd=linked.remote) == ""
    assert secret_sha not in git("rev-list", "--all", cwd=linked.remote)
    assert "SECRET.md" not in git("log", "--all", "--name-only", "--format=", cwd=linked.remote)


async def test_g4_hooks_filters_fsmonitor_and_commands_stay_in_the_sandbox(slack, model, linked):
    h = linked.host
    hooks = " ".join(["pre-commit", "post-commit", "commit-msg", "prepare-commit-msg", "reference-transaction",
                      "post-checkout", "post-merge", "pre-push", "post-rewrite", "pre-auto-gc"])
    plant = (
        f"git config core.fsmonitor 'touch {h.marker('fsmonitor')}' && "
        f"git config core.sshCommand 'touch {h.marker('ssh')}' && "
        f"git config filter.evil.clean 'touch {h.marker('clean')}; cat' && "
        f"git config filter.evil.smudge 'touch {h.marker('smudge')}; cat' && git config filter.evil.required true && "
        f"echo '* filter=evil diff=evil' > .gitattributes && "
        f"git config diff.evil.textconv 'touch {h.marker('textconv')}' && "
        f"git config core.hooksPath .git/hooks && for hook in {hooks}; do "
        f"printf '#!/bin/sh\\ntouch {h.root}/marker-hook-%s\\n' $hook > .git/hooks/$hook; chmod +x .git/hooks/$hook; done && "
        f"git config core.pager 'touch {h.marker('pager')}' && git config credential.helper '!touch {h.marker('cred')}' && "
        f"git config core.askPass 'touch {h.marker('askpass')}' && git config gpg.program 'touch {h.marker('gpg')}' && "
        f"git config commit.gpgSign true && git config core.editor 'touch {h.marker('editor')}' && "
        f"git config uploadpack.packObjectsHook 'touch {h.marker('packhook')}' && echo change >> README.md")
    ts, final = await run_task(slack, model, "plant-everything", [plant])
    assert "`README.md` +1 −0" in block_text(final)
    assert "Pushed" in await push(slack, final, ts, 1)
    await run_task(slack, model, "and a follow-up", ["echo again >> README.md"], thread_ts=ts,
                   thread_key="plant-everything", count=2)
    h.assert_untouched()


@pytest.mark.parametrize("variant", ["file", "symlink", "links"])
async def test_g5_dot_git_replaced(slack, model, linked, variant):
    h = linked.host
    replace = {
        "file": f"rm -rf .git && printf 'gitdir: {h.root}\\n' > .git",
        "symlink": f"rm -rf .git && ln -s {h.root} .git",
        "links": f"mkdir .g && for f in .git/*; do ln -s {h.root}/$(basename $f) .g/$(basename $f); done && "
                 "rm -rf .git && mv .g .git",
    }[variant]
    ts, final = await run_task(slack, model, f"replace-dotgit-{variant}", [f"{replace} && echo new > new.txt"])
    assert "`new.txt` +1 −0 (new)" in block_text(final), block_text(final)
    assert "+new" in await patch_of(slack, 1)
    _, second = await run_task(slack, model, "keep going", ["echo more >> new.txt"], thread_ts=ts,
                               thread_key=f"replace-dotgit-{variant}", count=2)
    assert "`new.txt` +1 −0" in block_text(second)
    h.assert_untouched()


async def test_g6_a_config_that_breaks_host_git_still_finishes(slack, model, linked):
    ts, final = await run_task(slack, model, "broken-config", [
        "printf '[core]\\n\\trepositoryformatversion = 99\\n[include]\\n\\tpath = /proc/self/environ\\n[broken\\n' "
        ">> .git/config && echo fine > fine.txt && printf 'x\\n' > HEAD-file && echo garbage > .git/HEAD"])
    text_ = block_text(final)
    assert "`fine.txt` +1 −0 (new)" in text_ and "`HEAD-file` +1 −0 (new)" in text_
    patch = await patch_of(slack, 1)
    assert "+fine" in patch and "README.md" not in patch
    linked.host.assert_untouched()


async def test_g7_work_tree_symlinks_are_committed_as_links(slack, model, linked):
    h = linked.host
    ts, final = await run_task(slack, model, "link-out", [
        f"ln -s {h.secret} leak && ln -s /proc/self/environ env-leak && ln -s /etc/shadow shadow"])
    assert "`leak`" in block_text(final)
    patch = await patch_of(slack, 1)
    assert f"+{h.secret}" in patch and "+/proc/self/environ" in patch
    assert "TOPSECRET-CANARY" not in patch and slack.bot_token not in patch and "root:" not in patch


async def test_g8_orphan_history_still_lands_on_the_thread_branch(slack, model, linked):
    ts, final = await run_task(slack, model, "orphan", [
        f"git checkout -q --orphan evil && git rm -rfq . && echo evil > evil.txt && git add evil.txt && "
        f"{USER_GIT} commit -qm evil"])
    text_ = block_text(final)
    assert "`evil.txt` +1 −0 (new)" in text_ and "`README.md` +0 −1 (deleted)" in text_
    await push(slack, final, ts, 1)
    branch = next(b.strip() for b in git("branch", "--list", "slackbot/*", cwd=linked.remote).splitlines())
    assert git("merge-base", "--is-ancestor", "main", branch, cwd=linked.remote) == ""
    assert git("rev-list", "--count", f"main..{branch}", cwd=linked.remote).strip() == "1"


async def test_g9_alternates_and_http_alternates_are_never_followed(slack, model, linked):
    hits: list[str] = []

    async def record(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner, port = await serve(app)
    try:
        ts, final = await run_task(slack, model, "alternates", [
            f"echo {linked.host.root}/objects > .git/objects/info/alternates && "
            f"echo http://127.0.0.1:{port}/ > .git/objects/info/http-alternates && echo y > y.txt"])
        assert "`y.txt` +1 −0 (new)" in block_text(final)
        assert "Pushed" in await push(slack, final, ts, 1)
    finally:
        await runner.cleanup()
    assert hits == []
    linked.host.assert_untouched()


async def test_g10_dangling_dot_git_in_a_scratch_thread(slack, model, tmp_path):
    host = Canaries(tmp_path / "host")
    async with Bot(make_settings(tmp_path / "data", slack, model), port=0):
        ts, final = await run_task(slack, model, "scratch-link", [
            f"rm -rf .git && ln -s {host.root}/scratch-repo .git && echo s > s.txt"], channel="C9")
        assert "`s.txt` +1 −0 (new)" in block_text(final)
        await run_task(slack, model, "scratch again", ["echo t >> s.txt"], channel="C9", thread_ts=ts,
                       thread_key="scratch-link", count=2)
    host.assert_untouched()


async def test_g11_oversized_result_is_refused_and_the_answer_still_posts(slack, model, tmp_path):
    async with Bot(make_settings(tmp_path / "data", slack, model, SLACKBOT_RESULT_MAX="1m"), port=0):
        ts, final = await run_task(slack, model, "oversize", ["head -c 3000000 /dev/urandom > big.bin"], channel="C8")
        text_ = block_text(final)
        assert "larger than 1m" in text_ and "oversize done" in text_
        assert not [f for f in slack.files if f["name"] == "task-1.patch"]
