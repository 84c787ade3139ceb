"""Attacks on the sandbox's limits and on what a channel member may fetch (SECURITY.md rows S1–S7)."""

from __future__ import annotations

import asyncio
import os
import secrets
import time

import docker
import pytest
from aiohttp import web

from slackbot.app import Bot
from tests.attack_rig import Canaries, command, make_remote, run_task, tool_outputs
from tests.conftest import SANDBOX_IMAGE, make_settings
from tests.fakes import shell
from tests.fakes.serve import serve
from tests.helpers import block_text, bot_messages, mention

META_SUBNET, META_ADDRESS = "169.254.169.252/30", "169.254.169.254"


@pytest.fixture
def engine():
    client = docker.from_env()
    yield client
    client.close()


class Targets:
    """Services an attacker would aim at, each made live by the test: an HTTP server on the host, a
    container on the default bridge (another task's, say) and a metadata endpoint on its own network."""

    def __init__(self, engine: docker.DockerClient) -> None:
        self.engine = engine
        self.tag = secrets.token_hex(3)
        self.hits: list[str] = []
        self.containers: list = []
        self.network = None

    async def start(self) -> None:
        app = web.Application()

        async def hit(request: web.Request) -> web.Response:
            self.hits.append(request.path)
            return web.Response(text="host-service")
        app.router.add_get("/{tail:.*}", hit)
        self.runner, self.port = await serve(app)  # on 127.0.0.1: the sandbox must not reach loopback either
        self.host_app = web.AppRunner(app)
        await self.host_app.setup()
        site = web.TCPSite(self.host_app, "0.0.0.0", 0)
        await site.start()
        self.host_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        bridge = self.engine.networks.get("bridge").attrs["IPAM"]["Config"][0]
        self.gateway = bridge.get("Gateway") or "172.17.0.1"
        self.other = self._server("bridge")
        self.other_ip = self._ip(self.other, "bridge")
        self.network = self.engine.networks.create(
            f"slackbot-test-meta-{self.tag}", driver="bridge",
            ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=META_SUBNET)]))
        self.meta = self._server(self.network.name, ip=META_ADDRESS)

    def _server(self, network: str, ip: str = ""):
        container = self.engine.containers.create(
            SANDBOX_IMAGE, ["python3", "-m", "http.server", "8000"], detach=True, user="1000:1000",
            working_dir="/tmp", network=network if not ip else None, labels={"slackbot.test": self.tag})
        if ip:
            self.network.connect(container, ipv4_address=ip)
        container.start()
        self.containers.append(container)
        return container

    def _ip(self, container, network: str) -> str:
        container.reload()
        return container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]

    async def probe(self, network: str, url: str) -> str:
        """The positive control: the target answers a plain container on `network`."""
        return await asyncio.to_thread(self._probe, network, url)

    def _probe(self, network: str, url: str) -> str:
        container = self.engine.containers.create(
            SANDBOX_IMAGE, ["bash", "-c", f"for i in $(seq 20); do curl -sS -m 3 {url} && exit 0; sleep 0.3; done"],
            network=network, user="1000:1000", labels={"slackbot.test": self.tag})
        try:
            container.start()
            container.wait(timeout=120)
            return container.logs(stdout=True, stderr=True).decode(errors="replace")
        finally:
            container.remove(force=True)

    async def stop(self) -> None:
        for container in self.containers:
            container.remove(force=True)
        if self.network is not None:
            self.network.remove()
        await self.runner.cleanup()
        await self.host_app.cleanup()


