"""Attacks from the security review on the sandbox's limits (SECURITY.md rows S4b, S9–S11, S13 and the
held network rows): each a real task in a real container, on bots shared by the module."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import docker
import pytest
import pytest_asyncio

from tests.attack_rig import command, make_remote, run_task, running_bot, tool_outputs
from tests.fakes import shell, text
from tests.helpers import block_text, bot_messages, mention, wait_final

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.docker]


def need_root() -> None:
    if os.geteuid() != 0:  # CI runs as root: there these rows must run
        (pytest.fail if os.environ.get("CI") else pytest.skip)("the loop-mounted quota needs root")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory):
    """A root deployment: each workspace a loop-mounted image of 64 MiB."""
    tmp = tmp_path_factory.mktemp("review-sandbox")
    async with running_bot(tmp / "data", SLACKBOT_ADMINS="UADMIN", SLACKBOT_WORKSPACE_QUOTA="64m",
                           SLACKBOT_EGRESS_ALLOW="pypi.org") as r:
        r.tmp = tmp  # type: ignore[attr-defined]
        yield r


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def watch_rig(tmp_path_factory):
    """A deployment without root: the watcher measures the workspace."""
    tmp = tmp_path_factory.mktemp("review-watch")
    async with running_bot(tmp / "data", SLACKBOT_WORKSPACE_QUOTA="32m", SLACKBOT_WORKSPACE_QUOTA_MODE="watch",
                           SLACKBOT_SANDBOX_PIDS="64") as r:
        yield r


class ContainerWatch:
    """Every container of a bot instance while it lives: its role, log driver and log file's size."""

    def __init__(self, instance: str) -> None:
        self.instance = instance
        self.seen: dict[str, dict] = {}
        self.largest_log = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "ContainerWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(10)

    def _run(self) -> None:
        client = docker.from_env()
        try:
            while not self._done.is_set():
                for c in client.api.containers(all=True, filters={"label": f"slackbot.instance={self.instance}"}):
                    try:
                        if c["Id"] not in self.seen:
                            info = client.api.inspect_container(c["Id"])
                            self.seen[c["Id"]] = {"role": c["Labels"].get("slackbot.role"),
                                                  "log": info["HostConfig"]["LogConfig"]["Type"],
                                                  "path": info.get("LogPath") or ""}
                        path = self.seen[c["Id"]]["path"]
                        if path and os.path.exists(path):
                            self.largest_log = max(self.largest_log, os.path.getsize(path))
                    except (docker.errors.NotFound, OSError):
                        pass
                time.sleep(0.05)
        finally:
            client.close()


# ---- S9: nothing the sandbox prints lands in a host log file ------------------------------------

async def test_s9_output_of_pid_1_never_reaches_a_host_log_file(rig):
    slack, model = rig.slack, rig.model
    await command(slack, f"repo add logs {make_remote(rig.tmp, 'logs')} main", channel="CS9")
    await command(slack, 'repo set logs setup="sleep 2"', channel="CS9")  # a step container that lives a while
    with ContainerWatch(rig.bot.sandboxes.instance) as watch:
        await run_task(slack, model, "s9-fill-the-log", [
            "timeout 60 sh -c 'head -c 300000000 /dev/zero | tr \"\\0\" A | fold -w 16000 > /proc/1/fd/1'; "
            "echo rc=$?", "sleep 1; echo waited"], channel="CS9")
    assert "rc=0" in tool_outputs(model, "s9-fill-the-log")[-2]  # 300 MB went to pid 1's stdout
    roles = {c["role"]: c["log"] for c in watch.seen.values() if c["role"] != "egress"}
    assert {"agent", "setup"} <= set(roles) or {"pool", "setup"} <= set(roles), roles  # (pool: a warm agent)
    assert set(roles.values()) == {"none"}, roles
    assert watch.largest_log <= 1 << 20, f"a host log file grew to {watch.largest_log >> 20} MiB"


# ---- S10: the agent's home directory is inside the workspace's quota ----------------------------

