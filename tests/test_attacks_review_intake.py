"""Attacks from the security review on what people send and on host-side git (SECURITY.md rows C6,
S14, G15, malformed URLs and the repository chooser): a real bot shared by the module, and unit
tests with real git."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from pathlib import Path

import pytest
import pytest_asyncio

from slackbot.app import Models
from slackbot.repos import GitRunner, Mirrors, Results, ResultRefused
from slackbot.repos.errors import GitFailed
from slackbot.repos.git_env import run_git
from slackbot.repos.urls import Pin
from tests.attack_rig import command, make_remote, running_bot, thread_task_ids
from tests.fakes import shell, text
from tests.git_helpers import make_remote as make_bare_remote, result_bundle
from tests.helpers import block_text, bot_messages, mention, reply, wait_final
from tests.slack_actions import button, ephemeral_texts, press

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("review-intake")
    async with running_bot(tmp / "data", SLACKBOT_ADMINS="UADMIN", SLACKBOT_MODEL="test-model",
                           SLACKBOT_MODELS="alt-model, other-model") as r:
        r.tmp = tmp  # type: ignore[attr-defined]
        yield r


async def said(slack, channel: str, ts: str, words: str, timeout: float = 20) -> str:  # type: ignore[no-untyped-def]
    """The bot's reply in the thread containing `words`."""
    found = await slack.wait_for(lambda: next((block_text(m) for m in bot_messages(slack, channel, ts)
                                               if words in block_text(m)), None), timeout=timeout)
    return found


# ---- C6: model= only names an allowed model; one HTTP client for all names ----------------------

@pytest.mark.docker
async def test_c6_model_option_is_limited_to_the_allowed_models(rig):
    slack, model = rig.slack, rig.model
    ts = await mention(slack, "model=attacker-model-1 c6-unlisted please", channel="CC6")
    refused = await said(slack, "CC6", ts, "not available")
    assert "`test-model`" in refused and "`alt-model`" in refused and "`other-model`" in refused
    model.script_for("c6-allowed", [text("c6 allowed done")])
    ts = await mention(slack, "model=alt-model c6-allowed", channel="CC6")
    await wait_final(slack, "CC6", ts)
    assert [r.body["model"] for r in model.requests_for("c6-allowed")] == ["alt-model"]
    # A follow-up is held to the same list.
    await reply(slack, "model=attacker-model-2 c6 follow-up", channel="CC6", thread_ts=ts)
    await said(slack, "CC6", ts, "attacker-model-2")
    await asyncio.sleep(1)
    assert len(model.requests_for("c6-allowed")) == 1
    assert model.requests_for("c6-unlisted") == []
    assert not [r for r in model.requests if r.body.get("model", "").startswith("attacker-model")]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_c6_many_model_names_share_one_http_client(rig, tmp_path):
    from tests.conftest import make_settings

    models = Models(make_settings(tmp_path / "data", rig.slack, rig.model))
    try:
        rig.model.script_for("c6-fd-hello", [text("hi")] * 205)
        await models("warm-up").complete([{"role": "user", "content": "c6-fd-hello"}], [])
        before = open_fds()
        for i in range(200):
            await models(f"attacker-model-fd-{i}").complete([{"role": "user", "content": "c6-fd-hello"}], [])
        grown = open_fds() - before
    finally:
        await models.close()
    assert grown < 10, f"{grown} more open file descriptors after 200 model names"


# ---- Malformed URLs from a channel member -------------------------------------------------------

@pytest.mark.parametrize("url", ["https://93.184.216.34:443:80/x.git", "https://[::1/x.git"])
async def test_malformed_repository_urls_get_a_clear_refusal(rig, url):
    slack = rig.slack
    key = "urls-bad-port" if "443:80" in url else "urls-bad-bracket"
    ts = await mention(slack, f"repo={url} {key}", channel="CURL")
    answer = await slack.wait_for(lambda: [block_text(m) for m in bot_messages(slack, "CURL", ts)], timeout=20)
    answer = "\n".join(answer)
    assert "invalid port" in answer or "not a valid repository URL" in answer, answer
    assert "Internal error" not in answer and "ValueError" not in answer
    assert rig.model.requests_for(key) == []


# ---- The repository chooser only binds a repository linked in this channel ----------------------

