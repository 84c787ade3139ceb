"""One-shot step containers and per-task networks against a real engine and the real image.

Network tests talk only to addresses on this machine: an HTTP server of the test's own on 0.0.0.0,
and a container the test starts on Docker's default bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.server
import os
import re
import secrets
import subprocess
import threading
import time
from pathlib import Path

import docker
import pytest

from slackbot.protocol import Mount, Step
from slackbot.sandbox import DockerSandboxes, SandboxError
from tests.docker_fixtures import (IMAGE, containers_of, engine, networks_of, sandboxes,  # noqa: F401
                                   settings, workspace)

pytestmark = pytest.mark.docker  # every test here runs containers

PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")


def ws(path: Path) -> tuple[Mount, ...]:
    return (Mount(str(path), "/workspace"),)


async def no_containers_left(engine: docker.DockerClient, instance: str, task_id: int, within_s: float = 10) -> bool:
    """A finished step's container may be removed just after the step returns (off the caller's path)."""
    deadline = time.monotonic() + within_s
    while containers_of(engine, instance, task_id):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


# ---- steps ---------------------------------------------------------------------------------

async def test_step_streams_stdin_to_stdout(engine, sandboxes, tmp_path: Path):
    data = os.urandom(5 * 1024 * 1024)
    (tmp_path / "in").write_bytes(data)
    out = tmp_path / "out"
    copied = await sandboxes.run_step(Step(31, "copy", ("cat",), stdin_path=str(tmp_path / "in"),
                                           stdout_path=str(out), stdout_cap=8 << 20, timeout_s=60))
    assert (copied.exit_code, copied.stdout_over_cap, copied.stdout_bytes) == (0, False, len(data)), copied
    assert out.read_bytes() == data
    summed = await sandboxes.run_step(Step(31, "sum", ("bash", "-c", "sha256sum; echo to-stderr >&2"),
                                           stdin_path=str(tmp_path / "in"), stdout_path=str(out),
                                           stdout_cap=1 << 20, timeout_s=60))
    assert summed.exit_code == 0, summed.output
    assert out.read_text().split() == [hashlib.sha256(data).hexdigest(), "-"]
    assert summed.output.strip() == "to-stderr"  # with stdout captured, only stderr comes back
    assert await no_containers_left(engine, sandboxes.instance, 31)


async def test_step_output_is_merged_and_exit_codes_reported(engine, sandboxes, workspace):
    ok = await sandboxes.run_step(Step(32, "setup", ("bash", "-c", "echo out; echo err >&2; id -u; pwd; "
                                                     "echo made > /workspace/made"), ws(workspace)))
    assert ok.exit_code == 0 and not ok.timed_out and ok.duration_s > 0
    assert sorted(ok.output.split()) == ["/workspace", "1000", "err", "out"], ok.output  # two pipes: any order
    assert (workspace / "made").read_text() == "made\n"
    failed = await sandboxes.run_step(Step(32, "setup", ("bash", "-c", "echo broken >&2; exit 5"), ws(workspace)))
    assert failed.exit_code == 5 and "broken" in failed.output and not failed.timed_out
    assert await no_containers_left(engine, sandboxes.instance, 32)  # removed after success and failure


async def test_step_is_confined_like_the_agent(sandboxes, workspace, tmp_path: Path):
    out = tmp_path / "out"
    result = await sandboxes.run_step(Step(
        33, "finish", ("bash", "-c", "touch /usr/x 2>&1; ls /sys/class/net; grep CapEff /proc/self/status; "
                       "echo $FLAG"), ws(workspace), env=(("FLAG", "set"),), stdout_path=str(out),
        stdout_cap=1 << 20))
    lines = out.read_text().splitlines()
    assert "Read-only file system" in lines[0], lines
    assert lines[1:] == ["lo", "CapEff:\t0000000000000000", "set"], lines
    assert result.exit_code == 0


OVER_CAP_INSTANCE = "test-over-cap"  # fixed: what an engine stuck on a removal left, the next run removes


async def test_step_stdout_over_the_cap_is_reported_and_the_container_removed(engine, settings, tmp_path: Path):
    # Its own provider with a short engine bound, so a removal the engine sits on fails fast. Several runs:
    # whether the engine hangs on a container still writing when its stream is cut is a race.
    provider = DockerSandboxes(settings.model_copy(update={"docker_timeout_s": 8}), instance=OVER_CAP_INSTANCE)
    with contextlib.suppress(SandboxError):
        await provider.reap()
    out = tmp_path / "out"
    try:
        for _ in range(4):
            started = time.monotonic()
            result = await provider.run_step(Step(34, "finish", ("bash", "-c", "head -c 3000000 /dev/zero; sleep 600"),
                                                  stdout_path=str(out), stdout_cap=1 << 20, timeout_s=120))
            assert result.stdout_over_cap and not result.timed_out and result.exit_code != 0
            assert "over the size limit" in result.output
            assert result.stdout_bytes == out.stat().st_size == 1 << 20
            assert time.monotonic() - started < 8  # it stops reading at the cap, not at the time limit
            assert await no_containers_left(engine, provider.instance, 34)
    finally:
        with contextlib.suppress(SandboxError):
            await provider.reap()
        await provider.aclose()


async def test_step_outliving_its_time_limit_is_killed_and_removed(engine, sandboxes):
    started = time.monotonic()
    result = await sandboxes.run_step(Step(35, "setup", ("bash", "-c", "echo begin; sleep 1000"), timeout_s=2))
    assert result.timed_out and result.exit_code == 124
    assert "begin" in result.output and "time limit" in result.output
    assert time.monotonic() - started < 20
    assert await no_containers_left(engine, sandboxes.instance, 35)


# ---- networks --------------------------------------------------------------------------------

class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = b"host-server-says-hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def host_server():
    """An HTTP server on every address of this machine."""
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def host_ipv4_addresses() -> list[str]:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    return [a for a in re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", out) if not a.startswith("127.")]


def run_plain(engine: docker.DockerClient, instance: str, script: str) -> str:
    """Runs `script` in a plain container on Docker's default bridge; returns its output."""
    container = engine.containers.run(IMAGE, ["bash", "-c", script], network="bridge", detach=True,
                                      labels={"slackbot.managed": "1", "slackbot.instance": instance,
                                              "slackbot.task": "999", "slackbot.role": "control"})
    try:
        container.wait(timeout=60)
        return container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)


