"""Reading (and feeding) a container's attached stream with a deadline.

docker-py's own reader cannot be bounded: ours wakes every second to notice a caller that gave up,
so a pool thread never outlives the command's bound. Everything read is capped, because whatever
runs in the container is hostile: it may write without end.
"""

from __future__ import annotations

import secrets
import select
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any, BinaryIO

OUTPUT_KEEP_BYTES = 2 * 1024 * 1024  # kept from each end of a huge merged output
STDERR_KEEP_BYTES = 256 * 1024  # a step's stderr beside a captured stdout
STDOUT, STDERR = 1, 2


class ExecRun:
    """State shared between an exec's coroutine and its pool thread."""

    def __init__(self) -> None:
        self.marker = secrets.token_hex(8)
        self.abandoned = False


@dataclass
class Pumped:
    output: str  # merged stdout+stderr, or only stderr when stdout went to a file
    finished: bool  # the stream reached EOF (else: the deadline passed or the caller gave up)
    stdout_bytes: int = 0
    stdout_over_cap: bool = False


class _Keep:
    """Keeps the head and the tail of a stream of bytes, counting what it drops."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.head, self.tail, self.dropped = bytearray(), bytearray(), 0

    def add(self, data: bytes) -> None:
        if len(self.head) < self.keep:
            room = self.keep - len(self.head)
            self.head += data[:room]
            data = data[room:]
        self.tail += data
        if len(self.tail) > self.keep:
            self.dropped += len(self.tail) - self.keep
            del self.tail[:len(self.tail) - self.keep]

    def text(self) -> str:
        text = self.head.decode("utf-8", errors="replace")
        if self.dropped:
            text += f"\n[... {self.dropped} bytes of output omitted ...]\n"
        return text + self.tail.decode("utf-8", errors="replace")


def read_frames(sock: Any, deadline: float, run: ExecRun) -> tuple[str, bool]:
    """Stdout and stderr merged in arrival order, until EOF or the deadline."""
    pumped = pump(sock, deadline, run)
    return pumped.output, pumped.finished


def pump(sock: Any, deadline: float, run: ExecRun, *, stdin: BinaryIO | None = None,
         stdout: BinaryIO | None = None, stdout_cap: int = 0) -> Pumped:
    """Moves bytes between an attached (non-tty) stream and the host until EOF or the deadline.

    `stdin` is written to the container and then half-closed; with `stdout`, the stream's stdout
    frames go there (at most `stdout_cap` bytes; the rest is counted and dropped) and only stderr
    is kept as text.
    """
    raw = getattr(sock, "_sock", sock)
    kept = _Keep(OUTPUT_KEEP_BYTES if stdout is None else STDERR_KEEP_BYTES)
    result = Pumped("", False)
    pending = b""
    feeding = stdin is not None
    buffer = b""
    while True:
        if run.abandoned or time.monotonic() > deadline:
            result.output = kept.text()
            return result
        if feeding and not pending:
            assert stdin is not None  # feeding implies it
            pending = stdin.read(65536)
            if not pending:
                feeding = False
                _half_close(raw)
        wait = min(1.0, max(0.0, deadline - time.monotonic()))
        readable, writable, _ = select.select([raw], [raw] if pending else [], [], wait)
        if writable:
            try:
                pending = pending[raw.send(pending):]
            except (BrokenPipeError, ConnectionResetError):  # the process stopped reading
                pending, feeding = b"", False
        if not readable:
            continue
        chunk = raw.recv(65536)
        if not chunk:
            result.output, result.finished = kept.text(), True
            return result
        buffer += chunk
        while len(buffer) >= 8:
            kind, length = struct.unpack(">BxxxL", buffer[:8])
            if len(buffer) < 8 + length:
                break
            data, buffer = buffer[8:8 + length], buffer[8 + length:]
            if stdout is not None and kind == STDOUT:
                _capped_write(stdout, data, stdout_cap, result)
                if result.stdout_over_cap:  # no use reading on: the result is refused anyway
                    result.output = kept.text()
                    return result
            else:
                kept.add(data)


def _capped_write(out: BinaryIO, data: bytes, cap: int, result: Pumped) -> None:
    room = max(0, cap - result.stdout_bytes)
    if len(data) > room:
        result.stdout_over_cap = True
    if room:
        out.write(data[:room])
    result.stdout_bytes += min(len(data), room)


def _half_close(raw: Any) -> None:
    try:
        raw.shutdown(socket.SHUT_WR)
    except OSError:
        pass
