"""The egress proxy of task sandboxes: CONNECT tunnels and plain-http requests to allowed destinations only.

Standard library only, run beside egress_rules.py. Its clients are sandboxes: every byte they send is hostile.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING

if TYPE_CHECKING or __package__:  # (mypy reads it as the package it is)
    from .egress_rules import PORT_PATTERN, Allowlist, IPAddress, bracketed, parse_allowlist, reached, shown
else:  # run as a script: -I leaves the script's own directory off sys.path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from egress_rules import PORT_PATTERN, Allowlist, IPAddress, bracketed, parse_allowlist, reached, shown

ALLOW_ENV = "SLACKBOT_EGRESS_ALLOW"
MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 100
CHUNK = 64 * 1024
LINGER_S = 1.0

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TARGET = re.compile(r"[!-~]+")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "host"}

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Refusal(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason
        self.verdict = "failed" if status >= 500 else "refused"


@dataclass(frozen=True)
class Request:
    method: str
    host: str  # as the client wrote it
    port: int
    version: str
    path: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body_length: int | None = None  # None for a tunnel: bytes flow until either side ends


def parse_request(head: bytes) -> Request:
    """A CONNECT or absolute-form http request head (ending in an empty line); Refusal when malformed."""
    lines = head.decode("latin-1").removesuffix("\r\n\r\n").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not _TARGET.fullmatch(parts[1]):
        raise Refusal(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise Refusal(400, "only HTTP/1.0 and HTTP/1.1 are spoken here")
    headers = _parse_headers(lines[1:])
    if method == "CONNECT":
        host, port = _split_authority(target, None)
        return Request(method, host, port, version, headers=headers)
    if target[:7].lower() != "http://":
        raise Refusal(400, "only CONNECT and absolute http:// URLs are proxied")
    rest = target[7:]
    cut = min((rest.find(c) for c in "/?#" if c in rest), default=len(rest))
    host, port = _split_authority(rest[:cut], 80)
    path = rest[cut:].split("#", 1)[0]
    path = path if path.startswith("/") else "/" + path
    return Request(method, host, port, version, path, headers, _body_length(headers))


def _parse_headers(lines: list[str]) -> tuple[tuple[str, str], ...]:
    if len(lines) > MAX_HEADERS:
        raise Refusal(400, "too many header lines")
    headers = []
    for line in lines:
        name, colon, value = line.partition(":")
        value = value.strip(" \t")
        if not colon or not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
            raise Refusal(400, "malformed header line")
        headers.append((name, value))
    return tuple(headers)


def _split_authority(text: str, default_port: int | None) -> tuple[str, int]:
    if "@" in text:
        raise Refusal(400, "credentials in the request target are not allowed")
    colon = text.find(":", text.find("]") + 1 if text.startswith("[") else 0)
    host, port = (text, None) if colon < 0 else (text[:colon], text[colon + 1:])
    if not host:
        raise Refusal(400, "the request target has no host")
    if port is None:
        if default_port is None:
            raise Refusal(400, "CONNECT needs HOST:PORT")
        return host, default_port
    if not PORT_PATTERN.fullmatch(port) or not 0 < int(port) < 65536:
        raise Refusal(400, "invalid port in the request target")
    return host, int(port)


def _body_length(headers: tuple[tuple[str, str], ...]) -> int:
    if any(name.lower() == "transfer-encoding" for name, _ in headers):
        raise Refusal(411, "chunked request bodies are not proxied over plain http; use https")
    values = {value for name, value in headers if name.lower() == "content-length"}
    if len(values) > 1 or values and not _CONTENT_LENGTH.fullmatch(next(iter(values))):
        raise Refusal(400, "invalid Content-Length")
    return int(values.pop()) if values else 0


def origin_head(request: Request, host: str | IPAddress) -> bytes:
    """The request in origin form for the destination, without hop-by-hop or Proxy-* headers."""
    named = {token.strip().lower() for name, value in request.headers if name.lower() == "connection"
             for token in value.split(",")}
    dropped = (_HOP_BY_HOP | named) - {"content-length"}  # the body we forward is framed by it
    authority = bracketed(host) + ("" if request.port == 80 else f":{request.port}")
    lines = [f"{request.method} {request.path} {request.version}", f"Host: {authority}"]
    lines += [f"{name}: {value}" for name, value in request.headers
              if name.lower() not in dropped and not name.lower().startswith("proxy-")]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def resolve(name: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos
                              if info[0] in (socket.AF_INET, socket.AF_INET6)))


def print_line(line: str) -> None:
    print(line, flush=True)


@dataclass(frozen=True)
class Limits:
    header_timeout: float = 10.0  # seconds a client has to send its whole request head
    connect_timeout: float = 10.0  # seconds to resolve a destination and connect to it
    idle_timeout: float = 120.0  # seconds a connection may stay with no byte moving either way
    max_connections: int = 256  # client connections served at once; more are answered 503


class EgressProxy:
    """Serves clients: one request per connection, checked against the allowlist, then relayed."""

    def __init__(self, allowlist: Allowlist, limits: Limits = Limits(), *, resolver: Resolver = resolve,
                 log: Callable[[str], None] = print_line) -> None:
        self.allowlist = allowlist
        self.limits = limits
        self._resolve = resolver
        self._log_line = log
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._handle, host, port, limit=MAX_HEAD_BYTES)
        return self._server.sockets[0].getsockname()[:2]

    async def stop(self) -> None:
        if self._server:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server:
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client = bracketed(ipaddress.ip_address(peer[0])) + f":{peer[1]}" if peer else "-"
        if len(self._handlers) >= self.limits.max_connections:
            self._log("refused", client, None, "too many connections")
            await _reply(writer, 503, "too many connections")
            writer.close()  # no lingering here: a flood must not hold sockets
            return
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer, client)
        except Exception as error:  # a bug must cost one connection, never the proxy
            self._log("failed", client, None, f"internal error: {type(error).__name__}")
        except asyncio.CancelledError:
            pass  # stop() ends every connection this way; nobody else awaits these tasks
        finally:
            self._handlers.discard(task)
            await _finish(reader, writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str) -> None:
        request = None
        try:
            request = await self._read_request(reader)
            if request is None:
                return
            host, addresses, reason = await self._destination(request)
            address, (up_reader, up_writer) = await self._connect(addresses, request.port)
        except Refusal as refusal:
            self._log(refusal.verdict, client, request, refusal.reason)
            await _reply(writer, refusal.status, refusal.reason)
            return
        self._log("allowed", client, request, f"{reason}, connected to {bracketed(address)}")
        try:
            if request.method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                up_writer.write(origin_head(request, host))
            await _relay(reader, writer, up_reader, up_writer, _Activity(self.limits.idle_timeout),
                         request.body_length)
        finally:
            up_writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> Request | None:
        try:
            async with asyncio.timeout(self.limits.header_timeout):
                head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise Refusal(400, f"request head larger than {MAX_HEAD_BYTES} bytes") from None
        except asyncio.IncompleteReadError as error:
            if not error.partial:
                return None  # connected and left without a word
            raise Refusal(400, "incomplete request head") from None
        except TimeoutError:
            raise Refusal(408, "timed out waiting for the request head") from None
        return parse_request(head)

    async def _destination(self, request: Request) -> tuple[str | IPAddress, list[IPAddress], str]:
        """The checked host, the addresses to connect to, and which entries allowed them."""
        try:
            host, rule = self.allowlist.check(request.host, request.port)
        except ValueError as error:
            raise Refusal(403, str(error)) from None
        if not isinstance(host, str):
            return host, [host], f"entry {rule}"
        try:
            async with asyncio.timeout(self.limits.connect_timeout):
                found = await self._resolve(host, request.port)
        except (OSError, TimeoutError, UnicodeError):
            raise Refusal(502, f"could not resolve {host}") from None
        if not found:
            raise Refusal(502, f"{host} has no addresses")
        addresses = [reached(address) for address in found]  # checked and connected to as such
        if refusal := self.allowlist.address_refusal(host, addresses, request.port):
            raise Refusal(403, refusal)
        return host, addresses, f"entry {rule}"

    async def _connect(self, addresses: list[IPAddress], port: int) -> tuple[IPAddress, Streams]:
        """Connects to one of the checked addresses themselves: no second lookup a rebinding could answer."""
        errors = []
        try:
            async with asyncio.timeout(self.limits.connect_timeout):
                for address in addresses:
                    try:
                        return address, await _open(address, port)
                    except OSError as error:
                        errors.append(f"{bracketed(address)}: {error.strerror or error}")
        except TimeoutError:
            raise Refusal(504, f"timed out connecting to port {port}") from None
        raise Refusal(502, "could not connect: " + "; ".join(errors))

    def _log(self, verdict: str, client: str, request: Request | None, reason: str) -> None:
        method, host, port = (request.method, shown(request.host), request.port) if request else ("-", "-", "-")
        self._log_line(f'{verdict} client={client} method={method} host={host} port={port} '
                       f'reason="{shown(reason, 300)}"')


async def _open(address: IPAddress, port: int) -> Streams:
    sock = socket.socket(socket.AF_INET if address.version == 4 else socket.AF_INET6, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (str(address), port))
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock, limit=CHUNK)


class _Activity:
    """When bytes last moved either way: a connection is idle only when both directions are."""

    def __init__(self, idle: float) -> None:
        self.idle = idle
        self.touch()

    def touch(self) -> None:
        self.last = time.monotonic()

    async def read(self, reader: asyncio.StreamReader, size: int) -> bytes:
        while (remaining := self.last + self.idle - time.monotonic()) > 0:
            with suppress(TimeoutError):  # the other direction may have moved meanwhile: look again
                async with asyncio.timeout(remaining):
                    return await reader.read(size)
        raise TimeoutError("connection idle")


async def _relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                 up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter, activity: _Activity,
                 body_length: int | None) -> None:
    """Moves bytes both ways until the destination has answered (or fails, or the connection idles)."""
    download = asyncio.create_task(_pump(up_reader, client_writer, activity))
    upload = asyncio.create_task(_pump(client_reader, up_writer, activity, body_length))
    try:
        done, _ = await asyncio.wait({download, upload}, return_when=asyncio.FIRST_COMPLETED)
        if download not in done and upload.exception() is None:
            await asyncio.wait({download})  # the client has said everything; the answer may still be coming
    finally:
        for task in (download, upload):
            task.cancel()
        await asyncio.gather(download, upload, return_exceptions=True)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, activity: _Activity,
                limit: int | None = None) -> None:
    """Copies until EOF, or `limit` bytes; at EOF of an unlimited copy the other side gets EOF too."""
    left = limit
    while left is None or left > 0:
        data = await activity.read(reader, CHUNK if left is None else min(CHUNK, left))
        if not data:
            break
        left = None if left is None else left - len(data)
        writer.write(data)
        async with asyncio.timeout(activity.idle):
            await writer.drain()
        activity.touch()
    if limit is None and writer.can_write_eof():
        writer.write_eof()


async def _reply(writer: asyncio.StreamWriter, status: int, reason: str) -> None:
    body = (reason + "\n").encode("ascii", "replace")
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    writer.write(head.encode("ascii") + body)
    with suppress(OSError, TimeoutError):
        async with asyncio.timeout(LINGER_S):
            await writer.drain()


async def _finish(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Closes gracefully: closing with unread input would reset the connection and lose our answer."""
    with suppress(Exception):
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(LINGER_S):
            for _ in range(16):
                if not await reader.read(CHUNK):
                    break
    writer.close()
    with suppress(Exception):
        async with asyncio.timeout(LINGER_S):
            await writer.wait_closed()