@pytest.mark.docker
async def test_s1_setup_cannot_reach_the_host_other_containers_or_metadata(slack, model, tmp_path, engine):
    targets = Targets(engine)
    await targets.start()
    try:
        # Positive controls: each target is live and reachable from a plain container.
        assert "host-service" in await targets.probe("bridge", f"http://{targets.gateway}:{targets.host_port}/control")
        assert "Directory listing" in await targets.probe("bridge", f"http://{targets.other_ip}:8000/")
        assert "Directory listing" in await asyncio.to_thread(_fetch, f"http://{META_ADDRESS}:8000/")  # from the host
        targets.hits.clear()
        remote = make_remote(tmp_path)
        urls = [f"http://{targets.gateway}:{targets.host_port}/from-setup", f"http://127.0.0.1:{targets.port}/lo",
                f"http://{targets.other_ip}:8000/", f"http://{META_ADDRESS}:8000/",
                f"http://{META_ADDRESS}/latest/meta-data/", "http://localhost:8000/"]
        probe = "; ".join(f"curl -sS -m 4 -o /dev/null -w '%{{http_code}} ' {u}; echo rc=$? {u}; "
                          f"curl -sS -m 4 --noproxy '*' -o /dev/null {u}; echo direct=$? {u}" for u in urls)
        settings = make_settings(tmp_path / "data", slack, model, SLACKBOT_ADMINS="UADMIN",
                                 SLACKBOT_EGRESS_ALLOW=f"{targets.other_ip}/32:8001")
        async with Bot(settings, port=0) as bot:
            await command(slack, f"repo add app {remote}")
            assert "network setup" in await command(slack, f'repo set app setup="({probe}) > .probe 2>&1" network=setup')
            ts, final = await run_task(slack, model, "reach-out", ["cat .probe"])
            report = tool_outputs(model, "reach-out")[-1]
            assert await _setup_events(bot, 1), "the setup command ran"
        for url in urls:  # through the proxy: refused (403) or no connection (000); directly: no route
            assert f"403 rc=0 {url}" in report or f"000 rc=7 {url}" in report, report
            assert f"direct=0 {url}" not in report, report
        assert "200 " not in report
        assert targets.hits == []
    finally:
        await targets.stop()


def _fetch(url: str) -> str:
    import urllib.request
    for _ in range(30):
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                return resp.read().decode(errors="replace")
        except OSError:
            time.sleep(0.3)
    return ""


async def _setup_events(bot, task_id: int) -> list[dict]:
    return [e for e in await bot.store.events(task_id) if e["type"] == "item.completed"
            and e["item"].get("id", "").endswith("_setup")]


@pytest.mark.docker
async def test_s2_setup_network_and_environment_never_reach_the_agent(slack, model, tmp_path):
    remote = make_remote(tmp_path)
    settings = make_settings(tmp_path / "data", slack, model, SLACKBOT_ADMINS="UADMIN")
    async with Bot(settings, port=0):
        await command(slack, f"repo add app {remote}")
        await command(slack, 'repo set app setup="env > .setup-env; ls /sys/class/net > .setup-net" network=setup')
        await run_task(slack, model, "look-around", [
            "cat .setup-net; echo ---; ls /sys/class/net; echo ---; "
            "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -ci proxy; "
            "grep -rIl 'slackbot-.*-egress\\|HTTP_PROXY' /home/agent /tmp 2>/dev/null | wc -l"])
        setup_net, agent_net, counts = tool_outputs(model, "look-around")[-1].split("---")
        assert "eth0" in setup_net and agent_net.split()[-1:] == ["lo"]
        assert counts.split()[-2:] == ["0", "0"]


@pytest.mark.docker
async def test_s3_disk_fill_is_bounded_by_the_quota(slack, model, tmp_path):
    settings = make_settings(tmp_path / "data", slack, model, SLACKBOT_WORKSPACE_QUOTA="64m")
    async with Bot(settings, port=0) as bot:
        if bot.disks.mode != "loop":  # CI runs as root: there the row must run
            (pytest.fail if os.environ.get("CI") else pytest.skip)("the loop-mounted quota needs root")
        await run_task(slack, model, "fill-disk", [
            "dd if=/dev/zero of=fill bs=1M count=200 2>&1; echo rc=$?; du -sm . | cut -f1"])
        out = tool_outputs(model, "fill-disk")[-1]
        assert "No space left" in out and int(out.split()[-1]) <= 64
        image = settings.workspaces_dir / "thread-1.img"
        assert image.stat().st_blocks * 512 <= 80 * 1024 * 1024  # the host gave it no more than the quota