def curl(url: str, *, direct: bool = False) -> str:
    """A shell line printing `code=NNN` (000: no connection); `direct` bypasses the proxy variables."""
    bypass = "--noproxy '*' " if direct else ""
    return f"curl -sS --max-time 5 {bypass}-o /dev/null -w 'code=%{{http_code}}\\n' {url} 2>&1; echo"


async def test_task_network_reaches_neither_the_host_directly_nor_through_the_proxy(
        engine, sandboxes, workspace, host_server):
    control = run_plain(engine, sandboxes.instance, "gw=$(ip route | awk '/^default/ {print $3}'); echo gw=$gw; "
                        f"curl -sS --max-time 5 http://$gw:{host_server}/")
    gateway = re.search(r"gw=(\S+)", control).group(1)
    assert "host-server-says-hello" in control, control  # positive control: the server is live and reachable

    name, env = await sandboxes.open_network(41, ())
    try:
        net = engine.api.inspect_network(name)
        assert net["Internal"] is True
        assert net["Options"].get("com.docker.network.bridge.inhibit_ipv4") == "true"
        assert net["Labels"]["slackbot.role"] == "network" and net["Labels"]["slackbot.task"] == "41"
        [proxy] = [c for c in containers_of(engine, sandboxes.instance, 41) if c["Labels"]["slackbot.role"] == "egress"]
        proxy_info = engine.api.inspect_container(proxy["Id"])
        assert proxy_info["HostConfig"]["ReadonlyRootfs"] is True and proxy_info["Config"]["User"] == "65534:65534"
        assert set(env) >= set(PROXY_ENV) and env["HTTP_PROXY"].startswith("http://")

        box = await sandboxes.start(task_id=41, mounts=ws(workspace), network=name, env=env)
        try:
            seen = await box.exec("ls /sys/class/net; env", timeout_s=30)
            assert "eth0" in seen.output.split()
            assert f"HTTPS_PROXY={env['HTTPS_PROXY']}" in seen.output
            targets = sorted({gateway, *host_ipv4_addresses()})
            script = "; ".join(curl(f"http://{a}:{host_server}/", direct=d) for a in targets for d in (True, False))
            tried = await box.exec(script, timeout_s=120)
            assert "host-server-says-hello" not in tried.output, tried.output
            assert "code=200" not in tried.output, tried.output
            assert tried.output.count("code=403") == len(targets), tried.output  # the proxy refused each
        finally:
            await box.close()
    finally:
        await sandboxes.close_network(41)
    assert networks_of(engine, sandboxes.instance, 41) == [] and containers_of(engine, sandboxes.instance, 41) == []
    await sandboxes.close_network(41)  # twice is fine