@pytest.mark.docker
async def test_chooser_refuses_a_repository_linked_only_elsewhere(rig):
    slack, model, bot = rig.slack, rig.model, rig.bot
    for name in ("chooser-one", "chooser-two", "chooser-three"):
        await command(slack, f"repo add {name} {make_remote(rig.tmp, name)} main", channel="CCH")
    await command(slack, "repo remove chooser-one", channel="CCH")  # two left, no default: people choose
    secret = make_remote(rig.tmp, "private-elsewhere", {"SECRET.md": "only for the other channel\n"})
    await command(slack, f"repo add private-elsewhere {secret} main", channel="CPRIV")
    secret_id = (await bot.deps.repos.by_name("CPRIV", "private-elsewhere")).id
    model.script_for("chooser-pick", [shell("ls"), text("chooser done")])
    ts = await mention(slack, "chooser-pick", channel="CCH")
    chooser = await slack.wait_for(lambda: next((m for m in bot_messages(slack, "CCH", ts)
                                                 if button(m, "repo_choose_0")), None), timeout=20)
    task_id = (await thread_task_ids(bot, "CCH", ts))[0]
    await press(slack, "repo_choose_0", f"{task_id}:{secret_id}", user="U1", channel="CCH",
                message_ts=chooser["ts"], thread_ts=ts)  # a forged button value
    await slack.wait_for(lambda: any("no longer known" in e for e in ephemeral_texts(slack, "U1")), timeout=20)
    await asyncio.sleep(1)
    assert (await bot.store.get_task(task_id)).status == "choosing"
    assert model.requests_for("chooser-pick") == []
    real = button(chooser, "repo_choose_1")  # the positive control: a listed one works
    await press(slack, "repo_choose_1", real["value"], user="U1", channel="CCH", message_ts=chooser["ts"],
                thread_ts=ts)
    await wait_final(slack, "CCH", ts)
    out = [m["content"] for m in model.requests_for("chooser-pick")[-1].body["messages"] if m["role"] == "tool"]
    assert "README.md" in out[-1] and "SECRET.md" not in out[-1]


# ---- S14: an ad-hoc URL's fetch never goes through a proxy ---------------------------------------

class Listener:
    """A TCP listener on 127.0.0.1 that records each connection and closes it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.seen: list[bytes] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._done.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.seen.append(conn.recv(4096) or b"(connected)")
                except OSError:
                    self.seen.append(b"(connected)")

    def close(self) -> None:
        self._done.set()
        self._thread.join(2)
        self.sock.close()


async def test_s14_an_untrusted_fetch_ignores_the_hosts_proxy(tmp_path, monkeypatch):
    """The environment an untrusted fetch runs with, used by real git: with every proxy variable and
    a `~/.gitconfig` proxy pointing at one listener, git still goes to the pinned address (another)."""
    proxy, pinned = Listener(), Listener()
    try:
        for name in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        home = tmp_path / "home"
        home.mkdir()
        (home / ".gitconfig").write_text(f"[http]\n\tproxy = http://127.0.0.1:{proxy.port}\n")
        monkeypatch.setenv("HOME", str(home))
        host = "internal-git.corp.example"
        url = f"https://{host}:{pinned.port}/x.git"
        # A name as if checked public; the pin sends git to our listener, never outside this machine.
        env = Mirrors(tmp_path / "mirrors", GitRunner())._net_env(url, False, Pin(host, pinned.port, "127.0.0.1"))
        with pytest.raises(GitFailed):
            await asyncio.to_thread(run_git, ["ls-remote", "--", url], env=env, timeout_s=20)
    finally:
        proxy.close()
        pinned.close()
    assert proxy.seen == []
    assert pinned.seen  # git went to the checked address itself


# ---- G15: a small bundle that unpacks to a lot ---------------------------------------------------

@pytest.fixture
def git_runner():
    r = GitRunner(timeout_s=60)
    yield r
    r.close()


async def test_g15_a_result_over_its_expanded_cap_is_refused(tmp_path: Path, git_runner):
    remote = make_bare_remote(tmp_path / "remote.git", tmp_path / "upstream")
    found = await Mirrors(tmp_path / "data" / "mirrors", git_runner).update(url=str(remote), branch=None)
    results = Results(git_runner, tmp_path / "data" / "tmp", expanded_cap=1 << 20)
    await results.start_thread(found.mirror, 7, found.base_sha)
    small = result_bundle(found.mirror, found.base_sha, {"small.txt": "small\n"}, tmp_path / "small.bundle")
    assert await results.receive(found.mirror, tmp_path / "small.bundle", thread_id=7, parent=found.base_sha,
                                 message="m") == small  # the control: the cap does not refuse everything
    bundle = tmp_path / "big.bundle"
    result_bundle(found.mirror, small, {"big.txt": "all the same line\n" * 300_000}, bundle)
    assert bundle.stat().st_size < 200_000  # compresses well: ~5 MB of text in the bundle
    with pytest.raises(ResultRefused, match="once unpacked"):
        await results.receive(found.mirror, bundle, thread_id=7, parent=small, message="m")
