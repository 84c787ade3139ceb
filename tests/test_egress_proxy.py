"""The egress proxy over real sockets: destinations are small servers on this machine's loopback addresses."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from slackbot.sandbox import egress_proxy, egress_rules
from slackbot.sandbox.egress_proxy import EgressProxy, Limits, resolve
from slackbot.sandbox.egress_rules import IPAddress, address_kind, normalize_host, parse_allowlist

# Spellings of 127.0.0.1 that inet_aton or a URL parser would accept; never taken as a name or an address.
NON_CANONICAL = ["127.1", "127.0.1", "0x7f.1", "0x7f000001", "2130706433", "017700000001", "0177.0.0.1",
                 "127.0.0.01", "0x7f.0.0.1", "127.0.0.1%00", "[127.0.0.1]", "[::ffff:127.1]", "[fe80::1%25lo]"]
# Canonical addresses and names that reach loopback: they need an address entry that covers them.
LOOPBACK_FORMS = ["127.0.0.1", "127.0.0.1.", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:7f00:1]",
                  "[::127.0.0.1]", "[::1]", "localhost.", "LocalHost"]


class Origin:
    """An HTTP server on a loopback address that answers each request with its label (or stays silent)."""

    def __init__(self, label: str, silent: bool = False) -> None:
        self.label = label
        self.silent = silent
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.connections = 0
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Origin:
        self.server = await asyncio.start_server(self._handle, host, port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            self.bodies.append(await reader.readexactly(length))
            if self.silent:
                await reader.read()
            body = self.label.encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            await closed(writer)


@dataclass
class Running:
    proxy: EgressProxy
    port: int
    log: list[str] = field(default_factory=list)


@asynccontextmanager
async def running_proxy(allow: str, limits: Limits = Limits(), resolver=resolve) -> AsyncIterator[Running]:
    allowlist, errors = parse_allowlist(allow)
    assert errors == []
    log: list[str] = []
    proxy = EgressProxy(allowlist, limits, resolver=resolver, log=log.append)
    _, port = await proxy.start("127.0.0.1", 0)
    try:
        yield Running(proxy, port, log)
    finally:
        await proxy.stop()


@asynccontextmanager
async def origin_on(host: str = "127.0.0.1", port: int = 0, **options) -> AsyncIterator[Origin]:
    origin = await Origin(f"origin at {host}", **options).start(host, port)
    try:
        yield origin
    finally:
        await origin.stop()


async def exchange(port: int, data: bytes) -> bytes:
    """Sends `data` to the proxy and returns everything it answers until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        await closed(writer)


