"""Mirrors, pushes, URL checks and the host git environment with real git: bare repositories under tmp_path
as remotes, as plain paths and over smart HTTP (tests/fakes/git_http.py). Results, changes, AGENTS.md and
the container scripts are in test_results.py."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from slackbot.repos import GitRunner, Mirrors, RepoError, Results, branch_name, thread_ref
from slackbot.repos.errors import basic_auth
from slackbot.repos.git_env import host_env, run_git
from slackbot.repos.mirror import valid_branch
from slackbot.repos.urls import Pin, check_public_https, public_address, refuse_data_dir
from tests.fakes.git_http import GitHTTPServer
from tests.git_helpers import add_commit, git, make_remote, result_bundle, runner  # noqa: F401

TOKEN = "ghp_secret_token_abcdef0123456789"


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
    return Mirrors(tmp_path / "data" / "mirrors", runner)


async def test_mirror_is_cloned_once_then_fetched(tmp_path: Path, server: GitHTTPServer, mirrors: Mirrors):
    bare = make_remote(server.create_bare("demo.git"), tmp_path / "upstream")
    url = server.url("demo.git")
    first = await mirrors.update(url=url, branch=None)
    assert first.mirror == mirrors.path_for(url) and first.base_branch == "main"
    assert first.base_sha == git("rev-parse", "main", cwd=bare)
    assert server.clones("demo.git") == 1 and server.advertisements("demo.git") == 1

    # Another thread on the same repository, nothing new upstream: a fetch that wants nothing.
    second = await mirrors.update(url=url, branch=None)
    assert server.advertisements("demo.git") == 2
    assert server.clones("demo.git") == 1 and server.incremental_fetches("demo.git") == 0
    assert second == first

    # New upstream commit: fetched incrementally (it says what it has), still no second clone.
    new_sha = add_commit(tmp_path / "upstream", bare, "later.txt")
    third = await mirrors.update(url=url, branch=None)
    assert third.base_sha == new_sha
    assert server.clones("demo.git") == 1 and server.incremental_fetches("demo.git") == 1
    assert [p.name for p in mirrors.root.iterdir()] == [mirrors.path_for(url).name]


async def test_concurrent_updates_share_one_clone(tmp_path: Path, server: GitHTTPServer, mirrors: Mirrors):
    make_remote(server.create_bare("demo.git"), tmp_path / "upstream")
    url = server.url("demo.git")
    results = await asyncio.gather(*(mirrors.update(url=url, branch=None) for _ in range(3)))
    assert len(set(results)) == 1
    assert server.clones("demo.git") == 1


async def test_asked_for_base_branch_is_honoured(remote: Path, mirrors: Mirrors):
    found = await mirrors.update(url=str(remote), branch="release-2")
    assert (found.base_branch, found.base_sha) == ("release-2", git("rev-parse", "release-2", cwd=remote))
    assert git("show", f"{found.base_sha}:release.txt", cwd=found.mirror) == "release two"
    assert await mirrors.check(url=str(remote), branch="release-2") == "release-2"


async def test_default_branch_is_the_remotes_head(tmp_path: Path, mirrors: Mirrors):
    bare = make_remote(tmp_path / "trunk.git", tmp_path / "upstream", default="trunk")
    assert await mirrors.check(url=str(bare)) == "trunk"
    assert (await mirrors.update(url=str(bare), branch=None)).base_sha == git("rev-parse", "trunk", cwd=bare)


async def test_missing_branch_and_bad_branch_names_are_plain_errors(remote: Path, mirrors: Mirrors):
    with pytest.raises(RepoError) as caught:
        await mirrors.update(url=str(remote), branch="release-9")
    assert str(caught.value) == f"The branch `release-9` does not exist in {remote}."
    with pytest.raises(RepoError, match="not a valid branch name"):
        await mirrors.update(url=str(remote), branch="../../etc")


async def test_unreachable_repository(tmp_path: Path, server: GitHTTPServer, mirrors: Mirrors):
    for url in (str(tmp_path / "nowhere.git"), server.url("missing.git"),
                f"http://x-access-token:{TOKEN}@127.0.0.1:{server.port}/missing.git"):
        with pytest.raises(RepoError) as caught:
            await mirrors.check(url=url)
        message = str(caught.value)
        assert message.startswith("I could not reach the repository ")
        assert TOKEN not in message
    assert not mirrors.root.exists() or not any(mirrors.root.iterdir())  # no half-made mirror left


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
    for bad in ("", "-x", "a..b", "a/.b", "a.lock", "a b", "a~1", "a:b", "@", "a//b", "a/", "a@{1}"):
        assert not valid_branch(bad), bad


async def take(results: Results, mirror: Path, thread_id: int, parent: str, files: dict, tmp_path: Path) -> str:
    """A task's result, made on `parent` and received into the thread's ref."""
    bundle = tmp_path / f"result-{thread_id}-{parent[:8]}-{len(list(tmp_path.iterdir()))}.bundle"
    result_bundle(mirror, parent, files, bundle)
    return await results.receive(mirror, bundle, thread_id=thread_id, parent=parent, message="change")


async def test_push_lands_the_thread_ref_and_follow_ups(tmp_path: Path, remote: Path, mirrors: Mirrors, runner):
    results = Results(runner, tmp_path / "data" / "tmp")
    main_before = git("rev-parse", "main", cwd=remote)
    found = await mirrors.update(url=str(remote), branch=None)
    await results.start_thread(found.mirror, 1, found.base_sha)
    first = await take(results, found.mirror, 1, found.base_sha, {"one.txt": "one\n"}, tmp_path)
    await mirrors.push(url=str(remote), ref=thread_ref(1), branch="slackbot/push-1")
    assert git("rev-parse", "slackbot/push-1", cwd=remote) == first
    assert git("show", "slackbot/push-1:one.txt", cwd=remote) == "one"
    assert git("rev-parse", "main", cwd=remote) == main_before

    second = await take(results, found.mirror, 1, first, {"two.txt": "two\n"}, tmp_path)  # a follow-up task
    await mirrors.update(url=str(remote), branch=None)  # the mirror's --prune fetch keeps the thread's ref
    assert git("rev-parse", thread_ref(1), cwd=found.mirror) == second
    await mirrors.push(url=str(remote), ref=thread_ref(1), branch="slackbot/push-1")
    assert git("rev-parse", "slackbot/push-1", cwd=remote) == second
    assert git("rev-parse", "slackbot/push-1~1", cwd=remote) == first
    assert git("for-each-ref", "refs/slackbot", cwd=remote) == ""
    # Clones from the mirror (the sandboxes') never see the threads' refs.
    assert "refs/slackbot" not in git("ls-remote", str(found.mirror))
    with pytest.raises(RepoError, match="nothing to push"):
        await mirrors.push(url=str(remote), ref=thread_ref(2), branch="slackbot/none-2")


async def test_rejected_push_says_why(tmp_path: Path, remote: Path, mirrors: Mirrors, runner):
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'Pushes are frozen until Monday.' >&2\nexit 1\n")
    hook.chmod(0o755)
    found = await mirrors.update(url=str(remote), branch=None)
    await take(Results(runner, tmp_path / "tmp"), found.mirror, 3, found.base_sha, {"x.txt": "x\n"}, tmp_path)
    with pytest.raises(RepoError) as caught:
        await mirrors.push(url=str(remote), ref=thread_ref(3), branch="slackbot/frozen-3")
    assert str(caught.value) == ("The push was rejected: pre-receive hook declined — "
                                 "the remote said: Pushes are frozen until Monday.")


async def test_non_fast_forward_push(tmp_path: Path, remote: Path, mirrors: Mirrors, runner):
    found = await mirrors.update(url=str(remote), branch=None)  # main, which release-2 is ahead of
    await take(Results(runner, tmp_path / "tmp"), found.mirror, 4, found.base_sha, {"x.txt": "x\n"}, tmp_path)
    with pytest.raises(RepoError, match=r"^The push was rejected: .*the branch on the remote has commits"):
        await mirrors.push(url=str(remote), ref=thread_ref(4), branch="release-2")


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
        found = await mirrors.update(url=url, branch=None)
        await take(Results(runner, tmp_path / "tmp"), found.mirror, 5, found.base_sha, {"x.txt": "x\n"}, tmp_path)
        await mirrors.push(url=url, ref=thread_ref(5), branch="slackbot/private-5")
        assert server.pushes("private.git") == 1
        assert all(r.authorization for r in server.of("private.git")[-3:])
        for path in (tmp_path / "mirrors").rglob("*"):
            if path.is_file() and "objects" not in path.parts:
                text = path.read_text(errors="replace")
                assert TOKEN not in text and basic_auth(TOKEN) not in text, path

        hook = server.root / "private.git" / "hooks" / "pre-receive"
        hook.write_text(f"#!/bin/sh\necho 'no ({TOKEN})' >&2\nexit 1\n")
        hook.chmod(0o755)
        with pytest.raises(RepoError) as caught:
            await mirrors.push(url=url, ref=thread_ref(5), branch="slackbot/private-6")
        assert "rejected" in str(caught.value) and TOKEN not in str(caught.value)

        # A non-admin's ad-hoc URL: refused before any request, and never with the token.
        before = len(server.requests)
        with pytest.raises(RepoError, match="Only admins"):
            await mirrors.update(url=url, branch=None, trusted=False)
        assert len(server.requests) == before
        pin = Pin("github.com", 443, "140.82.112.3")
        untrusted = mirrors._net_env("https://github.com/o/r.git", False, pin)
        trusted = Mirrors(tmp_path / "m2", runner, github_token=TOKEN)._net_env("https://github.com/o/r.git", True, None)
        assert basic_auth(TOKEN) in str(trusted) and basic_auth(TOKEN) not in str(untrusted)
        assert untrusted["GIT_ALLOW_PROTOCOL"] == "https" and "github.com:443:140.82.112.3" in str(untrusted)
    finally:
        await server.stop()


async def test_untrusted_urls_get_no_local_paths_and_a_mirror_of_their_own(tmp_path: Path, remote: Path,
                                                                        mirrors: Mirrors):
    for url in (str(remote), f"file://{remote}", "http://127.0.0.1:9/x.git", "git@github.com:o/r.git"):
        with pytest.raises(RepoError, match="Only admins"):
            await mirrors.update(url=url, branch=None, trusted=False)
    assert not (mirrors.root / "adhoc").exists()
    admin = await mirrors.update(url=str(remote), branch=None)
    url = "https://github.com/octo/private.git"
    assert mirrors.path_for(url, True) != mirrors.path_for(url, False)
    assert mirrors.path_for(url, False).parent == mirrors.root / "adhoc"
    assert mirrors.path_for(str(remote), False) != admin.mirror and mirrors.lock(url, True) is not mirrors.lock(url, False)


async def test_paths_inside_the_data_directory_are_refused_even_for_admins(tmp_path: Path, runner: GitRunner,
                                                                          monkeypatch):
    data = tmp_path / "data"
    inside = make_remote(data / "scratch" / "thread-1.git", tmp_path / "upstream")
    (tmp_path / "link").symlink_to(data)
    mirrors = Mirrors(data / "mirrors", runner, data_dir=data)
    monkeypatch.chdir(tmp_path)  # the bot's working directory holds its data directory (./storage by default)
    for url in (str(inside), f"file://{inside}", str(tmp_path / "link" / "scratch" / "thread-1.git"),
                str(data / "mirrors" / ".." / "slackbot.db"), str(data), "./data/scratch/thread-1.git",
                "data/scratch/thread-1.git"):  # git takes a relative path as one too
        with pytest.raises(RepoError, match="inside the bot's data directory"):
            await mirrors.update(url=url, branch=None)
    refuse_data_dir(str(tmp_path / "upstream"), data)  # outside: fine
    refuse_data_dir("https://example.com/x.git", data)


def _resolver(*addresses: str):
    def resolve(host, port, type=0):  # noqa: A002 - getaddrinfo's own name
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in addresses]
    return resolve


def test_check_public_https_refuses_what_only_admins_may_use():
    public = _resolver("140.82.112.3")
    for url in ("http://github.com/o/r.git", "ssh://git@github.com/o/r.git", "git@github.com:o/r.git",
                "file:///etc", "/srv/repo.git", "ext::sh -c touch% /tmp/x"):
        with pytest.raises(RepoError, match="Only admins"):
            check_public_https(url, resolve=public)
    for url in ("https://user:pass@github.com/o/r.git", "https://x-access-token@github.com/o/r.git"):
        with pytest.raises(RepoError, match="user name or password"):
            check_public_https(url, resolve=public)
    for addresses in (("127.0.0.1",), ("10.1.2.3",), ("192.168.1.1",), ("172.17.0.1",), ("169.254.169.254",),
                      ("fe80::1",), ("::1",), ("::ffff:10.0.0.1",), ("100.64.0.1",), ("fd00:ec2::254",),
                      ("140.82.112.3", "10.0.0.1")):  # one private answer among public ones is enough
        with pytest.raises(RepoError, match="private, loopback or link-local"):
            check_public_https("https://git.example.com/o/r.git", resolve=_resolver(*addresses))
    with pytest.raises(RepoError, match="private, loopback or link-local"):
        check_public_https("https://localhost/o/r.git")  # the machine's own resolver
    with pytest.raises(RepoError, match="could not resolve"):
        check_public_https("https://nowhere.invalid/o/r.git", resolve=_resolver())
    with pytest.raises(RepoError):
        check_public_https("https://[::1]/o/r.git")


def test_check_public_https_pins_the_checked_address():
    pin = check_public_https("https://GitHub.com/o/r.git", resolve=_resolver("140.82.112.3"))
    assert pin == Pin("github.com", 443, "140.82.112.3")  # curl matches resolve entries without case
    assert pin.config() == [("http.curloptResolve", "github.com:443:140.82.112.3"), ("http.followRedirects", "false")]
    pin = check_public_https("https://git.example.com:8443/o/r.git", resolve=_resolver("2606:4700::1"))
    assert (pin.port, pin.config()[0][1]) == (8443, "git.example.com:8443:[2606:4700::1]")
    assert public_address("140.82.112.3") and not public_address("not-an-address")


def test_a_trailing_dot_cannot_escape_the_pin():
    """curl looks `github.com.` up itself when the resolve entry says `github.com` (checked with git 2.39 and
    curl 7.88): the pin would not apply, and a second DNS answer could point git at an internal address."""
    try:
        pin = check_public_https("https://github.com./o/r.git", resolve=_resolver("140.82.112.3"))
    except RepoError:
        return
    assert pin.config()[0][1].startswith("github.com.:443:"), pin.config()


def test_host_env_carries_no_token_of_the_bots(monkeypatch, tmp_path: Path):
    outside = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1", "OPENAI_API_KEY": "sk-1",
               "GITHUB_TOKEN": "ghp_1", "PATH": "/usr/bin:/bin", "HOME": "/home/bot",
               "SSH_AUTH_SOCK": "/run/agent.sock", "HTTPS_PROXY": "http://proxy:3128", "GIT_DIR": "/elsewhere"}
    env = host_env(base=outside)
    assert {"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "OPENAI_API_KEY", "GITHUB_TOKEN", "GIT_DIR"}.isdisjoint(env)
    assert env["SSH_AUTH_SOCK"] == "/run/agent.sock" and env["HTTPS_PROXY"] == "http://proxy:3128"
    assert env["HOME"] == "/home/bot" and env["GIT_TERMINAL_PROMPT"] == "0"
    # What a git process started by the bot really sees.
    for name, value in outside.items():
        if name not in ("PATH", "HOME"):
            monkeypatch.setenv(name, value)
    seen = run_git(["-c", "alias.showenv=!env", "showenv"], cwd=tmp_path)
    assert "xoxb-1" not in seen and "sk-1" not in seen and "ghp_1" not in seen and "/elsewhere" not in seen
    assert "SSH_AUTH_SOCK=/run/agent.sock" in seen and "HTTPS_PROXY=http://proxy:3128" in seen
    assert "core.hooksPath" in seen  # the hardened command-scope config