@pytest.mark.docker
async def test_s4_disk_watcher_stops_a_task_past_its_quota(slack, model, tmp_path):
    settings = make_settings(tmp_path / "data", slack, model, SLACKBOT_WORKSPACE_QUOTA="32m",
                             SLACKBOT_WORKSPACE_QUOTA_MODE="watch")
    async with Bot(settings, port=0):
        model.script_for("watch-fill", [shell("dd if=/dev/zero of=fill bs=1M count=64; sleep 120")])
        started = time.monotonic()
        ts = await mention(slack, "watch-fill")
        await slack.wait_for(lambda: any("disk quota" in block_text(m) for m in bot_messages(slack, "C1", ts)),
                             timeout=60)
        assert time.monotonic() - started < 40


@pytest.mark.docker
async def test_s5_sparse_100gb_agents_md_and_file_are_left_out(slack, model, tmp_path):
    remote = make_remote(tmp_path)
    settings = make_settings(tmp_path / "data", slack, model, SLACKBOT_ADMINS="UADMIN")
    async with Bot(settings, port=0):
        await command(slack, f"repo add app {remote}")
        started = time.monotonic()
        ts, final = await run_task(slack, model, "sparse", [
            "truncate -s 100G AGENTS.md && truncate -s 100G data.bin && echo ok > small.txt"])
        text_ = block_text(final)
        assert "Left out of the commit" in text_ and "`AGENTS.md` (100.0 GB)" in text_ and "`data.bin`" in text_
        assert "`small.txt` +1 −0 (new)" in text_
        await run_task(slack, model, "after-sparse", ["ls -la AGENTS.md"], thread_ts=ts, thread_key="sparse", count=2)
        system = model.requests_for("sparse")[-1].body["messages"][0]["content"]
        assert "Always run the tests." in system  # AGENTS.md from the mirror at the base, not the workspace
        assert time.monotonic() - started < 90


@pytest.mark.docker
async def test_s6_channel_members_cannot_fetch_private_or_local_urls(slack, model, tmp_path):
    remote = make_remote(tmp_path)
    settings = make_settings(tmp_path / "data", slack, model, SLACKBOT_ADMINS="UADMIN")
    async with Bot(settings, port=0):
        refused = {
            f"repo={remote} a": "Only admins",
            f"repo=file://{remote} b": "Only admins",
            "repo=http://127.0.0.1:9/x.git c": "Only admins",
            "repo=git@127.0.0.1:x.git d": "Only admins",
            "repo=https://localhost:9/x.git e": "private, loopback or link-local",
            "repo=https://169.254.169.254/x.git f": "private, loopback or link-local",
            f"repo={settings.data_dir}/mirrors g": "inside the bot's data directory",
        }
        for text_, expected in refused.items():
            ts = await mention(slack, text_)
            await slack.wait_for(lambda: any(expected in block_text(m) for m in bot_messages(slack, "C1", ts)),
                                 timeout=30)
        ts = await mention(slack, f"repo={settings.data_dir}/mirrors h", user="UADMIN")
        await slack.wait_for(lambda: any("inside the bot's data directory" in block_text(m)
                                         for m in bot_messages(slack, "C1", ts)), timeout=30)
        assert model.requests == []
        # The positive control: an admin may use the same local URL.
        ts, final = await run_task(slack, model, "admin-url", ["ls"], user="UADMIN", prefix=f"repo={remote} ")
        assert "admin-url done" in block_text(final)


def test_canaries_notice_a_planted_file(tmp_path):
    host = Canaries(tmp_path / "host")
    host.assert_untouched()
    host.marker("x").write_text("x")
    with pytest.raises(AssertionError):
        host.assert_untouched()