def home_volumes(instance: str) -> list[str]:
    client = docker.from_env()
    try:
        return [v.name for v in client.volumes.list(filters={"name": f"slackbot-home-{instance}"})]
    finally:
        client.close()


async def test_s10_home_directory_is_bounded_by_the_quota(rig):
    need_root()
    instance = rig.bot.sandboxes.instance
    try:
        await run_task(rig.slack, rig.model, "s10-fill-home", [
            "dd if=/dev/zero of=/home/agent/fill bs=1M count=300 2>&1; du -sm /home/agent | cut -f1"],
            channel="CS10")
        out = tool_outputs(rig.model, "s10-fill-home")[-1]
        assert "No space left on device" in out and int(out.split()[-1]) <= 64, out
        assert home_volumes(instance) == []
    finally:
        for name in home_volumes(instance):  # what the first release made
            docker.from_env().volumes.get(name).remove(force=True)


# ---- S13: setup runs without the agent's profile or rc files ------------------------------------

PLANT_PROFILE = (
    "for f in ~/.bash_profile ~/.bashrc ~/.profile; do "
    "echo 'echo \"$(basename $BASH_SOURCE):$BASH_EXECUTION_STRING\" >> /workspace/.from-profile' > $f; done; "
    "echo planted")


async def test_s13_setup_never_runs_the_agents_profile(rig):
    slack, model = rig.slack, rig.model
    await command(slack, f"repo add profiled {make_remote(rig.tmp, 'profiled')} main", channel="CS13")
    await command(slack, 'repo set profiled setup="true" network=setup', channel="CS13")
    ts, _ = await run_task(slack, model, "s13-plant-profile", [PLANT_PROFILE], channel="CS13")
    # An admin changes the setup: it runs again in the next task, with the network.
    await command(slack, 'repo set profiled setup="echo SETUP-RAN-s13 > /workspace/.setup-ran"', channel="CS13")
    await run_task(slack, model, "s13 look", ["cat /workspace/.setup-ran; echo ---; cat /workspace/.from-profile"],
                   channel="CS13", thread_ts=ts, thread_key="s13-plant-profile", count=2)
    ran, _, profile = tool_outputs(model, "s13-plant-profile")[-1].partition("\n---\n")
    assert "SETUP-RAN-s13" in ran  # the setup ran
    assert "SETUP-RAN" not in profile, profile  # and the agent's profile did not run with it


# ---- Held rows: IPv6 link-local to the host and DNS for outside names -----------------------------

PROBE = r'''
import json, socket, struct, time
out = {}
def dnsq(name):
    q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"".join(
        bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
    try:
        s.sendto(q, ("127.0.0.11", 53)); r = s.recv(512)
        return "rcode=%d answers=%d" % (r[3] & 15, struct.unpack(">H", r[6:8])[0])
    except Exception as e:
        return "error %r" % e
out["outside"] = dnsq("slackbot-probe.invalid")
out["pypi"] = dnsq("pypi.org")
out["egress"] = dnsq("egress")
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); s.settimeout(4)
try:
    s.connect((TARGET, PORT, 0, socket.if_nametoindex("eth0")))
    s.sendall(b"GET /from-sandbox HTTP/1.0\r\n\r\n")
    out["v6"] = "CONNECTED " + s.recv(200).decode(errors="replace")[:60]
except Exception as e:
    out["v6"] = "no connection: %r" % e
print("PROBE" + json.dumps(out))
'''


def bridge_link_local(instance: str) -> str:
    client = docker.from_env()
    try:
        nets = client.api.networks(filters={"label": [f"slackbot.instance={instance}"]})
    finally:
        client.close()
    for net in sorted(nets, key=lambda n: n["Created"], reverse=True):
        shown = subprocess.run(["ip", "-6", "addr", "show", f"br-{net['Id'][:12]}"], capture_output=True,
                               text=True).stdout
        found = [line.split()[1].split("/")[0] for line in shown.splitlines() if "inet6 fe80" in line]
        if found:
            return f"{found[0]}%br-{net['Id'][:12]}"
    return ""


