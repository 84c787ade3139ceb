"""Mirrors, checkouts, commits and pushes with real git: bare repositories under tmp_path as remotes, as
plain paths and over smart HTTP (tests/fakes/git_http.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from slackbot.repos import Checkout, GitRunner, Mirrors, RepoError, Workspaces, branch_name
from slackbot.repos.mirror import valid_branch
from slackbot.repos.workspace import BOT_EMAIL, BOT_NAME
from tests.fakes.git_http import GitHTTPServer

TOKEN = "ghp_secret_token_abcdef0123456789"
PERSON = {"GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com",
          "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.com"}


def git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["git", *args], check=False, cwd=cwd, env={**os.environ, **PERSON}, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def make_remote(bare: Path, work: Path, *, default: str = "main") -> Path:
    """A bare repository with `default` (README.md) and release-2 (plus release.txt)."""
    if not (bare / "HEAD").exists():
        git("init", "--quiet", "--bare", f"--initial-branch={default}", str(bare))
    git("init", "--quiet", f"--initial-branch={default}", str(work))
    (work / "README.md").write_text("hello\n")
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "first", cwd=work)
    git("checkout", "--quiet", "-b", "release-2", cwd=work)
    (work / "release.txt").write_text("release two\n")
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "release", cwd=work)
    git("push", "--quiet", str(bare), f"{default}:{default}", "release-2:release-2", cwd=work)
    git("checkout", "--quiet", default, cwd=work)
    return bare


def add_commit(work: Path, bare: Path, name: str, branch: str = "main") -> str:
    git("checkout", "--quiet", branch, cwd=work)
    (work / name).write_text(name + "\n")
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", f"add {name}", cwd=work)
    git("push", "--quiet", str(bare), f"{branch}:{branch}", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


@pytest.fixture
async def runner():
    r = GitRunner(timeout_s=30)
    yield r
    r.close()


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    return make_remote(tmp_path / "remote.git", tmp_path / "upstream")


@pytest.fixture
async def server(tmp_path: Path):
    srv = GitHTTPServer(tmp_path / "served")
    (tmp_path / "served").mkdir()
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
def mirrors(tmp_path: Path, runner: GitRunner) -> Mirrors:
    return Mirrors(tmp_path / "mirrors", runner)


async def test_mirror_is_cloned_once_then_fetched(tmp_path: Path, server: GitHTTPServer, mirrors: Mirrors):
    bare = make_remote(server.create_bare("demo.git"), tmp_path / "upstream")
    url = server.url("demo.git")
    first = await mirrors.prepare(url=url, branch=None, dest=tmp_path / "w1", new_branch="slackbot/one-1")
    assert server.clones("demo.git") == 1 and server.advertisements("demo.git") == 1

    # Another thread on the same repository, nothing new upstream: a fetch that wants nothing.
    second = await mirrors.prepare(url=url, branch=None, dest=tmp_path / "w2", new_branch="slackbot/two-2")
    assert server.advertisements("demo.git") == 2
    assert server.clones("demo.git") == 1 and server.incremental_fetches("demo.git") == 0
    assert second.base_sha == first.base_sha

    # New upstream commit: fetched incrementally (it says what it has), still no second clone.
    new_sha = add_commit(tmp_path / "upstream", bare, "later.txt")
    third = await mirrors.prepare(url=url, branch=None, dest=tmp_path / "w3", new_branch="slackbot/three-3")
    assert third.base_sha == new_sha
    assert server.clones("demo.git") == 1 and server.incremental_fetches("demo.git") == 1
    assert [p.name for p in (tmp_path / "mirrors").iterdir()] == [mirrors.path_for(url).name]


async def test_concurrent_prepares_share_one_clone(tmp_path: Path, server: GitHTTPServer, mirrors: Mirrors):
    make_remote(server.create_bare("demo.git"), tmp_path / "upstream")
    url = server.url("demo.git")
    results = await asyncio.gather(*(
        mirrors.prepare(url=url, branch=None, dest=tmp_path / f"w{i}", new_branch=f"slackbot/t-{i}")
        for i in range(3)))
    assert [r.branch for r in results] == ["slackbot/t-0", "slackbot/t-1", "slackbot/t-2"]
    assert server.clones("demo.git") == 1


async def test_checkout_is_self_contained(tmp_path: Path, remote: Path, mirrors: Mirrors):
    dest = tmp_path / "work"
    checkout = await mirrors.prepare(url=str(remote), branch=None, dest=dest, new_branch="slackbot/fix-7")
    assert checkout == Checkout("main", git("rev-parse", "main", cwd=remote), "slackbot/fix-7")
    assert (dest / ".git").is_dir()
    assert not (dest / ".git" / "objects" / "info" / "alternates").exists()
    assert git("remote", "get-url", "origin", cwd=dest) == str(remote)
    assert git("symbolic-ref", "--short", "HEAD", cwd=dest) == "slackbot/fix-7"
    assert git("config", "user.name", cwd=dest) == BOT_NAME
    # No file of the checkout's .git mentions the mirror (no gitdir:, no alternates, no reflog path).
    mirror_root = str(tmp_path / "mirrors")
    for path in (dest / ".git").rglob("*"):
        if path.is_file() and "objects" not in path.parts:
            assert mirror_root not in path.read_text(errors="replace"), path
    # Copies, not hardlinks: the sandbox must not share an inode with the mirror.
    assert all(p.stat().st_nlink == 1 for p in (dest / ".git" / "objects").rglob("*") if p.is_file())
    # git inside a container that mounts only the checkout works: everything is reachable locally.
    git("fsck", "--no-dangling", cwd=dest)


async def test_asked_for_base_branch_is_honoured(tmp_path: Path, remote: Path, mirrors: Mirrors):
    dest = tmp_path / "work"
    checkout = await mirrors.prepare(url=str(remote), branch="release-2", dest=dest, new_branch="slackbot/r-1")
    assert checkout.base_branch == "release-2"
    assert checkout.base_sha == git("rev-parse", "release-2", cwd=remote)
    assert (dest / "release.txt").read_text() == "release two\n"
    assert await mirrors.check(url=str(remote), branch="release-2") == "release-2"


async def test_default_branch_is_the_remotes_head(tmp_path: Path, mirrors: Mirrors):
    bare = make_remote(tmp_path / "trunk.git", tmp_path / "upstream", default="trunk")
    assert await mirrors.check(url=str(bare)) == "trunk"
    checkout = await mirrors.prepare(url=str(bare), branch=None, dest=tmp_path / "w", new_branch="slackbot/x-1")
    assert checkout.base_branch == "trunk"


async def test_missing_branch_is_a_plain_error(tmp_path: Path, remote: Path, mirrors: Mirrors):
    with pytest.raises(RepoError) as caught:
        await mirrors.prepare(url=str(remote), branch="release-9", dest=tmp_path / "w", new_branch="slackbot/a-1")
    assert str(caught.value) == f"The branch `release-9` does not exist in {remote}."
    assert not (tmp_path / "w").exists()


async def test_unreachable_repository(tmp_path: Path, server: GitHTTPServer, mirrors: Mirrors):
    for url in (str(tmp_path / "nowhere.git"), server.url("missing.git"),
                f"http://x-access-token:{TOKEN}@127.0.0.1:{server.port}/missing.git"):
        with pytest.raises(RepoError) as caught:
            await mirrors.check(url=url)
        message = str(caught.value)
        assert message.startswith("I could not reach the repository ")
        assert TOKEN not in message
    assert not (tmp_path / "mirrors").exists() or not any((tmp_path / "mirrors").iterdir())


async def test_follow_up_reuses_the_checkout(tmp_path: Path, remote: Path, mirrors: Mirrors):
    dest = tmp_path / "work"
    first = await mirrors.prepare(url=str(remote), branch=None, dest=dest, new_branch="slackbot/a-1")
    (dest / "draft.txt").write_text("in progress\n")
    again = await mirrors.prepare(url=str(remote), branch=None, dest=dest, new_branch="slackbot/b-2")
    assert again == first == await mirrors.existing(dest)
    assert (dest / "draft.txt").exists()
    assert await mirrors.existing(tmp_path / "none") is None


def test_branch_name():
    name = branch_name("slackbot/", "Fix the login bug in auth.py please!", 42)
    assert name == "slackbot/fix-the-login-bug-in-auth-py-42"
    name = branch_name("bot/", "<@U123> repo=api Ünïcode façade — rewrite EVERYTHING in the whole codebase now", 7)
    assert name.startswith("bot/unicode-facade-rewrite") and name.endswith("-7")
    assert len(name.split("/", 1)[1]) <= 30 + len("-7")
    assert branch_name("slackbot/", "🚀🚀", 3) == "slackbot/task-3"
    assert branch_name("bad..prefix/", "x", 1) == "slackbot/x-1"
    for name in (branch_name("slackbot/", t, 9) for t in ("a", "x" * 80, "trailing -", "…", "x.lock")):
        assert valid_branch(name)
        git("check-ref-format", "--branch", name)
        assert not name.removesuffix("-9").endswith("-")


async def test_commit_is_the_bots_with_trailers(tmp_path: Path, remote: Path, mirrors: Mirrors, runner):
    dest = tmp_path / "work"
    checkout = await mirrors.prepare(url=str(remote), branch=None, dest=dest, new_branch="slackbot/c-1")
    workspaces = Workspaces(tmp_path, runner)
    git("config", "user.name", "Sandbox Person", cwd=dest)  # what the sandbox may write does not count
    (dest / "README.md").write_text("hello\nworld\n")
    (dest / "new.txt").write_text("new\n")
    result = await workspaces.commit(dest, checkout.base_sha, "Fix the greeting\n\nslackbot task #1",
                                     trailers=["Co-authored-by: Ada <ada@example.com>",
                                               "Requested-by: Ada (Slack U123)"])
    assert git("log", "-1", "--format=%an <%ae>|%cn", cwd=dest) == f"{BOT_NAME} <{BOT_EMAIL}>|{BOT_NAME}"
    message = git("log", "-1", "--format=%B", cwd=dest)
    assert message == ("Fix the greeting\n\nslackbot task #1\n\n"
                       "Co-authored-by: Ada <ada@example.com>\nRequested-by: Ada (Slack U123)")
    assert "Ada <ada@example.com>" in git("log", "-1", "--format=%(trailers:key=Co-authored-by)", cwd=dest)
    assert {(f.path, f.kind) for f in result.files} == {("README.md", "update"), ("new.txt", "add")}
    assert "+world" in result.diff and result.diff == await workspaces.diff(dest, checkout.base_sha)
    # Nothing changed: no new commit, the same answer.
    again = await workspaces.commit(dest, checkout.base_sha, "nothing")
    assert again.sha == result.sha and again.files == result.files


async def test_commit_ignores_what_the_sandbox_planted(tmp_path: Path, remote: Path, mirrors: Mirrors, runner):
    dest = tmp_path / "work"
    checkout = await mirrors.prepare(url=str(remote), branch=None, dest=dest, new_branch="slackbot/p-1")
    marker, host_dir = tmp_path / "PWNED", tmp_path / "host-secrets"
    host_dir.mkdir()
    (host_dir / "id_rsa").write_text("secret key\n")
    hook = f"touch {marker}"
    for key, value in (("core.fsmonitor", hook), ("filter.x.clean", hook + "; cat"), ("filter.x.required", "true"),
                       ("diff.external", hook), ("core.worktree", str(host_dir)), ("commit.gpgSign", "true"),
                       ("gpg.program", hook)):
        git("config", key, value, cwd=dest)
    (dest / ".gitattributes").write_text("* filter=x\n")
    for name in ("post-commit", "pre-commit"):
        (dest / ".git" / "hooks" / name).write_text(f"#!/bin/sh\n{hook}\n")
        (dest / ".git" / "hooks" / name).chmod(0o755)
    (dest / "change.txt").write_text("change\n")
    result = await Workspaces(tmp_path, runner).commit(dest, checkout.base_sha, "planted")
    assert not marker.exists()
    assert {f.path for f in result.files} == {".gitattributes", "change.txt"}


async def test_push_lands_the_branch_and_follow_ups(tmp_path: Path, remote: Path, mirrors: Mirrors, runner):
    dest = tmp_path / "work"
    main_before = git("rev-parse", "main", cwd=remote)
    checkout = await mirrors.prepare(url=str(remote), branch=None, dest=dest, new_branch="slackbot/push-1")
    workspaces = Workspaces(tmp_path, runner)
    (dest / "one.txt").write_text("one\n")
    first = await workspaces.commit(dest, checkout.base_sha, "first change")
    await mirrors.push(path=dest, url=str(remote), branch=checkout.branch)
    assert git("rev-parse", "slackbot/push-1", cwd=remote) == first.sha
    assert git("show", "slackbot/push-1:one.txt", cwd=remote) == "one"
    assert git("rev-parse", "main", cwd=remote) == main_before

    (dest / "two.txt").write_text("two\n")  # a follow-up task in the same thread
    second = await workspaces.commit(dest, await workspaces.head(dest), "second change")
    await mirrors.push(path=dest, url=str(remote), branch=checkout.branch)
    assert git("rev-parse", "slackbot/push-1", cwd=remote) == second.sha
    assert git("rev-parse", "slackbot/push-1~1", cwd=remote) == first.sha
    assert git("for-each-ref", "refs/slackbot", cwd=mirrors.path_for(str(remote))) == ""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand the checkout to another uid")
async def test_checkout_owned_by_the_sandbox_user(tmp_path: Path, remote: Path, mirrors: Mirrors, runner):
    dest = tmp_path / "work"
    checkout = await mirrors.prepare(url=str(remote), branch=None, dest=dest, new_branch="slackbot/owned-1")
    (dest / "x.txt").write_text("x\n")
    subprocess.run(["chown", "-R", "1000:1000", str(dest)], check=True)  # as the docker backend does
    workspaces = Workspaces(tmp_path, runner)
    assert await workspaces.head(dest) == checkout.base_sha
    result = await workspaces.commit(dest, checkout.base_sha, "x")
    assert await mirrors.existing(dest) == checkout
    await mirrors.push(path=dest, url=str(remote), branch=checkout.branch)
    assert git("rev-parse", "slackbot/owned-1", cwd=remote) == result.sha


async def test_rejected_push_says_why(tmp_path: Path, remote: Path, mirrors: Mirrors, runner):
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'Pushes are frozen until Monday.' >&2\nexit 1\n")
    hook.chmod(0o755)
    dest = tmp_path / "work"
    checkout = await mirrors.prepare(url=str(remote), branch=None, dest=dest, new_branch="slackbot/frozen-1")
    (dest / "x.txt").write_text("x\n")
    await Workspaces(tmp_path, runner).commit(dest, checkout.base_sha, "x")
    with pytest.raises(RepoError) as caught:
        await mirrors.push(path=dest, url=str(remote), branch=checkout.branch)
    assert str(caught.value) == ("The push was rejected: pre-receive hook declined — "
                                 "the remote said: Pushes are frozen until Monday.")


async def test_non_fast_forward_push(tmp_path: Path, remote: Path, mirrors: Mirrors, runner):
    dest = tmp_path / "work"
    checkout = await mirrors.prepare(url=str(remote), branch=None, dest=dest, new_branch="release-2")
    (dest / "x.txt").write_text("x\n")
    await Workspaces(tmp_path, runner).commit(dest, checkout.base_sha, "x")
    with pytest.raises(RepoError, match=r"^The push was rejected: .*the branch on the remote has commits"):
        await mirrors.push(path=dest, url=str(remote), branch="release-2")


async def test_token_goes_over_http_but_nowhere_else(tmp_path: Path, runner: GitRunner):
    server = GitHTTPServer(tmp_path / "served", token=TOKEN)
    (tmp_path / "served").mkdir()
    await server.start()
    try:
        make_remote(server.create_bare("private.git"), tmp_path / "upstream")
        url = server.url("private.git")
        refused = Mirrors(tmp_path / "m0", runner)  # no token: the server says 401, git must not prompt
        with pytest.raises(RepoError) as caught:
            await refused.check(url=url)
        assert "I could not reach the repository" in str(caught.value)

        mirrors = Mirrors(tmp_path / "mirrors", runner, github_token=TOKEN, token_hosts=(server.host,))
        dest = tmp_path / "work"
        checkout = await mirrors.prepare(url=url, branch=None, dest=dest, new_branch="slackbot/private-1")
        (dest / "x.txt").write_text("x\n")
        await Workspaces(tmp_path, runner).commit(dest, checkout.base_sha, "x")
        await mirrors.push(path=dest, url=url, branch=checkout.branch)
        assert server.pushes("private.git") == 1
        for root in (tmp_path / "mirrors", dest / ".git"):
            for path in root.rglob("*"):
                if path.is_file() and "objects" not in path.parts:
                    assert TOKEN not in path.read_text(errors="replace"), path

        hook = server.root / "private.git" / "hooks" / "pre-receive"
        hook.write_text(f"#!/bin/sh\necho 'no ({TOKEN})' >&2\nexit 1\n")
        hook.chmod(0o755)
        (dest / "y.txt").write_text("y\n")
        await Workspaces(tmp_path, runner).commit(dest, checkout.base_sha, "y")
        with pytest.raises(RepoError) as caught:
            await mirrors.push(path=dest, url=url, branch=checkout.branch)
        assert "rejected" in str(caught.value) and TOKEN not in str(caught.value)
    finally:
        await server.stop()