async def serve(allowlist: Allowlist, host: str, port: int) -> None:
    proxy = EgressProxy(allowlist)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # as PID 1 in a container SIGTERM is ignored otherwise
        loop.add_signal_handler(signum, stopped.set)
    bound_host, bound_port = await proxy.start(host, port)
    print_line(f"listening on {bracketed(ipaddress.ip_address(bound_host))}:{bound_port} "
               f"allowing {', '.join(allowlist.entries()) or 'nothing'}")
    await stopped.wait()
    await proxy.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--listen", default="0.0.0.0:3128", help="HOST:PORT to listen on (default %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help=f"validate ${ALLOW_ENV}, print its entries normalised, and exit")
    args = parser.parse_args(argv)
    allowlist, errors = parse_allowlist(os.environ.get(ALLOW_ENV, ""))
    for error in errors:
        print(f"{ALLOW_ENV}: {error}", file=sys.stderr)
    if args.check:
        print("\n".join(allowlist.entries()))
        return 1 if errors else 0
    if errors:
        return 2  # a half-understood allowlist must not start a proxy
    host, _, port = args.listen.rpartition(":")
    if not host or not PORT_PATTERN.fullmatch(port) or int(port) > 65535:
        parser.error("--listen takes HOST:PORT")
    asyncio.run(serve(allowlist, host.strip("[]"), int(port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