async def test_a_cidr_entry_lets_one_destination_through_the_proxy(engine, sandboxes, workspace, host_server):
    target = engine.containers.run(
        IMAGE, ["python3", "-m", "http.server", "8080", "--directory", "/opt/slackbot"], network="bridge",
        detach=True, labels={"slackbot.managed": "1", "slackbot.instance": sandboxes.instance,
                             "slackbot.task": "998", "slackbot.role": "target"})
    try:
        target.reload()
        address = target.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        name, env = await sandboxes.open_network(42, (f"{address}/32:8080",))
        box = await sandboxes.start(task_id=42, mounts=ws(workspace), network=name, env=env)
        try:
            for _ in range(50):  # the target's server may still be starting
                through = await box.exec(f"curl -sS --max-time 5 http://{address}:8080/", timeout_s=30)
                if through.exit_code == 0:
                    break
                await asyncio.sleep(0.2)
            assert through.exit_code == 0 and "egress_proxy.py" in through.output, through.output
            direct = await box.exec(curl(f"http://{address}:8080/", direct=True), timeout_s=30)
            assert "code=000" in direct.output, direct.output  # only through the proxy
            other_port = await box.exec(curl(f"http://{address}:8081/"), timeout_s=30)
            assert "code=403" in other_port.output, other_port.output
            hosts = host_ipv4_addresses()  # docker0's address among them
            host = await box.exec("; ".join(curl(f"http://{a}:{host_server}/") for a in hosts), timeout_s=60)
            assert host.output.count("code=403") == len(hosts), host.output
        finally:
            await box.close()
            await sandboxes.close_network(42)
    finally:
        target.remove(force=True)


async def test_reap_and_remove_task_take_networks_and_proxies(engine, sandboxes):
    sandboxes.worker = "worker-alive"
    kept, _ = await sandboxes.open_network(43, ())
    sandboxes.worker = "worker-dead"
    await sandboxes.open_network(44, ())
    await sandboxes.open_network(45, ())
    await sandboxes.remove_task(45)
    assert networks_of(engine, sandboxes.instance, 45) == [] and containers_of(engine, sandboxes.instance, 45) == []
    await sandboxes.reap({"worker-alive"})
    assert networks_of(engine, sandboxes.instance, 44) == [] and containers_of(engine, sandboxes.instance, 44) == []
    assert [n["Name"] for n in networks_of(engine, sandboxes.instance, 43)] == [kept]
    assert len(containers_of(engine, sandboxes.instance, 43)) == 1
    await sandboxes.reap()
    assert networks_of(engine, sandboxes.instance) == [] and containers_of(engine, sandboxes.instance) == []