async def tunnel(port: int, target: str) -> tuple[int, bytes]:
    """CONNECTs to `target`, then speaks HTTP through the tunnel: (CONNECT status, what came back)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: x\r\n\r\n".encode())
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
            if status(head) != 200:
                return status(head), await reader.read()
            writer.write(b"GET /through HTTP/1.1\r\nHost: inside\r\n\r\n")
            return 200, await reader.read()
    finally:
        await closed(writer)


async def get(port: int, url: str, extra: str = "") -> bytes:
    return await exchange(port, f"GET {url} HTTP/1.1\r\nHost: ignored.test\r\n{extra}\r\n".encode())


async def closed(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with suppress(ConnectionError):
        await writer.wait_closed()


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


async def test_connect_and_plain_http_reach_a_listed_address():
    async with origin_on() as origin, running_proxy(f"127.0.0.1/32:{origin.port}") as running:
        code, answer = await tunnel(running.port, f"127.0.0.1:{origin.port}")
        assert (code, answer.endswith(b"origin at 127.0.0.1")) == (200, True)
        assert origin.heads[-1].startswith(b"GET /through HTTP/1.1\r\n")

        answer = await get(running.port, f"http://127.0.0.1:{origin.port}/path?q=1#frag")
        assert status(answer) == 200 and answer.endswith(b"origin at 127.0.0.1")
        assert origin.heads[-1].startswith(b"GET /path?q=1 HTTP/1.1\r\n")
    assert all(line.startswith("allowed ") and f"port={origin.port}" in line for line in running.log)
    assert len(running.log) == 2


async def test_plain_http_is_rewritten_for_the_origin():
    async with origin_on() as origin, running_proxy(f"127.0.0.1/32:{origin.port}") as running:
        request = (f"POST http://127.0.0.1:{origin.port} HTTP/1.1\r\nHost: elsewhere.test\r\n"
                   "Proxy-Authorization: Basic c2VjcmV0\r\nProxy-Connection: keep-alive\r\n"
                   "Connection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\nX-Kept: yes\r\n"
                   "Content-Length: 5\r\n\r\nhello")
        answer = await exchange(running.port, request.encode())
    assert status(answer) == 200
    head = origin.heads[-1].decode()
    assert head.startswith("POST / HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{origin.port}\r\n" in head and "elsewhere" not in head
    assert "X-Kept: yes\r\n" in head and "Content-Length: 5\r\n" in head and "Connection: close\r\n" in head
    for dropped in ("Proxy-", "Keep-Alive", "X-Hop", "keep-alive"):
        assert dropped not in head
    assert origin.bodies[-1] == b"hello"


async def test_a_name_resolving_to_loopback_is_refused_unless_an_address_entry_covers_it():
    async with origin_on() as origin:
        for allow in (f"localhost:{origin.port}", ".localhost:" + str(origin.port), ""):
            async with running_proxy(allow) as running:
                code, answer = await tunnel(running.port, f"localhost:{origin.port}")
                assert code == 403, allow
                plain = await get(running.port, f"http://localhost:{origin.port}/")
                assert status(plain) == 403
                if allow:
                    assert b"127.0.0.1, loopback" in answer
                assert all(line.startswith("refused ") and "host=localhost" in line for line in running.log)
        assert origin.connections == 0
        async with running_proxy(f"localhost:{origin.port}, 127.0.0.1/32:{origin.port}") as running:
            code, answer = await tunnel(running.port, f"localhost:{origin.port}")
        assert code == 200 and answer.endswith(b"origin at 127.0.0.1")


async def test_odd_ip_literals_are_refused():
    async with origin_on() as origin, running_proxy(f"localhost:{origin.port}") as running:
        for literal in NON_CANONICAL + LOOPBACK_FORMS:
            code, answer = await tunnel(running.port, f"{literal}:{origin.port}")
            assert code == 403, literal
            assert status(await get(running.port, f"http://{literal}:{origin.port}/")) == 403, literal
        assert len(running.log) == 2 * len(NON_CANONICAL + LOOPBACK_FORMS)
    async with origin_on() as origin, running_proxy(f"127.0.0.0/8:{origin.port}") as running:
        for literal in NON_CANONICAL:
            code, answer = await tunnel(running.port, f"{literal}:{origin.port}")
            assert code == 403 and b"not covered" not in answer, literal
        assert origin.connections == 0
        assert (await tunnel(running.port, f"127.0.0.1:{origin.port}"))[0] == 200  # the target was live


async def test_an_ipv4_mapped_literal_is_the_ipv4_address_it_reaches():
    async with origin_on() as origin, running_proxy(f"127.0.0.1/32:{origin.port}") as running:
        assert (await tunnel(running.port, f"[::ffff:127.0.0.1]:{origin.port}"))[0] == 200
        assert (await tunnel(running.port, f"127.1:{origin.port}"))[0] == 403
        assert (await tunnel(running.port, f"[::127.0.0.1]:{origin.port}"))[0] == 403


async def test_ipv6_loopback_through_its_entry():
    async with origin_on("::1") as origin, running_proxy(f"[::1]:{origin.port}") as running:
        code, answer = await tunnel(running.port, f"[::1]:{origin.port}")
        assert code == 200 and answer.endswith(b"origin at ::1")
        assert (await tunnel(running.port, f"[::ffff:127.0.0.1]:{origin.port}"))[0] == 403


async def test_ports_other_than_80_and_443_must_be_listed():
    async with origin_on() as origin:
        for allow in ("127.0.0.1/32", "127.0.0.0/8", f"127.0.0.1/32:{origin.port + 1}"):
            async with running_proxy(allow) as running:
                code, answer = await tunnel(running.port, f"127.0.0.1:{origin.port}")
                assert code == 403 and b"not covered" in answer, allow
        assert origin.connections == 0


async def test_wildcards_and_names_go_to_the_checked_address():
    calls: list[str] = []

    async def loopback_two(name: str, port: int) -> list[IPAddress]:
        calls.append(name)
        return [ipaddress.ip_address("127.0.0.2")]

    async with origin_on("127.0.0.2") as origin:
        allow = f"*.example.test:{origin.port}, 127.0.0.2/32:{origin.port}"
        async with running_proxy(allow, resolver=loopback_two) as running:
            assert (await tunnel(running.port, f"a.b.Example.Test.:{origin.port}"))[0] == 200
            assert status(await get(running.port, f"http://www.example.test:{origin.port}/x")) == 200
            assert (await tunnel(running.port, f"example.test:{origin.port}"))[0] == 403
            assert (await tunnel(running.port, f"badexample.test:{origin.port}"))[0] == 403
    assert calls == ["a.b.example.test", "www.example.test"]  # unlisted names are never looked up
    assert origin.heads[-1].startswith(b"GET /x HTTP/1.1\r\nHost: www.example.test:")


async def test_dns_rebinding_cannot_move_a_checked_connection():
    answers = iter([["127.0.0.2"], ["127.0.0.1"], ["127.0.0.1"]])

    async def rebinding(name: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(text) for text in next(answers)]

    async with origin_on() as target, origin_on("127.0.0.2", target.port) as allowed:
        allow = f"rebind.example.test:{target.port}, 127.0.0.2/32:{target.port}"
        async with running_proxy(allow, resolver=rebinding) as running:
            code, answer = await tunnel(running.port, f"rebind.example.test:{target.port}")
            assert code == 200 and answer.endswith(b"origin at 127.0.0.2")
            code, answer = await tunnel(running.port, f"rebind.example.test:{target.port}")
            assert code == 403 and b"loopback" in answer
    assert (allowed.connections, target.connections) == (1, 0)


@pytest.mark.parametrize("request_bytes, expected", [
    (b"\x00\xff\xfe garbage\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET https://127.0.0.1/ HTTP/1.1\r\n\r\n", 400),
    (b"CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n", 400),
    (b"CONNECT 127.0.0.1:99999 HTTP/1.1\r\n\r\n", 400),
    (b"CONNECT 127.0.0.1:+80 HTTP/1.1\r\n\r\n", 400),
    (b"CONNECT ::1:443 HTTP/1.1\r\n\r\n", 400),
    (b"GET http://user:pw@127.0.0.1/ HTTP/1.1\r\n\r\n", 400),
    (b"GET http://127.0.0.1/ HTTP/2.0\r\n\r\n", 400),
    (b"GET http://127.0.0.1/ HTTP/1.1 extra\r\n\r\n", 400),
    (b"GET http://127.0.0.1/ HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
    (b"GET http://127.0.0.1/ HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    (b"GET http://127.0.0.1/ HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400),
    (b"GET http://127.0.0.1/ HTTP/1.1\r\nX: a\nInjected: b\r\n\r\n", 400),
    (b"GET http://127.0.0.1/ HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n", 400),
    (b"GET http://127.0.0.1/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"POST http://127.0.0.1/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
    (b"GET http://127.0.0.1/" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n", 400),
    (b"GET http://127.0.0.1/ HTTP/1.1\r\n" + b"X-Big: " + b"b" * 17000 + b"\r\n\r\n", 400),
    (b"GET http://127.0.0.1/ HTTP/1.1\r\n" + b"X: y\r\n" * 150 + b"\r\n", 400),
    (b"GET http://127.0.0.1/ HTTP/1.1\r\nX: y", 400),
])
async def test_malformed_requests_get_an_answer_and_the_proxy_carries_on(request_bytes, expected):
    async with origin_on() as origin, running_proxy(f"127.0.0.1/32:{origin.port}") as running:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(request_bytes)
        writer.write_eof()
        async with asyncio.timeout(5):
            answer = await reader.read()
        await closed(writer)
        assert status(answer) == expected and answer.endswith(b"\n")
        assert running.log[-1].startswith("refused ")
        assert (await tunnel(running.port, f"127.0.0.1:{origin.port}"))[0] == 200


async def test_random_garbage_never_brings_the_proxy_down():
    noise = random.Random(7)
    async with origin_on() as origin, running_proxy(f"127.0.0.1/32:{origin.port}") as running:
        for _ in range(60):
            junk = bytes(noise.randrange(256) for _ in range(noise.randrange(1, 300)))
            answer = await exchange(running.port, junk + b"\r\n\r\n")
            assert status(answer) in (400, 403)
        assert (await tunnel(running.port, f"127.0.0.1:{origin.port}"))[0] == 200


async def test_a_slow_request_head_times_out():
    async with running_proxy("", Limits(header_timeout=0.3)) as running:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(b"GET http://127.0.0.1/ HTTP/1.1\r\nX: ")
        async with asyncio.timeout(3):
            answer = await reader.read()
        await closed(writer)
    assert status(answer) == 408
    assert "timed out" in running.log[-1]


async def test_an_idle_tunnel_is_closed():
    async with origin_on(silent=True) as origin:
        async with running_proxy(f"127.0.0.1/32:{origin.port}", Limits(idle_timeout=0.3)) as running:
            reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
            writer.write(f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1\r\n\r\n".encode())
            async with asyncio.timeout(3):
                assert status(await reader.readuntil(b"\r\n\r\n")) == 200
                writer.write(b"GET / HTTP/1.1\r\n\r\n")  # the origin reads it and never answers
                assert await reader.read() == b""
            await closed(writer)


async def test_connections_beyond_the_cap_are_turned_away():
    async with origin_on() as origin:
        allow = f"127.0.0.1/32:{origin.port}"
        async with running_proxy(allow, Limits(max_connections=2)) as running:
            held = [await asyncio.open_connection("127.0.0.1", running.port) for _ in range(2)]
            for _, writer in held:
                writer.write(b"GET http://127.0.0.1/ HTTP/1.1\r\n")
            await asyncio.sleep(0.1)
            assert status(await exchange(running.port, b"")) == 503
            for _, writer in held:
                await closed(writer)
            await asyncio.sleep(0.2)
            assert (await tunnel(running.port, f"127.0.0.1:{origin.port}"))[0] == 200


async def test_an_unreachable_destination_is_a_bad_gateway():
    async with origin_on() as origin:
        closed_port = origin.port
    async with running_proxy(f"127.0.0.1/32:{closed_port}") as running:
        code, answer = await tunnel(running.port, f"127.0.0.1:{closed_port}")
    assert code == 502 and b"could not connect" in answer
    assert running.log[-1].startswith("failed ")


def test_allowlist_syntax():
    allowlist, errors = parse_allowlist(
        "Example.COM., *.wild.test, .both.test:8443 # a comment\n10.1.0.0/16\n[fd00::/8]:22, ::1, 192.0.2.7:80\n"
        "Bücher.example, 127.1, 10.1.2.3/16, bad host, *.10.0.0.1, [::ffff:127.0.0.1], a.test:0, a.test:x, *, "
        "[fe80::1%eth0], ftp://a.test")
    assert allowlist.entries() == ["example.com", "*.wild.test", ".both.test:8443", "xn--bcher-kva.example",
                                   "10.1.0.0/16", "[fd00::/8]:22", "[::1]", "192.0.2.7:80"]
    assert [error.split(":")[0] for error in errors] == [
        "127.1", "10.1.2.3/16", "bad host", "*.10.0.0.1", "[", "a.test", "a.test", "*", "[fe80", "ftp"]


def test_name_rules():
    allowlist, _ = parse_allowlist("exact.test, *.sub.test, .both.test, port.test:8080")
    allowed = {(name, port) for name in ("exact.test", "a.exact.test", "sub.test", "a.sub.test", "a.b.sub.test",
                                         "xsub.test", "both.test", "a.both.test", "port.test")
               for port in (80, 443, 8080) if allowlist.rule_for_name(name, port)}
    assert allowed == {("exact.test", 80), ("exact.test", 443), ("a.sub.test", 80), ("a.sub.test", 443),
                       ("a.b.sub.test", 80), ("a.b.sub.test", 443), ("both.test", 80), ("both.test", 443),
                       ("a.both.test", 80), ("a.both.test", 443), ("port.test", 8080)}


def test_host_normalisation():
    assert normalize_host("WWW.Example.Test.") == "www.example.test"
    assert normalize_host("bücher.example") == "xn--bcher-kva.example"
    assert normalize_host("１２７.０.０.１") == ipaddress.ip_address("127.0.0.1")  # IDNA maps it to the literal
    assert normalize_host("[::ffff:10.0.0.1]") == ipaddress.ip_address("10.0.0.1")
    for odd in (*NON_CANONICAL, "a b.test", "a..test", "-a.test", "a/b", "a\x00.test", "", ".", "x" * 300):
        with pytest.raises(ValueError):
            normalize_host(odd)


@pytest.mark.parametrize("text, kind", [
    ("169.254.169.254", "a cloud metadata address"), ("fd00:ec2::254", "a cloud metadata address"),
    ("::ffff:169.254.169.254", "a cloud metadata address"), ("127.0.0.2", "loopback"), ("::1", "loopback"),
    ("10.0.0.1", "private"), ("172.31.0.1", "private"), ("192.168.1.1", "private"), ("fd12::1", "private"),
    ("169.254.1.1", "link-local"), ("fe80::1", "link-local"), ("100.64.0.1", "shared (CGNAT)"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"), ("::7f00:1", "reserved"),
    ("2002:7f00:1::1", "loopback (embedded 127.0.0.1)"), ("2002:a9fe:a9fe::", "a cloud metadata address "
                                                                              "(embedded 169.254.169.254)"),
    ("64:ff9b::a00:1", "private (embedded 10.0.0.1)"), ("2001::1", "reserved"),
    ("9.9.9.9", None), ("2a00:1450::1", None), ("64:ff9b::909:909", None),
])
def test_address_kinds(text, kind):
    assert address_kind(ipaddress.ip_address(text)) == kind


def test_every_resolved_address_is_checked():
    allowlist, _ = parse_allowlist("mixed.test, 10.0.0.0/8")
    public, private, loopback = (ipaddress.ip_address(text) for text in ("9.9.9.9", "10.1.1.1", "127.0.0.1"))
    assert allowlist.address_refusal("mixed.test", [public, private], 443) is None
    assert "127.0.0.1, loopback" in allowlist.address_refusal("mixed.test", [public, loopback], 443)
    assert allowlist.address_refusal("mixed.test", [private], 8080) is not None


async def test_runs_standalone_with_the_standard_library_only(tmp_path: Path):
    script = tmp_path / "egress_proxy.py"
    shutil.copy(egress_proxy.__file__, script)
    shutil.copy(egress_rules.__file__, tmp_path / "egress_rules.py")
    async with origin_on() as origin:
        env = {"PATH": os.environ.get("PATH", ""), "SLACKBOT_EGRESS_ALLOW": f"127.0.0.1/32:{origin.port}"}
        process = await asyncio.create_subprocess_exec(sys.executable, "-I", str(script), "--listen",
                                                       "127.0.0.1:0", env=env, stdout=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(10):
                first = (await process.stdout.readline()).decode()
                assert first.startswith("listening on 127.0.0.1:"), first
                port = int(first.split()[2].rsplit(":", 1)[1])
                assert (await tunnel(port, f"127.0.0.1:{origin.port}"))[0] == 200
                process.send_signal(signal.SIGTERM)
                rest = (await process.stdout.read()).decode()
                assert await process.wait() == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert rest.startswith(f"allowed client=127.0.0.1:") and f"port={origin.port}" in rest


async def test_check_mode_reports_bad_entries(tmp_path: Path):
    for allow, code in (("a.test, 10.0.0.0/8:5432", 0), ("a.test, 127.1", 1)):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-I", egress_proxy.__file__, "--check", env={"SLACKBOT_EGRESS_ALLOW": allow},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
        assert process.returncode == code
        assert out.decode().splitlines()[0] == "a.test"
        assert ("127.1" in err.decode()) == bool(code)