def settled(address: str) -> bool:
    """False while the kernel still checks the address is unique (it cannot be used meanwhile)."""
    shown = subprocess.run(["ip", "-6", "addr", "show", address.partition("%")[2]], capture_output=True,
                           text=True).stdout
    return not any("tentative" in line for line in shown.splitlines() if address.partition("%")[0] in line)


class HostService:
    """A TCP service on every address of the host (`::`), answering from a thread of its own."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.sock.bind(("::", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.hits: list[bytes] = []
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
                try:
                    conn.settimeout(2)
                    self.hits.append(conn.recv(200))
                    conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nhost-service")
                except OSError:
                    pass

    def ask(self, address: str) -> bytes:
        """The control: the host's own request to `address` (fe80::…%bridge)."""
        host, _, scope = address.partition("%")
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect((host, self.port, 0, socket.if_nametoindex(scope)))
            s.sendall(b"GET /control HTTP/1.0\r\n\r\n")
            return s.recv(200)

    def close(self) -> None:
        self._done.set()
        self._thread.join(2)
        self.sock.close()


async def test_held_network_on_sandbox_reaches_neither_host_link_local_nor_outside_dns(rig):
    slack, model = rig.slack, rig.model
    service = HostService()
    controls: list[bytes] = []
    try:
        await command(slack, f"repo add netty {make_remote(rig.tmp, 'netty')} main", channel="CNET")
        await command(slack, "repo set netty network=on", channel="CNET")

        def probe(_body: dict):  # made when the agent runs: the task's network exists by then
            address = bridge_link_local(rig.bot.sandboxes.instance)
            deadline = time.monotonic() + 10
            while address and not settled(address) and time.monotonic() < deadline:
                time.sleep(0.2)  # (blocks the bot's loop briefly; the agent waits for this answer anyway)
            if address:  # the control: the host does answer on the bridge's link-local address
                controls.append(service.ask(address))
            code = PROBE.replace("TARGET", repr(address.split("%")[0] or "fe80::1"))
            return shell(f"python3 - <<'EOF'\n{code.replace('PORT', str(service.port))}\nEOF")
        model.script_for("net-held-probe", [probe, text("probed")])
        ts = await mention(slack, "net-held-probe", channel="CNET")
        await wait_final(slack, "CNET", ts, timeout=120)
        out = tool_outputs(model, "net-held-probe")[-1]
        result = json.loads(out[out.index("PROBE") + 5:].strip().splitlines()[0])
    finally:
        service.close()
    assert all(b"host-service" in c for c in controls), controls
    assert result["egress"].startswith("rcode=0") and not result["egress"].endswith("answers=0"), result
    for name in ("outside", "pypi"):  # the embedded DNS does not resolve outside names on an internal network
        assert not result[name].startswith("rcode=0") or result[name].endswith("answers=0"), result
    assert not result["v6"].startswith("CONNECTED"), result
    assert not [h for h in service.hits if b"/from-sandbox" in h]


# ---- S4b: the watcher's measurement is not the agent's to answer --------------------------------

async def test_s4b_a_profile_printing_zero_does_not_hide_usage_from_the_watcher(watch_rig):
    slack, model = watch_rig.slack, watch_rig.model
    model.script_for("s4b-lying-profile", [
        shell("echo 'echo 0' > ~/.bash_profile; dd if=/dev/zero of=fill bs=1M count=200 2>&1 | tail -1"),
        shell("sleep 40; echo still-running"), text("s4b done")])
    started = time.monotonic()
    ts = await mention(slack, "s4b-lying-profile")
    await slack.wait_for(lambda: any("disk quota" in block_text(m) for m in bot_messages(slack, "C1", ts)),
                         timeout=25)
    assert time.monotonic() - started < 25


async def test_s4b_measurements_failing_in_a_row_count_as_over_quota(watch_rig):
    slack, model = watch_rig.slack, watch_rig.model
    # Every process slot taken (SLACKBOT_SANDBOX_PIDS=64): the watcher cannot start `du` any more.
    model.script_for("s4b-no-pids-left", [
        shell("timeout -k 1 40 bash -c 'while :; do sleep 60 & done' >/dev/null 2>&1; echo end"),
        text("s4b pids done")])
    started = time.monotonic()
    ts = await mention(slack, "s4b-no-pids-left", channel="C2")
    await slack.wait_for(lambda: any("disk quota" in block_text(m) for m in bot_messages(slack, "C2", ts)),
                         timeout=35)
    assert time.monotonic() - started < 35


