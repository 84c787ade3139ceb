"""The host's side of the sandbox's command channel (execd.py, run in the agent's container): one
`docker exec` held open for the task, one small JSON request per command, one framed answer back.

Whatever runs as the agent's user can kill the channel's process or write into its output, so the
host believes only a well-formed answer to the request it sent: frames are capped, the id must
match, and the host keeps its own deadline. A channel that breaks is not used again; a command it
had not yet received falls back to `docker exec`, one it had gets a clear error (it is not run twice).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import logging
import re
import select
import struct
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ..protocol import ExecResult
from .exec_stream import OUTPUT_KEEP_BYTES, STDOUT, ExecRun

log = logging.getLogger(__name__)
SERVER = (Path(__file__).with_name("execd.py")).read_text()
HEADER = re.compile(rb"SLACKBOT-FRAME (\d{1,9})\n")
HEADER_MAX = 32  # bytes a frame's header may take
MAX_FRAME = 3 * OUTPUT_KEEP_BYTES + (64 << 10)  # base64 of both ends of the output, and the rest
STDERR_KEEP = 8 << 10


class ChannelBroken(Exception):
    """The channel cannot be trusted any more; the message says why (for the log)."""


class Channel:
    def __init__(self, api: Any, container_id: str, *, user: str, workdir: str) -> None:
        self.api, self.container_id, self.user, self.workdir = api, container_id, user, workdir
        self.broken = ""  # why it is not used any more ("" while it is)
        self._sock: Any = None
        self._raw: Any = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._mux = bytearray()  # the exec's multiplexed stream, not yet split into frames
        self._out = bytearray()  # the server's stdout, not yet read as answers
        self._err = bytearray()  # the server's stderr (kept small, for the log)

    def run(self, command: str, *, timeout_s: float, grace_s: float, read_grace_s: float, env: dict[str, str],
            run: ExecRun, kill: Callable[[], None], login: bool = True) -> ExecResult | None:
        """The command's result through the channel; None when the channel cannot take it (it never
        received it: the caller runs it another way). Blocking: call it on a pool thread."""
        if self.broken or not self._lock.acquire(blocking=False):  # (busy: a measurement alongside)
            return None
        try:
            return self._run(command, timeout_s, grace_s, read_grace_s, env, run, kill, login)
        finally:
            self._lock.release()

    def close(self) -> None:
        self.broken = self.broken or "closed"
        if self._raw is not None:
            try:
                self._raw.close()
            except OSError:
                pass

    def _run(self, command: str, timeout_s: float, grace_s: float, read_grace_s: float, env: dict[str, str],
             run: ExecRun, kill: Callable[[], None], login: bool) -> ExecResult | None:
        started = time.monotonic()
        request_id = next(self._ids)
        request = json.dumps({"id": request_id, "cmd": command, "timeout": timeout_s, "grace": grace_s,
                              "keep": OUTPUT_KEEP_BYTES, "env": env, "cwd": self.workdir,
                              "login": login}).encode() + b"\n"
        try:
            if self._raw is None:
                self._open()
            self._send(request)
        except Exception as exc:  # never started: the caller runs it with docker exec
            self._break(f"could not start or reach it: {exc}")
            return None
        try:
            answer = self._answer(request_id, started + timeout_s + grace_s + read_grace_s, run)
            return _result(answer, time.monotonic() - started)
        except ChannelBroken as exc:
            self._break(str(exc))
            kill()  # whatever the command started must not run on unseen
            if run.abandoned:
                raise
            return ExecResult(exit_code=125, output=f"[the sandbox's command channel failed during this command "
                                                    f"({exc}); it was stopped. Later commands run without the "
                                                    "channel.]", duration_s=time.monotonic() - started)

    def _open(self) -> None:
        exec_id = self.api.exec_create(self.container_id, ["python3", "-I", "-c", SERVER], stdin=True, stdout=True,
                                       stderr=True, tty=False, user=self.user, workdir=self.workdir)["Id"]
        self._sock = self.api.exec_start(exec_id, socket=True)
        self._raw = getattr(self._sock, "_sock", self._sock)
        self._raw.setblocking(True)

    def _send(self, data: bytes) -> None:
        self._raw.settimeout(5.0)  # the server reads a request at once; a stuck one is broken
        try:
            self._raw.sendall(data)
        finally:
            self._raw.settimeout(None)

    def _answer(self, request_id: int, deadline: float, run: ExecRun) -> dict[str, Any]:
        while True:
            answer = self._parse()
            if answer is not None:
                if answer.get("id") != request_id:
                    raise ChannelBroken(f"an answer to another request ({str(answer.get('id'))[:20]})")
                return answer
            if run.abandoned:
                raise ChannelBroken("the caller gave up")
            if time.monotonic() > deadline:
                raise ChannelBroken("no answer within the command's time limit")
            wait = min(1.0, max(0.0, deadline - time.monotonic()))
            readable, _, _ = select.select([self._raw], [], [], wait)
            if not readable:
                continue
            chunk = self._raw.recv(1 << 16)
            if not chunk:
                raise ChannelBroken(f"it stopped ({self._err.decode(errors='replace')[-200:].strip() or 'no word'})")
            self._demux(chunk)

    def _demux(self, chunk: bytes) -> None:
        self._mux += chunk
        while len(self._mux) >= 8:
            kind, length = struct.unpack(">BxxxL", self._mux[:8])
            if len(self._mux) < 8 + length:
                return
            data = bytes(self._mux[8:8 + length])
            del self._mux[:8 + length]
            if kind == STDOUT:
                self._out += data
                if len(self._out) > MAX_FRAME + HEADER_MAX:
                    raise ChannelBroken("more output than any answer may have")
            else:
                self._err = (self._err + data)[-STDERR_KEEP:]

    def _parse(self) -> dict[str, Any] | None:
        if not self._out:
            return None
        match = HEADER.match(self._out)
        if match is None:
            if len(self._out) >= HEADER_MAX or not b"SLACKBOT-FRAME ".startswith(bytes(self._out[:15])):
                raise ChannelBroken("output that is not an answer")
            return None
        size = int(match.group(1))
        if size > MAX_FRAME:
            raise ChannelBroken(f"an answer of {size} bytes")
        end = match.end() + size
        if len(self._out) < end:
            return None
        payload = bytes(self._out[match.end():end])
        del self._out[:end]
        try:
            answer = json.loads(payload)
        except ValueError:
            raise ChannelBroken("an answer that is not JSON") from None
        if not isinstance(answer, dict):
            raise ChannelBroken("an answer that is not an object")
        return answer

    def _break(self, why: str) -> None:
        if not self.broken:
            log.warning("the command channel of %s is not used any more: %s", self.container_id[:12], why)
        self.close()
        self.broken = why


def _result(answer: dict[str, Any], duration: float) -> ExecResult:
    code, timed_out, dropped = answer.get("code"), answer.get("timed_out"), answer.get("dropped", 0)
    if answer.get("error") or not isinstance(code, int) or not isinstance(timed_out, bool) \
            or not isinstance(dropped, int):
        raise ChannelBroken(f"a malformed answer ({str(answer.get('error'))[:100]})")
    try:
        data = base64.b64decode(str(answer.get("output", "")), validate=True)
    except (binascii.Error, ValueError):
        raise ChannelBroken("an answer whose output is not base64") from None
    if dropped:
        head, tail = data[:OUTPUT_KEEP_BYTES], data[OUTPUT_KEEP_BYTES:]
        text = (head.decode("utf-8", errors="replace") + f"\n[... {dropped} bytes of output omitted ...]\n"
                + tail.decode("utf-8", errors="replace"))
    else:
        text = data.decode("utf-8", errors="replace")
    return ExecResult(exit_code=code, output=text, timed_out=timed_out, duration_s=duration)
