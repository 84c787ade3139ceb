"""GitHTTPServer: bare repositories served over git's smart HTTP, by `git http-backend` run as CGI.

Every request is recorded with what it was, so tests can tell a clone from a fetch:
- each clone, fetch or ls-remote starts with GET info/refs?service=git-upload-pack (`advertisements`);
- protocol v2 then POSTs `command=ls-refs`, and POSTs `command=fetch` only when objects are wanted;
- a fetch request's `want` lines name what the client lacks and its `have` lines what it already has.
So a *clone* is an upload-pack POST with wants and no haves (it had nothing); a *fetch* of new commits has
wants and haves; a fetch with nothing new sends no wants at all. `clones()` counts the first kind. This holds
for protocol v0/v1 too (same want/have lines, without ls-refs). Pushes are receive-pack POSTs.

With `token` set, requests must carry `Authorization: Basic base64(x-access-token:TOKEN)` (as GitHub accepts).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.fakes.serve import serve


@dataclass(frozen=True)
class GitRequest:
    method: str
    path: str  # e.g. /demo.git/git-upload-pack
    service: str  # git-upload-pack | git-receive-pack | ""
    wants: int
    haves: int
    command: str  # protocol v2 command (ls-refs, fetch) or ""
    authorization: str

    @property
    def repo(self) -> str:
        return self.path.split("/info/refs")[0].split("/git-")[0].lstrip("/")


class GitHTTPServer:
    def __init__(self, root: Path, *, token: str = "") -> None:
        self.root = root
        self.token = token
        self.requests: list[GitRequest] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def create_bare(self, name: str, initial_branch: str = "main") -> Path:
        """An empty bare repository under the root (served as /<name>)."""
        path = self.root / name
        subprocess.run(["git", "init", "--quiet", "--bare", f"--initial-branch={initial_branch}", str(path)],
                       check=True)
        return path

    # --- what happened ---

    def of(self, name: str) -> list[GitRequest]:
        return [r for r in self.requests if r.repo == name]

    def advertisements(self, name: str, service: str = "git-upload-pack") -> int:
        return sum(1 for r in self.of(name) if r.method == "GET" and r.service == service)

    def clones(self, name: str) -> int:
        """Upload-pack requests that wanted objects while having none: full clones."""
        return sum(1 for r in self.of(name) if r.service == "git-upload-pack" and r.wants and not r.haves)

    def incremental_fetches(self, name: str) -> int:
        return sum(1 for r in self.of(name) if r.service == "git-upload-pack" and r.wants and r.haves)

    def pushes(self, name: str) -> int:
        return sum(1 for r in self.of(name) if r.method == "POST" and r.service == "git-receive-pack")

    # --- lifecycle ---

    async def start(self) -> None:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner, self.port = await serve(app)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        body = await request.read()
        self.requests.append(_describe(request, body, auth))
        scheme, _, credentials = auth.partition(" ")  # the scheme is case-insensitive; git sends "basic"
        expected = base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
        if self.token and (scheme.lower() != "basic" or credentials.strip() != expected):
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="fake"'})
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": request.path,
            "QUERY_STRING": request.query_string,
            "REQUEST_METHOD": request.method,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": request.remote or "127.0.0.1",
            "REMOTE_USER": "tester",
            "HTTP_CONTENT_ENCODING": request.headers.get("Content-Encoding", ""),
            "HTTP_GIT_PROTOCOL": request.headers.get("Git-Protocol", ""),
            # pushes are allowed to every repository here
            "GIT_CONFIG_COUNT": "2", "GIT_CONFIG_KEY_0": "http.receivepack", "GIT_CONFIG_VALUE_0": "true",
            "GIT_CONFIG_KEY_1": "safe.directory", "GIT_CONFIG_VALUE_1": "*",
        }
        proc = await asyncio.create_subprocess_exec(
            "git", "http-backend", env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        assert proc.stdin and proc.stdout
        feed = asyncio.ensure_future(_feed(proc.stdin, body))
        status, headers = await _cgi_headers(proc.stdout)
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        while chunk := await proc.stdout.read(65536):
            await response.write(chunk)
        await feed
        await proc.wait()
        await response.write_eof()
        return response


async def _feed(stdin: asyncio.StreamWriter, body: bytes) -> None:
    """http-backend may answer and exit before reading all of a request (a fetch with nothing to
    send): the rest of the body is then of no use, not an error that resets the connection."""
    try:
        stdin.write(body)
        await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        stdin.close()


async def _cgi_headers(stdout: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    status, headers = 200, {}
    while True:
        line = (await stdout.readline()).decode("latin-1").rstrip("\r\n")
        if not line:
            return status, headers
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        else:
            headers[name.strip()] = value.strip()


def _describe(request: web.Request, body: bytes, auth: str) -> GitRequest:
    service = request.query.get("service", "")
    if not service:
        service = next((s for s in ("git-upload-pack", "git-receive-pack") if request.path.endswith(s)), "")
    if request.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    command = ""
    for line in _pkt_lines(body):
        if line.startswith(b"command="):
            command = line[len(b"command="):].decode()
    lines = _pkt_lines(body)
    wants = sum(1 for line in lines if line.startswith(b"want "))
    haves = sum(1 for line in lines if line.startswith(b"have "))
    return GitRequest(request.method, request.path, service, wants, haves, command, auth)


def _pkt_lines(data: bytes) -> list[bytes]:
    """The payloads of git pkt-lines (stops at the pack data of a push)."""
    lines, i = [], 0
    while i + 4 <= len(data):
        try:
            size = int(data[i:i + 4], 16)
        except ValueError:
            break
        if size < 4:  # flush / delimiter / response-end
            i += 4
            continue
        lines.append(data[i + 4:i + size].rstrip(b"\n"))
        i += size
    return lines