# ---- S11: workspaces cannot promise more disk than the data directory has -----------------------

@pytest.fixture
def small_disk(tmp_path: Path):
    """A ~700 MB ext4 filesystem, loop-mounted, for the data directory."""
    need_root()
    if not shutil.which("mkfs.ext4"):
        pytest.skip("mkfs.ext4 is not installed")
    image, mount = tmp_path / "small.img", tmp_path / "small"
    mount.mkdir()
    with open(image, "wb") as f:
        f.truncate(700 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        yield mount
    finally:
        with open("/proc/mounts") as f:
            inner = [line.split()[1] for line in f if line.split()[1].startswith(f"{mount}/")]
        for path in sorted(inner, reverse=True):
            subprocess.run(["umount", "-l", path], check=False)
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_s11_a_nearly_full_disk_refuses_new_workspaces_and_keeps_the_database(small_disk):
    async with running_bot(small_disk / "data", SLACKBOT_WORKSPACE_QUOTA="450m",
                           SLACKBOT_DISK_RESERVE="150m") as r:
        assert r.bot.disks.mode == "loop"
        ts_a, _ = await run_task(r.slack, r.model, "s11-fill-a", [
            "dd if=/dev/zero of=fill bs=1M count=400 2>&1 | tail -1"], timeout=180)
        assert "400" in tool_outputs(r.model, "s11-fill-a")[-1]
        # Thread B's image would be promised 450 MiB more than the disk has beside the reserve.
        _, refused = await run_task(r.slack, r.model, "s11-fill-b", [
            "dd if=/dev/zero of=fill bs=1M count=400 2>&1 | tail -1"], channel="C2", timeout=60)
        assert "disk is nearly full" in block_text(refused), block_text(refused)
        assert r.model.requests_for("s11-fill-b") == []
        assert shutil.disk_usage(small_disk).free > 100 << 20
        # The database still takes writes, and thread A (whose image is mostly allocated) goes on.
        _, third = await run_task(r.slack, r.model, "s11 then tidy up", ["rm fill; echo tidied"],
                                  thread_ts=ts_a, thread_key="s11-fill-a", count=2, timeout=120)
        assert "tidied" in tool_outputs(r.model, "s11-fill-a")[-1]


async def test_s11b_tasks_growing_together_past_the_reserve_stop_the_largest(small_disk):
    """Each task fits when it starts; together they would fill the disk: the guard stops the largest."""
    async with running_bot(small_disk / "data", SLACKBOT_WORKSPACE_QUOTA="400m",
                           SLACKBOT_DISK_RESERVE="150m") as r:
        grow = ("for i in $(seq 35); do dd if=/dev/zero of=f$i bs=1M count=10 conv=fsync 2>/dev/null; "
                "sleep 0.5; done; echo grew")
        for key in ("s11b-one", "s11b-two"):
            r.model.script_for(key, [shell(grow), text(f"{key} done")])
        ts_one = await mention(r.slack, "s11b-one", channel="C3")
        ts_two = await mention(r.slack, "s11b-two", channel="C4")
        finals = [await wait_final(r.slack, c, ts, timeout=180) for c, ts in (("C3", ts_one), ("C4", ts_two))]
        stopped = [f for f in finals if "disk is nearly full" in block_text(f)]
        assert len(stopped) >= 1, [block_text(f) for f in finals]
        assert shutil.disk_usage(small_disk).free > 20 << 20
        ts, third = await run_task(r.slack, r.model, "s11b-after", ["echo still here"], channel="C5", timeout=60)
        assert "disk is nearly full" in block_text(third)  # refused while the space stays taken...
        tasks = await r.bot.store.recent_tasks(limit=5)  # ...and the database took every write meanwhile
        assert len(tasks) == 3 and all(t.announced for t in tasks)
